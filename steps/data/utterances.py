"""Whole utterances in memory for the alignment stages: features, words, batching by
length. The alignment model is small and sees every utterance several times, so reading
the features once beats decompressing them every epoch (2-3 hours of 80-dim fbank is
about 300 MB as float32)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from lhotse import CutSet

from steps.core.log import progress


@dataclass
class Utterance:
    cut_id: str
    feats: np.ndarray  # [T, F] float32
    words: list[str]

    @property
    def num_frames(self) -> int:
        return self.feats.shape[0]


def transcript_words(cut) -> list[str]:
    return " ".join(s.text or "" for s in cut.supervisions).split()


def load_utterances(cuts: CutSet, description: str = "loading features") -> tuple[list[Utterance], list[tuple[str, str]]]:
    """Utterances with features and a non-empty transcript, and (cut id, reason) for
    the cuts left out."""
    utterances, skipped = [], []
    for cut in progress(cuts, desc=description, leave=False):
        words = transcript_words(cut)
        if not words:
            skipped.append((cut.id, "empty transcript"))
            continue
        if not cut.has_features:
            skipped.append((cut.id, "no features"))
            continue
        try:
            feats = cut.load_features().astype(np.float32)
        except Exception as e:  # unreadable storage: report it, go on
            skipped.append((cut.id, f"cannot load features: {e}"))
            continue
        utterances.append(Utterance(cut.id, feats, words))
    return utterances, skipped


def feature_stats(utterances: list[Utterance], utterance_mean_norm: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean and standard deviation of the features (for CMVN inside models), of
    the features after per-utterance mean subtraction if the model does that first."""
    total = sum(u.num_frames for u in utterances)
    s = np.zeros(utterances[0].feats.shape[1], dtype=np.float64)
    s2 = np.zeros_like(s)
    for u in utterances:
        feats = u.feats.astype(np.float64)
        if utterance_mean_norm:
            feats = feats - feats.mean(axis=0)
        s += feats.sum(axis=0)
        s2 += (feats**2).sum(axis=0)
    mean = s / total
    std = np.sqrt(np.maximum(s2 / total - mean**2, 1e-10))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def length_batches(lengths: list[int], max_frames: int, rng: np.random.Generator | None = None) -> list[list[int]]:
    """Indices grouped so that (longest in batch) x (batch size) <= max_frames, similar
    lengths together; batch order shuffled when rng is given, longest first within a
    batch (k2 wants that order)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and longest * (len(current) + 1) > max_frames:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    if rng is not None:
        rng.shuffle(batches)
    return batches


def pad_features(utterances: list[Utterance]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([u.num_frames for u in utterances])
    feats = torch.zeros(len(utterances), int(lengths.max()), utterances[0].feats.shape[1])
    for i, u in enumerate(utterances):
        feats[i, : u.num_frames] = torch.from_numpy(u.feats)
    return feats, lengths
