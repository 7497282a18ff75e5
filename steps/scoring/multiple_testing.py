"""Holm's (1979) step-down correction of a family of p-values.

A report that runs m tests and calls each one a finding at 0.05 raises its chance of at
least one false finding far above 0.05. Holm's method keeps that chance (the family-wise
error rate) at or below alpha for any dependence between the tests, and is uniformly more
powerful than Bonferroni: sort the p-values, multiply the i-th smallest by m - i + 1, and
carry the running maximum so that the adjusted values keep the order of the raw ones.

    holm([0.01, 0.04, 0.03])  ->  [0.03, 0.06, 0.06]
"""

from __future__ import annotations


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given (a finding: adjusted p < alpha)."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
