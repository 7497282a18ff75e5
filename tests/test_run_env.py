"""run_env.json: what a run's floats depend on (threads, CPU and its SIMD, library versions),
written by every program that trains (steps.core.run_env; README.md, "Reproducibility")."""

from __future__ import annotations

import importlib.metadata
import json
import platform

import numpy as np
import pytest
import torch

from steps.core import checkpoint, run_env

FIELDS = {"torch_threads", "torch_interop_threads", "env", "cpu", "torch_cpu_capability", "numpy_simd",
          "versions", "platform", "device", "written", "earlier"}

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: some other name
flags\t\t: fpu
"""


def test_the_description_names_threads_cpu_and_versions(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        env = run_env.describe("cpu")
    finally:
        torch.set_num_threads(threads)
    assert env["torch_threads"] == 1 and env["torch_interop_threads"] == torch.get_num_interop_threads()
    assert env["env"]["OMP_NUM_THREADS"] == "3" and env["env"]["MKL_NUM_THREADS"] is None
    assert set(run_env.ENV_VARS) == set(env["env"])
    assert isinstance(env["torch_cpu_capability"], str) and env["torch_cpu_capability"]
    versions = env["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == importlib.metadata.version("torch") and versions["torch"].startswith(
        torch.__version__.split("+")[0])
    assert versions["numpy"] == np.__version__
    for package in ("k2", "lhotse", "kaldifst"):
        assert package in versions  # None where not installed
    assert env["device"] == "cpu" and env["cpu"]["logical_cpus"] >= 1
    assert set(env["cpu"]["isa"]) <= set(run_env.ISA_FLAGS)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    cpu = run_env.cpu_info(path)
    assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz" and cpu["vendor"] == "GenuineIntel"
    assert cpu["isa"] == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"]
    assert run_env.cpu_info(tmp_path / "absent")["isa"] == []


def test_written_atomically_and_a_resumed_run_keeps_the_earlier_record(tmp_path):
    first = run_env.write(tmp_path, "cpu")
    stored = json.loads((tmp_path / "run_env.json").read_text())
    assert set(stored) == FIELDS and stored == first and stored["earlier"] == []
    again = run_env.write(tmp_path, "cpu", resumed=True)
    stored = json.loads((tmp_path / "run_env.json").read_text())
    assert stored == again and len(stored["earlier"]) == 1
    assert {k: v for k, v in stored["earlier"][0].items() if k != "earlier"} == \
        {k: v for k, v in first.items() if k != "earlier"}
    assert run_env.differences(stored, stored["earlier"][0]) == []
    moved = dict(stored, torch_threads=stored["torch_threads"] + 1)
    assert run_env.differences(moved, stored) == ["torch_threads"]
    run_env.write(tmp_path, "cpu")  # a fresh run: its own record only
    assert json.loads((tmp_path / "run_env.json").read_text())["earlier"] == []
    assert [p.name for p in tmp_path.iterdir()] == ["run_env.json"]  # no temporary left


# The training programs of the tiny recipe and the torch threads run.sh gives each.
TRAINED = {"exp/mono": 2, "exp/aligner": 2, "exp/lm_senone": 1, "exp/lm_phone": 1, "exp/lm_subword": 1,
           "exp/am_baseline_s1": 1, "exp/am_hier_s1": 1, "exp/tree": None}


@pytest.mark.parametrize("folder", sorted(TRAINED))
def test_every_training_program_of_the_recipe_records_its_environment(tiny_recipe, folder):
    env = json.loads((tiny_recipe.dir / folder / "run_env.json").read_text())
    assert FIELDS <= set(env), folder
    if TRAINED[folder] is not None:
        assert env["torch_threads"] == TRAINED[folder], folder
    assert env["versions"]["torch"] == importlib.metadata.version("torch")
    assert env["cpu"]["logical_cpus"] >= 1 and env["device"] == "cpu"


def test_equal_checkpoints_have_equal_bytes(tmp_path):
    # what sha256sum compares across runs; the zip's folder once carried the temporary name
    state = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3}
    checkpoint.save(state, tmp_path / "a.pt")
    checkpoint.save(state, tmp_path / "b" / "final.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b" / "final.pt").read_bytes()
    assert torch.equal(checkpoint.load(tmp_path / "a.pt")["state_dict"]["w"], state["state_dict"]["w"])
