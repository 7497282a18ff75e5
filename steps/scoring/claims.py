"""The paper's claims as paired tests between two systems (not against the baseline).

Lee & Chang (2021) claim that an auxiliary distillation head beats label interpolation
(AUX vs LI), that the hierarchical model beats every single level (HIER vs AUX), and, for
distillation to be what helps, a head trained on the teacher's soft labels must beat the
same head trained on the hard labels alone (AUX vs its control). Each pair is tested like
the baseline comparisons of steps.report (steps.scoring.seed_utterance): the WER difference
A minus B (negative: A better), utterances paired, the spread between training seeds and
between test utterances both counted, with its 95% interval, two-sided p-value and minimal
detectable effect. Pairs are fixed here, before any result is seen, and formed from the
systems a report has.
"""

from __future__ import annotations

from steps.scoring import tables
from steps.scoring.seed_utterance import SeedRuns, SeedVariance, compare, format_p

LEVELS = ("senone", "phone", "subword")


def claim_pairs(systems: list[str]) -> list[tuple[str, str, str]]:
    """(claim, A, B) for every pair of the claims whose two systems are both in `systems`."""
    pairs = []
    for level in LEVELS:
        pairs.append(("AUX beats LI", f"aux_{level}", "li"))
    for level in LEVELS:
        pairs.append(("HIER beats each single level", "hier", f"aux_{level}"))
    for level in LEVELS:
        pairs.append(("soft labels beat hard labels", f"aux_{level}", f"aux_{level}_hard"))
    return [(c, a, b) for c, a, b in pairs if a in systems and b in systems]


def claims(runs: dict[str, dict[str, SeedRuns]], seed_variance: dict[str, SeedVariance],
           systems: list[str]) -> list[dict]:
    """runs: part -> system -> its seeds' errors on one decoding pass; seed_variance: part ->
    the report's pooled seed variance. One row per claim pair: {"claim", "a", "b", part:
    Comparison.figures() of A - B (mde_relative to B's WER), or None where one is absent}."""
    rows = []
    for claim, a, b in claim_pairs(systems):
        row = {"claim": claim, "a": a, "b": b}
        for part, by_system in runs.items():
            both = a in by_system and b in by_system
            row[part] = compare(by_system[b], by_system[a], seed_variance[part]).figures() if both else None
        rows.append(row)
    return rows


def claims_table(rows: list[dict], parts: list[str], pass_name: str) -> list[str]:
    if not rows:
        return []
    header = ["claim", "A", "B"] + [f"{p} {h}" for p in parts for h in ("A − B [95%]", "p", "MDE")]
    lines = ["", f"The paper's claims, {pass_name}: the WER difference A − B (%, negative: A better), "
             "utterances paired, training seeds and test utterances both counted "
             "(steps.scoring.seed_utterance), with its 95% interval, two-sided p-value and the "
             "minimal detectable effect at 80% power (relative to B)." + (
                 "" if all(row[p]["seed_noise"] for row in rows for p in parts if row.get(p)) else
                 " **One seed per system: test-set noise alone, not the spread between seeds.**"), "",
             tables.row(header), tables.rule(len(header))]
    for row in rows:
        cells = []
        for part in parts:
            c = row.get(part)
            cells += comparison_cells(c) if c else ["n/a"] * 3
        lines.append(tables.row([row["claim"], row["a"], row["b"]] + cells))
    return lines


def comparison_cells(c: dict) -> list[str]:
    """Δ [95%] (with unpaired utterances counted), p, MDE (relative) of Comparison.figures()."""
    unpaired = f" ({c['unpaired']} unpaired)" if c["unpaired"] else ""
    relative = f" ({100 * c['mde_relative']:.0f}%)" if c["mde_relative"] is not None else ""
    return ["{:+.2f} [{:+.2f}, {:+.2f}]".format(*c["difference"]) + unpaired, format_p(c["p_value"]),
            f"{c['mde']:.2f}{relative}"]
