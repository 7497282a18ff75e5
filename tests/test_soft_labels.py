"""Soft labels: top-k/temperature, tokens and spans from alignments, the dump program's
round trip through HDF5 on lhotse cuts, bad input, the inspection tool."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from steps import dump_soft_labels as dump
from steps.toy.alignments import ToyWorld
from steps.core import checkpoint as ckpt_io
from steps.kd import alignment_tokens
from steps.kd import soft_labels as sl
from steps.lang.lexicon import write_symbol_table
from steps.lm.model import KIND, ModelConfig, build_model, top_k_soft_labels, unit_top_k
from steps.lm.tokens import load_sentencepiece, phone_units

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ top-k


def test_top_k_temperature_and_renormalisation_by_hand():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 0.0, 3.0, 1.0]])
    ids, probs = top_k_soft_labels(logits, k=2, temperature=2.0)
    assert ids.dtype == np.int32 and ids.tolist() == [[0, 2], [2, 3]]
    # row 0: softmax over (2/2, 1/2) = (e^1, e^0.5) / (e^1 + e^0.5)
    a, b = np.exp(1.0), np.exp(0.5)
    np.testing.assert_allclose(probs[0], [a / (a + b), b / (a + b)], rtol=1e-6)
    # the same as the full tempered softmax restricted to the top 2 and renormalised
    full = np.exp(np.array([0.0, 0.0, 1.5, 0.5]))
    full /= full.sum()
    np.testing.assert_allclose(probs[1], full[[2, 3]] / full[[2, 3]].sum(), rtol=1e-6)
    # T -> small: one-hot; T = 1, k = V: the plain softmax
    _, sharp = top_k_soft_labels(logits, k=3, temperature=0.01)
    np.testing.assert_allclose(sharp[:, 0], 1.0, atol=1e-6)
    _, plain = top_k_soft_labels(logits, k=4)
    np.testing.assert_allclose(plain[0], torch.softmax(logits[0], -1).sort(descending=True)[0].numpy(),
                               rtol=1e-6)
    with pytest.raises(ValueError):
        top_k_soft_labels(logits, k=5)
    with pytest.raises(ValueError):
        top_k_soft_labels(logits, k=2, temperature=0.0)


def test_expand_to_frames():
    labels = sl.SoftLabels(tokens=[3, 5], spans=[[2, 4], [6, 7]], ids=[[3, 1], [5, 3]],
                           probs=[[0.75, 0.25], [0.5, 0.5]])
    t = sl.expand_to_frames(labels, 8)
    assert t.mask.tolist() == [False, False, True, True, False, False, True, False]
    assert t.tokens.tolist() == [-1, -1, 3, 3, -1, -1, 5, -1]
    assert t.ids[3].tolist() == [3, 1] and t.probs[6].tolist() == [0.5, 0.5]
    assert t.probs[0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        sl.SoftLabels([1, 2], [[0, 3], [2, 4]], [[1], [2]], [[1.0], [1.0]]).check()


# ------------------------------------------------------------------ tokens from alignments


def test_piece_boundaries_share_a_word_by_letters_and_phone_boundaries():
    # 10 frames, pieces of 4 and 3 letters: proportional boundary at 1 + 8 * 4/7 = 5.57
    assert alignment_tokens.piece_boundaries([4, 3], 0, 10) == [0, 6, 10]
    # snapped to the phone boundary nearest 5.57
    assert alignment_tokens.piece_boundaries([4, 3], 0, 10, [3, 5, 8]) == [0, 5, 10]
    # each piece keeps at least one frame even when the phone boundaries are far off
    assert alignment_tokens.piece_boundaries([1, 1, 1], 0, 3, [1]) == [0, 1, 2, 3]
    # fewer frames than pieces: some pieces get none
    assert alignment_tokens.piece_boundaries([2, 2, 2], 10, 12) == [10, 10, 11, 12]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> ToyWorld:
    # a real steps.tree.decision_tree.Tree with 4 context-dependent senones per non-silence HMM state
    return ToyWorld.build(tmp_path_factory.mktemp("world"), num_words=120, num_sentences=400,
                          tree_depth=2, bpe_vocab=150, seed=5, max_words=8)


@pytest.fixture(scope="module")
def units(world) -> alignment_tokens.UnitMaps:
    sp = load_sentencepiece(world.bpe_model)

    from steps.hmm.units import phones_to_senones

    def expected(phone_ids):
        return phones_to_senones(phone_ids, world.topology, world.tree)

    return alignment_tokens.UnitMaps(world.lang, sp, phone_units(world.lang), expected)


def test_spans_cover_exactly_the_speech_frames(world, units, tmp_path):
    cuts = world.cuts(world.sentences[:40], tmp_path / "ali.h5", sil_prob=0.5)
    sizes = {"senone": world.tree.num_senones, "phone": len(units.phones),
             "subword": units.sp.get_piece_size()}
    sil = world.lang.phone_id["SIL"]
    for cut in cuts:
        mono = cut.load_custom("mono_ali")
        speech = world.topology.state_phone[mono] != sil
        tokens = alignment_tokens.cut_tokens(cut, units, sizes)
        for level, t in tokens.items():
            covered = np.zeros(len(mono), dtype=bool)
            for start, end in t.spans:
                assert not covered[start:end].any()  # disjoint
                covered[start:end] = True
            np.testing.assert_array_equal(covered, speech, err_msg=f"{cut.id} {level}")
            assert np.all(np.diff(t.spans[:, 0]) > 0)
            assert t.problems["mismatch_with_phones_to_senones"] == 0
            # each row's unit is the teacher token it points at
            assert [t.teacher_tokens[p] for p in t.positions] == t.tokens.tolist()
        # phone rows: the aligned phones; senone rows: the runs of senone_ali
        phones = [s.symbol for s in cut.supervisions[0].alignment["ali_phone"] if s.symbol != "SIL"]
        assert [units.phones[u] for u in tokens["phone"].teacher_tokens] == phones
        senones = cut.load_custom("senone_ali")
        for u, (start, end) in zip(tokens["senone"].tokens, tokens["senone"].spans):
            assert np.all(senones[start:end] == u)
        words = cut.supervisions[0].text.split()
        assert tokens["subword"].teacher_tokens == units.sp.encode(" ".join(words))


def test_senone_run_across_silence_is_one_teacher_token():
    speech = np.array([1, 1, 0, 0, 1, 1, 1], dtype=bool)
    ali = np.array([4, 4, 0, 0, 4, 5, 5], dtype=np.int32)
    t = alignment_tokens.senone_tokens(ali, speech, 10)
    assert t.teacher_tokens == [4, 5]
    assert t.spans.tolist() == [[0, 2], [4, 5], [5, 7]] and t.positions.tolist() == [0, 0, 1]
    t = alignment_tokens.senone_tokens(ali, speech, 5)  # senone 5 unknown to the teacher
    assert t.teacher_tokens == [4] and t.problems["oov_tokens"] == 1


# ------------------------------------------------------------------ the dump program


def _teacher(directory: Path, level: str, units: list[str], objective: str, context: int, seed: int):
    torch.manual_seed(seed)
    config = {"model": dict(d_model=32, num_heads=2, num_layers=1, ff_dim=64, dropout=0.0,
                            max_context=context, objective=objective), "train": {}}
    model = build_model(len(units), ModelConfig(**config["model"]))
    directory.mkdir(parents=True)
    write_symbol_table(directory / "tokens.txt", units)
    ckpt_io.save({"kind": KIND, "level": level, "config": config, "num_units": len(units),
                  "state_dict": model.state_dict()}, directory / "final.pt")
    return model.eval()


def test_dump_round_trip_and_bad_input(world, units, tmp_path, capsys):
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    cuts = list(world.cuts(world.sentences[:12], tmp_path / "ali.h5"))
    # bad input: a cut without alignment, a phone the teacher does not know, a word with
    # no frames
    cuts[3] = fastcopy(cuts[3], custom={k: v for k, v in cuts[3].custom.items() if k != "senone_ali"})
    sup = cuts[4].supervisions[0]
    phones = list(sup.alignment["ali_phone"])
    phones[1] = phones[1]._replace(symbol="XX")
    words = list(sup.alignment["ali_word"])
    words[0] = words[0]._replace(duration=0.0)
    cuts[4] = fastcopy(cuts[4], supervisions=[fastcopy(sup, alignment={"ali_phone": phones,
                                                                       "ali_word": words})])
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")

    sp = units.sp
    teachers = {
        # the senone teacher is masked, with a context shorter than many references
        "senone": _teacher(tmp_path / "lm_senone", "senone", [str(i) for i in range(world.tree.num_senones)],
                           "masked", 24, 1),
        "phone": _teacher(tmp_path / "lm_phone", "phone", units.phones, "causal", 16, 2),
        "subword": _teacher(tmp_path / "lm_subword", "subword",
                            [sp.id_to_piece(i) for i in range(sp.get_piece_size())], "causal", 64, 3),
    }
    out = tmp_path / "kd"
    args = ["--cuts", str(tmp_path / "cuts.jsonl.gz"), "--lang-dir", str(world.root / "lang"),
            "--tree", str(world.root / "tree"), "--topology", str(world.root / "topology.json"),
            "--bpe-model", str(world.bpe_model), "--teachers",
            *[str(tmp_path / f"lm_{level}") for level in teachers],
            "--top-k", "4", "--temperature", "2.0", "--out-dir", str(out), "--corpus", "toy",
            "--nj", "2"]
    assert dump.main(args) == 0
    stats = json.loads((out / "toy_train_dump_stats.json").read_text())
    assert stats["cuts_in"] == 12 and stats["cuts_out"] == 11
    assert stats["cuts_failed"] == {"no senone_ali": 1}
    assert stats["problems"]["phone"]["oov_tokens"] == 1
    # the senone runs agree with phones_to_senones of the aligned phones, except in the
    # cut whose phone was made unknown
    assert stats["problems"]["senone"]["mismatch_with_phones_to_senones"] == 1
    assert stats["problems"]["subword"]["words_without_frames"] == 1
    assert stats["windowed"]["senone"] > 0 and stats["windowed"]["phone"] > 0
    bad = (out / "toy_train_bad_items.txt").read_text()
    assert f"{cuts[3].id}\t-\tleft out: no senone_ali" in bad and "'XX'" in bad
    assert sorted(p.name for p in out.glob("*.h5")) == sorted(
        f"toy_train_{level}.{job}.h5" for level in teachers for job in (1, 2))

    kd = list(CutSet.from_file(out / "toy_cuts_train.jsonl.gz"))
    assert [c.id for c in kd] == [c.id for i, c in enumerate(cuts) if i != 3]
    sizes = {level: m.num_units for level, m in teachers.items()}
    lost = {level: 0 for level in teachers}
    for cut in kd:
        assert cut.custom["kd_info"]["top_k"] == 4 and cut.custom["kd_info"]["temperature"] == 2.0
        assert cut.has_custom("senone_ali") and cut.has_custom("mono_ali")
        tokens = alignment_tokens.cut_tokens(cut, units, sizes)
        for level, model in teachers.items():
            labels = sl.load_soft_labels(cut, level)
            assert labels.tokens.dtype == np.int32 and labels.spans.dtype == np.int32
            assert labels.ids.dtype == np.int32 and labels.probs.dtype == np.float16
            assert labels.ids.shape == (len(labels), 4)
            labels.check(len(cut.load_custom("senone_ali")))
            # the same top-k as the teacher gives directly, probabilities to float16 precision
            ids, probs = unit_top_k(model, [tokens[level].teacher_tokens], 4, 2.0)[0]
            np.testing.assert_array_equal(labels.ids, ids[tokens[level].positions])
            np.testing.assert_allclose(labels.probs.astype(np.float32), probs[tokens[level].positions],
                                       atol=1e-3)
            np.testing.assert_allclose(labels.probs.astype(np.float32).sum(1), 1.0, atol=4e-3)
            np.testing.assert_array_equal(labels.spans, tokens[level].spans)
            # a token no output frame of a subsampling-3 AM reads: no centre min(3j+1, T-1) in its rows
            num_frames = len(cut.load_custom("senone_ali"))
            centres = {min(3 * j + 1, num_frames - 1) for j in range(-(-num_frames // 3))}
            read = {int(p) for (a, b), p in zip(tokens[level].spans, tokens[level].positions)
                    if any(a <= c < b for c in centres)}
            lost[level] += len(set(tokens[level].positions.tolist()) - read)
    assert stats["subsampling"] == 3
    assert stats["tokens_without_output_frame"] == lost
    assert lost["senone"] > 0  # senone runs of one or two 10 ms frames fall between output frames
    assert stats["tokens_with_frames"]["phone"] <= stats["tokens"]["phone"]

    # finished jobs are not redone: a second run leaves the job outputs alone
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    assert dump.main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.h5")} == before

    # the inspection tool (utils/show_soft_labels.py), run in this process
    spec = importlib.util.spec_from_file_location("show_soft_labels", REPO / "utils" / "show_soft_labels.py")
    show = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(show)
    capsys.readouterr()
    assert show.main(["--cuts", str(out / "toy_cuts_train.jsonl.gz"), "--level", "phone",
                      "--index", "1", "--png", str(tmp_path / "phone.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = sl.load_soft_labels(kd[1], "phone")
    assert lines[0].startswith(f"cut {kd[1].id}  level phone: {len(first)} tokens")
    assert len(lines) == 1 + 1 + len(first) + 1
    symbol = units.phones[int(first.tokens[0])]
    assert f"[{first.spans[0][0]}, {first.spans[0][1]})" in lines[2] and symbol in lines[2]
    assert (tmp_path / "phone.png").stat().st_size > 1000
