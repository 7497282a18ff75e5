"""Run locks (steps/core/dir_lock.py): a held lock names its holder, a dead holder's lock is
taken over, and the recipes take one per directory."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time

import pytest

from steps.core.dir_lock import LockHeld, acquire, read_holder, release
from tests.conftest import copy_recipe


def test_held_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path, caplog):
    path = tmp_path / "exp" / ".run.lock"
    holder_proc = subprocess.Popen(["sleep", "30"])
    try:
        taken = acquire(path, pid=holder_proc.pid, command="./run.sh --stage 8")
        assert (taken.pid, taken.host) == (holder_proc.pid, socket.gethostname())
        with pytest.raises(LockHeld) as held:
            acquire(path, command="./run.sh --stage 8")
        message = str(held.value)
        assert (f"{tmp_path / 'exp'} is in use by another run (pid {holder_proc.pid} on "
                f"{socket.gethostname()}, since {taken.since}: ./run.sh --stage 8)") in message
        assert f"kill {holder_proc.pid}" in message
        assert not release(path)  # not ours to give back
        # Killed, not yet reaped (a zombie): gone all the same.
        holder_proc.kill()
        for _ in range(100):
            if open(f"/proc/{holder_proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.02)
        caplog.set_level(logging.WARNING)
        mine = acquire(path, command="./run.sh again")
        assert mine.pid == os.getpid() and read_holder(path).command == "./run.sh again"
        assert f"taking over a stale lock: its holder is gone (pid {holder_proc.pid}" in caplog.text
    finally:
        holder_proc.kill()
        holder_proc.wait()
    assert release(path) and not path.exists()


def test_a_reused_pid_does_not_hold_the_lock(tmp_path):
    path = tmp_path / ".run.lock"
    acquire(path, command="me")
    data = json.loads(path.read_text())
    data["start_time"] -= 1  # the same pid, but another process than the one that locked
    path.write_text(json.dumps(data))
    other = subprocess.run(["python", "-c", f"from steps.core.dir_lock import acquire; "
                            f"print(acquire('{path}', command='other').pid)"],
                           capture_output=True, text=True, cwd=os.getcwd())
    assert other.returncode == 0, other.stderr
    assert "taking over a stale lock" in other.stderr


def test_the_recipe_refuses_a_second_run_and_takes_over_a_killed_ones_lock(tmp_path):
    recipe = copy_recipe(tmp_path / "root")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        # As a running run.sh leaves it (its own pid); stage 11 does nothing.
        acquire(recipe / ".run.lock", pid=sleeper.pid, command="./run.sh --config conf/tiny.conf")
        out = subprocess.run(["./run.sh", "--stage", "11"], cwd=recipe, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 1
        assert (f"is in use by another run (pid {sleeper.pid} on {socket.gethostname()}, since "
                in out.stderr) and "./run.sh --config conf/tiny.conf)" in out.stderr
        sleeper.kill()
        sleeper.wait()
        out = subprocess.run(["./run.sh", "--stage", "11"], cwd=recipe, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "taking over a stale lock" in out.stderr
        assert not (recipe / ".run.lock").exists()  # given back on exit
    finally:
        sleeper.kill()
        sleeper.wait()
