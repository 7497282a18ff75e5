"""Intervals and paired tests of a WER that count both training seeds and test utterances.

A system is trained under K seeds and every model decodes the same N test utterances, so
its word errors form a table E[s, u] beside the reference words w[u]. Two kinds of noise
stand between a figure and the truth, and every interval and test here counts both:

- the test set: which utterances were drawn (some are hard for one system, easy for another);
- training: which seed (initialisation, batch order), which moves a model's errors as a whole.

The method is a crossed random-effects model (seeds crossed with utterances) whose variance
components are estimated by the method of moments, as in the ANOVA estimators of crossed
designs (Searle, Casella & McCulloch 1992, "Variance Components", ch. 4) and in
generalizability theory (Brennan 2001); a test is Welch's t with Satterthwaite's (1946)
degrees of freedom. With X_s = sum_u E[s, u] / W (W = sum_u w[u]) the seed's WER and X the
mean over seeds:

    Var(X) = var_seed / K + V_test

var_seed   the variance of a seed's WER about its system's mean. It is one component for
           all the systems of a report, pooled over them (df = sum of K - 1), so that a
           system with one seed still gets its share, and a report with few seeds per
           system still has degrees of freedom; each system's own spread stays in the
           tables beside it, for a reader to see whether the systems share it.
V_test     the test-set variance of the seed-averaged figure: the linearised variance of a
           ratio over utterances, N / (N - 1) * sum_u (e_u - X w_u)^2 / W^2 with e_u the
           utterance's errors averaged over seeds, less the within-seed noise that var_seed
           already holds (sum_u var_s(E[s, u]) / K, with the same factor), clipped at 0.
           Without that subtraction the seed-by-utterance noise is counted twice: a bootstrap
           that resamples seeds and utterances both (Owen 2007, "The pigeonhole bootstrap")
           has the same excess, which makes it conservative.
           Two small biases remain: var_s(E[s, u]) also holds a little of the seed effect
           (its share of one utterance, O(1/N) of var_seed), so slightly too much is taken
           away; and with one seed nothing can be taken away, so that system's
           seed-by-utterance noise is counted twice (conservative).

A difference B - A pairs the utterances (both systems decode the same ones) and not the
seeds (seed 1 of A and seed 1 of B are different models):

    Var(B - A) = var_seed * (1 / K_A + 1 / K_B) + V_test(d),   d_u = e_B[u] - e_A[u] - D w_u

The interval is D +- t(df, 0.975) * SE and the p-value two-sided, 2 P(T_df > |D| / SE). The
minimal detectable effect at 80% power and alpha 0.05 is (t(df, 0.975) + t(df, 0.80)) * SE:
a true difference of that size is found four times in five by this test.

Where no system has two seeds, var_seed cannot be estimated: the figures then count the
test set alone, and say so (`seed_noise` False). steps.scoring.bootstrap's pooled paired
bootstrap is that figure too: test-set noise for one fixed set of models.

    runs_a = SeedRuns.from_items(items_a)    # (seed, utterance id) -> (errors, words)
    runs_b = SeedRuns.from_items(items_b)
    var = SeedVariance.pooled([runs_a, runs_b])
    c = compare(runs_a, runs_b, var)          # c.difference.low, c.p_value, c.mde
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
POWER = 0.80

# (seed, utterance id) -> (word errors, reference words)
Items = dict[tuple[int, str], tuple[int, int]]


@dataclass
class SeedRuns:
    """One system's errors, seed by utterance, on the utterances every seed decoded."""

    errors: np.ndarray  # [seeds, utterances]
    words: np.ndarray  # [utterances]
    seeds: list[int]
    utterances: list[str]
    left_out: int = 0  # utterances some seed lacks

    def __post_init__(self):
        self.errors = np.asarray(self.errors, dtype=np.float64).reshape(len(self.seeds), -1)
        self.words = np.asarray(self.words, dtype=np.float64)
        if self.errors.shape[1] != len(self.words) or len(self.utterances) != len(self.words):
            raise ValueError("errors, words and utterances disagree in number")
        if not len(self.seeds) or self.words.sum() <= 0:
            raise ValueError("nothing to score: no seeds, or no reference words")

    @classmethod
    def from_items(cls, items: Items, utterances: list[str] | None = None) -> "SeedRuns":
        """From scored utterances of several seeds; only utterances that every seed has
        (and that are in `utterances`, where given) are kept, the rest counted."""
        seeds = sorted({s for s, _ in items})
        by_seed = {s: {u for t, u in items if t == s} for s in seeds}
        every = set.intersection(*by_seed.values()) if seeds else set()
        keep = sorted(every if utterances is None else every & set(utterances))
        every_utt = {u for _, u in items}
        if not keep:
            raise ValueError("nothing to score: no utterance that every seed decoded")
        errors = [[items[(s, u)][0] for u in keep] for s in seeds]
        return cls(errors, [items[(seeds[0], u)][1] for u in keep], seeds, keep, len(every_utt) - len(keep))

    def select(self, seeds: list[int] | None = None, utterances: list[str] | None = None) -> "SeedRuns":
        rows = [self.seeds.index(s) for s in (seeds or self.seeds)]
        cols = list(range(len(self.utterances))) if utterances is None else \
            [self.utterances.index(u) for u in utterances]
        return SeedRuns(self.errors[np.ix_(rows, cols)], self.words[cols], [self.seeds[r] for r in rows],
                        [self.utterances[c] for c in cols], self.left_out)

    @property
    def per_seed(self) -> np.ndarray:
        """Each seed's WER (a fraction)."""
        return self.errors.sum(1) / self.words.sum()

    @property
    def value(self) -> float:
        return float(self.per_seed.mean())

    def within_seed_noise(self) -> float:
        """sum_u var_s(E[s, u]) / K: what the seed-averaged utterance errors carry of
        seed-by-utterance noise (0 with one seed, where it cannot be told apart)."""
        k = len(self.seeds)
        return float(self.errors.var(0, ddof=1).sum() / k) if k > 1 else 0.0


@dataclass
class SeedVariance:
    """The seed-variance component of a report: value (of a WER as a fraction) and df."""

    value: float
    df: int

    @classmethod
    def pooled(cls, systems: list[SeedRuns]) -> "SeedVariance":
        """The pooled within-system variance of the per-seed WERs (one-way ANOVA's mean
        square within)."""
        squares = sum(float(((r.per_seed - r.value) ** 2).sum()) for r in systems)
        df = sum(len(r.seeds) - 1 for r in systems)
        return cls(squares / df if df else 0.0, df)

    @classmethod
    def blocked(cls, systems: list[SeedRuns]) -> "SeedVariance | None":
        """Seeds as blocks (two-way ANOVA without interaction, systems x seeds): the residual
        variance of the per-seed WERs once each seed's effect shared by every system is taken
        out, df (S - 1)(K - 1); what a difference paired by seed would carry. None unless at
        least two systems share at least two seeds (the systems' common seeds are used)."""
        seeds = sorted(set.intersection(*(set(r.seeds) for r in systems))) if systems else []
        if len(systems) < 2 or len(seeds) < 2:
            return None
        table = np.array([[r.per_seed[r.seeds.index(s)] for s in seeds] for r in systems])
        residual = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + table.mean()
        df = (len(systems) - 1) * (len(seeds) - 1)
        return cls(float((residual ** 2).sum()) / df, df)

    @property
    def known(self) -> bool:
        return self.df > 0


@dataclass
class Estimate:
    """A figure (a WER, or a difference of two) with its interval and standard error."""

    value: float
    low: float
    high: float
    se: float
    df: float

    def scaled(self, factor: float) -> "Estimate":
        return Estimate(self.value * factor, self.low * factor, self.high * factor, self.se * factor, self.df)


@dataclass
class Comparison:
    a: Estimate
    b: Estimate
    difference: Estimate  # b - a
    p_value: float  # two-sided
    mde: float  # the smallest |b - a| found with POWER at alpha 1 - LEVEL
    seed_noise: bool  # False: no seed variance could be estimated; test set alone
    seeds: tuple[int, int]
    utterances: int
    unpaired: int  # utterances of either system that the other lacks

    def figures(self) -> dict:
        """In % WER: {"difference": [value, low, high], "p_value", "mde", "mde_relative" (to
        A's WER), "se", "df", "seeds": [K_A, K_B], "paired", "unpaired", "seed_noise"}."""
        d = self.difference.scaled(100)
        return {"difference": [d.value, d.low, d.high], "p_value": self.p_value, "mde": 100 * self.mde,
                "mde_relative": self.mde / self.a.value if self.a.value > 0 else None, "se": d.se,
                "df": d.df, "seeds": list(self.seeds), "paired": self.utterances, "unpaired": self.unpaired,
                "seed_noise": self.seed_noise}


def _test_set_variance(deviations: np.ndarray, words_total: float, within: float) -> float:
    n = len(deviations)
    if n < 2:
        return 0.0
    factor = n / (n - 1) / words_total ** 2
    return max(0.0, factor * (float((deviations ** 2).sum()) - within))


def _satterthwaite(seed_part: float, seed_df: int, test_part: float, test_df: int) -> float:
    parts = [(seed_part, seed_df), (test_part, test_df)]
    total = seed_part + test_part
    denominator = sum(v * v / df for v, df in parts if df > 0 and v > 0)
    return total * total / denominator if denominator > 0 else float(max(test_df, 1))


def _estimate(value: float, seed_part: float, seed_df: int, test_part: float, n: int) -> Estimate:
    se = float(np.sqrt(seed_part + test_part))
    df = _satterthwaite(seed_part, seed_df, test_part, n - 1)
    half = float(stats.t.ppf(1 - (1 - LEVEL) / 2, df)) * se
    return Estimate(value, value - half, value + half, se, df)


def interval(runs: SeedRuns, seed_var: SeedVariance) -> Estimate:
    """One system's WER (a fraction) and its interval."""
    deviations = runs.errors.mean(0) - runs.value * runs.words
    test_part = _test_set_variance(deviations, runs.words.sum(), runs.within_seed_noise())
    return _estimate(runs.value, seed_var.value / len(runs.seeds), seed_var.df, test_part, len(runs.words))


def detectable(se: float, df: float, level: float = LEVEL, power: float = POWER) -> float:
    """The minimal detectable effect of a two-sided t-test with this standard error."""
    return float((stats.t.ppf(1 - (1 - level) / 2, df) + stats.t.ppf(power, df)) * se)


def p_value(difference: float, se: float, df: float) -> float:
    """Two-sided; 0 only where there is no variance at all and a difference (or the tail
    underflows), which format_p prints as below the smallest float."""
    if se <= 0:
        return 1.0 if difference == 0 else 0.0
    return float(2 * stats.t.sf(abs(difference) / se, df))


def compare(a: SeedRuns, b: SeedRuns, seed_var: SeedVariance) -> Comparison:
    """B - A over the utterances both have: each figure and the difference with their
    intervals, the two-sided p-value and the minimal detectable effect (fractions)."""
    shared = sorted(set(a.utterances) & set(b.utterances))
    if not shared:
        raise ValueError("the two systems share no utterance")
    unpaired = len(a.utterances) + len(b.utterances) - 2 * len(shared)
    a, b = a.select(utterances=shared), b.select(utterances=shared)
    difference = b.value - a.value
    deviations = b.errors.mean(0) - a.errors.mean(0) - difference * a.words
    within = a.within_seed_noise() + b.within_seed_noise()
    test_part = _test_set_variance(deviations, a.words.sum(), within)
    seed_part = seed_var.value * (1 / len(a.seeds) + 1 / len(b.seeds))
    d = _estimate(difference, seed_part, seed_var.df, test_part, len(shared))
    return Comparison(interval(a, seed_var), interval(b, seed_var), d, p_value(d.value, d.se, d.df),
                      detectable(d.se, d.df), seed_var.known, (len(a.seeds), len(b.seeds)), len(shared),
                      unpaired)


def halves(runs: SeedRuns) -> tuple[SeedRuns, SeedRuns]:
    """The A/A check's two sides: the first half of the seeds (rounded down) and the rest."""
    if len(runs.seeds) < 2:
        raise ValueError("an A/A split needs at least two seeds")
    cut = len(runs.seeds) // 2
    return runs.select(seeds=runs.seeds[:cut]), runs.select(seeds=runs.seeds[cut:])


def format_p(p: float | None) -> str:
    """A p-value as printed in the tables: three decimals, or two significant digits below
    0.001 (never "0.000")."""
    if p is None:
        return "n/a"
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"
