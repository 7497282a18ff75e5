"""The ablation table of a recipe: dev and test WER of every system, mean ± std over seeds.

    python -m steps.report --exp-dir exp --systems baseline li hier --seeds 1 2 3 \
        --config-files conf/tiny.conf --out RESULTS.md

Reads exp/am_<system>_s<seed>/decode_{dev,test}/wer (written by steps.decode), and from
their decode_info.json the search-error counts (utterances without a final state; on dev,
the share whose best path scores worse than the reference's path through the graph) and
the WER after lattice rescoring (decode_*/rescore/wer) where there is one. The std is
the sample standard deviation over seeds (0 with one seed); the relative change is that of
the mean WER against the first system (the baseline). A missing decode is reported in the
table and in the log, never silently dropped. Also writes the same figures as JSON next to
the Markdown file (RESULTS.json) for scripts and tests.
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
from steps.scoring.wer import read_wer

log = logging.getLogger(__name__)
PARTS = ("dev", "test")


@dataclass
class SystemResult:
    system: str
    wers: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})
    missing: list[str] = field(default_factory=list)
    lm_weights: list[str] = field(default_factory=list)
    no_final: dict[str, list[int]] = field(default_factory=lambda: {p: [] for p in PARTS})
    search_errors: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: {p: [] for p in PARTS})
    rescored: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})

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
             "graph at the chosen LM weight (Kaldi's test of a search error). WER after N-best "
             "rescoring with the bigger LM (decode_*/rescore) where it was run.", "",
             "| system | no final state dev / test | dev search errors | dev WER rescored | test WER rescored |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.system} | {sum(r.no_final['dev']) if r.no_final['dev'] else 'n/a'} / "
                     f"{sum(r.no_final['test']) if r.no_final['test'] else 'n/a'} | {_counts(r.search_errors['dev'])} "
                     f"| {_mean_std(r.rescored['dev'])} | {_mean_std(r.rescored['test'])} |")
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


def render(results: list[SystemResult], seeds: list[int], config_file: str, commit: str,
           config_text: str | None) -> str:
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
    lines += search_table(results)
    lines += ["", "Per seed (dev / test):", ""]
    for r in results:
        pairs = [f"{d:.2f} / {t:.2f}" for d, t in zip(r.wers["dev"], r.wers["test"])]
        lines.append(f"- {r.system}: {', '.join(pairs) or 'n/a'}")
    missing = [m for r in results for m in r.missing]
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
    parser.add_argument("--config-files", nargs="*", default=[],
                        help="the recipe's settings files (run.sh --config); their text is copied in")
    parser.add_argument("--options", default="",
                        help="the other options the recipe was run with, recorded as given")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()

    results = collect(args.exp_dir, args.systems, args.seeds)
    missing = sum(len(r.missing) for r in results)
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
    write_text(args.out, render(results, args.seeds, config, commit, config_text))
    summary = {
        "commit": commit, "config": config, "seeds": args.seeds,
        "systems": {r.system: {p: {"mean": r.mean(p), "std": r.std(p), "per_seed": r.wers[p],
                                   "no_final_state": r.no_final[p], "search_errors": r.search_errors[p],
                                   "rescored": r.rescored[p]}
                               for p in PARTS} | {"missing": r.missing} for r in results},
    }
    write_text(args.out.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    log.info("wrote %s and %s", args.out, args.out.with_suffix(".json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
