"""The small neural model that does the GMM's job in Kaldi's alignment stages: a TDNN
over globally normalised fbank that gives per-frame log-posteriors over HMM states
(monophone states, or senones once the tree exists).

Its context is kept narrow on purpose (a few frames each side, set by the layers'
kernels and dilations): a network that sees far into the future can move its decisions
away from the acoustic events they belong to, and the alignment would drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from steps.core.config import from_dict, require, to_dict

KIND = "align_model"


@dataclass
class AlignModelConfig:
    hidden_dim: int = 256
    # (kernel size, dilation) per layer; the context each side is sum((k - 1) // 2 * d)
    layers: list[list[int]] = field(default_factory=lambda: [[3, 1], [3, 1], [3, 2], [3, 2], [1, 1]])
    dropout: float = 0.1
    # subtract each utterance's own feature mean first (per-utterance CMN), so that the
    # recording level and the background do not move every feature
    utterance_mean_norm: bool = True

    def __post_init__(self):
        require(self.hidden_dim > 0, "hidden_dim", "must be positive")
        require(len(self.layers) > 0, "layers", "at least one layer is needed")
        for kernel_dilation in self.layers:
            require(len(kernel_dilation) == 2 and kernel_dilation[0] % 2 == 1 and kernel_dilation[1] >= 1,
                    "layers", f"each layer is [odd kernel size, dilation >= 1], got {kernel_dilation}")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")

    @property
    def context(self) -> int:
        return sum((k - 1) // 2 * d for k, d in self.layers)


class AlignModel(nn.Module):
    def __init__(self, feature_dim: int, num_outputs: int, config: AlignModelConfig):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_inv_std", torch.ones(feature_dim))
        blocks = []
        in_dim = feature_dim
        for kernel, dilation in config.layers:
            blocks += [
                nn.Conv1d(in_dim, config.hidden_dim, kernel, dilation=dilation,
                          padding=(kernel - 1) // 2 * dilation),
                nn.ReLU(),
                nn.BatchNorm1d(config.hidden_dim),
                nn.Dropout(config.dropout),
            ]
            in_dim = config.hidden_dim
        self.encoder = nn.Sequential(*blocks)
        self.output = nn.Conv1d(config.hidden_dim, num_outputs, 1)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_inv_std.copy_(1.0 / std.clamp(min=1e-5))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, F] raw fbank -> [B, T, num_outputs] log-posteriors; lengths [B] give the
        valid frames of a padded batch (default: all). Padding frames influence their
        neighbours only through the narrow context."""
        if self.config.utterance_mean_norm:
            if lengths is None:
                feats = feats - feats.mean(dim=1, keepdim=True)
            else:
                valid = (torch.arange(feats.shape[1], device=feats.device)[None, :]
                         < lengths.to(feats.device)[:, None]).unsqueeze(-1)
                mean = (feats * valid).sum(dim=1, keepdim=True) / lengths.to(feats.device).view(-1, 1, 1)
                feats = (feats - mean) * valid
        x = (feats - self.feature_mean) * self.feature_inv_std
        x = self.encoder(x.transpose(1, 2))
        return self.output(x).transpose(1, 2).log_softmax(dim=-1)

    def replace_output(self, num_outputs: int) -> None:
        """A new output layer (e.g. senones instead of monophone states), same encoder."""
        self.output = nn.Conv1d(self.config.hidden_dim, num_outputs, 1)


def checkpoint_dict(model: AlignModel, feature_dim: int, log_priors: torch.Tensor | None,
                    extra: dict | None = None) -> dict:

    return {
        "kind": KIND,
        "config": to_dict(model.config),
        "feature_dim": feature_dim,
        "num_outputs": model.output.out_channels,
        "state_dict": model.state_dict(),
        "log_priors": log_priors,
        **(extra or {}),
    }


def model_from_checkpoint(checkpoint: dict) -> AlignModel:

    config = from_dict(AlignModelConfig, checkpoint["config"], "checkpoint")
    model = AlignModel(checkpoint["feature_dim"], checkpoint["num_outputs"], config)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


class AlignModelScorer:
    def __init__(self, model: AlignModel, log_priors: torch.Tensor | None, device: torch.device):
        self.model = model.to(device).eval()
        self.device = device
        self.num_outputs = model.output.out_channels
        self.log_priors = None if log_priors is None else log_priors.to(device)

    @torch.no_grad()
    def log_posteriors(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model(feats.to(self.device).unsqueeze(0))[0]


def scorer_from_checkpoint(checkpoint: dict, device: torch.device) -> AlignModelScorer:
    return AlignModelScorer(model_from_checkpoint(checkpoint), checkpoint.get("log_priors"), device)
