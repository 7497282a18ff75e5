"""The paper's claims as paired tests between two systems (not against the baseline).

Lee & Chang (2021) claim that an auxiliary distillation head beats label interpolation
(AUX vs LI), that the hierarchical model beats every single level (HIER vs AUX), and, for
distillation to be what helps, a head trained on the teacher's soft labels must beat the
same head trained on the hard labels alone (AUX vs its control). Each pair is tested like
the baseline comparisons of steps.report: utterances of all seeds pooled, paired by seed
and utterance, a paired bootstrap of the WER difference (A minus B; negative: A better)
with its 95% interval and two-sided p-value. Pairs are fixed here, before any result is
seen, and formed from the systems a report has.
"""

from __future__ import annotations

from steps.scoring.bootstrap import DRAWS, RatioItems, paired_bootstrap

LEVELS = ("senone", "phone", "subword")

# Utterance items: (seed, utterance id) -> (word errors, reference words)
Items = dict[tuple[int, str], tuple[int, int]]


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


def compare(a: Items, b: Items) -> dict | None:
    """A minus B over the items both have, in % WER: {"difference": [value, low, high],
    "p_value", "paired", "unpaired"} (unpaired: items of either without the other's);
    None when they share no item. steps.report's baseline comparisons use it too."""
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    def items(source: Items) -> RatioItems:
        return RatioItems([source[k][0] for k in keys], [source[k][1] for k in keys])
    result = paired_bootstrap(items(b), items(a))  # its difference is the second minus the first
    d = result.difference.scaled(100)
    return {"difference": [d.value, d.low, d.high], "p_value": result.p_value, "paired": len(keys),
            "unpaired": len(a) + len(b) - 2 * len(keys)}


def claims(utterances: dict[str, dict[str, Items]], systems: list[str]) -> list[dict]:
    """utterances: part -> system -> items of one decoding pass. One row per claim pair:
    {"claim", "a", "b", part: compare(...) or None}."""
    rows = []
    for claim, a, b in claim_pairs(systems):
        row = {"claim": claim, "a": a, "b": b}
        for part, by_system in utterances.items():
            row[part] = compare(by_system.get(a, {}), by_system.get(b, {}))
        rows.append(row)
    return rows


def claims_table(rows: list[dict], parts: list[str], pass_name: str) -> list[str]:
    if not rows:
        return []
    header = " | ".join(f"{p} A − B [95%] | {p} p" for p in parts)
    lines = ["", f"The paper's claims, {pass_name}, all seeds' utterances pooled: the WER difference "
             "A − B (%, negative: A better), paired by seed and utterance, with its 95% interval "
             f"and two-sided p-value (paired bootstrap, {DRAWS} draws).", "",
             f"| claim | A | B | {header} |", "|---" * (3 + 2 * len(parts)) + "|"]
    for row in rows:
        cells = []
        for part in parts:
            c = row.get(part)
            if c is None:
                cells += ["n/a", "n/a"]
                continue
            unpaired = f" ({c['unpaired']} unpaired)" if c["unpaired"] else ""
            cells += ["{:+.2f} [{:+.2f}, {:+.2f}]".format(*c["difference"]) + unpaired, f"{c['p_value']:.3f}"]
        lines.append(f"| {row['claim']} | {row['a']} | {row['b']} | {' | '.join(cells)} |")
    return lines
