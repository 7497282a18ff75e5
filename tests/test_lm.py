"""Teacher LMs: token corpora, the transformer's causality/masking, windows, the bigram
anchor, training (beats the bigram, resumes exactly)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from steps import lm_tokens
from steps.core.config import load_config
from steps.lm import tokens as lt
from steps.lm.bigram import Bigram
from steps.lm.model import (
    ModelConfig,
    build_model,
    causal_windows,
    log_likelihood,
    masked_window,
    unit_logits,
    unit_top_k,
)
from steps.toy.alignments import ToyWorld
from steps.train_lm import LmConfig
from steps.train_lm import main as train_main

CONF = Path(__file__).resolve().parent.parent / "egs" / "synth" / "s5" / "conf"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> ToyWorld:
    return ToyWorld.build(tmp_path_factory.mktemp("world"), num_words=150, num_sentences=600,
                          bpe_vocab=120, seed=3, max_words=8)


def _model(num_units: int, objective: str, context: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    config = ModelConfig(d_model=32, num_heads=2, num_layers=2, ff_dim=64, dropout=0.1,
                         max_context=context, objective=objective)
    return build_model(num_units, config).eval()


# ------------------------------------------------------------------ the model


@pytest.mark.parametrize("length", [10, 40])  # within one window, and over several windows
def test_causal_label_ignores_the_future(length):
    model = _model(20, "causal", context=16)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, length).tolist()
    for i in (0, 5, length // 2, length - 2):
        b = a[:i + 1] + rng.integers(0, 20, length - i - 1).tolist()
        la, lb = unit_logits(model, [a, b])
        # the label at positions <= i depends only on tokens before it
        torch.testing.assert_close(la[:i + 1], lb[:i + 1], rtol=0, atol=1e-5)
        if i + 2 < length:
            assert not torch.allclose(la[i + 2:], lb[i + 2:])


@pytest.mark.parametrize("length", [10, 40])
def test_masked_label_ignores_its_own_token(length):
    model = _model(20, "masked", context=16)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 20, length).tolist()
    for i in (0, 3, length - 1):
        b = list(a)
        b[i] = (a[i] + 7) % 20
        la, lb = unit_logits(model, [a, b])
        torch.testing.assert_close(la[i], lb[i], rtol=0, atol=1e-5)
        others = [j for j in range(length) if j != i and abs(j - i) < 8]
        assert not torch.allclose(la[others], lb[others])  # its neighbours do see it


def test_windowed_scoring_matches_a_direct_forward():
    model = _model(20, "causal", context=16)
    seq = np.random.default_rng(2).integers(0, 20, 50).tolist()
    logits = unit_logits(model, [seq])[0]
    specials = model.specials
    with torch.no_grad():
        direct = model(torch.tensor([[specials.bos, *seq[:15]]]))[0, :, :20]
    torch.testing.assert_close(logits[:16], direct, rtol=0, atol=1e-5)
    # the last window of the 51 inputs ([bos] + 50 units) is inputs[35:51]; it predicts
    # positions 43..50 (position 49 from its output 14) with >= 8 tokens of left context
    inputs = [specials.bos, *seq]
    assert causal_windows(51, 16)[-1] == (35, 51, 48)
    with torch.no_grad():
        window = model(torch.tensor([inputs[35:51]]))[0, :, :20]
    torch.testing.assert_close(logits[48:50], window[13:15], rtol=0, atol=1e-5)


def test_causal_windows_cover_each_position_once_with_left_context():
    for n, c in [(5, 8), (8, 8), (9, 8), (50, 16), (101, 32)]:
        kept = []
        for start, end, keep_from in causal_windows(n, c):
            assert end - start <= c and start <= keep_from < end
            if keep_from > 0:
                assert keep_from - start >= c // 2  # left context of every later prediction
            kept += range(keep_from, end)
        assert kept == list(range(n))
    assert masked_window(10, 3, 16) == (0, 10)
    assert masked_window(100, 50, 16) == (42, 58)
    assert masked_window(100, 2, 16) == (0, 16) and masked_window(100, 99, 16) == (84, 100)


def test_unit_top_k_matches_the_logits():
    model = _model(30, "causal")
    seqs = [[1, 2, 3, 4], [5, 6], []]
    tops = unit_top_k(model, seqs, 5, temperature=2.0)
    for seq, logits, (ids, probs) in zip(seqs, unit_logits(model, seqs), tops):
        assert ids.shape == (len(seq), 5)
        for i in range(len(seq)):
            order = torch.argsort(logits[i], descending=True)[:5].numpy()
            np.testing.assert_array_equal(ids[i], order)
            expected = torch.softmax(logits[i][order] / 2.0, -1).numpy()
            np.testing.assert_allclose(probs[i], expected, rtol=1e-5)


def test_log_likelihood_counts_eos_for_causal_only():
    seqs = [[1, 2, 3], [4, 5]]
    ll, events = log_likelihood(_model(10, "causal"), seqs)
    assert events == 5 + 2 and ll < 0
    ll, events = log_likelihood(_model(10, "masked"), seqs)
    assert events == 5 and ll < 0


# ------------------------------------------------------------------ the bigram anchor


def test_bigram_is_normalised_and_matches_hand_counts():
    train = [[0, 1, 2], [0, 1], [1, 2, 2]]
    bigram = Bigram.train(train, 3)
    for context in range(4):  # units 0..2 and <s>
        total = sum(bigram.prob(context, w) for w in range(4))  # units and </s>
        assert total == pytest.approx(1.0)
    # counts of counts: bigrams (<s>,0):2 (0,1):2 (1,2):2 (2,</s>):2 (1,</s>):1 (<s>,1):1 (2,2):1
    # n1 = 3, n2 = 4 -> D = 3 / 11
    d = 3 / 11
    assert bigram.discount == pytest.approx(d)
    # continuation: distinct left contexts 0:1 1:2 2:2 </s>:2 -> (n + 1) / (7 + 4)
    p_cont_2 = 3 / 11
    # p(2 | 1): c(1,2) = 2, c(1) = 3, 2 following types
    assert bigram.prob(1, 2) == pytest.approx((2 - d) / 3 + d * 2 / 3 * p_cont_2)
    ll, events = bigram.log_likelihood([[0, 1]], with_eos=True)
    assert events == 3
    expected = math.log(bigram.prob(3, 0)) + math.log(bigram.prob(0, 1)) + math.log(bigram.prob(1, 3))
    assert ll == pytest.approx(expected)


# ------------------------------------------------------------------ token corpora


def test_phone_and_subword_corpora(world, tmp_path):
    lang = world.lang
    phones = lt.phone_units(lang)
    assert "SIL" not in phones and phones[0] == "SPN"
    assert [lang.phone_id[p] for p in phones] == sorted(lang.phone_id[p] for p in phones)
    convert = lt.phone_converter(lang, None)
    word = next(w for w, prons in lang.lexicon.items() if len(prons) > 1 and w[0].isalpha())
    first, second = lang.lexicon[word]
    assert convert([word]) == [phones.index(p) for p in first]
    # the most frequent pronunciation in the alignments wins over the lexicon's first
    counts = tmp_path / "pron_counts.txt"
    counts.write_text(f"{word} 3 {' '.join(second)}\n{word} 1 {' '.join(first)}\n")
    choice = lt.choose_prons(lang, lt.read_pron_counts(counts))
    assert choice[word] == second
    assert lt.phone_converter(lang, choice)([word]) == [phones.index(p) for p in second]
    counts.write_text(f"5 {word} {' '.join(second)}\n")  # Kaldi's count-first layout
    assert lt.choose_prons(lang, lt.read_pron_counts(counts))[word] == second
    assert convert(["NOTAWORD"]) == [phones.index("SPN")]

    # the program, phone and subword levels: same deterministic split for both
    text = tmp_path / "lm_text.txt"
    text.write_text("\n".join(world.sentences[:500]) + "\n\n")
    for level, extra in [("phone", []), ("subword", ["--bpe-model", str(world.bpe_model)])]:
        out = tmp_path / f"lm_{level}"
        assert lm_tokens.main(["--level", level, "--lm-text", str(text), "--lang-dir", str(world.root / "lang"),
                        "--out-dir", str(out), *extra]) == 0
        valid = lt.read_corpus(out / "valid.txt")
        train = lt.read_corpus(out / "train.txt")
        assert len(train) + len(valid) == 500 and 0 < len(valid) < 30
        assert (out / "skipped.txt").read_text().startswith("501\tempty line")
        units = lt.read_tokens(out / "tokens.txt")
        assert max(max(s) for s in train) < len(units)
    expected_valid = [s for s in world.sentences[:500] if lt.is_valid_sentence(s, 0.02)]
    sp = lt.load_sentencepiece(world.bpe_model)
    valid = [s.tolist() for s in lt.read_corpus(tmp_path / "lm_subword" / "valid.txt")]
    assert valid == [sp.encode(s) for s in expected_valid]
    assert lt.read_tokens(tmp_path / "lm_subword" / "tokens.txt") == lt.subword_units(sp)


def test_senone_corpus_follows_the_tree(world, tmp_path):
    from steps.hmm.context import phone_contexts
    from steps.hmm.units import words_to_phones

    text = tmp_path / "lm_text.txt"
    text.write_text("\n".join(world.sentences[:200]) + "\n")
    out = tmp_path / "lm_senone"
    assert lm_tokens.main(["--level", "senone", "--lm-text", str(text), "--lang-dir", str(world.root / "lang"),
                    "--tree", str(world.root / "tree"), "--topology", str(world.root / "topology.json"),
                    "--out-dir", str(out)]) == 0
    units = lt.read_tokens(out / "tokens.txt")
    speech_phones = len(world.topology.phone_ids) - 2
    assert units == [str(i) for i in range(world.tree.num_senones)]
    assert len(units) == 2 * 3 * speech_phones + 2  # tree depth 1: 2 senones per state
    train = lt.read_corpus(out / "train.txt")
    sentence = next(s for s in world.sentences[:200] if not lt.is_valid_sentence(s, 0.02))
    # by hand: every HMM state of every phone, triphone contexts across word boundaries,
    # consecutive repeats collapsed
    phones = words_to_phones(sentence.split(), world.lang)
    expected = []
    for phone, (left, right) in zip(phones, phone_contexts(phones, world.lang.phone_id["SIL"])):
        for state in range(3):
            senone = world.tree.senone(left, phone, right, state)
            if not expected or expected[-1] != senone:
                expected.append(senone)
    assert train[0].tolist() == expected


# ------------------------------------------------------------------ training


def _phone_corpus(world, root: Path, num_words: int = 20, num_sentences: int = 1000) -> Path:
    """The phone corpus of sentences over a few of the world's words."""
    from steps.toy.alignments import toy_sentences
    out = root / "lm_phone"
    text = root / "text.txt"
    words = sorted(w for w in world.lang.lexicon if w[0].isalpha())[:num_words]
    text.write_text("\n".join(toy_sentences(words, num_sentences, seed=7, max_words=8)) + "\n")
    assert lm_tokens.main(["--level", "phone", "--lm-text", str(text), "--lang-dir",
                    str(world.root / "lang"), "--out-dir", str(out)]) == 0
    return out


def _config(path: Path, steps: int, objective: str = "causal") -> Path:
    path.write_text(f"""model:
  d_model: 32
  num_heads: 2
  num_layers: 2
  ff_dim: 128
  dropout: 0.0
  max_context: 32
  objective: {objective}
train:
  batch_tokens: 512
  max_steps: {steps}
  lr: 0.01
  warmup_steps: 10
  valid_every: 50
  valid_max_tokens: 2000
  save_every: 20
  log_every: 10
""")
    return path


def test_teacher_beats_the_bigram(world, tmp_path):
    data = _phone_corpus(world, tmp_path)
    exp = tmp_path / "exp"
    code = train_main(["--level", "phone", "--config", str(_config(tmp_path / "c.yaml", 80)),
                       "--data-dir", str(data), "--exp-dir", str(exp), "--num-threads", "1"])
    report = dict(line.split(" ", 1) for line in (exp / "ppl").read_text().splitlines())
    teacher, bigram = float(report["teacher_ppl"]), float(report["bigram_ppl"])
    assert code == 0 and report["teacher_beats_bigram"] == "yes"
    assert teacher < 0.9 * bigram, (teacher, bigram)  # measured: 3.4 vs 4.4
    assert (exp / ".done").exists() and (exp / "final.pt").exists()
    assert list((exp / "tensorboard").iterdir())
    # a finished teacher is not retrained
    assert train_main(["--level", "phone", "--config", str(tmp_path / "c.yaml"),
                       "--data-dir", str(data), "--exp-dir", str(exp)]) == 0


def test_untrained_teacher_is_reported_worse_than_bigram(world, tmp_path):
    data = _phone_corpus(world, tmp_path)
    config = _config(tmp_path / "c.yaml", 2)
    args = ["--level", "phone", "--config", str(config), "--data-dir", str(data),
            "--exp-dir", str(tmp_path / "exp")]
    assert train_main(args) == 3
    assert "teacher_beats_bigram no" in (tmp_path / "exp" / "ppl").read_text()
    assert not (tmp_path / "exp" / ".done").exists()
    assert train_main(args + ["--allow-worse-than-bigram", "--force"]) == 0


def test_masked_teacher_reports_pseudo_perplexity(world, tmp_path):
    data = _phone_corpus(world, tmp_path)
    exp = tmp_path / "exp"
    assert train_main(["--level", "phone", "--config", str(_config(tmp_path / "c.yaml", 30, "masked")),
                       "--data-dir", str(data), "--exp-dir", str(exp), "--allow-worse-than-bigram"]) == 0
    report = dict(line.split(" ", 1) for line in (exp / "ppl").read_text().splitlines())
    assert report["measure"] == "pseudo-perplexity" and report["events_include_eos"] == "no"
    valid = lt.read_corpus(data / "valid.txt")
    assert int(report["events"]) == sum(map(len, valid))  # every unit once, no </s>


def test_resume_continues_exactly(world, tmp_path, monkeypatch):
    from steps.core import checkpoint
    from steps.lm import training as tl

    data = _phone_corpus(world, tmp_path)
    config = _config(tmp_path / "c.yaml", 40)
    common = ["--level", "phone", "--data-dir", str(data), "--allow-worse-than-bigram",
              "--config", str(config)]
    assert train_main(common + ["--exp-dir", str(tmp_path / "whole")]) == 0

    class Interrupted(Exception):
        pass

    original = tl.learning_rate

    def interrupted_at_25(step, train_config):
        if step >= 25:
            raise Interrupted
        return original(step, train_config)

    monkeypatch.setattr(tl, "learning_rate", interrupted_at_25)
    with pytest.raises(Interrupted):
        train_main(common + ["--exp-dir", str(tmp_path / "resumed")])
    monkeypatch.setattr(tl, "learning_rate", original)
    assert checkpoint.load(tmp_path / "resumed" / "checkpoint.pt")["step"] == 20  # save_every 20
    assert not (tmp_path / "resumed" / "final.pt").exists()
    assert train_main(common + ["--exp-dir", str(tmp_path / "resumed"), "--resume"]) == 0
    a = checkpoint.load(tmp_path / "whole" / "final.pt")["state_dict"]
    b = checkpoint.load(tmp_path / "resumed" / "final.pt")["state_dict"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_conf_files_load():
    for level in lt.LEVELS:
        for suffix in ("", "_tiny"):
            config = load_config(CONF / f"lm_{level}{suffix}.yaml", LmConfig)
            assert config.model.objective == "causal"
            assert config.train.max_steps > 0
