"""steps.prepare_lang on a toy corpus: exact lexicon lines, Kaldi's disambiguation
symbols (homophones and prefixes), ids in phones.txt/words.txt, OOV listings,
determinism and skipping."""

from __future__ import annotations

import json

import pytest

from conftest import write_transcripts_corpus
from steps import prepare_lang
from steps.lang.lexicon import Lang, read_lexicon, read_symbol_table
from steps.lang.prepare import add_disambig_symbols

TRANSCRIPTS = {
    "train": ["THE CAT READ A BOOK", "A CAT ATE ZORBLAX ZORBLAX"],
    "dev": ["THE DOG READ", "FLIBBER RED CAT"],
    "test": ["RED READ <UNK>"],
}
LM_TEXT = "THE DOG ATE EIGHT\nA RED BOOK QWERTZUIOP\nQWERTZUIOP AN\n"


@pytest.fixture
def toy(tmp_path):
    # CMUdict alone: tests/test_g2p.py gives ZORBLAX-like words their G2P pronunciations
    return tmp_path, write_transcripts_corpus(tmp_path, "toy", TRANSCRIPTS, LM_TEXT) + ["--g2p", "none"]


def test_lang_directory_contents(toy):
    root, args = toy
    prepare_lang.main(args)
    lang_dir = root / "lang"
    # CMUdict order, stress removed (THE: DH AH0 / DH AH1 merge), at most 2 prons;
    # ZORBLAX (train, not in CMUdict) and QWERTZUIOP (LM text only) are left out.
    assert (lang_dir / "lexicon.txt").read_text() == (
        "!SIL SIL\n<UNK> SPN\nA AH\nA EY\nAN AE N\nAN AH N\nATE EY T\nBOOK B UH K\nCAT K AE T\n"
        "DOG D AO G\nEIGHT EY T\nREAD R EH D\nREAD R IY D\nRED R EH D\nTHE DH AH\nTHE DH IY\n")
    # add_lex_disambig.pl: homophones ATE/EIGHT and READ/RED numbered in order; AH and EY
    # are prefixes of AH N and EY T; AE N / AH N / DH IY are neither.
    assert (lang_dir / "lexicon_disambig.txt").read_text() == (
        "!SIL SIL\n<UNK> SPN\nA AH #1\nA EY #1\nAN AE N\nAN AH N\nATE EY T #1\nBOOK B UH K\nCAT K AE T\n"
        "DOG D AO G\nEIGHT EY T #2\nREAD R EH D #1\nREAD R IY D\nRED R EH D #2\nTHE DH AH\nTHE DH IY\n")

    phones = read_symbol_table(lang_dir / "phones.txt")
    nonsil = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
              "UH UW V W Y Z ZH").split()
    expected = ["<eps>", "SIL", "SPN", *nonsil, "#0", "#1", "#2", "#3"]
    assert phones == {p: i for i, p in enumerate(expected)}
    words = read_symbol_table(lang_dir / "words.txt")
    expected = ["<eps>", "!SIL", "<UNK>", "A", "AN", "ATE", "BOOK", "CAT", "DOG", "EIGHT", "READ", "RED",
                "THE", "#0", "<s>", "</s>"]
    assert words == {w: i for i, w in enumerate(expected)}

    assert (lang_dir / "silence_phones.txt").read_text() == "SIL\nSPN\n"
    assert (lang_dir / "optional_silence.txt").read_text() == "SIL\n"
    assert (lang_dir / "nonsilence_phones.txt").read_text().split() == nonsil
    questions = [line.split() for line in (lang_dir / "extra_questions.txt").read_text().splitlines()]
    assert questions[0] == ["SIL", "SPN"]
    assert ["B", "D", "G", "K", "P", "T"] in questions and ["M", "N", "NG"] in questions
    assert sorted(p for q in questions[1:] for p in q) == nonsil  # the classes partition the phones

    assert (lang_dir / "oov_train.txt").read_text() == "ZORBLAX 2\n"
    assert (lang_dir / "oov_dev.txt").read_text() == "FLIBBER 1\n"
    assert (lang_dir / "oov_test.txt").read_text() == ""  # <UNK> itself is not an OOV
    assert (lang_dir / "oov_lm_text.txt").read_text() == "QWERTZUIOP 2\n"

    lang = Lang.load(lang_dir)
    assert lang.prons("READ") == [("R", "EH", "D"), ("R", "IY", "D")]
    assert lang.prons("ZORBLAX") == [("SPN",)]
    assert lang.disambig_phone_ids == [42, 43, 44, 45] and lang.silence_phone_ids == {1, 2}


def test_deterministic_skip_and_redo_on_change(toy):
    root, args = toy
    lang_dir = root / "lang"
    prepare_lang.main(args)
    first = {p.name: p.read_bytes() for p in lang_dir.iterdir()}
    prepare_lang.main(args + ["--force"])
    assert {p.name: p.read_bytes() for p in lang_dir.iterdir()} == first

    (lang_dir / "lexicon.txt").write_text("tampered\n")
    prepare_lang.main(args)  # same inputs: skipped
    assert (lang_dir / "lexicon.txt").read_text() == "tampered\n"
    prepare_lang.main(args + ["--num-prons", "1"])  # changed options: redone
    entries = read_lexicon(lang_dir / "lexicon.txt")
    assert ("READ", ("R", "EH", "D")) in entries and ("READ", ("R", "IY", "D")) not in entries
    assert json.loads((lang_dir / ".done").read_text())["words"] == 10


def test_add_disambig_symbols_matches_kaldi():
    entries = [("A", ("AH",)), ("AB", ("AH", "B")), ("ABC", ("AH", "B", "K")), ("B1", ("B",)),
               ("B2", ("B",)), ("B3", ("B",)), ("C", ("K",))]
    result, max_disambig = add_disambig_symbols(entries)
    assert result == [("A", ("AH", "#1")), ("AB", ("AH", "B", "#1")), ("ABC", ("AH", "B", "K")),
                      ("B1", ("B", "#1")), ("B2", ("B", "#2")), ("B3", ("B", "#3")), ("C", ("K",))]
    assert max_disambig == 3
