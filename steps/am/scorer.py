"""What decoding and alignment need of an acoustic model: per-frame log-posteriors over
its output units, at the 10 ms feature frame rate, from raw fbank features.

Checkpoints name their kind; `load_scorer` builds the scorer of that kind from a table of
kind -> builder, SCORERS (the kinds of steps.am and steps.hmm) unless the caller passes
another (steps.compress.student.SCORERS adds the compressed students):

    scorer = load_scorer("exp/am_baseline_s1/final.pt")
    log_post = scorer.log_posteriors(feats)          # [T, F] -> [T, scorer.num_outputs]
    loglik = log_post - scorer.log_priors            # hybrid "scaled likelihoods"

A builder is `scorer_from_checkpoint(checkpoint: dict, device) -> FrameScorer`. Models
with frame subsampling repeat their outputs back to the full frame rate, so every scorer
speaks in input frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Protocol

import torch

from steps.am import model as am_model
from steps.core import checkpoint as ckpt_io
from steps.hmm import align_model


class FrameScorer(Protocol):
    num_outputs: int
    # log of the output units' prior probabilities (from the training alignments), or None
    log_priors: torch.Tensor | None

    def log_posteriors(self, feats: torch.Tensor) -> torch.Tensor:
        """[T, F] fbank (not normalised) -> [T, num_outputs] log-posteriors."""
        ...


ScorerBuilder = Callable[[dict, torch.device], FrameScorer]

SCORERS: dict[str, ScorerBuilder] = {
    am_model.KIND: am_model.scorer_from_checkpoint,
    align_model.KIND: align_model.scorer_from_checkpoint,
}


def load_scorer(path: str | Path, device: str | torch.device = "cpu",
                scorers: Mapping[str, ScorerBuilder] = SCORERS) -> FrameScorer:
    checkpoint = ckpt_io.load(path, map_location=device)
    kind = checkpoint.get("kind") if isinstance(checkpoint, dict) else None
    if kind not in scorers:
        raise ValueError(f"{path}: not a model checkpoint this toolkit can score with here "
                         f"(kind={kind!r}; known: {sorted(scorers)}; compressed students: "
                         "steps.compress.student.SCORERS)")
    return scorers[kind](checkpoint, torch.device(device))
