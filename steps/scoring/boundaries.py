"""Word-boundary errors of an alignment against the true segments a corpus supplies (the synth corpus' supervision.alignment)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BoundaryQuality:
    cuts: int
    boundaries: int
    median_ms: float
    p90_ms: float
    within_20ms: float
    within_50ms: float
    mismatched_cuts: int
    starts: int = 0
    ends: int = 0

    def summary(self) -> str:
        ends = "" if self.ends == self.starts else f" ({self.starts} starts, {self.ends} ends)"
        return (f"{self.boundaries} word boundaries{ends} in {self.cuts} cuts: median {self.median_ms:.1f} ms, "
                f"90th percentile {self.p90_ms:.1f} ms, within 20 ms {100 * self.within_20ms:.1f}%, "
                f"within 50 ms {100 * self.within_50ms:.1f}%")


class NoReferences(ValueError):
    """No cut carries both alignments with the same words: nothing to score."""


def boundary_errors(truth, hypothesis) -> tuple[np.ndarray, np.ndarray] | None:
    """|start - start'| of every word and |end - end'| of the words whose reference has an
    end (duration > 0), in seconds, words in order; None if the word sequences differ."""
    if [t.symbol for t in truth] != [h.symbol for h in hypothesis]:
        return None
    starts = np.array([abs(t.start - h.start) for t, h in zip(truth, hypothesis)])
    ends = np.array([abs(t.end - h.end) for t, h in zip(truth, hypothesis) if (t.duration or 0) > 0])
    return starts, ends


TOLERANCE = 1e-6  # a hair: times are multiples of 10 ms stored as floats


def cut_errors(cuts, truth_key: str = "word", hyp_key: str = "ali_word") -> tuple[dict, list[str], int, int]:
    """Every scorable cut's boundary errors (starts, then ends; seconds) by cut id, the ids of
    the cuts whose words differ, and the numbers of starts and ends scored."""
    errors, mismatched, n_starts, n_ends = {}, [], 0, 0
    for cut in cuts:
        supervision = cut.supervisions[0]
        alignment = supervision.alignment or {}
        if truth_key not in alignment or hyp_key not in alignment:
            continue
        e = boundary_errors(alignment[truth_key], alignment[hyp_key])
        if e is None:
            mismatched.append(cut.id)
            continue
        errors[cut.id] = np.concatenate(e)
        n_starts, n_ends = n_starts + len(e[0]), n_ends + len(e[1])
    return errors, mismatched, n_starts, n_ends


def within_counts(errors: dict, ids: list[str], seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Per cut of ids: boundaries within `seconds` of the truth, and boundaries (the items of a
    paired bootstrap of the share, steps.scoring.bootstrap)."""
    within = np.array([np.sum(errors[i] <= seconds + TOLERANCE) for i in ids], dtype=np.float64)
    return within, np.array([len(errors[i]) for i in ids], dtype=np.float64)


def score_cuts(cuts, truth_key: str = "word", hyp_key: str = "ali_word") -> tuple[BoundaryQuality, list[str]]:
    """Raises NoReferences when no cut can be scored."""
    errors, mismatched, n_starts, n_ends = cut_errors(cuts, truth_key, hyp_key)
    if not n_starts:
        raise NoReferences(f"no cut has both '{truth_key}' and '{hyp_key}' alignments with the same words"
                           + (f" ({len(mismatched)} with different words)" if mismatched else ""))
    all_errors = np.concatenate(list(errors.values()))
    quality = BoundaryQuality(
        cuts=len(errors), boundaries=len(all_errors),
        median_ms=float(np.median(all_errors) * 1000), p90_ms=float(np.percentile(all_errors, 90) * 1000),
        within_20ms=float(np.mean(all_errors <= 0.020 + TOLERANCE)),
        within_50ms=float(np.mean(all_errors <= 0.050 + TOLERANCE)),
        mismatched_cuts=len(mismatched), starts=n_starts, ends=n_ends)
    return quality, mismatched
