"""A frame-subsampling model's outputs on the 10 ms frame grid of its input: how many there
are, which input frame each takes its labels from, and the tokens that none takes them from.

With subsampling s there are n = ceil(T / s) outputs for T frames; output j covers input
frames [j*s, j*s + s) and takes the labels of min(j*s + s//2, T - 1), its centre (the
acoustic model's targets, steps.am.targets; the dump's count of tokens the model never
learns from, steps.kd.dump).
"""

from __future__ import annotations

import numpy as np
import torch


def output_lengths(num_frames: np.ndarray | torch.Tensor, subsampling: int):
    """n = ceil(T / s) outputs per utterance."""
    return (num_frames + subsampling - 1) // subsampling


def output_positions(num_frames: np.ndarray, subsampling: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions [B, N]: the input frame whose labels output j takes, valid [B, N])."""
    num_frames = np.asarray(num_frames, dtype=np.int64)
    n = output_lengths(num_frames, subsampling)
    width = int(n.max()) if len(n) else 0
    j = np.arange(width)
    positions = np.minimum(j[None, :] * subsampling + subsampling // 2, num_frames[:, None] - 1)
    return positions, j[None, :] < n[:, None]


def tokens_without_output(spans: np.ndarray, positions: np.ndarray, num_frames: int,
                          subsampling: int) -> int:
    """How many tokens with frames have none that an output frame takes its target from at
    this subsampling (the centres min(j*s + s//2, T - 1)): such a token gives the AM nothing.
    spans [R, 2]: the rows' [start, end) in 10 ms frames; positions [R]: each row's token."""
    if len(spans) == 0:
        return 0
    centres, _ = output_positions(np.array([num_frames]), subsampling)
    centres = centres[0]
    spans = np.asarray(spans, dtype=np.int64)
    hit = np.searchsorted(centres, spans[:, 1]) > np.searchsorted(centres, spans[:, 0])
    tokens, inverse = np.unique(np.asarray(positions), return_inverse=True)
    reached = np.zeros(len(tokens), dtype=bool)
    np.logical_or.at(reached, inverse, hit)
    return int((~reached).sum())
