"""G2P for the words CMUdict lacks (steps.lang.g2p, stage 3's --g2p): espeak-ng's phonemes
mapped onto CMUdict's phones; prepare_lang puts them in the lexicon and words.txt and in a
reviewable file that the next run reuses as edited; such words reach G and the decoding
graph and are decoded."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from lhotse import SupervisionSegment, SupervisionSet

from conftest import write_transcripts_corpus
from steps import make_lm, prepare_lang
from steps.decoding.hybrid_graph import HybridGraph, SearchOptions
from steps.graph.hclg import GraphOptions
from steps.graph.make import make_graph
from steps.lang.g2p import PHONE_MAP, EspeakG2P, reject_reason, to_cmudict
from steps.lang.lexicon import Lang, read_lexicon, read_symbol_table
from steps.lang.prepare import g2p_wanted, phone_classes
from steps.toy.decode_graphs import ToyTree, peaked_scores, senone_path
from steps.toy.tree_data import toy_topology

CMUDICT_PHONES = {p for _, phones in phone_classes() for p in phones}


def test_the_map_gives_cmudict_phones_and_handles_marks_and_r():
    assert {p for phones in PHONE_MAP.values() for p in phones} <= CMUDICT_PHONES
    # stress marks, pauses and the syllable mark go; r-coloured vowels carry one R
    assert to_cmudict(["s", "m", "'u:", "D", "i", "_:"]) == (("S", "M", "UW", "DH", "IY"), [])
    assert to_cmudict(["f", "'e@", "r", "i"]) == (("F", "EH", "R", "IY"), [])
    assert to_cmudict(["h", "'3:", "r", "i"]) == (("HH", "ER", "IY"), [])
    assert to_cmudict(["b", "'0", "t", "@L"]) == (("B", "AA", "T", "AH", "L"), [])
    assert to_cmudict(["m", "aI", ";", "k", "r", "oU"]) == (("M", "AY", "K", "R", "OW"), [])
    assert to_cmudict(["k", "Y"]) == (("K",), ["Y"])


def test_which_words_are_converted():
    for word in ["SMOOTHIE", "O'BRIEN", "MOTHER-IN-LAW", "BORROWERS'", "'TIL", "CAFÉ", "A"]:
        assert reject_reason(word) is None, word
    for word in ["B2B", "<NOISE>", "[LAUGH]", "AT&T", "--", "'", "SMOOTHIE-", "1990"]:
        assert reject_reason(word).startswith("not-a-word"), word


def test_espeak_pronounces_words_in_cmudict_phones():
    prons, rejected = EspeakG2P().convert(["SMOOTHIE", "CHICKPEAS", "FAIRY", "KITCHEN", "TZATZIKI", "B2B"])
    assert prons == {
        "SMOOTHIE": ("S", "M", "UW", "DH", "IY"),
        "CHICKPEAS": ("CH", "IH", "K", "P", "IY", "Z"),
        "FAIRY": ("F", "EH", "R", "IY"),
        "KITCHEN": ("K", "IH", "CH", "AH", "N"),  # CMUdict: K IH1 CH AH0 N
        "TZATZIKI": ("T", "IY", "Z", "AE", "T", "S", "IH", "K", "IY"),
    }
    assert list(rejected) == ["B2B"]


def test_a_missing_program_says_what_to_install():
    with pytest.raises(RuntimeError, match="Debian package espeak-ng.*--g2p none"):
        EspeakG2P(program="no-such-espeak-ng")


def test_training_words_all_get_g2p_and_the_lm_texts_most_frequent_first():
    train = Counter({"ZEB": 1, "THE": 5, "ALF": 2})
    lm = Counter({"QUUX": 1, "FOO": 3, "BAR": 3, "ZEB": 9, "A": 4, "<UNK>": 2})
    known = {"THE", "A"}
    assert g2p_wanted(train, lm, known, 2) == (["ALF", "ZEB", "BAR", "FOO"], 1)
    assert g2p_wanted(train, lm, known, 0) == (["ALF", "ZEB"], 3)


# ------------------------------------------------------------------ prepare_lang

TRANSCRIPTS = {
    "train": ["I MADE A SMOOTHIE", "THE LASAGNE WAS HOT", "B2B SALES"],
    "dev": ["A CHICKPEAS SMOOTHIE"],
    "test": ["GNOCCHI AGAIN"],
}
LM_TEXT = "I MADE A SMOOTHIE WITH CHICKPEAS\nTHE LASAGNE WAS HOT\nTHE OMELETTE WAS HOT\nI MADE A LASAGNE\n"


@pytest.fixture
def corpus(tmp_path):
    return tmp_path, write_transcripts_corpus(tmp_path, "food", TRANSCRIPTS, LM_TEXT)


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_prepare_lang_adds_g2p_words_and_reuses_the_edited_file(corpus):
    root, args = corpus
    lang = root / "lang"
    prepare_lang.main(args)
    # every word of the LM text and the training transcripts that CMUdict lacks, sorted
    assert read_lines(lang / "g2p_lexicon.txt") == [
        "CHICKPEAS CH IH K P IY Z", "LASAGNE L AH Z AA N Y AH", "OMELETTE AA M L AH T",
        "SMOOTHIE S M UW DH IY"]
    lexicon = read_lexicon(lang / "lexicon.txt")
    assert ("SMOOTHIE", ("S", "M", "UW", "DH", "IY")) in lexicon
    assert ("OMELETTE", ("AA", "M", "L", "AH", "T")) in lexicon  # of the LM text only
    words = read_symbol_table(lang / "words.txt")
    assert {"CHICKPEAS", "LASAGNE", "OMELETTE", "SMOOTHIE"} <= set(words)
    assert "GNOCCHI" not in words  # a test word is not looked at
    assert read_lines(lang / "g2p_rejected.txt") == [
        "B2B not-a-word: digits or symbols (only letters, ' and - are converted)"]
    assert read_lines(lang / "oov_train.txt") == ["B2B 1"]
    assert read_lines(lang / "oov_dev.txt") == []
    assert read_lines(lang / "oov_lm_text.txt") == []
    done = json.loads((lang / ".done").read_text())
    assert done["g2p_words"] == 4 and done["g2p_made"] == 4 and done["g2p_rejected"] == 1

    # a second run finds everything as it left it
    marker = (lang / ".done").stat().st_mtime_ns
    prepare_lang.main(args)
    assert (lang / ".done").stat().st_mtime_ns == marker

    # a person corrects a line, adds a second pronunciation and deletes one: the edit
    # redoes the lang dir, the file's lines win, the deleted word is made again
    (lang / "g2p_lexicon.txt").write_text(
        "CHICKPEAS CH IH K P IY Z\nLASAGNE L AH Z AA N Y AH\nLASAGNE L AH Z AA N Y AA\n"
        "OMELETTE AA M AH L AH T\n")
    prepare_lang.main(args)
    lexicon = read_lexicon(lang / "lexicon.txt")
    assert [p for w, p in lexicon if w == "OMELETTE"] == [("AA", "M", "AH", "L", "AH", "T")]
    assert [p for w, p in lexicon if w == "LASAGNE"] == [("L", "AH", "Z", "AA", "N", "Y", "AH"),
                                                        ("L", "AH", "Z", "AA", "N", "Y", "AA")]
    assert read_lines(lang / "g2p_lexicon.txt")[-1] == "SMOOTHIE S M UW DH IY"
    assert ("SMOOTHIE", ("S", "M", "UW", "DH", "IY")) in lexicon
    marker = (lang / ".done").stat().st_mtime_ns
    prepare_lang.main(args)
    assert (lang / ".done").stat().st_mtime_ns == marker

    # a line with a phone outside the phone set is reported; its word is not made again
    with open(lang / "g2p_lexicon.txt", "a") as f:
        f.write("GNOCCHI N AA K Q\n")
    prepare_lang.main(args)
    assert read_lines(lang / "g2p_rejected.txt")[-1].endswith("unknown-phone Q: GNOCCHI N AA K Q")


def test_g2p_none_leaves_the_words_out(corpus):
    root, args = corpus
    prepare_lang.main(args + ["--g2p", "none"])
    assert read_lines(root / "lang" / "oov_train.txt") == ["B2B 1", "LASAGNE 1", "SMOOTHIE 1"]
    assert not (root / "lang" / "g2p_lexicon.txt").exists()
    assert "SMOOTHIE" not in read_symbol_table(root / "lang" / "words.txt")


def test_a_lang_dir_made_before_g2p_without_such_words_is_not_redone(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    SupervisionSet.from_segments([SupervisionSegment("u", "u", 0, 1, text="I MADE A CAKE")]).to_file(
        manifests / "cake_supervisions_train.jsonl.gz")
    (tmp_path / "lm.txt").write_text("I MADE A CAKE\n")
    args = ["--manifest-dir", str(manifests), "--corpus", "cake", "--parts", "train",
            "--lm-text", str(tmp_path / "lm.txt"), "--lang-dir", str(tmp_path / "lang")]
    prepare_lang.main(args + ["--g2p", "none"])  # what the version before G2P wrote
    marker = (tmp_path / "lang" / ".done").stat().st_mtime_ns
    prepare_lang.main(args)
    assert (tmp_path / "lang" / ".done").stat().st_mtime_ns == marker


def test_words_outside_cmudict_are_decoded(corpus):
    """The lang of prepare_lang, G of make_lm and HCLG of steps.graph: a sentence with the
    G2P words, as peaked senone scores, decodes to those words."""
    root, args = corpus
    prepare_lang.main(args)
    make_lm.main(["--text", str(root / "lm_text.txt"), "--lang-dir", str(root / "lang"), "--order", "2",
                  "--out-dir", str(root / "lang_test")])
    lang = Lang.load(root / "lang_test")
    tree = ToyTree(lang)
    topology = toy_topology(lang)
    (root / "topology.json").write_text(json.dumps(topology.to_dict()))
    (root / "tree.txt").write_text("toy tree (tests)\n")
    make_graph(root / "lang_test", root / "lang_test", root / "tree.txt", root / "topology.json",
               root / "graph", GraphOptions(), force=True, tree=tree)
    graph = HybridGraph.load(root / "graph")
    for sentence in ["I MADE A SMOOTHIE WITH CHICKPEAS", "THE OMELETTE WAS HOT", "I MADE A LASAGNE"]:
        _, senones = senone_path(sentence.split(), lang, topology, tree, edge_silence=True)
        result = graph.decode(peaked_scores(senones, tree.num_senones), [1.0], SearchOptions())
        assert result.reached_final
        assert [lang.words[w] for w in result.words[1.0]] == sentence.split()
