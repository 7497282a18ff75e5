"""What decoding and alignment need of an acoustic model: per-frame log-posteriors over
its output units, at the 10 ms feature frame rate, from raw fbank features.

Checkpoints name their kind; `load_scorer` finds the module that builds a scorer for it:

    scorer = load_scorer("exp/am_baseline_s1/final.pt")
    log_post = scorer.log_posteriors(feats)          # [T, F] -> [T, scorer.num_outputs]
    loglik = log_post - scorer.log_priors            # hybrid "scaled likelihoods"

A module registered here provides `scorer_from_checkpoint(checkpoint: dict, device) ->
FrameScorer`. Models with frame subsampling repeat their outputs back to the full frame
rate, so every scorer speaks in input frames.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import torch

from steps.core import checkpoint as ckpt_io

SCORER_MODULES = {
    "acoustic_model": "steps.am.model",
    "align_model": "steps.hmm.align_model",
    "compressed_am": "steps.compress.student",
}


class FrameScorer(Protocol):
    num_outputs: int
    # log of the output units' prior probabilities (from the training alignments), or None
    log_priors: torch.Tensor | None

    def log_posteriors(self, feats: torch.Tensor) -> torch.Tensor:
        """[T, F] fbank (not normalised) -> [T, num_outputs] log-posteriors."""
        ...


def load_scorer(path: str | Path, device: str | torch.device = "cpu") -> FrameScorer:
    checkpoint = ckpt_io.load(path, map_location=device)
    kind = checkpoint.get("kind") if isinstance(checkpoint, dict) else None
    if kind not in SCORER_MODULES:
        raise ValueError(f"{path}: not a model checkpoint this toolkit can score with "
                         f"(kind={kind!r}; known: {sorted(SCORER_MODULES)})")
    module = importlib.import_module(SCORER_MODULES[kind])
    return module.scorer_from_checkpoint(checkpoint, torch.device(device))
