"""The synth corpus' sentence generator (local/synth/sentences.py, grammar.py)."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from local.synth import grammar as gram
from local.synth import sentences as ms
from local.synth.config import SynthDataConfig
from steps.core.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "egs" / "synth" / "s5"
GRAMMAR = gram.GRAMMAR_DIR


@pytest.fixture(scope="module")
def grammar():
    return gram.load_grammar(GRAMMAR)


@pytest.fixture(scope="module")
def prons():
    return ms.cmudict_words()


@pytest.fixture(scope="module")
def default_config():
    return load_config(RECIPE / "conf" / "data_default.yaml", SynthDataConfig)


def test_every_grammar_word_is_in_cmudict_and_the_vocabulary_is_sized(grammar, prons):
    vocabulary = grammar.vocabulary()
    assert ms.check_vocabulary(vocabulary, prons) == []
    assert 1500 <= len(vocabulary) <= 3000
    assert all(re.fullmatch(r"[a-z][a-z']*", w) for w in vocabulary)


def test_default_config_sentences_use_most_of_the_vocabulary(grammar, prons, default_config):
    t = default_config.text
    generator = ms.SentenceGenerator(grammar, prons, t.min_words, t.max_words, t.max_depth)
    rng = random.Random(0)
    sentences = [generator.sentence(rng) for _ in range(30000)]
    used = {w for s in sentences for w in s.split()}
    assert 1500 <= len(used) <= 3000
    lengths = [len(s.split()) for s in sentences]
    assert min(lengths) >= t.min_words and max(lengths) <= t.max_words
    assert sum(4 <= n <= 16 for n in lengths) / len(lengths) > 0.9
    # Varied, but with structure an LM can learn: many distinct sentences, and the
    # commonest sentence is still rare.
    counts = Counter(sentences)
    assert len(counts) > 0.75 * len(sentences)
    assert counts.most_common(1)[0][1] < 0.005 * len(sentences)
    # Every domain shows up: a few probe words from each.
    for word in ("thermostat", "calendar", "flight", "forecast", "plus", "alarm", "playlist",
                 "shopping", "recipe", "message", "navigate", "reservation", "capital"):
        assert word in used, word


def test_articles_agree_with_the_next_sound(prons):
    words = [gram.Word(w) for w in "a apple and an banana a hour".split()]
    g = gram.Grammar({"sentence": gram.Alt([1.0], [words])})
    generator = ms.SentenceGenerator(g, prons, 1, 20, 10)
    assert generator.sentence(random.Random(0)) == "an apple and a banana an hour"


def toy_grammar(directory: Path, lists: dict[str, str], text: str) -> gram.Grammar:
    """Writes lists/<name>.txt and g.grammar under directory and loads them."""
    (directory / "lists").mkdir(exist_ok=True)
    for name, body in lists.items():
        (directory / "lists" / f"{name}.txt").write_text(body)
    (directory / "g.grammar").write_text(text)
    return gram.load_grammar(directory)


def test_grammar_syntax_recursion_and_errors(tmp_path):
    g = toy_grammar(tmp_path, {"fruit": "# fruit\n/3/ apple\npear\ngreen grapes\n"},
                    "<sentence> = i like <things> [0.2 very much] | /2/ ( eat | buy ) the @fruit ;\n"
                    "# recursion: a list of fruit joined by and\n"
                    "<things> = @fruit | @fruit and <things> ;\n")
    assert g.vocabulary() == sorted(["i", "like", "very", "much", "eat", "buy", "the", "apple",
                                     "pear", "green", "grapes", "and"])
    rng = random.Random(1)
    out = [" ".join(g.generate(rng, max_depth=6)) for _ in range(2000)]
    assert any(s.count(" and ") >= 2 for s in out)  # recursion is used
    # Depth 6 bounds the recursion: <sentence> -> <things> x5 -> at most 5 "and".
    assert max(s.count(" and ") for s in out) <= 5
    share_like = sum(s.startswith("i like") for s in out) / len(out)
    assert 0.25 < share_like < 0.42  # weight 1 of 3
    with_much = sum(s.endswith("very much") for s in out) / max(1, sum(s.startswith("i like") for s in out))
    assert 0.12 < with_much < 0.28  # [0.2 ...]

    (tmp_path / "g.grammar").write_text("<sentence> = <missing> ;\n")
    with pytest.raises(gram.GrammarError, match="never defined"):
        gram.load_grammar(tmp_path)
    (tmp_path / "g.grammar").write_text("<sentence> = a <sentence> ;\n")
    with pytest.raises(gram.GrammarError, match="never terminate"):
        gram.load_grammar(tmp_path)


def test_bindings_repeat_what_was_chosen(tmp_path):
    g = toy_grammar(tmp_path, {"names": "anna\npeter\nmary jane\n"},
                    "<sentence> = call $p= @names and if $p is out call $p= <other> later ask $p"
                    " | tell $c= ( [0.5 the] ( cat | dog ) ) story about $c ;\n"
                    "<other> = @names | my friend ;\n")
    assert "p" not in g.vocabulary() and "out" in g.vocabulary()
    rng = random.Random(3)
    seen = set()
    for _ in range(300):
        words = " ".join(g.generate(rng, max_depth=6))
        m = re.fullmatch(r"call (.+) and if (.+) is out call (.+) later ask (.+)", words)
        if m:
            # the second mention repeats the first; a new binding replaces it
            assert m.group(1) == m.group(2) and m.group(3) == m.group(4)
            seen.add((m.group(1), m.group(3)))
        else:
            m = re.fullmatch(r"tell (.*?) ?story about (.*)", words)
            assert m and m.group(1) == m.group(2) and m.group(1) in ("cat", "dog", "the cat", "the dog")
    assert ("mary jane", "my friend") in seen and len({a for a, _ in seen}) == 3
    (tmp_path / "g.grammar").write_text("<sentence> = say $x twice ;\n")
    with pytest.raises(gram.GrammarError, match=r"\$x is used before anything is bound"):
        gram.load_grammar(tmp_path).generate(rng, max_depth=6)
    (tmp_path / "g.grammar").write_text("<sentence> = say hi $x= ;\n")
    with pytest.raises(gram.GrammarError, match=r"\$x= binds nothing"):
        gram.load_grammar(tmp_path)


def test_discourse_sentences_carry_their_long_dependencies(grammar, prons):
    # the default grammar leaves them out; a data config adds them to the start rule
    assert "discourse" not in grammar.rules
    extended = gram.load_grammar(GRAMMAR, {"discourse": 15})
    start = extended.rules["sentence"]
    assert start.options[-1] == [gram.Ref("discourse")] and start.weights[-1] == 15
    assert start.options[:-1] == grammar.rules["sentence"].options
    assert set(grammar.vocabulary()) < set(extended.vocabulary())
    with pytest.raises(gram.GrammarError, match="extra start rule <nothing>: no .*optional/nothing.grammar"):
        gram.load_grammar(GRAMMAR, {"nothing": 1})
    discourse = gram.Grammar(extended.rules, start="discourse")
    generator = ms.SentenceGenerator(discourse, prons, 4, 30, 14)
    rng = random.Random(5)
    sentences = [generator.sentence(rng) for _ in range(3000)]
    flights = [s for s in sentences if re.fullmatch(r"(book|find) an? (flight|train) from .*", s)]
    assert flights
    for s in flights:  # the return trip goes back to the city it left
        origin = re.match(r"\w+ an? \w+ from (.+?) to ", s).group(1)
        assert re.search(rf"return (flight|trip) back to {origin}( |$)", s), s
    plural = [s for s in sentences if re.match(r"the (shoes|glasses|books|tickets|boxes|chairs|plates|cups"
                                               r"|batteries|headphones) (that|which) i ", s)]
    assert plural and all(re.search(r" (are|were) ", s) for s in plural)


def _write_config(path: Path, **text) -> Path:
    fields = {"num_train": 40, "num_dev": 12, "num_test": 12, "lm_factor": 50, **text}
    body = "\n".join(f"  {k}: {v}" for k, v in fields.items())
    path.write_text(f"seed: 7\ntext:\n{body}\nspeakers:\n  num_train: 4\n  num_dev: 2\n  num_test: 2\n")
    return path


def _make_text(config: Path, out_dir: Path) -> dict:
    return ms.prepare_text(load_config(config, SynthDataConfig), out_dir)


def _read_part(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]


def test_outputs_are_deterministic_and_lm_text_excludes_dev_and_test(tmp_path):
    config = _write_config(tmp_path / "data.yaml")
    out1, out2 = tmp_path / "a", tmp_path / "b"
    assert _make_text(config, out1)
    assert _make_text(config, out2)
    for name in ("train.txt", "dev.txt", "test.txt", "lm_text.txt", "vocab.txt"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    assert (out1 / ".done").is_file()

    parts = {p: _read_part(out1 / f"{p}.txt") for p in ("train", "dev", "test")}
    assert [len(parts[p]) for p in ("train", "dev", "test")] == [40, 12, 12]
    assert parts["train"][0][0] == "train-000001" and parts["test"][-1][0] == "test-000012"
    paired = [text for p in parts.values() for _, text in p]
    assert len(set(paired)) == len(paired)  # no duplicates among paired sentences
    for text in paired:
        assert re.fullmatch(r"[A-Z][A-Z']*( [A-Z][A-Z']*)*", text), text

    lm = (out1 / "lm_text.txt").read_text().splitlines()
    assert len(lm) >= 50 * len(parts["train"])
    held_out = {text for p in ("dev", "test") for _, text in parts[p]}
    assert not held_out & set(lm)
    # The LM text is drawn from the same grammar: it shares most words with the transcripts.
    lm_words = {w for s in lm for w in s.split()}
    paired_words = {w for s in paired for w in s.split()}
    assert len(paired_words & lm_words) > 0.9 * len(paired_words)

    # A finished directory is left alone; a changed config makes it again.
    stamp = (out1 / "lm_text.txt").stat().st_mtime_ns
    assert _make_text(config, out1)
    assert (out1 / "lm_text.txt").stat().st_mtime_ns == stamp
    (tmp_path / "data.yaml").write_text(config.read_text().replace("seed: 7", "seed: 8"))
    assert _make_text(config, out1)
    assert (out1 / "train.txt").read_text() != (out2 / "train.txt").read_text()


def test_configs_load_and_unknown_keys_are_rejected(tmp_path):
    tiny = load_config(RECIPE / "conf" / "data_tiny.yaml", SynthDataConfig)
    default = load_config(RECIPE / "conf" / "data_default.yaml", SynthDataConfig)
    assert (tiny.text.num_train, tiny.text.num_dev, tiny.text.num_test) == (150, 20, 20)
    assert tiny.text.lm_factor >= 50 and default.text.lm_factor >= 50
    assert 1200 <= default.text.num_train <= 1400 and 250 <= default.text.num_dev <= 300
    assert default.text.num_test >= 2 * default.text.num_dev  # the test set bounds the interval
    assert default.speakers.num_train >= 60
    bad = tmp_path / "bad.yaml"
    bad.write_text("text:\n  num_trian: 3\n")
    with pytest.raises(ConfigError, match="num_trian"):
        load_config(bad, SynthDataConfig)
    bad.write_text("text:\n  lm_factor: 10\n")
    with pytest.raises(ConfigError, match="lm_factor"):
        load_config(bad, SynthDataConfig)
