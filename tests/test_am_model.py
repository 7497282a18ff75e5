"""The multi-head AM: output lengths, independence from batch padding, CMVN inside the
model, the FrameScorer built from a checkpoint, priors, model sizes of the configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from steps.am.model import AcousticModel, AuxHeadConfig, ModelConfig, checkpoint_dict, log_priors_from_counts
from steps.am.scorer import load_scorer
from steps.core import checkpoint as ckpt_io
from steps.core.config import ConfigError, from_dict

CONF = Path(__file__).resolve().parent.parent / "egs" / "synth" / "s5" / "conf"


def small(encoder="tdnnf", s=3, **kw):
    torch.manual_seed(0)
    config = ModelConfig(encoder=encoder, num_layers=2, hidden_dim=16, bottleneck_dim=8, prefinal_dim=8,
                         num_attention_heads=2, subsampling=s, dropout=0.0,
                         aux_heads=[AuxHeadConfig(level="subword", layer=1, hidden_dim=8)], **kw)
    return AcousticModel(80, 7, config, {"subword": 5}).eval()


@pytest.mark.parametrize("s", [1, 2, 3])
def test_output_lengths_and_rows(s):
    model = small(s=s)
    lens = torch.tensor([10, 7, 1])
    out = model(torch.randn(3, 10, 80), lens)
    n = [(int(t) + s - 1) // s for t in lens]
    assert out.lengths.tolist() == n
    assert out.mask.sum(1).tolist() == n
    assert out.main.shape == (sum(n), 7) and out.aux["subword"].shape == (sum(n), 5)
    torch.testing.assert_close(out.main.exp().sum(-1), torch.ones(sum(n)))


@pytest.mark.parametrize("encoder", ["tdnnf", "blstm", "conformer"])
def test_an_utterance_gives_the_same_outputs_alone_or_padded(encoder):
    model = small(encoder)
    feats = torch.randn(2, 23, 80) * 3 + 1
    lens = torch.tensor([23, 11])
    together = model(feats, lens)
    alone = model(feats[1:, :11], lens[1:])
    n0 = int(together.lengths[0])
    torch.testing.assert_close(together.main[n0:], alone.main, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together.aux["subword"][n0:], alone.aux["subword"], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together.main[:4], alone.main[:4])  # different utterances differ


def test_cmvn_lives_in_the_model():
    model = small()
    mean, std = torch.randn(80), torch.rand(80) + 0.5
    model.set_normalisation(mean, std)
    feats = torch.randn(1, 5, 80)
    x = model.normalise(feats, torch.tensor([5]))
    torch.testing.assert_close(x, (feats - mean) / std)
    assert {"feature_mean", "feature_inv_std"} <= set(model.state_dict())


def test_scorer_from_checkpoint(tmp_path):
    model = small()
    model.set_normalisation(torch.full((80,), 2.0), torch.full((80,), 3.0))
    counts = torch.tensor([10, 0, 5, 5, 0, 20, 60])
    log_priors = log_priors_from_counts(counts, 1e-3)
    ckpt_io.save(checkpoint_dict(model, {"any": 1}, log_priors, counts), tmp_path / "final.pt")
    scorer = load_scorer(tmp_path / "final.pt")
    assert scorer.num_outputs == 7
    feats = torch.randn(10, 80) * 3 + 2
    post = scorer.log_posteriors(feats)
    assert post.shape == (10, 7)
    direct = model(feats[None], torch.tensor([10]), with_aux=False).main
    # output j covers input frames 3j..3j+2
    for t in range(10):
        torch.testing.assert_close(post[t], direct[t // 3])
    # priors: counts / total, floored, renormalised
    p = np.maximum(counts.numpy() / 100.0, 1e-3)
    p /= p.sum()
    np.testing.assert_allclose(scorer.log_priors.numpy(), np.log(p), rtol=1e-5)
    assert math.isfinite(float(scorer.log_priors.min()))


def test_bad_model_config_names_the_key():
    with pytest.raises(ConfigError, match=r"aux_heads\[0\]\.layer: 9 > num_layers"):
        from_dict(ModelConfig, {"num_layers": 4, "aux_heads": [{"level": "phone", "layer": 9}]}, "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: aux_heads\[0\]\.level: must be one of"):
        from_dict(ModelConfig, {"aux_heads": [{"level": "word", "layer": 1}]}, "x.yaml")
    with pytest.raises(ConfigError, match="subsampling"):
        from_dict(ModelConfig, {"subsampling": 5}, "x.yaml")


@pytest.mark.parametrize("system", ["baseline", "hier", "dmoe"])
def test_system_configs_are_cpu_sized(system):
    from steps.am.config import load_am_config

    config = load_am_config(CONF / f"am_{system}.yaml")
    units = {"senone": 1500, "phone": 40, "subword": 500}
    model = AcousticModel(80, 1500, config.model, {h.level: units[h.level] for h in config.model.aux_heads})
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 3e6
