"""bench_am's sizes from a trained recipe, and its timing of the real training step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_am", REPO / "utils" / "bench" / "bench_am.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_sizes_come_from_the_recipe_tree_and_token_lists(tmp_path):
    bench = load_bench()
    (tmp_path / "exp" / "tree").mkdir(parents=True)
    (tmp_path / "exp" / "tree" / "senones.txt").write_text("".join(f"{i} s{i}\n" for i in range(641)))
    for level, n in (("phone", 40), ("subword", 500)):
        (tmp_path / "exp" / f"lm_{level}").mkdir()
        (tmp_path / "exp" / f"lm_{level}" / "tokens.txt").write_text("".join(f"u{i} {i}\n" for i in range(n)) + "\n")
    assert bench.recipe_sizes(tmp_path) == (641, 40, 500)
    (tmp_path / "exp" / "lm_phone" / "tokens.txt").unlink()
    with pytest.raises(SystemExit, match="not trained through stage 6.*lm_phone/tokens.txt"):
        bench.recipe_sizes(tmp_path)


def test_the_benchmark_times_every_system_against_the_baseline(tmp_path, capsys):
    bench = load_bench()
    assert bench.main(["--work-dir", str(tmp_path), "--hours", "0.02", "--num-senones", "30",
                       "--num-subwords", "20", "--num-phones", "10", "--systems", "baseline", "hier",
                       "--steps", "1", "--rounds", "1", "--batches", "1", "--warmup", "1",
                       "--threads", "1", "--override", str(bench.CONF_DIR / "am_tiny.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "sizes: 30 senones, 10 phones, 20 subwords, teacher top-8" in lines
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["baseline"], ["hier"])}
    assert rows["baseline"][4] == "1.000x" and rows["hier"][4].endswith("x")
    assert int(rows["hier"][1]) > int(rows["baseline"][1])  # the heads' parameters
