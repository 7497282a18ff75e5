"""steps.train_bpe on a toy corpus: encode/decode round trip, tokens.txt matches the
model, deterministic, skipped when done."""

from __future__ import annotations

import random

import pytest
import sentencepiece as spm

from steps import train_bpe
from steps.lang.lexicon import read_symbol_table

WORDS = ("THE CAT DOG SAT ON MAT READ A BOOK RED BLUE GREEN HOUSE MOUSE RUNNING JUMPING "
         "QUICKLY SLOWLY DON'T IT'S").split()


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(300)]
    (tmp_path / "lm_text.txt").write_text("".join(line + "\n" for line in lines))
    return tmp_path, lines


def test_model_round_trip_and_tokens(corpus):
    root, lines = corpus
    lang_dir = root / "lang_bpe_40"
    train_bpe.main(["--lm-text", str(root / "lm_text.txt"), "--lang-dir", str(lang_dir), "--vocab-size", "40"])
    sp = spm.SentencePieceProcessor(model_file=str(lang_dir / "bpe.model"))
    assert sp.get_piece_size() == 40
    assert sp.id_to_piece(0) == "<unk>" and sp.unk_id() == 0
    assert sp.bos_id() == -1 and sp.eos_id() == -1 and sp.pad_id() == -1

    tokens = read_symbol_table(lang_dir / "tokens.txt")
    assert tokens == {sp.id_to_piece(i): i for i in range(40)}
    assert list(tokens.values()) == list(range(40))  # file in id order

    for line in lines[:50] + ["DON'T RUN QUICKLY"]:
        ids = sp.encode(line)
        assert 0 not in ids  # every character was seen in training
        assert sp.decode(ids) == line
        assert "".join(sp.id_to_piece(i) for i in ids).replace("\u2581", " ").strip() == line
    assert sp.encode("THE CAT", out_type=str)[0].startswith("\u2581")
    assert 0 in sp.encode("ZZZ")


def test_deterministic_and_skipped_when_done(corpus, caplog):
    root, _ = corpus
    args = ["--lm-text", str(root / "lm_text.txt"), "--vocab-size", "40"]
    train_bpe.main(args + ["--lang-dir", str(root / "a")])
    train_bpe.main(args + ["--lang-dir", str(root / "b")])
    assert (root / "a" / "bpe.model").read_bytes() == (root / "b" / "bpe.model").read_bytes()
    assert (root / "a" / "tokens.txt").read_text() == (root / "b" / "tokens.txt").read_text()

    mtime = (root / "a" / "bpe.model").stat().st_mtime_ns
    train_bpe.main(args + ["--lang-dir", str(root / "a")])
    assert (root / "a" / "bpe.model").stat().st_mtime_ns == mtime
    train_bpe.main(["--lm-text", str(root / "lm_text.txt"), "--vocab-size", "35", "--lang-dir", str(root / "a")])
    assert len(read_symbol_table(root / "a" / "tokens.txt")) == 35


def test_too_large_vocabulary_is_a_clear_error(corpus):
    root, _ = corpus
    with pytest.raises(SystemExit, match="Vocabulary size too high"):
        train_bpe.main(["--lm-text", str(root / "lm_text.txt"), "--lang-dir", str(root / "x"),
                        "--vocab-size", "500"])
    assert not (root / "x" / "bpe.model").exists()


def test_too_large_vocabulary_names_the_option_and_the_size_that_fits(corpus):
    root, _ = corpus
    with pytest.raises(SystemExit) as error:
        train_bpe.main(["--lm-text", str(root / "lm_text.txt"), "--lang-dir", str(root / "x"),
                        "--vocab-size", "500"])
    message = str(error.value)
    assert "--vocab-size 500 is too large" in message and "set --bpe-vocab-size in run.sh" in message
    largest = int(message.split("gives at most ")[1].split()[0])
    assert 40 < largest < 500  # the fixture trains 40 pieces; 20 words cannot give 500
    # the size named fits, one more does not
    train_bpe.main(["--lm-text", str(root / "lm_text.txt"), "--lang-dir", str(root / "y"),
                    "--vocab-size", str(largest)])
    assert len(read_symbol_table(root / "y" / "tokens.txt")) == largest
    with pytest.raises(SystemExit, match=f"gives at most {largest} pieces"):
        train_bpe.main(["--lm-text", str(root / "lm_text.txt"), "--lang-dir", str(root / "z"),
                        "--vocab-size", str(largest + 1)])


def test_other_failures_keep_sentencepiece_message(tmp_path):
    assert train_bpe.failure_message("INTERNAL: something else", tmp_path / "t.txt", 50) == \
        f"train_bpe: sentencepiece failed on {tmp_path / 't.txt'}: INTERNAL: something else"
