"""utils/setup_env.sh: a second run with everything present changes nothing, and a
missing Python 3.10 gets a clear message."""

import os
import subprocess

import pytest


def test_second_run_is_a_no_op(repo):
    stamp = repo / ".venv" / ".lm2am-setup"
    if not stamp.exists():
        pytest.skip(".venv was not made by utils/setup_env.sh")
    before = stamp.stat().st_mtime_ns
    out = subprocess.run([str(repo / "utils" / "setup_env.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "up to date; nothing to do" in out.stderr
    assert "Installing" not in out.stderr
    assert stamp.stat().st_mtime_ns == before


def test_no_python310_gives_a_clear_message(repo, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LM2AM_VENV": str(tmp_path / "venv")}
    out = subprocess.run(["bash", str(repo / "utils" / "setup_env.sh")], capture_output=True,
                         text=True, env=env)
    if os.path.exists("/usr/bin/python3.10"):
        pytest.skip("this machine has a system python3.10")
    assert out.returncode == 1
    assert "no Python 3.10 found" in out.stderr
    assert not (tmp_path / "venv").exists()


def test_unknown_option(repo):
    out = subprocess.run([str(repo / "utils" / "setup_env.sh"), "--frobnicate"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "unknown option '--frobnicate'" in out.stderr
