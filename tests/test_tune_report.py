"""steps.tune_report on decode folders written here: a variant equal to its system shows no
difference, one that errs more on every utterance is found, and the A/A row is there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from steps.tune_report import main

UTTERANCES = 40
WORDS = [f"w{i}" for i in range(10)]


def write_decode(run_dir: Path, errors: np.ndarray, accuracy: float) -> None:
    """decode_dev with `text` and hyp.txt: utterance u has errors[u] substituted words."""
    decode = run_dir / "decode_dev"
    decode.mkdir(parents=True)
    refs = {f"u{u:02d}": WORDS for u in range(UTTERANCES)}
    (decode / "text").write_text("".join(f"{u} {' '.join(r)}\n" for u, r in refs.items()))
    hyps = [f"{u} {' '.join(['x'] * int(e) + r[int(e):])}\n" for (u, r), e in zip(refs.items(), errors)]
    (decode / "hyp.txt").write_text("".join(hyps))
    (run_dir / "train_stats.json").write_text(json.dumps({"final_dev": {"acc_main": accuracy}}))


def test_a_variant_against_its_system_with_the_aa_row(tmp_path):
    rng = np.random.default_rng(0)
    base_errors = rng.integers(0, 4, size=UTTERANCES)
    exp = tmp_path / "exp"
    for system, seeds in (("baseline", (1, 2, 3, 4, 5)), ("hier", (1, 2, 3))):
        for seed in seeds:
            noise = rng.integers(0, 2, size=UTTERANCES)  # what a seed changes
            write_decode(exp / f"am_{system}_s{seed}", base_errors + noise, 0.5 + 0.01 * seed)
    for seed in (1, 2, 3):
        same = exp / f"am_hier_s{seed}" / "decode_dev"
        hyp = (same / "hyp.txt").read_text()
        write_decode(exp / "tune" / f"am_hier.same_s{seed}", np.zeros(UTTERANCES), 0.5)
        (exp / "tune" / f"am_hier.same_s{seed}" / "decode_dev" / "hyp.txt").write_text(hyp)
        errors = np.array([len([w for w in line.split()[1:] if w == "x"]) for line in hyp.splitlines()])
        write_decode(exp / "tune" / f"am_hier.worse_s{seed}", np.minimum(errors + 3, 10), 0.4)
    out = tmp_path / "dev.md"
    assert main(["--exp-dir", str(exp), "--variants", "hier.same", "hier.worse", "--seeds", "1", "2", "3",
                 "--systems", "baseline", "hier", "--aa-seeds", "4", "5", "--out", str(out)]) == 0
    figures = json.loads(out.with_name("dev.md.json").read_text())["first pass"]
    rows = figures["rows"]
    assert rows["hier.same"]["difference"][0] == 0 and rows["hier.same"]["p_value"] == 1.0
    assert rows["hier.worse"]["difference"][0] > 20 and rows["hier.worse"]["p_value"] < 1e-3
    assert rows["A/A: baseline"]["seeds"] == [3, 2] and rows["A/A: baseline"]["p_value"] > 0.05
    assert figures["seed_variance"]["df"] == 2 + 4 + 2 + 2  # hier, baseline with its A/A seeds, two variants
    table = out.read_text()
    assert "| hier.worse | hier | 3/3 |" in table and "A/A: baseline" in table
    assert "40.00 ± 0.00" in table  # the variant's dev frame accuracy, in %


def test_one_baseline_seed_without_aa_seeds_says_why_there_is_no_aa_row():
    from steps.scoring.seed_utterance import SeedRuns
    from steps.tune_report import pass_figures
    runs = {"baseline": SeedRuns([[1, 2, 0]], [10, 10, 10], [1], ["a", "b", "c"]),
            "hier": SeedRuns([[1, 1, 1]], [10, 10, 10], [1], ["a", "b", "c"]),
            "hier.x": SeedRuns([[0, 1, 1]], [10, 10, 10], [1], ["a", "b", "c"])}
    figures = pass_figures(runs, None, ["hier.x"])
    assert "A/A: baseline" not in figures["rows"] and "two seeds" in figures["aa_missing"]
    assert figures["rows"]["hier.x"]["difference"][0] == pytest.approx(-100 / 30)
