"""The per-layer distillation loss of the DistilHuBERT family.

For a generated (or predicted) layer h and the teacher's layer t, over the valid frames:

    L_l = l1_weight * mean_{frames, dims} |h - t|  +  cos_weight * mean_{frames} c(h, t)
    c = -log sigmoid(cos(h_t, t_t))   (cos_form logsigmoid: DistilHuBERT, Chang, Yang & Lee,
                                       ICASSP 2022, eq. 1, with lambda = cos_weight = 1)
    c = 1 - cos(h_t, t_t)             (cos_form distance: the plain cosine distance)

and the total is the sum over layers (DistilHuBERT sums its three heads' losses). The choice
of this objective for GenDistiller (Gao et al., 2023-24) follows the DistilHuBERT convention
its baseline uses, applied at every generated step; logsigmoid is the default because it is
the form DistilHuBERT's paper writes down. Weights other than 1 / 1 were not tuned here.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from steps.compress.config import DistillLossConfig


def layer_losses(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 config: DistillLossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """predicted, target [B, N, L, D], mask [B, N] bool -> (l1 [L], cos term [L]), each the
    mean over the valid frames (l1 also over dims), unweighted."""
    valid = mask.to(predicted.dtype)[..., None]  # [B, N, 1]
    frames = valid.sum().clamp(min=1.0)
    l1 = ((predicted - target).abs().mean(dim=-1) * valid).sum(dim=(0, 1)) / frames
    cos = F.cosine_similarity(predicted, target, dim=-1, eps=1e-8)  # [B, N, L]
    term = -F.logsigmoid(cos) if config.cos_form == "logsigmoid" else 1.0 - cos
    return l1, (term * valid).sum(dim=(0, 1)) / frames


def distill_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 config: DistillLossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum over layers and the per-layer figures for the log."""
    l1, cos = layer_losses(predicted, target, mask, config)
    total = (config.l1_weight * l1 + config.cos_weight * cos).sum()
    figures = {f"l1_{i + 1}": float(v) for i, v in enumerate(l1.detach())}
    figures.update({f"cos_{i + 1}": float(v) for i, v in enumerate(cos.detach())})
    return total, figures
