"""Bootstrap intervals and paired significance of a ratio over items (Bisani & Ney, 2004;
Kaldi's compute-wer-bootci).

A figure is sum(numerators) / sum(denominators) over items: a WER is word errors over
reference words, utterance by utterance; a boundary share is boundaries within 20 ms over
boundaries, cut by cut. Items are resampled with replacement `draws` times (a fixed seed,
so a report is reproducible). The percentile interval of the resampled figures is the
figure's interval. Two systems scored on the same items are resampled together (paired):
the difference B - A gets its own interval, and

    p_improvement  the share of draws where B's figure is below A's (compute-wer-bootci's
                   "probability of improvement"; for a WER, below means better)
    p_value        two-sided: twice the smaller share of draws on either side of 0, so 1.0
                   when B and A cannot be told apart and small when the difference keeps
                   its sign in nearly every draw

This counts test-set noise alone, for one fixed model (or one fixed set of models): it is
right for a single decode, a single alignment or a single LM's perplexity. It is wrong for
systems trained under several seeds: concatenating their seeds' items treats the same
utterance under three seeds as three utterances and leaves the spread between seeds out,
so systems that differ only by seed come out "significant" about one time in five
(tests/test_seed_utterance.py). Compare trained systems with steps.scoring.seed_utterance.

    a = RatioItems(errors_a, words)      # per utterance
    b = RatioItems(errors_b, words)
    c = paired_bootstrap(a, b)           # c.a.low, c.difference.high, c.p_value
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DRAWS = 1000
LEVEL = 0.95


@dataclass
class RatioItems:
    """Per-item numerators and denominators of one system."""

    numerators: np.ndarray
    denominators: np.ndarray

    def __post_init__(self):
        self.numerators = np.asarray(self.numerators, dtype=np.float64)
        self.denominators = np.asarray(self.denominators, dtype=np.float64)
        if self.numerators.shape != self.denominators.shape or self.numerators.ndim != 1:
            raise ValueError("numerators and denominators must be 1-D and of the same length")
        if not len(self.numerators) or self.denominators.sum() <= 0:
            raise ValueError("nothing to score: no items, or all denominators are 0")

    @property
    def value(self) -> float:
        return float(self.numerators.sum() / self.denominators.sum())

    def resampled(self, picks: np.ndarray) -> np.ndarray:
        """The figure of every draw (picks: [draws, items] item indices)."""
        return self.numerators[picks].sum(1) / np.maximum(self.denominators[picks].sum(1), 1e-12)


@dataclass
class Interval:
    value: float
    low: float
    high: float

    def scaled(self, factor: float) -> "Interval":
        return Interval(self.value * factor, self.low * factor, self.high * factor)


def format_p(p_value: float, draws: int) -> str:
    """"p = x", or "p < 1/draws" where no draw crossed zero (never "p = 0.000")."""
    return f"p < {1 / draws:g}" if p_value == 0 else f"p = {p_value:.3g}"


@dataclass
class PairedComparison:
    a: Interval
    b: Interval
    difference: Interval  # b - a
    p_improvement: float  # share of draws with b < a
    p_value: float  # two-sided
    items: int
    draws: int


def _picks(items: int, draws: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, items, size=(draws, items))


def _interval(value: float, samples: np.ndarray, level: float) -> Interval:
    tail = (1 - level) / 2
    return Interval(value, float(np.quantile(samples, tail)), float(np.quantile(samples, 1 - tail)))


def bootstrap_interval(items: RatioItems, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> Interval:
    """The figure and its percentile interval over resampled items."""
    return _interval(items.value, items.resampled(_picks(len(items.numerators), draws, seed)), level)


def paired_bootstrap(a: RatioItems, b: RatioItems, draws: int = DRAWS, level: float = LEVEL,
                     seed: int = 0) -> PairedComparison:
    """Both figures, the difference b - a, each with its interval, and the probability of
    improvement and two-sided p-value of the difference, from the same resampled items."""
    if len(a.numerators) != len(b.numerators):
        raise ValueError(f"paired items differ in number: {len(a.numerators)} and {len(b.numerators)}")
    picks = _picks(len(a.numerators), draws, seed)
    sa, sb = a.resampled(picks), b.resampled(picks)
    diff = sb - sa
    below = float(np.mean(diff < 0))
    p_value = min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))
    return PairedComparison(_interval(a.value, sa, level), _interval(b.value, sb, level),
                            _interval(b.value - a.value, diff, level), below, float(p_value),
                            len(a.numerators), draws)
