"""SpecAugment (Park et al., 2019) for acoustic-model training: time and frequency bands of
the normalised features masked to 0 (the global mean), per utterance, with random numbers
from a generator of the caller's, so that an interrupted run resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steps.core.config import require


@dataclass
class SpecAugmentConfig:
    """Time and frequency masking on the normalised features (masked values become 0,
    the global mean), per utterance; off unless enabled."""

    enabled: bool = False
    num_freq_masks: int = 2
    max_freq_width: int = 10
    num_time_masks: int = 2
    max_time_width: int = 20  # frames; a mask never covers more than max_time_frac of a cut
    max_time_frac: float = 0.1

    def __post_init__(self):
        require(self.num_freq_masks >= 0, "num_freq_masks", "must be >= 0")
        require(self.max_freq_width >= 0, "max_freq_width", "must be >= 0")
        require(self.num_time_masks >= 0, "num_time_masks", "must be >= 0")
        require(self.max_time_width >= 0, "max_time_width", "must be >= 0")
        require(0.0 <= self.max_time_frac <= 1.0, "max_time_frac", "must be in [0, 1]")


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """Masks bands of normalised features [B, T, F] (in a copy) with 0, the global mean.
    Random numbers come from `generator` (on the CPU), so training can be resumed exactly."""
    if not config.enabled:
        return x
    batch, _, dim = x.shape
    keep = torch.ones(batch, x.shape[1], dim, dtype=torch.bool)
    for b in range(batch):
        length = int(lengths[b])
        for _ in range(config.num_freq_masks):
            width = int(torch.randint(0, config.max_freq_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, dim - width + 1), (1,), generator=generator))
            keep[b, :, start:start + width] = False
        time_limit = min(config.max_time_width, int(config.max_time_frac * length))
        for _ in range(config.num_time_masks):
            width = int(torch.randint(0, time_limit + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, length - width + 1), (1,), generator=generator))
            keep[b, start:start + width, :] = False
    return x * keep.to(x.device, x.dtype)
