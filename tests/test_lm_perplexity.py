"""The decoder's n-grams against the subword teacher on the same held-out words: sentence
scores checked against direct computations, the gap's ratio and interval, the program on text
files and on supervision manifests."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from lhotse import SupervisionSegment, SupervisionSet

from steps import lm_perplexity
from steps.core import checkpoint as ckpt_io
from steps.lm.kneser_ney import estimate_kneser_ney
from steps.lm.model import KIND, ModelConfig, build_model
from steps.lm.ngram import BackoffLM, perplexity
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


def test_unigram_and_bigram_arpas_of_the_lm_strengths(models, tmp_path):
    """Stage 10 gives the LM strengths' 1- and 2-gram with the 3-gram and a same-named LM of
    another folder: every one scored like perplexity(), listed in the order given."""
    root, _, _, _ = models
    text = corpus(300, 0)
    paths = []
    for order in (1, 2):
        lm, _ = estimate_kneser_ney(text, order=order)
        (tmp_path / f"lang_test_{order}gram").mkdir()
        paths.append(tmp_path / f"lang_test_{order}gram" / f"lm_{order}gram.arpa")
        lm.write_arpa(paths[-1])
    (tmp_path / "lang_rescore").mkdir()
    estimate_kneser_ney(text, order=2)[0].write_arpa(tmp_path / "lang_rescore" / "lm_2gram.arpa")
    paths += [root / "lm_3gram.arpa", tmp_path / "lang_rescore" / "lm_2gram.arpa"]
    held_out = corpus(20, 4)
    (tmp_path / "dev.txt").write_text("".join(f"dev-{i} {s}\n" for i, s in enumerate(held_out)))
    assert lm_perplexity.main(["--text", str(tmp_path / "dev.txt"), "--ngram", *map(str, paths),
                               "--teacher", str(root / "lm_subword"), "--bpe-model", str(root / "bpe.model"),
                               "--out", str(tmp_path / "ppl")]) == 0
    figures = json.loads((tmp_path / "ppl.json").read_text())
    names = ["lm_1gram.arpa", "lang_test_2gram/lm_2gram.arpa",
             "lm_3gram.arpa", "lang_rescore/lm_2gram.arpa"]
    assert list(figures["models"])[:4] == names and figures["scored"] == 20
    for name, path in zip(names, paths):
        want = perplexity(BackoffLM.read_arpa(path), held_out)["ppl"]
        assert figures["models"][name]["ppl"] == pytest.approx(want, rel=1e-9), name
    ppl = [figures["models"][n]["ppl"] for n in names]
    assert ppl[0] > ppl[1] > ppl[2] and ppl[3] == ppl[1]  # a longer history predicts this text better
    table = (tmp_path / "ppl.txt").read_text().splitlines()
    assert [line.split()[0] for line in table[2:6]] == names


def test_supervision_manifests_give_the_same_table_as_the_text(models, tmp_path):
    """Stage 10 reads the held-out sentences from the manifests every corpus has
    (data/text/<part>.txt only the synth corpus writes)."""
    root, _, _, _ = models
    sentences = corpus(8, 3) + ["TURN ON THE RADIO"]
    (tmp_path / "dev.txt").write_text("".join(f"dev-{i} {s}\n" for i, s in enumerate(sentences)))
    supervisions = SupervisionSet.from_segments(
        SupervisionSegment(id=f"dev-{i}", recording_id=f"dev-{i}", start=0.0, duration=1.0, text=s)
        for i, s in enumerate(sentences + [""]))  # an empty transcript: no sentence, as an empty line
    supervisions.to_file(tmp_path / "mine_supervisions_dev.jsonl.gz")
    models_args = ["--ngram", str(root / "lm_3gram.arpa"), "--teacher", str(root / "lm_subword"),
                   "--bpe-model", str(root / "bpe.model")]
    lm_perplexity.main(["--text", str(tmp_path / "dev.txt"), *models_args, "--out", str(tmp_path / "a")])
    lm_perplexity.main(["--supervisions", str(tmp_path / "mine_supervisions_dev.jsonl.gz"), *models_args,
                        "--out", str(tmp_path / "b")])
    a, b = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "ab")
    assert a == b and a["sentences"] == 9 and a["scored"] == 8
    table_a, table_b = ((tmp_path / f"{x}.txt").read_text().splitlines() for x in "ab")
    assert table_a[1:] == table_b[1:]  # the first line names the files read
    assert table_b[0].startswith(f"held-out: 9 sentences from {tmp_path / 'mine_supervisions_dev.jsonl.gz'};")


def test_held_out_files_missing_or_none_given_are_named(models, tmp_path):
    root, _, _, _ = models
    models_args = ["--ngram", str(root / "lm_3gram.arpa"), "--teacher", str(root / "lm_subword"),
                   "--bpe-model", str(root / "bpe.model"), "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit, match="no such held-out file: .*mine_supervisions_test.jsonl.gz"):
        lm_perplexity.main(["--supervisions", str(tmp_path / "mine_supervisions_test.jsonl.gz"), *models_args])
    with pytest.raises(SystemExit):  # argparse: neither --text nor --supervisions
        lm_perplexity.main(models_args)


def test_a_part_without_transcripts_is_named(tmp_path, caplog):
    SupervisionSet.from_segments([SupervisionSegment(id="t-0", recording_id="t-0", start=0.0, duration=1.0,
                                                     text="")]).to_file(tmp_path / "mine_supervisions_test.jsonl.gz")
    (tmp_path / "dev.txt").write_text("dev-0 TURN ON THE LIGHTS\n")
    sentences = lm_perplexity.read_sentences([str(tmp_path / "dev.txt")], True,
                                             [str(tmp_path / "mine_supervisions_test.jsonl.gz")])
    assert sentences == [["TURN", "ON", "THE", "LIGHTS"]]
    assert f"{tmp_path / 'mine_supervisions_test.jsonl.gz'}: no transcript in it" in caplog.text
