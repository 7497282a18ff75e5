"""steps.score_alignment on cuts made here: with full references, with start times only,
and with none (a real corpus): the last is reported and scores nothing, without a traceback.
Also the per-cut errors that bench_align pairs to compare two flat starts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet, MonoCut, SupervisionSegment
from lhotse.supervision import AlignmentItem

from steps.scoring.boundaries import NoReferences, cut_errors, score_cuts, within_counts

REPO = Path(__file__).resolve().parents[1]


def _cut(cut_id: str, truth: list[tuple[str, float, float]] | None, hyp: list[tuple[str, float, float]]):
    alignment = {"ali_word": [AlignmentItem(w, s, d) for w, s, d in hyp]}
    if truth is not None:
        alignment["word"] = [AlignmentItem(w, s, d) for w, s, d in truth]
    sup = SupervisionSegment(cut_id, cut_id, 0.0, 2.0, text=" ".join(w for w, _, _ in hyp),
                             alignment=alignment)
    return MonoCut(cut_id, 0.0, 2.0, 0, supervisions=[sup])


HYP = [("A", 0.10, 0.30), ("B", 0.40, 0.50)]


def _run(repo, cuts, tmp_path):
    path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    out = tmp_path / "quality.json"
    run = subprocess.run([sys.executable, "-m", "steps.score_alignment", "--cuts", str(path), "--out", str(out)],
                         cwd=repo, capture_output=True, text=True)
    return run, json.loads(out.read_text()) if out.is_file() else None


def test_full_references_are_scored_at_both_ends():
    # truth A 0.12-0.40, B 0.40-0.95: errors 20 ms, 0, 0, 50 ms
    quality, mismatched = score_cuts([_cut("c1", [("A", 0.12, 0.28), ("B", 0.40, 0.55)], HYP)])
    assert (quality.cuts, quality.boundaries, quality.starts, quality.ends) == (1, 4, 2, 2)
    assert quality.within_20ms == pytest.approx(0.75) and quality.within_50ms == pytest.approx(1.0)
    assert mismatched == []


def test_start_times_only_are_scored_by_their_starts(repo, tmp_path):
    cuts = [_cut("c1", [("A", 0.13, 0.0), ("B", 0.40, 0.0)], HYP),       # starts only
            _cut("c2", [("A", 0.10, 0.0), ("C", 0.40, 0.0)], HYP)]       # other words: skipped
    quality, mismatched = score_cuts(cuts)
    assert (quality.cuts, quality.boundaries, quality.starts, quality.ends) == (1, 2, 2, 0)
    assert quality.median_ms == pytest.approx(15.0)
    assert quality.within_20ms == pytest.approx(0.5) and mismatched == ["c2"]
    run, stored = _run(repo, cuts, tmp_path)
    assert run.returncode == 0, run.stderr
    assert stored["starts"] == 2 and stored["ends"] == 0 and stored["mismatched_cuts"] == 1
    assert "2 word boundaries (2 starts, 0 ends) in 1 cuts" in run.stdout


def test_no_reference_boundaries_scores_nothing_and_goes_on(repo, tmp_path):
    cuts = [_cut("c1", None, HYP), _cut("c2", None, HYP)]
    with pytest.raises(NoReferences):
        score_cuts(cuts)
    run, stored = _run(repo, cuts, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout.strip() == "cuts.jsonl.gz: no reference boundaries: nothing scored"
    assert stored["cuts"] == 0 and stored["boundaries"] == 0


def test_per_cut_errors_give_the_paired_items():
    # c1 as above (errors 20, 0, 0, 50 ms); c2 one word 30 ms late at both ends
    cuts = [_cut("c1", [("A", 0.12, 0.28), ("B", 0.40, 0.55)], HYP),
            _cut("c2", [("A", 0.07, 0.20)], [("A", 0.10, 0.20)])]
    errors, mismatched, starts, ends = cut_errors(cuts)
    assert sorted(errors) == ["c1", "c2"] and mismatched == [] and (starts, ends) == (3, 3)
    assert errors["c2"] == pytest.approx([0.03, 0.03])
    within, total = within_counts(errors, ["c2", "c1"], 0.020)
    assert within.tolist() == [0, 3] and total.tolist() == [2, 4]
    within, _ = within_counts(errors, ["c2", "c1"], 0.050)
    assert within.tolist() == [2, 4]


def test_bench_align_pairs_the_flat_starts_cut_by_cut():
    spec = importlib.util.spec_from_file_location("bench_align", REPO / "utils" / "bench" / "bench_align.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # 100 cuts of 4 boundaries: the reference has all 4 within 20 ms, the default 3 of 4
    # (one 30 ms off); a cut only the default aligned is left out of the pairing
    reference = {"errors": {f"c{i}": np.array([0.0, 0.01, 0.02, 0.0]) for i in range(100)}}
    default = {"errors": {f"c{i}": np.array([0.0, 0.01, 0.03, 0.0]) for i in range(101)}}
    c = bench.paired_boundary_difference([reference], [default], 0.020)
    assert c.items == 100 and c.difference.value == pytest.approx(-0.25)
    assert c.difference.low == pytest.approx(-0.25) and c.p_value == 0.0
    c = bench.paired_boundary_difference([reference], [default], 0.050)
    assert c.difference.value == 0.0 and c.p_value == 1.0
