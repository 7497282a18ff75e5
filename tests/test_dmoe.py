"""The Deep Mixture of Experts encoder (steps.am.dmoe): gates sum to 1; one expert per layer
is the plain TDNN-F stack; the stage-one cap is the sequential rule, holds (with top_k
too) and is lifted in stage two; top-k routing computes only the chosen experts and agrees
with the dense form; a toy task whose two input regions need different experts ends with
the gates separating them; every objective trains with it, training holds the cap in
stage one only, and an interrupted run resumes to the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from steps.core import checkpoint as ckpt_io
from steps.am.dmoe import DmoeConfig, MoeLayer, capped_gates, moe_layers, top_k_mask
from steps.am.model import AcousticModel, ModelConfig, parameter_summary
from steps.toy.am_data import make_synthetic_am_data
from steps.core.config import ConfigError, from_dict
from steps.train_am import main

CONF = Path(__file__).resolve().parent.parent / "egs" / "synth" / "s5" / "conf"


def dmoe_model(seed=0, num_layers=3, **dmoe):
    torch.manual_seed(seed)
    config = ModelConfig(encoder="dmoe", num_layers=num_layers, hidden_dim=32, bottleneck_dim=8,
                         prefinal_dim=8, dropout=0.0, dmoe=DmoeConfig(**{"expert_dim": 4, **dmoe}))
    return AcousticModel(80, 7, config)


def gates_of(model, feats, lens):
    for layer in moe_layers(model):
        layer.record = True
    out = model(feats, lens)
    return out, [layer.last_gates for layer in moe_layers(model)]


@pytest.mark.parametrize("opts", [{}, {"top_k": 2}, {"top_k": 1}, {"gate_hidden_dim": 8, "expert": "ffn"}])
@pytest.mark.parametrize("training", [False, True])
def test_gates_sum_to_one_on_valid_frames(opts, training):
    model = dmoe_model(num_experts=4, **opts).train(training)
    model.set_epoch(0)  # stage one: capped
    lens = torch.tensor([40, 17])
    out, gates = gates_of(model, torch.randn(2, 40, 80), lens)
    assert len(gates) == 2
    for g in gates:
        assert g.shape == (2, 14, 4) and (g >= 0).all()
        torch.testing.assert_close(g[out.mask].sum(-1), torch.ones(int(out.mask.sum())))
        assert g[~out.mask].abs().sum() == 0
        if opts.get("top_k"):
            assert ((g[out.mask] > 0).sum(-1) <= opts["top_k"]).all()


def test_one_expert_per_layer_is_the_plain_stack():
    torch.manual_seed(1)
    plain = AcousticModel(80, 7, ModelConfig(encoder="tdnnf", num_layers=3, hidden_dim=32,
                                             bottleneck_dim=8, prefinal_dim=8, dropout=0.0)).eval()
    moe = dmoe_model(num_layers=3, num_moe_layers=2, num_experts=1, expert_dim=8).eval()
    assert parameter_summary(moe) == parameter_summary(plain)
    state = {}
    for key, value in plain.state_dict().items():
        parts = key.split(".")
        if parts[0] == "layers" and int(parts[1]) >= 1 and parts[2] in ("linear", "affine"):
            key = ".".join(parts[:2] + ["experts", "0"] + parts[2:])
        state[key] = value
    moe.load_state_dict(state)  # strict: every weight has its counterpart
    feats, lens = torch.randn(2, 31, 80) * 2, torch.tensor([31, 12])
    a, b = plain(feats, lens), moe(feats, lens)
    torch.testing.assert_close(a.main, b.main, atol=1e-6, rtol=0)
    assert a.main.std() > 0.01  # not a trivial output


def test_capped_gates_hold_the_cap():
    torch.manual_seed(2)
    logits = torch.randn(500, 4) + torch.tensor([3.0, 1.0, 0.0, -1.0])  # expert 0 wanted most
    probs = logits.softmax(-1)
    assert probs[:, 0].sum() / 500 > 0.7
    keep = torch.ones_like(probs, dtype=torch.bool)
    for cap in (0.25, 0.4, 0.6):
        g = capped_gates(probs, keep, cap, torch.randperm(500))
        torch.testing.assert_close(g.sum(-1), torch.ones(500))
        share = g.sum(0) / 500
        assert (share <= cap + 1 / 500).all(), (cap, share)
        assert share[0] > cap - 0.02  # the cap binds, it does not starve the expert
    # gradients reach the gates that stay on
    p = logits.clone().requires_grad_(True)
    capped_gates(p.softmax(-1), keep, 0.4)[:, 1].sum().backward()
    assert p.grad.abs().sum() > 0


def sequential_capped_gates(probs, keep, cap):
    """Reference: the rows one by one; an expert whose running sum of gates has reached
    cap * M is off from then on; a row whose kept experts are all off takes the expert
    still on with the largest gate."""
    m, e = probs.shape
    used, out = [0.0] * e, torch.zeros_like(probs)
    for r in range(m):
        free = [used[i] < cap * m for i in range(e)]
        on = [bool(keep[r, i]) and free[i] for i in range(e)]
        if not any(on):
            best = max((i for i in range(e) if free[i]), key=lambda i: float(probs[r, i]))
            on = [i == best for i in range(e)]
        total = sum(float(probs[r, i]) for i in range(e) if on[i])
        for i in range(e):
            if on[i]:
                out[r, i] = probs[r, i] / total
                used[i] += float(out[r, i])
    return out


@pytest.mark.parametrize("top_k", [0, 1, 2])
@pytest.mark.parametrize("cap", [0.25, 0.3, 0.5])
def test_capped_gates_are_the_sequential_rule(top_k, cap):
    torch.manual_seed(3)
    probs = (torch.randn(300, 4, dtype=torch.float64) + torch.tensor([2.0, 1.0, 0.0, 0.0])).softmax(-1)
    keep = top_k_mask(probs, top_k) if top_k else torch.ones_like(probs, dtype=torch.bool)
    torch.testing.assert_close(capped_gates(probs, keep, cap), sequential_capped_gates(probs, keep, cap))


@pytest.mark.parametrize("top_k", [1, 2])
def test_the_cap_holds_with_top_k(top_k):
    """cap 0.3, a gate biased towards expert 0 (its top-1 on ~95% of the frames). Guarantee:
    an expert is used only on frames where its running sum is below cap * M and a frame
    adds at most 1, so its share is below cap + 1 / M."""
    torch.manual_seed(4)
    logits = torch.randn(400, 4) + torch.tensor([3.0, 0.0, 0.0, 0.0])
    probs = logits.softmax(-1)
    keep = top_k_mask(probs, top_k)
    assert keep[:, 0].float().mean() > 0.9
    g = capped_gates(probs, keep, 0.3, torch.randperm(400))
    torch.testing.assert_close(g.sum(-1), torch.ones(400))
    assert ((g > 0).sum(-1) <= top_k).all()
    share = g.sum(0) / 400
    assert (share < 0.3 + 1 / 400).all(), share
    assert share[0] > 0.3 - 0.01  # the cap binds, it does not starve the expert


def stage_one_with_a_biased_gate(**dmoe):
    """A model in its capped stage whose gates favour expert 0, its features, and the gates
    of one forward pass."""
    model = dmoe_model(num_experts=4, cap=0.3, cap_epochs=1, **dmoe)
    for layer in moe_layers(model):
        layer.gate.bias.data = torch.tensor([4.0, 0.0, 0.0, 0.0])
    feats, lens = torch.randn(3, 60, 80), torch.tensor([60, 50, 33])
    model.train()
    model.set_epoch(0)
    return model, feats, lens, *gates_of(model, feats, lens)


def test_the_cap_holds_in_stage_one_with_top_1():
    _, _, _, out, gates = stage_one_with_a_biased_gate(top_k=1)
    n = int(out.mask.sum())
    for g in gates:
        assert ((g[out.mask] > 0).sum(-1) == 1).all()
        share = g[out.mask].sum(0) / n
        assert (share < 0.3 + 1 / n).all(), share


def test_the_cap_holds_in_stage_one_and_is_lifted_in_stage_two():
    model, feats, lens, out, gates = stage_one_with_a_biased_gate()
    n = int(out.mask.sum())
    for g in gates:
        share = g[out.mask].sum(0) / n
        assert (share <= 0.3 + 1 / n).all(), share
    model.set_epoch(1)
    out, gates = gates_of(model, feats, lens)
    assert all(g[out.mask][:, 0].mean() > 0.6 for g in gates)  # free again: expert 0 takes most


def test_top_k_computes_the_chosen_experts_only_and_agrees_with_the_dense_form():
    for expert in ("tdnnf", "ffn"):
        model = dmoe_model(num_experts=4, top_k=2, expert=expert, cap=0.0)
        feats, lens = torch.randn(2, 36, 80), torch.tensor([36, 20])
        sparse = model.eval()(feats, lens).main
        dense = model.train()(feats, lens).main  # dropout 0: training differs only in the path
        torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"dmoe.top_k: must be in 0..num_experts \(4\)"):
        from_dict(ModelConfig, {"encoder": "dmoe", "dmoe": {"top_k": 5}}, "m.yaml")
    with pytest.raises(ConfigError, match=r"dmoe.cap: cap \* num_experts must be >= 1"):
        from_dict(ModelConfig, {"encoder": "dmoe", "dmoe": {"cap": 0.2}}, "m.yaml")
    with pytest.raises(ConfigError, match=r"dmoe.num_moe_layers: 9 > num_layers \(8\)"):
        from_dict(ModelConfig, {"encoder": "dmoe", "dmoe": {"num_moe_layers": 9}}, "m.yaml")
    with pytest.raises(ConfigError, match=r"dmoe.num_experts: must divide hidden_dim"):
        from_dict(ModelConfig, {"encoder": "dmoe", "hidden_dim": 30,
                                "dmoe": {"combine": "concat", "num_experts": 4}}, "m.yaml")


# ------------------------------------------------------------------ a toy task


def test_two_regions_that_need_different_experts_get_separated_gates():
    """Frames x in [-1, 1]^6, class (x0 > 0) XOR (x1 > 0): in region x0 > 0 the class is
    x1 > 0, elsewhere x1 < 0. Each expert has one hidden unit, so it serves one region's
    rule; an even mix of the two cannot tell the regions apart, routing by x0 can. Stage
    one (cap 0.6) for 150 steps, then free; the gates must end up separating the regions."""
    torch.manual_seed(0)
    config = DmoeConfig(num_experts=2, expert="ffn", expert_dim=1, cap=0.6)
    layer = MoeLayer(6, config, kernel=1, bypass=0.0, dropout=nn.Identity())
    head = nn.Linear(6, 2)
    optimizer = torch.optim.Adam(list(layer.parameters()) + list(head.parameters()), lr=0.05)

    def sample(n):
        x = torch.rand(1, n, 6) * 2 - 1
        region = x[0, :, 0] > 0
        return x, region, (region ^ (x[0, :, 1] > 0)).long()

    mask = torch.ones(1, 256, dtype=torch.bool)
    layer.train()
    for step in range(600):
        layer.cap_on = step < 150
        x, _, label = sample(256)
        loss = nn.functional.cross_entropy(head(layer(x, mask))[0], label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    layer.eval()
    x, region, label = sample(4000)
    everywhere = torch.ones(1, 4000, dtype=torch.bool)
    with torch.no_grad():
        gates = layer.gates(x, everywhere)[0]
        accuracy = float((head(layer(x, everywhere))[0].argmax(-1) == label).float().mean())
    in_a, in_b = gates[region].mean(0), gates[~region].mean(0)
    winner_a, winner_b = int(in_a.argmax()), int(in_b.argmax())
    assert winner_a != winner_b, (in_a, in_b)
    assert in_a[winner_a] > 0.85 and in_b[winner_b] > 0.85, (in_a, in_b)
    far_a, far_b = gates[x[0, :, 0] > 0.5].mean(0), gates[x[0, :, 0] < -0.5].mean(0)
    assert far_a[winner_a] > 0.95 and far_b[winner_b] > 0.95, (far_a, far_b)
    assert accuracy > 0.95, accuracy


# ------------------------------------------------------------------ training with steps.train_am


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_am_data(tmp_path_factory.mktemp("dmoe_train"), num_cuts=40, num_dev=6,
                                  num_senones=30, num_subwords=20, top_k=3, mean_words=2.5,
                                  dev_soft_labels=True)


def run_train(data, exp_dir, system, override, *more):
    return main(["--config", str(CONF / f"am_{system}.yaml"), "--override", str(CONF / "am_tiny.yaml"),
                 "--override", str(override), "--cuts", str(data["train"]), "--dev-cuts", str(data["dev"]),
                 "--exp-dir", str(exp_dir), "--seed", "5", "--senone-counts", str(data["senone_counts"]),
                 "--lm-dir", str(data["lm_dir"]), "--num-threads", "1", *more])


DMOE_YAML = """model:
  encoder: dmoe
  dropout: 0.2
  dmoe: {num_moe_layers: 2, num_experts: 3, expert_dim: 8, top_k: 2, cap: 0.34, cap_epochs: 1}
data:
  max_duration: 20
train:
  num_epochs: 2
  average_last: 1
"""


def record_training_gates(monkeypatch) -> list:
    """Every training-mode gate computation of the MoE layers from now on, as (the epoch
    last given to AcousticModel.set_epoch, the layer's cap_on, its valid frames M, each
    expert's share of the gates [E])."""
    log, epoch = [], [None]
    set_epoch, gates = AcousticModel.set_epoch, MoeLayer.gates

    def recorded_set_epoch(self, e):
        epoch[0] = e
        set_epoch(self, e)

    def recorded_gates(self, x, mask):
        g = gates(self, x, mask)
        if self.training:
            m = int(mask.sum())
            log.append((epoch[0], self.cap_on, m, g[mask].sum(0) / m))
        return g

    monkeypatch.setattr(AcousticModel, "set_epoch", recorded_set_epoch)
    monkeypatch.setattr(MoeLayer, "gates", recorded_gates)
    return log


def test_every_objective_trains_and_an_interrupted_run_resumes_exactly(data, tmp_path, monkeypatch):
    override = tmp_path / "dmoe.yaml"
    override.write_text(DMOE_YAML)
    for system in ("baseline", "li", "aux_phone"):
        one_epoch = tmp_path / f"one_{system}.yaml"
        one_epoch.write_text(DMOE_YAML.replace("num_epochs: 2", "num_epochs: 1"))
        assert run_train(data, tmp_path / system, system, one_epoch) == 0
        assert (tmp_path / system / "final.pt").exists()
    full, part = tmp_path / "hier_full", tmp_path / "hier_part"
    gates = record_training_gates(monkeypatch)
    assert run_train(data, full, "hier", override) == 0
    monkeypatch.undo()
    # epoch 1 trains capped (stage one), epoch 2 free. The cap, 0.34 of 3 experts, is just
    # above an even share, so it binds; on every stage-one batch each expert's share is
    # below cap + 1 / M (steps.am.dmoe.capped_gates)
    assert {e for e, *_ in gates} == {0, 1}
    assert all(on == (e == 0) for e, on, _, _ in gates)
    for e, _, m, share in gates:
        torch.testing.assert_close(share.sum(), torch.tensor(1.0))
        if e == 0:
            assert (share < 0.34 + 1 / m).all(), share
    final = ckpt_io.load(full / "final.pt")
    assert final["model_config"]["encoder"] == "dmoe" and final["model_config"]["dmoe"]["num_experts"] == 3
    assert any(".experts.2." in k for k in final["state_dict"])
    # stopped inside epoch 1 (stage one, capped), resumed into epoch 2 (stage two)
    assert run_train(data, part, "hier", override, "--stop-after-steps", "3") == 0
    assert not (part / "final.pt").exists()
    assert run_train(data, part, "hier", override, "--resume") == 0
    for name in ("epoch-1.pt", "epoch-2.pt", "final.pt"):
        a, b = ckpt_io.load(full / name)["state_dict"], ckpt_io.load(part / name)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
