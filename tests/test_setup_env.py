"""utils/setup_env.sh: a second run with everything present changes nothing, a missing
Python 3.10 gets a clear message, the installed k2 is the py3.10 build, and a k2 wheel that
installs but whose compiled module does not import is reported plainly."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "utils" / "setup_env.sh"


def run_setup(*args, env=None):
    return subprocess.run(["bash", str(SETUP), *args], capture_output=True, text=True, env=env)


def test_second_run_is_a_no_op():
    venv = Path(sys.prefix)
    stamp = venv / ".lm2am-setup"
    if not stamp.exists():
        pytest.skip(f"{venv} was not made by utils/setup_env.sh")
    before = stamp.stat().st_mtime_ns
    out = run_setup(env=dict(os.environ, LM2AM_VENV=str(venv)))
    assert out.returncode == 0, out.stderr
    assert "up to date; nothing to do" in out.stderr
    assert "Installing" not in out.stderr
    assert stamp.stat().st_mtime_ns == before


def test_installed_k2_is_the_py310_build():
    import k2  # noqa: F401  (the compiled module must import)
    import _k2
    assert Path(_k2.__file__).name.startswith("_k2.cpython-310-"), _k2.__file__
    assert run_setup("--check", env=dict(os.environ, LM2AM_VENV=sys.prefix)).returncode == 0


def broken_k2_wheel(path: Path) -> Path:
    """A wheel named like the registry's py3.9 k2 build: pip installs it on 3.10, and its
    package then fails on the missing compiled module, as the real one does."""
    wheel = path / "k2-1.23.4-py3.9-none-any.whl"
    files = {
        "k2/__init__.py": "from _k2 import DeterminizeWeightPushingType  # noqa\n",
        "k2-1.23.4.dist-info/METADATA": "Metadata-Version: 2.1\nName: k2\nVersion: 1.23.4\n",
        "k2-1.23.4.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3.9-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "k2-1.23.4.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr("k2-1.23.4.dist-info/RECORD", record)
    return wheel


def test_k2_that_does_not_import_is_reported(tmp_path):
    base = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheel = broken_k2_wheel(tmp_path)
    # pip of the test's environment installs into the new one
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python",
                    str(venv / "bin" / "python"), "install", "-q", "--no-index", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    out = run_setup("--check", env=dict(os.environ, LM2AM_VENV=str(venv)))
    assert out.returncode == 1
    assert f"k2 is installed in {venv} but does not import" in out.stderr
    assert "No module named '_k2'" in out.stderr
    assert "CPython 3.10 + torch 1.13.1" in out.stderr and "--k2-find-links" in out.stderr


def test_no_python310_gives_a_clear_message(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LM2AM_VENV": str(tmp_path / "venv")}
    if os.path.exists("/usr/bin/python3.10"):
        pytest.skip("this machine has a system python3.10")
    out = run_setup(env=env)
    assert out.returncode == 1
    assert "no Python 3.10 found" in out.stderr
    assert not (tmp_path / "venv").exists()


def test_unknown_option():
    out = run_setup("--frobnicate")
    assert out.returncode == 1 and "unknown option '--frobnicate'" in out.stderr
