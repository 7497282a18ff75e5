"""steps.scoring.strengths: the trend of a system's gain over decoder-LM strengths. The slope
by hand on a small table, and a calibration by simulation: two systems that differ only by
training seed show a trend at 0.05 about one time in twenty, whatever the seeds' luck
shared across the strengths of one model, and a gain that fades with the LM is found."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steps.scoring.seed_utterance import SeedRuns
from steps.scoring.strengths import log_ratio_slope, strength_weights, trends

UTTERANCES, SEEDS = 400, 3
RATES = (0.20, 0.10, 0.045, 0.035)  # unigram, bigram, trigram, rescored: the WERs fall several-fold


def runs(errors, words, seeds) -> SeedRuns:
    return SeedRuns(np.asarray(errors), words, list(seeds), [f"u{i}" for i in range(len(words))])


def test_the_slope_by_hand():
    assert strength_weights(4) == pytest.approx(np.array([-1.5, -0.5, 0.5, 1.5]) / 5)
    words = np.full(10, 10)
    # A at 20%, 10%; B at 16%, 10%: log ratios log 0.8, 0; two strengths: slope = 0 - log 0.8
    a = [runs(np.full((1, 10), e), words, [1]) for e in (2, 1)]
    b = [runs(np.full((1, 10), e), words, [1]) for e in (1.6, 1)]
    assert log_ratio_slope(a, b, a[0].utterances) == pytest.approx(-math.log(0.8))


def simulated(rng, gains=(0.0, 0.0, 0.0, 0.0), seed_sigma=0.10, first_seed=1):
    """One system's seeds at every strength: an utterance's difficulty is shared by every
    model and strength; a seed's luck is mostly shared across the strengths of one model."""
    words = 4 + rng.poisson(6, UTTERANCES)
    difficulty = rng.gamma(0.5, 2.0, UTTERANCES)

    def system(gain_by_strength, seeds):
        shared = rng.standard_normal(len(seeds))
        out = []
        for rate, gain in zip(RATES, gain_by_strength):
            own = rng.standard_normal(len(seeds))
            luck = np.exp(seed_sigma * (0.8 * shared + 0.6 * own))
            p = np.clip(rate * (1 - gain) * difficulty[None, :] * luck[:, None], 0, 1)
            out.append(runs(rng.binomial(words[None, :], p), words, seeds))
        return out

    seeds = range(first_seed, first_seed + SEEDS)
    return system((0.0,) * len(RATES), seeds), system(gains, seeds)


def test_calibration_no_trend_between_seeds_of_one_system_nor_a_constant_gain():
    rng = np.random.default_rng(7)
    null_p, constant_p = [], []
    for _ in range(200):
        a, b = simulated(rng)
        null_p.append(trends({"a": a, "b": b}, "a")["systems"]["b"]["p_value"])
        a, b = simulated(rng, gains=(0.15,) * 4)  # the same relative gain at every strength
        constant_p.append(trends({"a": a, "b": b}, "a")["systems"]["b"]["p_value"])
    assert np.mean(np.array(null_p) < 0.05) <= 0.08
    assert np.mean(np.array(constant_p) < 0.05) <= 0.08


def test_a_gain_that_fades_with_the_lm_is_found_and_the_aa_check_runs():
    rng = np.random.default_rng(8)
    found, slopes = [], []
    for _ in range(100):
        a, b = simulated(rng, gains=(0.30, 0.20, 0.10, 0.0))
        t = trends({"a": a, "b": b}, "a")["systems"]["b"]
        found.append(t["p_value"] < 0.05)
        slopes.append(t["slope"])
    # log(1 / 0.7) over three steps: a true slope of about +11.9% per step
    assert np.median(slopes) == pytest.approx(100 * math.log(1 / 0.7) / 3, abs=2.5)
    assert np.mean(found) >= 0.6
    a, b = simulated(rng)
    aa_side, _ = simulated(rng, first_seed=4)
    figures = trends({"a": a, "b": b}, "a", aa=aa_side)
    assert figures["aa"]["a_seeds"] == [1, 2, 3] and figures["aa"]["b_seeds"] == [4, 5, 6]
    assert figures["utterances"] == UTTERANCES
