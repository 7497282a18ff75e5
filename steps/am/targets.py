"""Frame targets at the model's output rate, built for a whole batch at once.

Frame rate (steps.data.output_frames). With frame subsampling s the model emits one output
per s input frames (n = ceil(T / s) outputs for T frames); output j covers input frames
[j*s, j*s + s) and takes the labels of input frame min(j*s + s//2, T - 1), its centre. A
token shorter than s frames may hold no centre and then gives no target at all
(tokens_without_output counts them: a fifth of the senone tokens at s = 3). Soft labels can instead be taken over the
output's whole span (expand_soft_labels(..., span=True), data.soft_targets: span): the
soft labels of the tokens covering the span's frames, each weighted by its share of the
span's covered frames, duplicate ids summed; the hard label stays the centre's token where
the centre is covered, else the span's first covered frame's. Every target is at that
output rate: senone [B, N], and per level ids/probs [B, N, k], mask [B, N], hard [B, N]
(N = the longest n in the batch).

Soft labels are stored per token (steps.kd.soft_labels) and expanded to frames here, with no
loop over frames: the token starts of all cuts are laid on one axis (cut b's frames offset
by b x stride) and every queried frame finds its token with one np.searchsorted; a frame is
covered if it lies before that token's end. Frames covered by no token (silence) get mask
False, hard label -1 (IGNORE), ids -1 and probs 0. Slots that hold no id (rows padded to
the batch's widest top-k, span rows with fewer distinct ids than s*k) have id -1 and
probability 0 too: a head restricted to the row's ids (steps.am.layers.TopKLogits) leaves
them out of its normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from steps.data.output_frames import output_lengths, output_positions
from steps.kd.soft_labels import SoftLabels

IGNORE = -1  # label of frames without a target (padding, silence for soft-label levels)


@dataclass
class LevelTargets:
    ids: torch.Tensor  # int64 [B, N, k]; -1 (IGNORE) in slots without an id and where masked
    probs: torch.Tensor  # float32 [B, N, k]; 0 where masked
    mask: torch.Tensor  # bool [B, N]: a token covers the frame
    hard: torch.Tensor  # int64 [B, N]: the token's reference unit id; -1 where masked

    def to(self, device) -> "LevelTargets":
        return LevelTargets(*(t.to(device) for t in (self.ids, self.probs, self.mask, self.hard)))


def expand_soft_labels(labels: Sequence[SoftLabels | None], num_frames: Sequence[int],
                       subsampling: int = 1, span: bool = False) -> LevelTargets:
    """Per-token soft labels of B cuts -> per-frame targets at the output rate, vectorised
    (one searchsorted over the whole batch). A cut given as None gets no targets. span:
    each output's soft label mixes those of all its input frames (module docstring)."""
    if span and subsampling > 1:
        return _expand_over_spans(labels, num_frames, subsampling)
    num_frames = np.asarray(num_frames, dtype=np.int64)
    positions, valid = output_positions(num_frames, subsampling)
    batch, width = positions.shape
    k = max([lab.top_k for lab in labels if lab is not None] + [1])
    stride = int(num_frames.max()) + 1 if batch else 1
    present = [(b, lab) for b, lab in enumerate(labels) if lab is not None and len(lab)]
    ids = np.full((batch, width, k), IGNORE, dtype=np.int64)
    probs = np.zeros((batch, width, k), dtype=np.float32)
    hard = np.full((batch, width), IGNORE, dtype=np.int64)
    mask = np.zeros((batch, width), dtype=bool)
    if present:
        offsets = np.concatenate([np.full(len(lab), b * stride, dtype=np.int64) for b, lab in present])
        spans = np.concatenate([lab.spans for _, lab in present]).astype(np.int64)
        limit = np.concatenate([np.full(len(lab), num_frames[b]) for b, lab in present])
        starts = spans[:, 0] + offsets
        ends = np.minimum(spans[:, 1], limit) + offsets
        token_ids = np.concatenate([pad_k(lab.ids.astype(np.int64), k, IGNORE) for _, lab in present])
        token_probs = np.concatenate([pad_k(lab.probs.astype(np.float32), k, 0.0)
                                      for _, lab in present])
        token_hard = np.concatenate([lab.tokens for _, lab in present]).astype(np.int64)
        query = (np.arange(batch, dtype=np.int64)[:, None] * stride + positions).reshape(-1)
        row = np.searchsorted(starts, query, side="right") - 1
        safe = np.maximum(row, 0)
        covered = (row >= 0) & (query < ends[safe]) & valid.reshape(-1)
        flat = np.flatnonzero(covered)
        rows = row[flat]
        ids.reshape(-1, k)[flat] = token_ids[rows]
        probs.reshape(-1, k)[flat] = token_probs[rows]
        hard.reshape(-1)[flat] = token_hard[rows]
        mask.reshape(-1)[flat] = True
    return LevelTargets(torch.from_numpy(ids), torch.from_numpy(probs), torch.from_numpy(mask),
                        torch.from_numpy(hard))


def _expand_over_spans(labels: Sequence[SoftLabels | None], num_frames: Sequence[int],
                       subsampling: int) -> LevelTargets:
    s = subsampling
    num_frames = np.asarray(num_frames, dtype=np.int64)
    n = output_lengths(num_frames, s)
    width = int(n.max()) if len(n) else 0
    centre = s // 2
    full = expand_soft_labels(labels, num_frames, 1)  # the targets of every input frame
    batch, k = full.ids.shape[0], full.ids.shape[2]
    T = full.mask.shape[1]
    j = np.arange(width)
    frame = j[None, :, None] * s + np.arange(s)[None, None, :]  # [1, N, s]: the spans' input frames
    index = np.minimum(frame, np.maximum(T - 1, 0))
    inside = (frame < num_frames[:, None, None]) & (j[None, :, None] < n[:, None, None])  # [B, N, s]
    b = np.arange(batch)[:, None, None]
    ids = full.ids.numpy()[b, index]  # [B, N, s, k]
    probs = full.probs.numpy()[b, index]
    covered = full.mask.numpy()[b, index] & inside  # [B, N, s]
    hard_frames = full.hard.numpy()[b, index]
    count = covered.sum(axis=2)  # [B, N]
    weight = covered / np.maximum(count, 1)[..., None]
    probs = probs * weight[..., None]
    ids = np.where(covered[..., None], ids, IGNORE)
    merged_ids, merged_probs = _merge_duplicates(ids.reshape(batch * width, s * k),
                                                 probs.reshape(batch * width, s * k).astype(np.float32))
    # hard label: the centre's token if covered (the centre is clipped to the last frame)
    centre_frame = np.minimum(centre, np.maximum(num_frames[:, None] - 1 - j[None, :] * s, 0))  # [B, N]
    centre_covered = np.take_along_axis(covered, centre_frame[..., None], axis=2)[..., 0]
    first = covered.argmax(axis=2)
    pick = np.where(centre_covered, centre_frame, first)
    hard = np.where(count > 0, np.take_along_axis(hard_frames, pick[..., None], axis=2)[..., 0], IGNORE)
    return LevelTargets(torch.from_numpy(merged_ids.reshape(batch, width, s * k)),
                        torch.from_numpy(merged_probs.reshape(batch, width, s * k)),
                        torch.from_numpy(count > 0), torch.from_numpy(hard.astype(np.int64)))


def _merge_duplicates(ids: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (id, probability) pairs with repeated ids (-1: no id) -> each id once with
    the sum of its probabilities, sorted by id, padded with (-1, 0) to the same width."""
    real = ids >= 0
    order = np.argsort(np.where(real, ids, np.iinfo(ids.dtype).max), axis=1, kind="stable")  # no id: last
    ids = np.take_along_axis(ids, order, axis=1)
    probs = np.take_along_axis(probs, order, axis=1)
    real = np.take_along_axis(real, order, axis=1)
    new = real.copy()
    new[:, 1:] &= ids[:, 1:] != ids[:, :-1]
    slot = np.cumsum(new, axis=1) - 1
    rows = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)
    out_ids = np.full_like(ids, IGNORE)
    out_probs = np.zeros_like(probs)
    out_ids[rows[new], slot[new]] = ids[new]
    np.add.at(out_probs, (rows[real], slot[real]), probs[real])
    return out_ids, out_probs


def pad_k(array: np.ndarray, k: int, value) -> np.ndarray:
    if array.shape[1] == k:
        return array
    out = np.full((array.shape[0], k), value, dtype=array.dtype)
    out[:, : array.shape[1]] = array
    return out


def senone_targets(alignments: Sequence[np.ndarray | None], num_frames: Sequence[int],
                   subsampling: int = 1) -> torch.Tensor:
    """Frame alignments -> [B, N] labels at the output rate; -1 for padding and for cuts
    without an alignment."""
    num_frames = np.asarray(num_frames, dtype=np.int64)
    positions, valid = output_positions(num_frames, subsampling)
    out = np.full(positions.shape, IGNORE, dtype=np.int64)
    for b, ali in enumerate(alignments):
        if ali is not None:
            n = int(valid[b].sum())
            out[b, :n] = ali[positions[b, :n]]
    return torch.from_numpy(out)
