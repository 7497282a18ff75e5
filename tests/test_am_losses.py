"""Objectives of the AM against hand computations (a top-k head over padded targets
included); where the gradients of each term go."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steps.am.data import AmBatch
from steps.am.layers import TopKLogits
from steps.am.losses import KdWeights, LossConfig, head_frames, kd_sum, loss_terms, total_loss
from steps.am.model import AcousticModel, AuxHeadConfig, ModelConfig, ModelOutput
from steps.am.targets import LevelTargets, expand_soft_labels, senone_targets
from steps.kd.soft_labels import SoftLabels

MAIN_LOGITS = [[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 1.5, -0.3], [0.0, 1.0, 0.0, -2.0]]
AUX_LOGITS = [[1.0, 0.0, 0.0, -1.0], [0.3, -0.2, 0.9, 0.4], [0.0, 0.0, 0.0, 0.0]]


def log_softmax(row):
    z = math.log(sum(math.exp(v) for v in row))
    return [v - z for v in row]


def fake(objective_levels=("senone",)):
    """One utterance, 3 valid output frames + 1 padding frame. Senone labels 0, 2, 1; the
    third frame is silence (no token); the second frame's soft label has a zero entry."""
    mask = torch.tensor([[True, True, True, False]])
    out = ModelOutput(torch.tensor(MAIN_LOGITS).log_softmax(-1),
                      {lv: torch.tensor(AUX_LOGITS).log_softmax(-1) for lv in objective_levels},
                      torch.tensor([3]), mask)
    targets = LevelTargets(ids=torch.tensor([[[0, 1], [2, 3], [0, 0], [0, 0]]]),
                           probs=torch.tensor([[[0.7, 0.3], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]),
                           mask=torch.tensor([[True, True, False, False]]),
                           hard=torch.tensor([[1, 2, -1, -1]]))
    batch = AmBatch(["u"], torch.zeros(1, 12, 80), torch.tensor([12]), torch.tensor([[0, 2, 1, -1]]),
                    torch.tensor([4]), {lv: targets for lv in objective_levels})
    return out, batch


def by_name(terms, counts=None):
    return {t.name: float(t.mean(None if counts is None else counts[i])) for i, t in enumerate(terms)}


def test_baseline_ce_by_hand():
    out, batch = fake()
    lp = [log_softmax(r) for r in MAIN_LOGITS]
    terms = loss_terms(LossConfig("baseline"), (), out, batch)
    expected = -(lp[0][0] + lp[1][2] + lp[2][1]) / 3
    assert [t.name for t in terms] == ["main_ce"]
    assert int(terms[0].count) == 3
    assert by_name(terms)["main_ce"] == pytest.approx(expected, rel=1e-6)
    assert float(total_loss(terms)) == pytest.approx(expected, rel=1e-6)


def test_label_interpolation_by_hand():
    out, batch = fake()
    lam = 0.25
    lp = [log_softmax(r) for r in MAIN_LOGITS]
    f0 = (1 - lam) * -lp[0][0] + lam * -(0.7 * lp[0][0] + 0.3 * lp[0][1])
    f1 = (1 - lam) * -lp[1][2] + lam * -(1.0 * lp[1][2] + 0.0 * lp[1][3])
    f2 = -lp[2][1]  # silence keeps the plain onehot
    terms = loss_terms(LossConfig("li", lam), (), out, batch)
    assert [t.name for t in terms] == ["main_li"]
    assert by_name(terms)["main_li"] == pytest.approx((f0 + f1 + f2) / 3, rel=1e-6)
    # lambda 0 is the baseline
    assert by_name(loss_terms(LossConfig("li", 0.0), (), out, batch))["main_li"] == pytest.approx(
        by_name(loss_terms(LossConfig("baseline"), (), out, batch))["main_ce"], rel=1e-6)


def test_aux_kl_and_hard_ce_by_hand():
    out, batch = fake(("phone",))
    loss = LossConfig("aux", kd={"phone": KdWeights(beta=0.5, alpha=0.2)})
    lp = [log_softmax(r) for r in MAIN_LOGITS]
    la = [log_softmax(r) for r in AUX_LOGITS]
    kl0 = 0.7 * (math.log(0.7) - la[0][0]) + 0.3 * (math.log(0.3) - la[0][1])
    kl1 = 1.0 * (math.log(1.0) - la[1][2])  # the 0-probability entry adds nothing
    ce = (-la[0][1] - la[1][2]) / 2  # hard labels 1, 2 on the two non-silence frames
    main = -(lp[0][0] + lp[1][2] + lp[2][1]) / 3
    terms = loss_terms(loss, ("phone",), out, batch)
    got = by_name(terms)
    assert list(got) == ["main_ce", "kd_phone", "ce_phone"]
    assert [int(t.count) for t in terms] == [3, 2, 2]  # silence and padding are masked
    assert got["kd_phone"] == pytest.approx((kl0 + kl1) / 2, rel=1e-6)
    assert got["ce_phone"] == pytest.approx(ce, rel=1e-6)
    assert float(total_loss(terms)) == pytest.approx(main + 0.5 * (kl0 + kl1) / 2 + 0.2 * ce, rel=1e-6)
    # no kd entry: beta 1, alpha 0 (no CE term at all)
    default = loss_terms(LossConfig("aux"), ("phone",), out, batch)
    assert [(t.name, t.weight) for t in default] == [("main_ce", 1.0), ("kd_phone", 1.0)]
    # global counts (several processes): each sum divided by the given count, times the scale
    counts = torch.tensor([6.0, 4.0, 4.0])
    scaled = float(total_loss(terms, counts, scale=2.0))
    assert scaled == pytest.approx(main + 0.5 * (kl0 + kl1) / 2 + 0.2 * ce, rel=1e-6)


def test_kl_is_zero_when_the_head_matches_the_teacher():
    q = torch.tensor([[0.6, 0.4], [1.0, 0.0]])
    ids = torch.tensor([[1, 0], [2, 0]])
    log_p = torch.full((2, 3), -50.0)
    log_p[0, 1], log_p[0, 0] = math.log(0.6), math.log(0.4)
    log_p[1, 2] = 0.0
    s, c = kd_sum(log_p, ids, q, torch.tensor([True, True]))
    assert float(s) == pytest.approx(0.0, abs=1e-6) and int(c) == 2


def tiny_model(aux_layer: int):
    torch.manual_seed(0)
    config = ModelConfig(num_layers=3, hidden_dim=16, bottleneck_dim=8, prefinal_dim=12, dropout=0.0,
                         aux_heads=[AuxHeadConfig(level="phone", layer=aux_layer, hidden_dim=8)])
    return AcousticModel(80, 10, config, {"phone": 6})


def real_batch(s=3):
    rng = np.random.default_rng(0)
    lengths = [20, 14]
    labels = [SoftLabels([1, 2], [[2, 8], [10, 18]], [[1, 0], [2, 5]], [[0.8, 0.2], [0.6, 0.4]]),
              SoftLabels([3], [[0, 9]], [[3, 4]], [[0.9, 0.1]])]
    feats = torch.from_numpy(rng.normal(size=(2, 20, 80)).astype(np.float32))
    alis = [rng.integers(0, 10, t) for t in lengths]
    return AmBatch(["a", "b"], feats, torch.tensor(lengths), senone_targets(alis, lengths, s),
                   torch.tensor([(t + s - 1) // s for t in lengths]),
                   {"phone": expand_soft_labels(labels, lengths, s)})


def test_aux_gradient_does_not_reach_the_main_head():
    model = tiny_model(aux_layer=1)
    batch = real_batch()
    out = model(batch.feats, batch.feat_lens)
    terms = {t.name: t for t in loss_terms(LossConfig("aux"), ("phone",), out, batch)}
    terms["kd_phone"].mean().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.main_head.parameters())
    # layers above the head's layer get nothing either; those below do
    assert all(p.grad is None for p in model.layers[1:].parameters())
    assert model.layers[0].linear.weight.grad.abs().sum() > 0
    assert model.input_layer.conv.weight.grad.abs().sum() > 0
    assert model.aux_heads["phone"].output.weight.grad.abs().sum() > 0
    # and the main term leaves the auxiliary head alone
    model.zero_grad(set_to_none=True)
    out = model(batch.feats, batch.feat_lens)
    terms = {t.name: t for t in loss_terms(LossConfig("aux"), ("phone",), out, batch)}
    terms["main_ce"].mean().backward()
    assert all(p.grad is None for p in model.aux_heads.parameters())
    assert model.main_head.output.weight.grad.abs().sum() > 0


def test_heads_on_token_frames_only_give_the_same_loss_and_gradient():
    # the batch's tokens leave frames uncovered (silence), so the head skips some rows
    batch = real_batch()
    loss = LossConfig("aux", kd={"phone": KdWeights(beta=0.5, alpha=0.3)})
    results = []
    for frames in (None, head_frames(batch, ("phone",))):
        model = tiny_model(aux_layer=2)
        out = model(batch.feats, batch.feat_lens, aux_frames=frames)
        terms = loss_terms(loss, ("phone",), out, batch)
        total = total_loss(terms)
        total.backward()
        rows = out.aux["phone"].shape[0]
        results.append((rows, {t.name: (float(t.sum), int(t.count)) for t in terms}, float(total),
                        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (all_rows, terms_all, total_all, grads_all), (token_rows, terms_tok, total_tok, grads_tok) = results
    covered = int(batch.levels["phone"].mask.sum())
    assert all_rows == int((batch.senone >= 0).sum()) and token_rows == covered < all_rows
    assert terms_all.keys() == terms_tok.keys() == {"main_ce", "kd_phone", "ce_phone"}
    for name in terms_all:
        assert terms_tok[name][0] == pytest.approx(terms_all[name][0], rel=1e-5)
        assert terms_tok[name][1] == terms_all[name][1]
    assert terms_tok["kd_phone"][1] == covered
    assert total_tok == pytest.approx(total_all, rel=1e-6)
    assert grads_all.keys() == grads_tok.keys()
    for name in grads_all:
        torch.testing.assert_close(grads_tok[name], grads_all[name], rtol=1e-4, atol=1e-6)


def unpadded_kd(logits: TopKLogits, rows: list[dict[int, float]]) -> float:
    """Σ_t KL(q_t || p_t) with p_t the head normalised over the ids of q_t alone (by hand)."""
    total = 0.0
    for m, row in enumerate(rows):
        ids = sorted(row)
        z = [float(logits.features[m] @ logits.weight[u] + logits.bias[u]) for u in ids]
        log_p = dict(zip(ids, log_softmax(z)))
        total += sum(q * (math.log(q) - log_p[u]) for u, q in row.items())
    return total


@pytest.mark.parametrize("span", [True, False])
def test_topk_head_normalises_over_the_real_ids_only(span):
    """Targets padded to a common width (span: s*k slots after merging duplicates; centre:
    cuts with another top_k) give the top-k head the loss of the unpadded rows."""
    # probabilities exact in float16 (SoftLabels stores them so)
    if span:  # 6 slots per output; output 0 covers 1 silence frame and 2 frames of token 7
        labels = [SoftLabels([7, 8, 9], [[1, 3], [3, 4], [4, 6]], [[7, 1], [8, 1], [9, 2]],
                             [[0.75, 0.25], [0.625, 0.375], [0.5, 0.5]])]
        # output 1: frame 3 token 8 (ids 8, 1), frames 4 and 5 token 9 (ids 9, 2)
        rows = [{7: 0.75, 1: 0.25}, {8: 0.625 / 3, 1: 0.375 / 3, 9: 1 / 3, 2: 1 / 3}]
        targets, lengths = expand_soft_labels(labels, [6], 3, span=True), [6]
    else:  # top-2 and top-3 cuts in one batch: the top-2 rows get a third slot
        labels = [SoftLabels([4], [[0, 2]], [[4, 3]], [[0.875, 0.125]]),
                  SoftLabels([5], [[0, 2]], [[5, 6, 0]], [[0.5, 0.25, 0.25]])]
        rows = [{4: 0.875, 3: 0.125}] * 2 + [{5: 0.5, 6: 0.25, 0: 0.25}] * 2
        targets, lengths = expand_soft_labels(labels, [2, 2], 1), [2, 2]
    mask = targets.mask
    assert int(mask.sum()) == len(rows)
    assert targets.ids.shape[-1] > min(len(r) for r in rows)  # there is padding
    torch.manual_seed(0)
    logits = TopKLogits(torch.randn(len(rows), 5), torch.randn(12, 5), torch.randn(12))
    s, c = kd_sum(logits, targets.ids[mask], targets.probs[mask], torch.ones(len(rows), dtype=torch.bool))
    assert int(c) == len(rows)
    assert float(s) == pytest.approx(unpadded_kd(logits, rows), rel=1e-5)
    # the real ids' log-probabilities are those of the unpadded rows
    log_p = logits.over(targets.ids[mask])
    for m, row in enumerate(rows):
        ids = sorted(row)
        z = [float(logits.features[m] @ logits.weight[u] + logits.bias[u]) for u in ids]
        for u, lp in zip(ids, log_softmax(z)):
            slot = targets.ids[mask][m].tolist().index(u)
            assert float(log_p[m, slot]) == pytest.approx(lp, rel=1e-5, abs=1e-6)


def test_topk_head_gradient_is_finite_on_rows_without_ids():
    """A masked frame has no ids at all: its row must not bring NaN into the gradient."""
    targets = expand_soft_labels([SoftLabels([3], [[1, 2]], [[3, 4]], [[0.5, 0.5]])], [3], 1)
    features = torch.randn(3, 4, requires_grad=True)
    logits = TopKLogits(features, torch.randn(6, 4), torch.zeros(6))
    s, c = kd_sum(logits, targets.ids[0], targets.probs[0], targets.mask[0])
    s.backward()
    assert int(c) == 1 and torch.isfinite(s) and torch.isfinite(features.grad).all()
    assert features.grad[1].abs().sum() > 0 and features.grad[[0, 2]].abs().sum() == 0


def test_a_share_of_head_frames_is_a_seeded_subset_and_the_terms_stay_frame_means():
    batch = real_batch()
    covered = batch.levels["phone"].mask
    state = torch.get_rng_state()
    assert torch.equal(head_frames(batch, ("phone",))["phone"], covered)
    assert torch.equal(torch.get_rng_state(), state)  # every frame: no draw, the default run unchanged
    torch.manual_seed(3)
    half = head_frames(batch, ("phone",), 0.5)["phone"]
    torch.manual_seed(3)
    assert torch.equal(head_frames(batch, ("phone",), 0.5)["phone"], half)  # a seed repeats the draw
    assert not (half & ~covered).any() and 0 < int(half.sum()) < int(covered.sum())
    # the KD term over the kept frames is their mean: its count is theirs
    model = tiny_model(aux_layer=2)
    out = model(batch.feats, batch.feat_lens, aux_frames={"phone": half})
    terms = {t.name: t for t in loss_terms(LossConfig("aux"), ("phone",), out, batch)}
    assert int(terms["kd_phone"].count) == int(half.sum()) == out.aux["phone"].shape[0]
    assert int(terms["main_ce"].count) == int((batch.senone >= 0).sum())

