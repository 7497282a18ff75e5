"""The ablation table of a recipe: dev and test WER of every system, mean ± std over seeds.

    python -m steps.report --exp-dir exp --systems baseline li hier --seeds 1 2 3 --aa-seeds 4 5 \
        --config-files conf/tiny.conf --out RESULTS.md

Reads exp/am_<system>_s<seed>/decode_{dev,test}/wer (written by steps.decode), and from
their decode_info.json the search-error counts (utterances without a final state; on dev,
the share whose best path scores worse than the reference's path through the graph) and
the WER after lattice rescoring (decode_*/rescore/wer) where there is one. The std is
the sample standard deviation over seeds (0 with one seed); the relative change is that of
the mean WER against the first system (the baseline).

Significance (steps.scoring.significance, from each decode's text and hyp.txt, utterance by
utterance): every system's WER with its 95% interval, and its difference from the baseline
with its interval, two-sided p-value and minimal detectable effect; the paper's claims pair
by pair (steps.scoring.claims); an A/A row, the baseline against itself under other seeds
(--aa-seeds, or its seeds split in two); Holm's correction over the family of test-set tests.
Every interval and test counts both the spread between training seeds and between test
utterances (steps.scoring.seed_utterance). First pass and, where decoded, after rescoring.

Training, from each run's train_stats.json (steps.train_am): the epoch final.pt was taken
at and the epochs run (they differ under the newbob schedule, which stops on dev), the
main head's dev frame accuracy and, per distillation level, each head's held-out KL to its
teacher and its accuracy on the dev cuts' soft labels (means over seeds).

With --lm-perplexity (steps.lm_perplexity's table), the per-word perplexity of the
decoder's n-grams and of the subword teacher on the held-out transcripts is copied in.

A missing decode is reported in the table and in the log, never silently dropped. Also
writes the same figures as JSON next to the Markdown file (RESULTS.json) for scripts and
tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from steps.core.atomic import write_text
from steps.core.log import setup_logging
from steps.scoring.claims import claims, claims_table
from steps.scoring.seed_utterance import SeedRuns
from steps.scoring.significance import PartRuns, holm_family, holm_table, significance, significance_table
from steps.scoring.strengths import strength_family, strength_figures, strength_table
from steps.scoring.tables import markdown_table, mean_std, mean_std_cell, relative, row, rule
from steps.scoring.recipe_results import PARTS, PASSES, SystemResult, collect

log = logging.getLogger(__name__)
def claim_figures(results: list[SystemResult], parts_runs: dict[tuple[str, str], PartRuns]
                  ) -> tuple[str, list[dict]]:
    """The claims on the last pass (rescored, else the first) that every system's decodes
    have, in each part that has one; a pair's utterances without a partner are counted."""
    for name in reversed(PASSES):
        parts = [part for part in PARTS if all(r.utterances.get((name, part)) for r in results)]
        if parts and all(len(r.utterances.get(("first pass", part), {})) ==
                         len(r.utterances[(name, part)]) for r in results for part in parts):
            runs = {part: parts_runs[(name, part)].runs for part in parts}
            seed_vars = {part: parts_runs[(name, part)].seed_var for part in parts}
            return name, claims(runs, seed_vars, [r.system for r in results])
    return "", []


def _counts(values: list[tuple[int, int]]) -> str:
    if not values:
        return "n/a"
    errors, scored = sum(e for e, _ in values), sum(n for _, n in values)
    return f"{errors} / {scored} ({100.0 * errors / scored:.1f}%)" if scored else "n/a"


def search_table(results: list[SystemResult]) -> list[str]:
    """Search errors and rescoring per system, over all seeds; empty if no decode has them."""
    if not any(r.no_final["dev"] or r.no_final["test"] or r.search_errors["dev"] for r in results):
        return []
    lines = ["", "Search errors, all seeds together: utterances without a final state, and on dev the "
             "utterances whose best path scores worse than the reference's path through the same "
             "graph at the LM weight of the search, 1 / acoustic scale (Kaldi's test of a search error; "
             "references lost only to the lattice beam are in decode_info.json's lattice_beam_losses). "
             "WER after N-best rescoring with the bigger LM (decode_*/rescore) where it was run; "
             "cuts whose rescoring failed keep their first pass there, and are counted (\"n kept\").", ""]
    header = ["system", "no final state dev / test", "dev search errors", "dev WER rescored", "test WER rescored"]
    return lines + markdown_table(header, [
        [r.system, f"{sum(r.no_final['dev']) if r.no_final['dev'] else 'n/a'} / "
                   f"{sum(r.no_final['test']) if r.no_final['test'] else 'n/a'}",
         _counts(r.search_errors["dev"]), _rescored(r, "dev"), _rescored(r, "test")] for r in results])


def _rescored(result: SystemResult, part: str) -> str:
    failed = result.rescore_failed[part]
    return mean_std(result.rescored[part]) + (f" ({failed} kept)" if failed else "")


TRAINING_LEVELS = ("senone", "phone", "subword", "plm")


def _mean_of(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def training_figures(result: SystemResult) -> dict:
    """Means over the seeds' train_stats.json: dev accuracy of the main head, per level the
    held-out KL and accuracy of its head; and the epochs chosen and run per seed."""
    runs = result.training
    figures = {"chosen_epochs": [r.get("chosen_epoch", len(r["epochs"])) for r in runs],
               "epochs_run": [r.get("epochs_run", len(r["epochs"])) for r in runs],
               "acc_main": _mean_of([r["final_dev"].get("acc_main") for r in runs])}
    for level in TRAINING_LEVELS:
        kl = _mean_of([r["final_dev"].get(f"kd_{level}") for r in runs])
        acc = _mean_of([r["final_dev"].get(f"acc_{level}") for r in runs])
        if kl is not None or acc is not None:
            figures[level] = {"kd": kl, "acc": acc}
    return figures


def training_table(results: list[SystemResult]) -> list[str]:
    """One row per system with training stats; empty if no run has any."""
    rows = [(r.system, training_figures(r)) for r in results if r.training]
    if not rows:
        return []
    levels = [lv for lv in TRAINING_LEVELS if any(lv in f for _, f in rows)]
    lines = ["", "Training (final.pt on dev, means over seeds): the epoch final.pt ends at / the epochs "
             "run, per seed; the main head's frame accuracy; each distillation head's held-out KL "
             "to its teacher and its accuracy on the teacher's reference units (dev soft labels).", "",
             row(["system", "epochs chosen / run", "dev frame acc"] + [f"{lv} KL / acc" for lv in levels]),
             rule(3 + len(levels))]
    for system, f in rows:
        epochs = " ".join(f"{c}/{n}" for c, n in zip(f["chosen_epochs"], f["epochs_run"]))
        cells = []
        for lv in levels:
            kd, acc = (f.get(lv) or {}).get("kd"), (f.get(lv) or {}).get("acc")
            cells.append(f"{'n/a' if kd is None else f'{kd:.3f}'} / "
                         f"{'n/a' if acc is None else f'{100 * acc:.1f}%'}")
        acc_main = "n/a" if f["acc_main"] is None else f"{100 * f['acc_main']:.1f}%"
        lines.append(row([system, epochs, acc_main] + cells))
    return lines


def averaging_figures(results: list[SystemResult]) -> dict:
    """Checkpoint averaging as a lever on the seed spread: per run, the dev frame accuracy
    and loss of the chosen epoch's model alone and of final.pt (the average of the epochs
    up to it); the spread between seeds pooled over the systems (within-system std, as the
    significance tables pool it). {} where no run averaged more than one epoch."""
    pairs: dict[str, list[tuple[dict, dict]]] = {}
    for r in results:
        for run in r.training:
            chosen = run.get("chosen_epoch", len(run["epochs"]))
            if len(run.get("averaged_epochs", [])) > 1 and run["epochs"][chosen - 1].get("dev"):
                pairs.setdefault(r.system, []).append((run["epochs"][chosen - 1]["dev"], run["final_dev"]))
    if not any(len(p) > 1 for p in pairs.values()):
        return {}
    out = {"runs": sum(len(p) for p in pairs.values()), "averaged_epochs": max(
        len(run.get("averaged_epochs", [])) for r in results for run in r.training)}
    for key in ("acc_main", "main_ce"):
        for side, name in ((0, "single"), (1, "averaged")):
            groups = [[pair[side][key] for pair in p] for p in pairs.values() if len(p) > 1]
            squares = sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups)
            df = sum(len(g) - 1 for g in groups)
            out[f"{key}_{name}"] = {"mean": statistics.fmean(v for g in groups for v in g),
                                    "seed_std": (squares / df) ** 0.5, "df": df}
    return out


def averaging_line(figures: dict) -> list[str]:
    if not figures:
        return []
    acc = [figures[f"acc_main_{s}"] for s in ("single", "averaged")]
    ce = [figures[f"main_ce_{s}"] for s in ("single", "averaged")]
    return ["", f"Checkpoint averaging ({figures['runs']} runs, final.pt the average of up to "
            f"{figures['averaged_epochs']} epochs), the chosen epoch's model alone → final.pt: dev frame "
            f"accuracy {100 * acc[0]['mean']:.2f}% → {100 * acc[1]['mean']:.2f}%, its std between seeds "
            f"(within systems, df {acc[0]['df']}) {100 * acc[0]['seed_std']:.3f} → {100 * acc[1]['seed_std']:.3f} "
            f"points; dev loss {ce[0]['mean']:.4f} → {ce[1]['mean']:.4f}, std {ce[0]['seed_std']:.4f} → "
            f"{ce[1]['seed_std']:.4f}."]


def git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


@dataclass
class Statistics:
    """The report's tests: significance() figures, the claims (pass, rows), Holm's family,
    and the strength table's figures (steps.scoring.strengths)."""

    figures: dict
    claims: tuple[str, list[dict]]
    family: dict
    strengths: dict = field(default_factory=dict)


def compute_tests(results: list[SystemResult], aa: SystemResult | None = None,
                  strengths: dict[str, str] | None = None) -> Statistics:
    baseline = results[0].system
    passes = list(strengths or {}) + list(PASSES)  # weakest LM first
    figures, parts_runs = significance({r.system: r.utterances for r in results}, baseline, passes,
                                       list(PARTS), aa.utterances if aa else None)
    claimed = claim_figures(results, parts_runs)
    # without a pass every system has, the family is the last pass decoded, with no claims
    family_pass = claimed[0] or (list(figures)[-1] if figures else "")
    aa_runs = None
    if aa is not None:
        aa_runs = {p: SeedRuns.from_items(aa.utterances[(p, "test")]) for p in passes
                   if aa.utterances.get((p, "test"))}
    by_strength = strength_figures(figures, parts_runs, passes, baseline, aa_runs) if strengths else {}
    main = {p: f for p, f in figures.items() if p in PASSES}
    family = holm_family(main, claimed[1], family_pass, baseline, with_systems=not by_strength) if main else {}
    return Statistics(main, claimed, family, by_strength)


def render(results: list[SystemResult], seeds: list[int], config_file: str, commit: str,
           config_text: str | None, tests: Statistics, lm_perplexity: str | None = None,
           aa: SystemResult | None = None, labels: dict[str, str] | None = None) -> str:
    # Length: the report's sections in their order, each written by its own function
    baseline = results[0]
    lines = [
        "# Results",
        "",
        f"WER (%) as mean ± sample std over seeds {' '.join(map(str, seeds))}; relative change of "
        f"the mean against `{baseline.system}`. The LM weight is chosen on dev, for each system on "
        "all its seeds' dev decodes where exp/lm_weights has it (else for each run), and applied to "
        "test; dev LM weights: the system's, then (in brackets) each seed's own best.",
        "",
    ]
    header = ["system", "dev WER", "test WER", "dev rel.", "test rel.", "dev LM weights"]
    lines += markdown_table(header, [
        [r.system, mean_std_cell(r.mean("dev"), r.std("dev")), mean_std_cell(r.mean("test"), r.std("test")),
         relative(r.mean("dev"), baseline.mean("dev")), relative(r.mean("test"), baseline.mean("test")),
         f"{r.system_lm_weight} ({' '.join(r.lm_weights)})" if r.system_lm_weight else " ".join(r.lm_weights) or "n/a"]
        for r in results])
    systems = [r.system for r in results]
    lines += strength_table(tests.strengths, labels or {}, systems)
    lines += holm_table(strength_family(tests.strengths, labels or {}))
    lines += significance_table(tests.figures, systems)
    pass_name, rows = tests.claims
    lines += claims_table(rows, [p for p in PARTS if any(p in row for row in rows)], pass_name)
    lines += holm_table(tests.family)
    lines += search_table(results)
    lines += training_table(results)
    lines += averaging_line(averaging_figures(results))
    if lm_perplexity:
        lines += ["", "The LMs on the held-out transcripts (steps.lm_perplexity): per-word perplexity, "
                  "and the teacher's against each n-gram's with a paired bootstrap over sentences "
                  "(below 1: the teacher predicts the text better).", "", "```", lm_perplexity.rstrip(), "```"]
    lines += ["", "Per seed (dev / test):", ""]
    for r in results + ([aa] if aa else []):
        pairs = [f"{d:.2f} / {t:.2f}" for d, t in zip(r.wers["dev"], r.wers["test"])]
        label = f"{r.system} (A/A seeds)" if r is aa else r.system
        lines.append(f"- {label}: {', '.join(pairs) or 'n/a'}")
    missing = [m for r in results + ([aa] if aa else []) for m in r.missing]
    if missing:
        lines += ["", f"Missing decodes ({len(missing)}):", ""] + [f"- `{m}`" for m in missing]
    lines += ["", f"Commit: `{commit}`. Config: {config_file}. "
              f"Written {time.strftime('%Y-%m-%d %H:%M %Z')}."]
    if config_text is not None:
        lines += ["", "```", config_text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def summary_json(results: list[SystemResult], aa: SystemResult | None, tests: Statistics, labels: dict[str, str],
                 commit: str, config: str, args) -> dict:
    """RESULTS.json: the figures of RESULTS.md for scripts and tests."""
    summary = {
        "commit": commit, "config": config, "seeds": args.seeds, "aa_seeds": args.aa_seeds,
        "systems": {r.system: {p: {"mean": r.mean(p), "std": r.std(p), "per_seed": r.wers[p],
                                   "no_final_state": r.no_final[p], "search_errors": r.search_errors[p],
                                   "rescored": r.rescored[p]}
                               for p in PARTS} | {"missing": r.missing, "training": training_figures(r)}
                    for r in results},
        "significance": tests.figures,
        "claims": dict(zip(("pass", "pairs"), tests.claims)),
        "holm": tests.family,
        "by_strength": tests.strengths | {"labels": labels} if tests.strengths else {},
        "strength_holm": strength_family(tests.strengths, labels),
        "lm_weights": {r.system: {"system": r.system_lm_weight, "seeds_own": r.lm_weights} for r in results},
        "averaging": averaging_figures(results),
    }
    if aa:
        summary["aa_seeds_wer"] = {p: aa.wers[p] for p in PARTS}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--systems", nargs="+", required=True, help="the first is the baseline")
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    parser.add_argument("--aa-seeds", nargs="*", type=int, default=[],
                        help="more seeds of the baseline, for the A/A check only (default: its seeds split in two)")
    parser.add_argument("--config-files", nargs="*", default=[],
                        help="the recipe's settings files (run.sh --config); their text is copied in")
    parser.add_argument("--options", default="",
                        help="the other options the recipe was run with, recorded as given")
    parser.add_argument("--lm-perplexity", type=Path, help="steps.lm_perplexity's table (<out>.txt)")
    parser.add_argument("--strength-orders", nargs="*", type=int, default=[],
                        help="orders of the extra first-pass LMs decoded (decode_<part>_<n>gram), for "
                             "the table by decoder LM")
    parser.add_argument("--lm-order", type=int, default=3, help="order of the main first pass's LM (a label)")
    parser.add_argument("--rescore-lm-order", type=int, default=4,
                        help="order of the rescoring LM (a label; 0: none)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()

    if set(args.aa_seeds) & set(args.seeds):
        raise SystemExit(f"--aa-seeds {args.aa_seeds} share seeds with --seeds {args.seeds}: an A/A "
                         "check needs models the findings do not use")
    strengths = {f"{n}-gram": f"_{n}gram" for n in sorted(args.strength_orders)}
    labels = {"first pass": f"{args.lm_order}-gram",
              "rescored": f"{args.lm_order}-gram + {args.rescore_lm_order}-gram rescoring"} | \
        {name: name for name in strengths}
    results = collect(args.exp_dir, args.systems, args.seeds, strengths)
    aa = collect(args.exp_dir, args.systems[:1], args.aa_seeds, strengths)[0] if args.aa_seeds else None
    missing = sum(len(r.missing) for r in results + ([aa] if aa else []))
    if missing:
        log.warning("%d decodes have no wer file; they are listed in %s", missing, args.out)
    missing = [p for p in args.config_files if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"settings files not found: {' '.join(missing)}")
    config_text = "".join(f"# {p}\n{Path(p).read_text()}" for p in args.config_files) or None
    config = " ".join(args.config_files) or "run.sh defaults"
    if args.options:
        config += f", options `{args.options}`"
    commit = git_commit(Path(__file__).resolve().parents[1])  # the code that made the results
    if args.lm_perplexity and not args.lm_perplexity.is_file():
        raise SystemExit(f"--lm-perplexity {args.lm_perplexity}: no such file")
    lm_perplexity = args.lm_perplexity.read_text() if args.lm_perplexity else None
    tests = compute_tests(results, aa, strengths)
    write_text(args.out, render(results, args.seeds, config, commit, config_text, tests, lm_perplexity, aa,
                                labels))
    summary = summary_json(results, aa, tests, labels, commit, config, args)
    write_text(args.out.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    log.info("wrote %s and %s", args.out, args.out.with_suffix(".json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
