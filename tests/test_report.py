"""steps.report: the ablation table from decode directories."""

from __future__ import annotations

import json

import pytest

from steps import report
from steps.score import WerCounts


def _write_wer(path, errors: int, words: int = 200) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "wer").write_text(WerCounts(errors, words, 0, 0, errors).kaldi_lines())


def test_mean_std_and_relative_change(tmp_path):
    exp = tmp_path / "exp"
    # baseline: 10% and 12% on dev, 11% and 13% on test; hier: 8% and 10%, 9% and 9%
    for seed, (dev, test) in {1: (20, 22), 2: (24, 26)}.items():
        _write_wer(exp / f"am_baseline_s{seed}" / "decode_dev", dev)
        _write_wer(exp / f"am_baseline_s{seed}" / "decode_test", test)
    for seed, (dev, test) in {1: (16, 18), 2: (20, 18)}.items():
        _write_wer(exp / f"am_hier_s{seed}" / "decode_dev", dev)
        _write_wer(exp / f"am_hier_s{seed}" / "decode_test", test)
    (exp / "am_hier_s1" / "decode_dev" / "best_lm_weight").write_text("12\n")
    conf = tmp_path / "tiny.conf"
    conf.write_text("seeds=\"1 2\"\n")
    out = tmp_path / "RESULTS.md"
    assert report.main(["--exp-dir", str(exp), "--systems", "baseline", "hier", "--seeds", "1", "2",
                        "--config-files", str(conf), "--out", str(out)]) == 0

    figures = json.loads(out.with_suffix(".json").read_text())["systems"]
    assert figures["baseline"]["dev"]["mean"] == pytest.approx(11.0)
    assert figures["baseline"]["dev"]["std"] == pytest.approx(2 ** 0.5)  # sample std of 10, 12
    assert figures["hier"]["test"]["mean"] == pytest.approx(9.0)
    assert figures["hier"]["test"]["std"] == pytest.approx(0.0)
    table = out.read_text()
    assert "| baseline | 11.00 ± 1.41 | 12.00 ± 1.41 | +0.0% | +0.0% | n/a |" in table
    # hier test: (9 - 12) / 12 = -25%; dev: (9 - 11) / 11 = -18.2%
    assert "| hier | 9.00 ± 1.41 | 9.00 ± 0.00 | -18.2% | -25.0% | 12 |" in table
    assert 'seeds="1 2"' in table and "Missing decodes" not in table


def test_missing_decodes_are_listed_not_dropped(tmp_path):
    exp = tmp_path / "exp"
    _write_wer(exp / "am_baseline_s1" / "decode_dev", 20)
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "--seeds", "1", "--out", str(out)])
    table = out.read_text()
    assert "| baseline | 10.00 ± 0.00 | n/a |" in table
    assert "Missing decodes (1)" in table and "am_baseline_s1/decode_test/wer" in table
