"""A recipe's decodes read back from disk, per system, seed, part and pass: the WER files,
the search counts of decode_info.json, and every utterance's word errors (for the tests of
steps.scoring.significance), with dev read at the system's LM weight where one was chosen
for the system (steps.choose_lm_weight).

    results = collect(Path("exp"), ["baseline", "hier"], [1, 2, 3], {"1-gram": "_1gram"})
    results[0].utterances[("first pass", "test")]   # (seed, utt) -> (errors, words)
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from steps.scoring.wer import read_wer, utterance_errors

PARTS = ("dev", "test")
PASSES = {"first pass": "", "rescored": "rescore"}  # subdirectory of decode_<part> with hyp.txt


@dataclass
class SystemResult:
    system: str
    wers: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})
    missing: list[str] = field(default_factory=list)
    lm_weights: list[str] = field(default_factory=list)  # each seed's own best on dev
    system_lm_weight: str = ""  # chosen on all its seeds' dev decodes (steps.choose_lm_weight)
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


def collect(exp_dir: Path, systems: list[str], seeds: list[int], strengths: dict[str, str] | None = None,
            prefix: str = "am_") -> list[SystemResult]:
    """Every system's decodes, run dirs exp_dir/<prefix><system>_s<seed>; strengths: pass
    name -> decode dir suffix of the extra LM strengths (e.g. "1-gram" -> "_1gram"). Dev is
    read at the system's LM weight (exp/lm_weights/<system>, steps.choose_lm_weight) where it
    was chosen for the system."""
    results = []
    for system in systems:
        result = SystemResult(system)
        weights_dir = exp_dir / "lm_weights" / system
        for seed in seeds:
            run_dir = exp_dir / f"{prefix}{system}_s{seed}"
            for part in PARTS:
                wer_file = run_dir / f"decode_{part}" / "wer"
                if wer_file.exists():
                    result.wers[part].append(read_wer(wer_file).wer)
                else:
                    result.missing.append(str(wer_file))
                read_search_counts(result, part, run_dir / f"decode_{part}")
                passes = {name: ("", sub) for name, sub in PASSES.items()}
                passes |= {name: (suffix, "") for name, suffix in (strengths or {}).items()}
                for name, (suffix, sub) in passes.items():
                    weight_dir = weights_dir / f"decode_dev{suffix}" if part == "dev" else None
                    read_utterances(result, (name, part), seed, run_dir / f"decode_{part}{suffix}", sub, weight_dir)
            stats_file = run_dir / "train_stats.json"
            if stats_file.exists():
                result.training.append(json.loads(stats_file.read_text()))
            weight_file = run_dir / "decode_dev" / "best_lm_weight"
            if weight_file.exists():
                result.lm_weights.append(weight_file.read_text().strip())
        system_weight = weights_dir / "decode_dev" / "best_lm_weight"
        if system_weight.exists():
            result.system_lm_weight = system_weight.read_text().strip()
        dev_items = result.utterances.get(("first pass", "dev"))
        if dev_items and result.system_lm_weight:  # dev's WERs at the system's weight, as test's
            result.wers["dev"] = per_seed_wers(dev_items)
        results.append(result)
    return results


def per_seed_wers(items: dict[tuple[int, str], tuple[int, int]]) -> list[float]:
    seeds = sorted({s for s, _ in items})
    return [100 * sum(e for (t, _), (e, _) in items.items() if t == s) /
            max(1, sum(w for (t, _), (_, w) in items.items() if t == s)) for s in seeds]


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


def read_utterances(result: SystemResult, key: tuple[str, str], seed: int, decode_dir: Path, sub: str,
                    weight_dir: Path | None = None) -> None:
    """One pass's utterance errors; at the weight chosen in weight_dir (a sweep's
    hyp_<w>.txt) where there is one, else hyp.txt."""
    hyp, ref = decode_dir / sub / "hyp.txt", decode_dir / "text"
    chosen = weight_dir / sub / "best_lm_weight" if weight_dir is not None else None
    if chosen is not None and chosen.exists():
        swept = decode_dir / sub / f"hyp_{chosen.read_text().strip()}.txt"
        hyp = swept if swept.exists() else hyp
    if hyp.exists() and ref.exists():
        items = result.utterances.setdefault(key, {})
        items.update({(seed, utt): v for utt, v in utterance_errors(ref, hyp).items()})
