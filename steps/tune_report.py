"""The dev table of local/tune_dev.sh: every variant (exp/tune/am_<system>.<name>_s<seed>)
against its system's runs of stage 8 (exp/am_<system>_s<seed>), with the report's
calibrated test (steps.scoring.seed_utterance): training seeds and dev utterances both
counted, the seed variance pooled over every run read (the recipe's systems, the
baseline's A/A seeds and the variants), and the A/A check of the recipe's baseline beside
it, so that a reader sees what a difference between two seeds of one system looks like on
the same part. Dev is read at each system's LM weight chosen on all its seeds
(steps.choose_lm_weight), as in stage 9; the variants' weights are exp/tune/lm_weights.
Also each run's dev frame accuracy of the main head (train_stats.json), mean ± std over seeds.

    python -m steps.tune_report --exp-dir exp --variants hier.h32 --seeds 1 2 3 \\
        --systems baseline hier --aa-seeds 4 5 --strengths 1-gram=_1gram \\
        --out exp/tune/dev_compare.md

Writes --out (Markdown) and <out>.json (the figures). Dev only: the table is for choosing a
setting, and test is decoded after the choice, with every seed, by stages 8-9.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

from steps.core import atomic
from steps.core.log import setup_logging
from steps.scoring import tables
from steps.scoring.recipe_results import SystemResult, collect
from steps.scoring.seed_utterance import SeedRuns, SeedVariance, compare, format_p, halves
from steps.scoring.significance import merge

log = logging.getLogger(__name__)
FIRST_PASS = "first pass"


def dev_runs(results: list[SystemResult], pass_name: str) -> dict[str, SeedRuns]:
    return {r.system: SeedRuns.from_items(r.utterances[(pass_name, "dev")]) for r in results
            if r.utterances.get((pass_name, "dev"))}


def frame_accuracy(result: SystemResult) -> str:
    values = [100 * s["final_dev"]["acc_main"] for s in result.training if s.get("final_dev")]
    return tables.mean_std(values) if values else "n/a"


def pass_figures(runs: dict[str, SeedRuns], aa: SeedRuns | None, variants: list[str]) -> dict:
    """One pass: the pooled seed variance, each variant against its system, and the A/A row."""
    pool = list(runs.values())
    if aa is not None and "baseline" in runs:  # the A/A seeds are seeds of the baseline too
        pool = [r for s, r in runs.items() if s != "baseline"] + [merge(runs["baseline"], aa)]
    seed_var = SeedVariance.pooled(pool)
    rows = {}
    for variant in variants:
        system = variant.split(".")[0]
        if variant in runs and system in runs:
            rows[variant] = {"against": system, **compare(runs[system], runs[variant], seed_var).figures(),
                             "wer": [100 * runs[variant].value, 100 * runs[system].value]}
    out = {"seed_variance": {"std": 100 * seed_var.value ** 0.5, "df": seed_var.df}, "rows": rows}
    if "baseline" in runs and (aa is not None or len(runs["baseline"].seeds) >= 2):
        sides = (runs["baseline"], aa) if aa is not None else halves(runs["baseline"])
        rows["A/A: baseline"] = {"against": "baseline", **compare(*sides, seed_var).figures(),
                                 "wer": [100 * sides[1].value, 100 * sides[0].value]}
    else:
        out["aa_missing"] = "no A/A row: the baseline needs two seeds, or A/A seeds (--aa-seeds)"
    return out


def render(figures: dict, accuracy: dict[str, str]) -> list[str]:
    lines = []
    for pass_name, f in figures.items():
        lines += [f"### {pass_name}, dev (seed std {f['seed_variance']['std']:.2f} WER points, "
                  f"df {f['seed_variance']['df']})", ""]
        header = ["run", "against", "seeds", "dev WER", "its", "Δ [95%]", "Δ rel.", "p", "MDE rel.",
                  "frame acc. (%)", "its"]
        rows = []
        for name, r in f["rows"].items():
            d, (wer, base) = r["difference"], r["wer"]
            rows.append([name, r["against"], "/".join(map(str, r["seeds"])), f"{wer:.2f}", f"{base:.2f}",
                         f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]", tables.relative(wer, base),
                         format_p(r["p_value"]),
                         f"{100 * r['mde_relative']:.1f}%" if r["mde_relative"] is not None else "n/a",
                         accuracy.get(name, "n/a"), accuracy.get(r["against"], "n/a")])
        lines += tables.markdown_table(header, rows) + [""] + ([f["aa_missing"], ""] if "aa_missing" in f else [])
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp-dir", default="exp")
    parser.add_argument("--tune-dir", help="default: <exp-dir>/tune")
    parser.add_argument("--variants", nargs="+", required=True, help="<system>.<name>")
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    parser.add_argument("--systems", nargs="+", help="the recipe's systems, the seed-variance pool "
                        "(default: those stage 9 chose an LM weight for, <exp-dir>/lm_weights/*)")
    parser.add_argument("--aa-seeds", nargs="*", type=int, default=[], help="the baseline's A/A seeds")
    parser.add_argument("--strengths", nargs="*", default=[], help="pass name=decode dir suffix, e.g. 1-gram=_1gram")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    exp = Path(args.exp_dir)
    tune = Path(args.tune_dir) if args.tune_dir else exp / "tune"
    strengths = dict(s.split("=", 1) for s in args.strengths)
    chosen = sorted(d.name for d in (exp / "lm_weights").iterdir()) if (exp / "lm_weights").is_dir() else []
    systems = sorted(set(args.systems or chosen) | {v.split(".")[0] for v in args.variants})
    results = collect(exp, systems, args.seeds, strengths) + collect(tune, args.variants, args.seeds, strengths)
    aa_result = collect(exp, ["baseline"], args.aa_seeds, strengths)[0] if args.aa_seeds else None
    accuracy = {r.system: frame_accuracy(r) for r in results}
    if aa_result:
        accuracy["A/A: baseline"] = frame_accuracy(aa_result)
    figures = {}
    for pass_name in [*strengths, FIRST_PASS]:
        runs = dev_runs(results, pass_name)
        aa = dev_runs([aa_result], pass_name).get("baseline") if aa_result else None
        if runs:
            figures[pass_name] = pass_figures(runs, aa, args.variants)
    missing = [m for r in results for m in r.missing if "decode_dev" in m]
    if missing:
        log.warning("%d dev decodes missing (left out): %s", len(missing), ", ".join(missing))
    out = Path(args.out)
    atomic.write_text(out, "\n".join(render(figures, accuracy)))
    atomic.write_text(out.with_name(out.name + ".json"), json.dumps(figures, indent=1))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
