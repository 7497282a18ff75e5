"""steps.scoring.bootstrap on items whose answer is known: a constant ratio has no spread,
a binomial share's interval matches the normal approximation, identical systems are not
told apart, and a system better on every item is."""

from __future__ import annotations

import numpy as np
import pytest

from steps.scoring.bootstrap import RatioItems, bootstrap_interval, format_p, paired_bootstrap


def test_a_constant_ratio_has_no_spread():
    interval = bootstrap_interval(RatioItems([1, 2, 3], [10, 20, 30]))
    assert (interval.value, interval.low, interval.high) == pytest.approx((0.1, 0.1, 0.1))


def test_a_binomial_share_matches_the_normal_interval():
    # 2000 items of one word each, 10% wrong: 95% half-width 1.96 * sqrt(0.1 * 0.9 / 2000) = 0.0131
    errors = np.zeros(2000)
    errors[::10] = 1
    interval = bootstrap_interval(RatioItems(errors, np.ones(2000)), draws=2000)
    assert interval.value == pytest.approx(0.1)
    assert interval.high - interval.value == pytest.approx(0.0131, abs=0.002)
    assert interval.value - interval.low == pytest.approx(0.0131, abs=0.002)


def test_identical_systems_are_not_told_apart():
    rng = np.random.default_rng(1)
    words = rng.integers(5, 15, size=300)
    errors = rng.binomial(words, 0.08)
    c = paired_bootstrap(RatioItems(errors, words), RatioItems(errors, words))
    assert (c.difference.value, c.difference.low, c.difference.high) == (0.0, 0.0, 0.0)
    assert c.p_value == 1.0 and c.p_improvement == 0.0 and c.items == 300


def test_a_system_better_on_every_item_is_significant():
    words = np.full(200, 10)
    a = RatioItems(np.full(200, 2), words)  # 20%
    b = RatioItems(np.full(200, 1), words)  # 10%
    c = paired_bootstrap(a, b)
    assert c.difference.value == pytest.approx(-0.1)
    assert c.difference.high == pytest.approx(-0.1)
    assert c.p_improvement == 1.0 and c.p_value == 0.0
    assert format_p(c.p_value, c.draws) == "p < 0.001" and format_p(0.0421, 1000) == "p = 0.0421"


def test_a_noisy_small_gain_is_not_significant():
    # b fixes one error in one of 100 utterances with 5-15% WER: not a finding
    rng = np.random.default_rng(2)
    words = rng.integers(5, 15, size=100)
    errors_a = rng.binomial(words, 0.1)
    errors_b = errors_a.copy()
    errors_b[np.argmax(errors_a)] -= 1
    c = paired_bootstrap(RatioItems(errors_a, words), RatioItems(errors_b, words))
    assert c.difference.value < 0 and c.difference.high == 0.0
    assert c.p_value > 0.05


def test_unpaired_or_empty_items_are_refused():
    with pytest.raises(ValueError, match="differ in number"):
        paired_bootstrap(RatioItems([1, 2], [5, 5]), RatioItems([1], [5]))
    with pytest.raises(ValueError, match="nothing to score"):
        RatioItems([0, 0], [0, 0])
