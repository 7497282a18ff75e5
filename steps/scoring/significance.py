"""The report's significance figures: every system against the baseline, the A/A check, and
Holm's correction over the report's family of tests.

Every figure comes from steps.scoring.seed_utterance (training seeds and test utterances
both counted; the seed variance pooled over the report's systems, one value per pass and
part). The A/A check runs the baseline against itself through the same machinery: its
extra A/A seeds (run.sh's aa_seeds) against its seeds, or, without them, the first half of
its seeds against the rest. A test that calls that difference significant at 0.05 more
than one time in twenty is miscalibrated, and a reader sees the check next to the findings.

The family for Holm is fixed by the report's shape, not by its results: on the test part
of the claims' pass, every system against the baseline and every claim pair.
"""

from __future__ import annotations

from dataclasses import dataclass

from steps.scoring import tables
from steps.scoring.claims import comparison_cells
from steps.scoring.multiple_testing import holm
from steps.scoring.seed_utterance import SeedRuns, SeedVariance, compare, format_p, halves, interval

# (seed, utterance id) -> (word errors, reference words)
Items = dict[tuple[int, str], tuple[int, int]]
# system -> (pass, part) -> items
Utterances = dict[str, dict[tuple[str, str], Items]]


def seed_runs(utterances: Utterances, pass_name: str, part: str) -> dict[str, SeedRuns]:
    return {system: SeedRuns.from_items(by_key[(pass_name, part)])
            for system, by_key in utterances.items() if by_key.get((pass_name, part))}


def aa_check(base: SeedRuns, extra: SeedRuns | None, seed_var: SeedVariance) -> dict:
    """The baseline against itself: Comparison.figures() with the seeds of each side, or
    {"why"} where it cannot be run."""
    if extra is not None:
        sides = (base, extra)
    elif len(base.seeds) >= 2:
        sides = halves(base)
    else:
        return {"why": "one baseline seed: set aa_seeds (more baseline seeds) for the A/A check"}
    return compare(*sides, seed_var).figures() | {"a_seeds": sides[0].seeds, "b_seeds": sides[1].seeds}


@dataclass
class PartRuns:
    """One pass and part: every system's seeds' errors and the report's pooled seed variance,
    which the baseline comparisons and the claims share."""

    runs: dict[str, SeedRuns]
    seed_var: SeedVariance


def pooled_seed_variance(runs: dict[str, SeedRuns], baseline: str, aa: SeedRuns | None) -> SeedVariance:
    pooled_over = list(runs.values())
    if baseline in runs and aa is not None:  # the baseline's A/A seeds are seeds of the baseline too
        pooled_over = [r for s, r in runs.items() if s != baseline] + [merge(runs[baseline], aa)]
    return SeedVariance.pooled(pooled_over)


def part_figures(runs: dict[str, SeedRuns], baseline: str, aa: SeedRuns | None, seed_var: SeedVariance) -> dict:
    """One pass and part: the pooled seed variance, each system's WER with its interval and
    (but the baseline's) its comparison with the baseline, and the A/A check."""
    systems = {}
    for system, r in runs.items():
        w = interval(r, seed_var).scaled(100)
        row = {"wer": [w.value, w.low, w.high], "seeds": r.seeds, "utterances": len(r.utterances),
               "left_out": r.left_out}
        if system != baseline and baseline in runs:
            row |= compare(runs[baseline], r, seed_var).figures()
        systems[system] = row
    out = {"seed_variance": {"std": 100 * seed_var.value ** 0.5, "df": seed_var.df}, "systems": systems}
    blocked = SeedVariance.blocked(list(runs.values()))
    if blocked is not None and seed_var.value > 0:
        # common random numbers: how much of the seed spread the systems share under one seed
        out["seed_blocks"] = {"residual_std": 100 * blocked.value ** 0.5, "df": blocked.df,
                              "variance_ratio": blocked.value / seed_var.value}
    if baseline in runs:
        out["aa"] = aa_check(runs[baseline], aa, seed_var)
    return out


def merge(a: SeedRuns, b: SeedRuns) -> SeedRuns:
    """One system's seeds of two sets, on the utterances both have."""
    shared = sorted(set(a.utterances) & set(b.utterances))
    a, b = a.select(utterances=shared), b.select(utterances=shared)
    return SeedRuns([*a.errors, *b.errors], a.words, a.seeds + b.seeds, shared)


def significance(utterances: Utterances, baseline: str, passes: list[str], parts: list[str],
                 aa_utterances: dict[tuple[str, str], Items] | None = None
                 ) -> tuple[dict, dict[tuple[str, str], PartRuns]]:
    """pass -> part -> part_figures(), for the passes and parts that some system decoded;
    and (pass, part) -> PartRuns, for the claims."""
    out, kept = {}, {}
    for pass_name in passes:
        for part in parts:
            runs = seed_runs(utterances, pass_name, part)
            if not runs:
                continue
            aa_items = (aa_utterances or {}).get((pass_name, part))
            aa = SeedRuns.from_items(aa_items) if aa_items else None
            seed_var = pooled_seed_variance(runs, baseline, aa)
            out.setdefault(pass_name, {})[part] = part_figures(runs, baseline, aa, seed_var)
            kept[(pass_name, part)] = PartRuns(runs, seed_var)
    return out, kept


def holm_family(figures: dict, claim_rows: list[dict], pass_name: str, baseline: str,
                with_systems: bool = True) -> dict:
    """Holm over the test part of the claims' pass (the last part when there is no test):
    every system against the baseline (with_systems; a report by LM strength tests those in
    its own family, steps.scoring.strengths), and every claim pair."""
    by_part = figures.get(pass_name, {})
    if not by_part:
        return {}
    part = "test" if "test" in by_part else list(by_part)[-1]
    tests = [{"test": f"{s} vs {baseline}", "difference": row["difference"], "p_value": row["p_value"]}
             for s, row in by_part[part]["systems"].items() if s != baseline and "p_value" in row and with_systems]
    tests += [{"test": f"{r['claim']}: {r['a']} vs {r['b']}", "difference": r[part]["difference"],
               "p_value": r[part]["p_value"]} for r in claim_rows if r.get(part)]
    for t, adjusted in zip(tests, holm([t["p_value"] for t in tests])):
        t["p_holm"] = adjusted
    family = (f"the {len(tests)} tests on {part}, {pass_name}: "
              + (f"each system against {baseline} and each claim pair" if with_systems else "each claim pair"))
    return {"family": family, "pass": pass_name, "part": part, "tests": tests}


def significance_table(figures: dict, systems: list[str]) -> list[str]:
    baseline, lines = systems[0], []
    for pass_name, by_part in figures.items():
        parts = list(by_part)
        header = [f"{p} {h}" for p in parts for h in ("WER [95%]", "Δ [95%]", "p", "MDE")]
        seed_std = ", ".join(f"{p} {f['seed_variance']['std']:.2f} (df {f['seed_variance']['df']})"
                             for p, f in by_part.items())
        blocks = ", ".join(f"{p} {f['seed_blocks']['variance_ratio']:.2f} (df {f['seed_blocks']['df']})"
                           for p, f in by_part.items() if "seed_blocks" in f)
        shared = (f" Under one seed every system starts from the same shared weights and batches; the "
                  f"variance left once each seed's shared effect is taken out, as a share of the pooled "
                  f"seed variance: {blocks} (the tests do not pair seeds)." if blocks else "")
        counted = ("Every interval and test counts the spread between training seeds and between test "
                   f"utterances (steps.scoring.seed_utterance); the seed std, pooled over the systems: "
                   f"{seed_std}.{shared}"
                   if all(f["seed_variance"]["df"] > 0 for f in by_part.values()) else
                   "**One seed per system: the intervals and tests count test-set noise alone, not the "
                   "spread between training seeds** (more seeds, or aa_seeds, give them one).")
        lines += ["", f"{pass_name.capitalize()}: WER (%) with its 95% interval; Δ, the difference from "
                  f"`{baseline}`, utterances paired, with its 95% interval, two-sided p-value and minimal "
                  f"detectable effect at 80% power (relative to the baseline). {counted} "
                  "The A/A row is the baseline against itself under other seeds: a false-alarm check.",
                  "", tables.row(["system"] + header), tables.rule(1 + len(header))]
        for system in systems:
            cells = []
            for part in parts:
                row = by_part[part]["systems"].get(system)
                if row is None:
                    cells += ["n/a"] * 4
                    continue
                cells.append("{:.2f} [{:.2f}, {:.2f}]".format(*row["wer"]))
                cells += comparison_cells(row) if "p_value" in row else ["-", "-", "-"]
            lines.append(tables.row([system] + cells))
        lines.append(aa_row(by_part, baseline))
    return lines


def aa_row(by_part: dict, baseline: str) -> str:
    cells, label = [], "A/A"
    for f in by_part.values():
        aa = f.get("aa") or {"why": f"no `{baseline}` decode"}
        if "why" in aa:
            cells += ["-", f"n/a: {aa['why']}", "-", "-"]
            continue
        # Δ is the second side minus the first, read "second vs first" as every other row
        label = (f"A/A: {baseline} seeds {' '.join(map(str, aa['b_seeds']))} vs "
                 f"{' '.join(map(str, aa['a_seeds']))}")
        cells += ["-"] + comparison_cells(aa)
    return tables.row([label] + cells)


def holm_table(family: dict) -> list[str]:
    if not family.get("tests"):
        return []
    lines = ["", f"Holm's correction over the family: {family['family']}. A finding at 0.05 needs its "
             "Holm-adjusted p below 0.05.", ""]
    return lines + tables.markdown_table(
        ["test", "Δ (%)", "p", "Holm p", "finding at 0.05"],
        [[t["test"], f"{t['difference'][0]:+.2f}", format_p(t["p_value"]), format_p(t["p_holm"]),
          "yes" if t["p_holm"] < 0.05 else "no"] for t in family["tests"]])
