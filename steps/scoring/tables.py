"""Results tables in Markdown, written one way by every report (steps.report and its
significance, claims and strength tables; the compression table; the encoder comparison):
a header and its rule, a row of cells, and the cells that recur (a mean ± sample std over
seeds; a relative change; a figure that is not there).

    lines = markdown_table(["system", "test WER"], [["baseline", mean_std([2.9, 3.1])]])
"""

from __future__ import annotations

import statistics
from typing import Iterable


def row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def rule(columns: int) -> str:
    return "|" + "---|" * columns


def markdown_table(header: list[str], rows: Iterable[Iterable[str]]) -> list[str]:
    """The table's lines: header, rule, one line per row."""
    return [row(header), rule(len(header))] + [row(cells) for cells in rows]


def mean_std(values: list[float], missing: str = "n/a") -> str:
    """Mean ± sample std (0 with one value), two decimals; `missing` with no value."""
    if not values:
        return missing
    return mean_std_cell(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, missing)


def mean_std_cell(mean: float | None, std: float | None, missing: str = "n/a") -> str:
    return missing if mean is None else f"{mean:.2f} ± {std:.2f}"


def relative(value: float | None, reference: float | None) -> str:
    """The relative change of value against reference, signed, in %."""
    if value is None or reference is None or reference == 0:
        return "n/a"
    return f"{100.0 * (value - reference) / reference:+.1f}%"
