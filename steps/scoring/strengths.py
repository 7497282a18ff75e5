"""Does a system's gain survive a stronger decoder LM? Differences and their trend across LM
strengths, with training seeds and test utterances counted (steps.scoring.seed_utterance).

Every model decodes the same test utterances at several strengths, weakest first (a
unigram, a bigram, the trigram, the trigram with 4-gram rescoring). At each strength k a
system B and the baseline A have their seed-averaged WERs X_B,k and X_A,k and the
difference of the significance tables (steps.scoring.significance). The trend is the
least-squares slope of the log WER ratio over the strength steps,

    slope = sum_k c_k log(X_B,k / X_A,k),   c_k = (k - mean k) / sum_k (k - mean k)^2

in relative terms per step (about the change of the relative difference per step; a
positive slope: B's relative gain shrinks as the LM grows). It is a relative figure because
the WERs fall several-fold from a unigram to a rescored trigram, and an absolute gain would
shrink with them even at a constant relative gain.

Its variance is the linearised one, log X_k moving by dX_k / X_k: each model's errors at
the strengths combine into one table Z[s, u] = sum_k c_k E_k[s, u] / X_k (seeds by
utterances, the same model at every strength, so a seed's luck enters every strength
together), and Z goes through seed_utterance's comparison of two systems: utterances paired,
seeds not, the seed variance pooled over the report's systems' Z. Its mean difference is 0
by construction (the linearisation's centre); the slope itself is the value above.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from steps.scoring import tables
from steps.scoring.multiple_testing import holm
from steps.scoring.seed_utterance import (
    LEVEL,
    SeedRuns,
    SeedVariance,
    compare,
    detectable,
    format_p,
    halves,
    p_value,
)


def strength_weights(count: int) -> np.ndarray:
    """c_k: the least-squares slope's weights over strength steps 0..count-1."""
    steps = np.arange(count, dtype=np.float64)
    centred = steps - steps.mean()
    return centred / float((centred ** 2).sum())


def shared_utterances(runs: list[SeedRuns]) -> list[str]:
    return sorted(set.intersection(*(set(r.utterances) for r in runs)))


def contrast_runs(by_strength: list[SeedRuns], utterances: list[str]) -> SeedRuns | None:
    """Z = sum_k c_k E_k / X_k of one system (its seeds at every strength); None where a
    strength lacks a seed of another or the WER is 0 (no log ratio)."""
    seeds = by_strength[0].seeds
    if any(r.seeds != seeds for r in by_strength):
        return None
    runs = [r.select(utterances=utterances) for r in by_strength]
    if any(r.value <= 0 for r in runs):
        return None
    weights = strength_weights(len(runs))
    z = sum(c * r.errors / r.value for c, r in zip(weights, runs))
    return SeedRuns(z, runs[0].words, seeds, utterances)


def log_ratio_slope(a: list[SeedRuns], b: list[SeedRuns], utterances: list[str]) -> float:
    weights = strength_weights(len(a))
    return float(sum(c * math.log(rb.select(utterances=utterances).value / ra.select(utterances=utterances).value)
                     for c, ra, rb in zip(weights, a, b)))


def trend(a: list[SeedRuns], b: list[SeedRuns], seed_var: SeedVariance, utterances: list[str]) -> dict:
    """B's trend against A: {"slope", "interval", "p_value", "mde", "se", "df"} in % per
    step, or {"why"}."""
    za, zb = contrast_runs(a, utterances), contrast_runs(b, utterances)
    if za is None or zb is None:
        return {"why": "a strength lacks a seed's decode, or a WER is 0"}
    slope = log_ratio_slope(a, b, utterances)
    c = compare(za, zb, seed_var)
    se, df = c.difference.se, c.difference.df
    half = float(stats.t.ppf(1 - (1 - LEVEL) / 2, df)) * se
    return {"slope": 100 * slope, "interval": [100 * (slope - half), 100 * (slope + half)],
            "p_value": p_value(slope, se, df), "mde": 100 * detectable(se, df), "se": 100 * se, "df": df,
            "seed_noise": seed_var.known}


def trends(runs: dict[str, list[SeedRuns]], baseline: str, aa: list[SeedRuns] | None = None) -> dict:
    """Every system's trend against the baseline, and the A/A check's (the baseline's A/A
    seeds, or its seeds split in two, against the rest), over the utterances that every
    decode has. runs: system -> its SeedRuns at each strength, weakest first."""
    complete = {s: r for s, r in runs.items() if all(r)}
    if baseline not in complete or len(complete[baseline]) < 2:
        return {}
    every = [x for r in complete.values() for x in r] + (aa or [])
    utterances = shared_utterances(every)
    groups = list(complete.values()) + ([aa] if aa else [])  # A/A seeds: the baseline's, a group apart
    contrasts = [z for z in (contrast_runs(r, utterances) for r in groups) if z is not None]
    if not contrasts:
        return {}
    seed_var = SeedVariance.pooled(contrasts)
    out = {"systems": {s: trend(complete[baseline], r, seed_var, utterances)
                       for s, r in complete.items() if s != baseline},
           "utterances": len(utterances), "seed_variance_df": seed_var.df}
    base = complete[baseline]
    if aa is not None:
        sides = (base, aa)
    elif len(base[0].seeds) >= 2:
        split = [halves(r) for r in base]
        sides = ([h[0] for h in split], [h[1] for h in split])
    else:
        return out
    out["aa"] = trend(*sides, seed_var, utterances) | {"a_seeds": sides[0][0].seeds, "b_seeds": sides[1][0].seeds}
    return out


def strength_figures(figures: dict, parts_runs: dict, order: list[str], baseline: str,
                     aa_runs: dict | None = None, part: str = "test") -> dict:
    """The strength table's figures: per strength (pass name, weakest first) the test part
    of the significance figures, and every system's trend over the strengths every system
    decoded. aa_runs: pass name -> the baseline's A/A seeds' SeedRuns."""
    present = [p for p in order if part in figures.get(p, {})]
    if len(present) < 2:
        return {}
    systems = list(figures[present[0]][part]["systems"])
    runs = {s: [parts_runs[(p, part)].runs.get(s) for p in present] for s in systems}
    aa = [aa_runs.get(p) for p in present] if aa_runs else None
    out = {"strengths": present, "part": part, "by_strength": {p: figures[p][part] for p in present},
           "trend": trends(runs, baseline, aa if aa and all(aa) else None)}
    return out


def _difference_cell(row: dict, base_wer: float) -> str:
    d = row["difference"]
    relative = f"{100 * d[0] / base_wer:+.1f}%" if base_wer > 0 else "n/a"
    mde = f", MDE {100 * row['mde_relative']:.0f}%" if row.get("mde_relative") is not None else ""
    return f"{relative}: {d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}], p {format_p(row['p_value'])}{mde}"


def _trend_cell(t: dict | None) -> str:
    if not t:
        return "-"
    if "why" in t:
        return f"n/a: {t['why']}"
    return "{:+.1f}%/step [{:+.1f}, {:+.1f}], p {}, MDE {:.1f}".format(t["slope"], *t["interval"],
                                                                        format_p(t["p_value"]), t["mde"])


def strength_table(table: dict, labels: dict[str, str], systems: list[str]) -> list[str]:
    """Markdown: WER and difference from the baseline at each strength, and the trend."""
    if not table:
        return []
    baseline, strengths, part = systems[0], table["strengths"], table["part"]
    by_strength, trend_figures = table["by_strength"], table["trend"]
    lines = ["", f"By decoder LM, {part}, weakest first: each system's WER (%) and, against `{baseline}`, "
             "its relative and absolute difference with the 95% interval, two-sided p and minimal "
             "detectable effect (relative), seeds and utterances counted; the trend is the slope of the "
             "log WER ratio over the strength steps (% per step, positive: the gain shrinks as the LM "
             "grows; steps.scoring.strengths), with its interval, p and minimal detectable slope. The "
             "LM weight is chosen on dev for each system at each strength.",
             "", tables.row(["system"] + [labels.get(s, s) for s in strengths] + ["trend"]),
             tables.rule(len(strengths) + 2)]
    for system in systems:
        cells = []
        for s in strengths:
            row = by_strength[s]["systems"].get(system)
            base = by_strength[s]["systems"].get(baseline)
            if row is None:
                cells.append("n/a")
                continue
            wer = "{:.2f} [{:.2f}, {:.2f}]".format(*row["wer"])
            cells.append(wer if system == baseline or base is None or "p_value" not in row
                         else f"{wer}; {_difference_cell(row, base['wer'][0])}")
        trend_cell = "-" if system == baseline else _trend_cell(trend_figures.get("systems", {}).get(system))
        lines.append(tables.row([system] + cells + [trend_cell]))
    aa_cells = []
    for s in strengths:
        aa = by_strength[s].get("aa") or {}
        base = by_strength[s]["systems"].get(baseline)
        aa_cells.append(f"n/a: {aa['why']}" if "why" in aa or not aa or base is None
                        else _difference_cell(aa, base["wer"][0]))
    aa = trend_figures.get("aa")
    label = (f"A/A: {baseline} seeds {' '.join(map(str, aa['b_seeds']))} vs {' '.join(map(str, aa['a_seeds']))}"
             if aa and "b_seeds" in aa else "A/A")
    lines.append(tables.row([label] + aa_cells + [_trend_cell(aa)]))
    return lines


def strength_family(table: dict, labels: dict[str, str]) -> dict:
    """Holm over the design's family: every system against the baseline at every strength,
    and every system's trend (the A/A rows are checks, not findings)."""
    if not table:
        return {}
    tests = []
    for s in table["strengths"]:
        for system, row in table["by_strength"][s]["systems"].items():
            if "p_value" in row:
                tests.append({"test": f"{system} vs baseline, {labels.get(s, s)}", "difference": row["difference"],
                              "p_value": row["p_value"]})
    for system, t in table["trend"].get("systems", {}).items():
        if "p_value" in t:
            tests.append({"test": f"{system}: trend over the strengths (%/step)", "difference": [t["slope"]],
                          "p_value": t["p_value"]})
    for t, adjusted in zip(tests, holm([t["p_value"] for t in tests])):
        t["p_holm"] = adjusted
    return {"family": f"the {len(tests)} tests on {table['part']} by decoder LM: each system against the "
            "baseline at each strength, and each system's trend", "part": table["part"], "tests": tests}
