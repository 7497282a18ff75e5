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
from steps.scoring.significance import PartRuns, holm_family, holm_table, significance, significance_table
from steps.scoring.wer import read_wer, utterance_errors

log = logging.getLogger(__name__)
PARTS = ("dev", "test")
PASSES = {"first pass": "", "rescored": "rescore"}  # subdirectory of decode_<part> with hyp.txt


@dataclass
class SystemResult:
    system: str
    wers: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})
    missing: list[str] = field(default_factory=list)
    lm_weights: list[str] = field(default_factory=list)
    no_final: dict[str, list[int]] = field(default_factory=lambda: {p: [] for p in PARTS})
    search_errors: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: {p: [] for p in PARTS})
    rescored: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})
    rescore_failed: dict[str, int] = field(default_factory=lambda: {p: 0 for p in PARTS})  # cuts, all seeds
    # (pass, part) -> (seed, utt id) -> (word errors, reference words)
    utterances: dict[tuple[str, str], dict[tuple[int, str], tuple[int, int]]] = field(default_factory=dict)
    training: list[dict] = field(default_factory=list)  # per seed: train_stats.json

    def mean(self, part: str) -> float | None:
        return statistics.fmean(self.wers[part]) if self.wers[part] else None

    def std(self, part: str) -> float | None:
        values = self.wers[part]
        if not values:
            return None
        return statistics.stdev(values) if len(values) > 1 else 0.0


def collect(exp_dir: Path, systems: list[str], seeds: list[int]) -> list[SystemResult]:
    results = []
    for system in systems:
        result = SystemResult(system)
        for seed in seeds:
            run_dir = exp_dir / f"am_{system}_s{seed}"
            for part in PARTS:
                wer_file = run_dir / f"decode_{part}" / "wer"
                if wer_file.exists():
                    result.wers[part].append(read_wer(wer_file).wer)
                else:
                    result.missing.append(str(wer_file))
                read_search_counts(result, part, run_dir / f"decode_{part}")
                read_utterances(result, part, seed, run_dir / f"decode_{part}")
            stats_file = run_dir / "train_stats.json"
            if stats_file.exists():
                result.training.append(json.loads(stats_file.read_text()))
            weight_file = run_dir / "decode_dev" / "best_lm_weight"
            if weight_file.exists():
                result.lm_weights.append(weight_file.read_text().strip())
        results.append(result)
    return results


def read_search_counts(result: SystemResult, part: str, decode_dir: Path) -> None:
    info_file = decode_dir / "decode_info.json"
    if not info_file.exists():
        return
    info = json.loads(info_file.read_text())
    if "no_final_state" in info:
        result.no_final[part].append(int(info["no_final_state"]))
    errors = info.get("search_errors")
    if errors:
        result.search_errors[part].append((int(errors["errors"]), int(errors["scored"])))
    if (decode_dir / "rescore" / "wer").exists():
        result.rescored[part].append(read_wer(decode_dir / "rescore" / "wer").wer)
    result.rescore_failed[part] += int((info.get("rescore") or {}).get("failed", 0))


def read_utterances(result: SystemResult, part: str, seed: int, decode_dir: Path) -> None:
    for name, sub in PASSES.items():
        hyp, ref = decode_dir / sub / "hyp.txt", decode_dir / "text"
        if hyp.exists() and ref.exists():
            items = result.utterances.setdefault((name, part), {})
            items.update({(seed, utt): v for utt, v in utterance_errors(ref, hyp).items()})


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


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    return _cell(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def search_table(results: list[SystemResult]) -> list[str]:
    """Search errors and rescoring per system, over all seeds; empty if no decode has them."""
    if not any(r.no_final["dev"] or r.no_final["test"] or r.search_errors["dev"] for r in results):
        return []
    lines = ["", "Search errors, all seeds together: utterances without a final state, and on dev the "
             "utterances whose best path scores worse than the reference's path through the same "
             "graph at the LM weight of the search, 1 / acoustic scale (Kaldi's test of a search error; "
             "references lost only to the lattice beam are in decode_info.json's lattice_beam_losses). "
             "WER after N-best rescoring with the bigger LM (decode_*/rescore) where it was run; "
             "cuts whose rescoring failed keep their first pass there, and are counted (\"n kept\").", "",
             "| system | no final state dev / test | dev search errors | dev WER rescored | test WER rescored |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.system} | {sum(r.no_final['dev']) if r.no_final['dev'] else 'n/a'} / "
                     f"{sum(r.no_final['test']) if r.no_final['test'] else 'n/a'} | {_counts(r.search_errors['dev'])} "
                     f"| {_rescored(r, 'dev')} | {_rescored(r, 'test')} |")
    return lines


def _rescored(result: SystemResult, part: str) -> str:
    failed = result.rescore_failed[part]
    return _mean_std(result.rescored[part]) + (f" ({failed} kept)" if failed else "")


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
             "| system | epochs chosen / run | dev frame acc |" + "".join(f" {lv} KL / acc |" for lv in levels),
             "|---|---|---|" + "---|" * len(levels)]
    for system, f in rows:
        epochs = " ".join(f"{c}/{n}" for c, n in zip(f["chosen_epochs"], f["epochs_run"]))
        cells = []
        for lv in levels:
            kd, acc = (f.get(lv) or {}).get("kd"), (f.get(lv) or {}).get("acc")
            cells.append(f"{'n/a' if kd is None else f'{kd:.3f}'} / "
                         f"{'n/a' if acc is None else f'{100 * acc:.1f}%'}")
        acc_main = "n/a" if f["acc_main"] is None else f"{100 * f['acc_main']:.1f}%"
        lines.append(f"| {system} | {epochs} | {acc_main} |" + "".join(f" {c} |" for c in cells))
    return lines


def _cell(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.2f} ± {std:.2f}"


def _relative(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference == 0:
        return "n/a"
    return f"{100.0 * (value - reference) / reference:+.1f}%"


def git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


@dataclass
class Statistics:
    """The report's tests: significance() figures, the claims (pass, rows), Holm's family."""

    figures: dict
    claims: tuple[str, list[dict]]
    family: dict


def compute_tests(results: list[SystemResult], aa: SystemResult | None = None) -> Statistics:
    baseline = results[0].system
    figures, parts_runs = significance({r.system: r.utterances for r in results}, baseline, list(PASSES),
                                       list(PARTS), aa.utterances if aa else None)
    claimed = claim_figures(results, parts_runs)
    # without a pass every system has, the family is the last pass decoded, with no claims
    family_pass = claimed[0] or (list(figures)[-1] if figures else "")
    return Statistics(figures, claimed, holm_family(figures, claimed[1], family_pass, baseline) if figures else {})


def render(results: list[SystemResult], seeds: list[int], config_file: str, commit: str,
           config_text: str | None, tests: Statistics, lm_perplexity: str | None = None,
           aa: SystemResult | None = None) -> str:
    baseline = results[0]
    lines = [
        "# Results",
        "",
        f"WER (%) as mean ± sample std over seeds {' '.join(map(str, seeds))}; relative change of "
        f"the mean against `{baseline.system}`. The LM weight of each run is chosen on dev and "
        "applied to test.",
        "",
        "| system | dev WER | test WER | dev rel. | test rel. | dev LM weights |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.system} | {_cell(r.mean('dev'), r.std('dev'))} | {_cell(r.mean('test'), r.std('test'))} "
            f"| {_relative(r.mean('dev'), baseline.mean('dev'))} "
            f"| {_relative(r.mean('test'), baseline.mean('test'))} | {' '.join(r.lm_weights) or 'n/a'} |")
    lines += significance_table(tests.figures, [r.system for r in results])
    pass_name, rows = tests.claims
    lines += claims_table(rows, [p for p in PARTS if any(p in row for row in rows)], pass_name)
    lines += holm_table(tests.family)
    lines += search_table(results)
    lines += training_table(results)
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
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()

    if set(args.aa_seeds) & set(args.seeds):
        raise SystemExit(f"--aa-seeds {args.aa_seeds} share seeds with --seeds {args.seeds}: an A/A "
                         "check needs models the findings do not use")
    results = collect(args.exp_dir, args.systems, args.seeds)
    aa = collect(args.exp_dir, args.systems[:1], args.aa_seeds)[0] if args.aa_seeds else None
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
    tests = compute_tests(results, aa)
    write_text(args.out, render(results, args.seeds, config, commit, config_text, tests, lm_perplexity, aa))
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
    }
    if aa:
        summary["aa_seeds_wer"] = {p: aa.wers[p] for p in PARTS}
    write_text(args.out.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    log.info("wrote %s and %s", args.out, args.out.with_suffix(".json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
