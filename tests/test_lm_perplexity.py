"""The decoder's n-grams against the subword teacher on the same held-out words: sentence
scores checked against direct computations, the gap's ratio and interval, the program."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from steps import lm_perplexity
from steps.core import checkpoint as ckpt_io
from steps.lm.kneser_ney import estimate_kneser_ney
from steps.lm.model import KIND, ModelConfig, build_model
from steps.lm.ngram import perplexity
from steps.lm.tokens import load_sentencepiece
from steps.lm.word_perplexity import SentenceScores, events, perplexity_gap, word_perplexity
from steps.train_bpe import train_bpe



def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(["TURN", rng.choice(["ON", "OFF"]), "THE", rng.choice(["LIGHTS", "HEATER"])]
                     + (["IN", "THE", rng.choice(["KITCHEN", "BEDROOM"])] if rng.random() < 0.5 else [])
                     + (["PLEASE"] if rng.random() < 0.3 else [])) for _ in range(n)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_ppl")
    text = corpus(300, 0)
    (root / "lm_text.txt").write_text("\n".join(text) + "\n")
    train_bpe(root / "lm_text.txt", root / "bpe.model", 25)
    sp = load_sentencepiece(root / "bpe.model")
    lm, _ = estimate_kneser_ney(text, order=3)
    lm.write_arpa(root / "lm_3gram.arpa")
    torch.manual_seed(0)
    config = {"model": dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, dropout=0.0,
                            max_context=32, objective="causal"), "train": {}}
    model = build_model(sp.get_piece_size(), ModelConfig(**config["model"])).eval()
    (root / "lm_subword").mkdir()
    ckpt_io.save({"kind": KIND, "level": "subword", "config": config, "num_units": sp.get_piece_size(),
                  "state_dict": model.state_dict()}, root / "lm_subword" / "final.pt")
    return root, sp, lm, model


def direct_teacher_nats(model, pieces: list[int]) -> float:
    specials = model.specials
    with torch.no_grad():
        logits = model(torch.tensor([[specials.bos, *pieces]]))[0]
    targets = torch.tensor([*pieces, specials.eos])
    return float(torch.log_softmax(logits, -1).gather(1, targets[:, None]).sum())


def test_sentence_scores_match_direct_computation(models):
    _, sp, lm, model = models
    held_out = [s.split() for s in corpus(20, 1)] + [["TURN", "ON", "THE", "RADIO"]]  # RADIO: not in the n-gram
    ngram = SentenceScores.from_ngram("3gram", lm, held_out)
    teacher = SentenceScores.from_teacher("teacher", model, sp, held_out)
    assert ngram.scorable.tolist() == [True] * 20 + [False] and ngram.nats[-1] == 0.0
    assert teacher.scorable.all()  # the pieces spell any word of these letters
    # the n-gram: the same total as its own perplexity code, and one sentence by hand
    reference = perplexity(lm, [" ".join(w) for w in held_out[:20]])
    assert ngram.nats[:20].sum() == pytest.approx(reference["log10_prob"] * math.log(10), rel=1e-9)
    words = held_out[0]
    history, by_hand = ["<s>"], 0.0
    for word in [*words, "</s>"]:
        by_hand += lm.log10_prob(history[-2:], word)
        history.append(word)
    assert ngram.nats[0] == pytest.approx(by_hand * math.log(10), rel=1e-9)
    # the teacher: its pieces and [eos], run on the whole sentence at once
    for i in (0, 5, 20):
        pieces = list(sp.encode(" ".join(held_out[i])))
        assert teacher.nats[i] == pytest.approx(direct_teacher_nats(model, pieces), rel=1e-5)
    # per-word perplexity and the gap count words and sentence ends only
    counts = events(held_out)
    kept = ngram.scorable & teacher.scorable
    ppl = word_perplexity(ngram, counts, kept)
    assert ppl == pytest.approx(reference["ppl"], rel=1e-9)
    gap = perplexity_gap(ngram, teacher, counts, kept, draws=200)
    assert gap.ratio == pytest.approx(word_perplexity(teacher, counts, kept) / ppl, rel=1e-9)
    assert gap.low <= gap.ratio <= gap.high
    # an untrained teacher against an n-gram of this text: far worse, in every draw
    assert gap.ratio > 2.0 and gap.low > 1.0 and gap.p_value < 0.01


def test_program_writes_the_table_and_counts_what_it_left_out(models, tmp_path, capsys):
    root, _, _, _ = models
    text = tmp_path / "dev.txt"
    text.write_text("".join(f"dev-{i} {s}\n" for i, s in enumerate(corpus(10, 2))) + "dev-x TURN ON THE RADIO\n")
    assert lm_perplexity.main(["--text", str(text), "--ngram", str(root / "lm_3gram.arpa"),
                               "--teacher", str(root / "lm_subword"), "--bpe-model", str(root / "bpe.model"),
                               "--out", str(tmp_path / "ppl")]) == 0
    figures = json.loads((tmp_path / "ppl.json").read_text())
    assert figures["sentences"] == 11 and figures["scored"] == 10
    assert figures["left_out"] == {"teacher (lm_subword)": 0, "lm_3gram.arpa": 1}
    ngram = figures["models"]["lm_3gram.arpa"]
    assert ngram["teacher_ratio"] == pytest.approx(figures["models"]["teacher (lm_subword)"]["ppl"] / ngram["ppl"])
    assert (tmp_path / "ppl.txt").read_text() == capsys.readouterr().out
    # a teacher of another level is refused with the reason
    ckpt = ckpt_io.load(root / "lm_subword" / "final.pt")
    (tmp_path / "lm_phone").mkdir()
    ckpt_io.save({**ckpt, "level": "phone"}, tmp_path / "lm_phone" / "final.pt")
    with pytest.raises(SystemExit, match="a phone teacher; the comparison needs the subword one"):
        lm_perplexity.main(["--text", str(text), "--ngram", str(root / "lm_3gram.arpa"), "--teacher",
                            str(tmp_path / "lm_phone"), "--bpe-model", str(root / "bpe.model"),
                            "--out", str(tmp_path / "x")])
