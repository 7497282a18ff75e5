"""A lock file per directory (or per job array), Kaldi-simple and crash-proof.

    holder = acquire(".run.lock", pid=os.getpid(), command="run.sh --stage 8")
    ...
    release(".run.lock", pid=os.getpid())

The lock file holds JSON: pid, host, command, since (local time) and the process' start
time (so a reused pid is not taken for the holder). acquire() raises LockHeld, whose
message names the holder, while that process lives; a lock whose process is gone (killed
with SIGKILL, the machine rebooted) is stale and taken over, with a warning. A lock from
another host cannot be checked and counts as held (its message says which file to remove).
Every read-decide-write runs under flock on `<lock>.guard`, so two runs starting at once
cannot both take it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    since: str
    start_time: int | None = None  # the process' start, in clock ticks since boot (Linux)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.since}: {self.command}"


class LockHeld(RuntimeError):
    def __init__(self, path: Path, holder: Holder, other_host: bool = False):
        self.path, self.holder = path, holder
        hint = (f"it is on another host: if that run is gone, remove {path}" if other_host else
                f"wait for it to finish, or stop it (kill {holder.pid}) and run again")
        super().__init__(f"{path.parent} is in use by another run ({holder.describe()}); {hint}")


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(holder: Holder) -> bool:
    """Whether the holder's process still runs (a zombie does not; a new process that got
    the same pid does not count)."""
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    if _state(holder.pid) in ("Z", "X"):
        return False
    start = process_start_time(holder.pid)
    return holder.start_time is None or start is None or start == holder.start_time


def read_holder(path: str | Path) -> Holder | None:
    try:
        data = json.loads(Path(path).read_text())
        return Holder(**data)
    except (OSError, ValueError, TypeError):
        return None


@contextmanager
def _guard(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".guard"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


def acquire(path: str | Path, pid: int | None = None, command: str = "") -> Holder:
    """Takes the lock for process pid (default: this one); raises LockHeld if a live
    process holds it. Taking a lock this pid already holds is a no-op."""
    path = Path(path)
    pid = pid or os.getpid()
    me = Holder(pid=pid, host=socket.gethostname(), command=command,
                since=time.strftime("%Y-%m-%d %H:%M:%S"), start_time=process_start_time(pid))
    with _guard(path):
        holder = read_holder(path)
        if holder is not None:
            if holder.host != me.host:
                raise LockHeld(path, holder, other_host=True)
            if holder.pid == pid and holder.start_time == me.start_time:
                return holder
            if alive(holder):
                raise LockHeld(path, holder)
            log.warning("%s: taking over a stale lock: its holder is gone (%s)", path, holder.describe())
        elif path.exists():
            log.warning("%s: taking over an unreadable lock file", path)
        tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
        tmp.write_text(json.dumps(asdict(me)) + "\n")
        os.replace(tmp, path)
        return me


def release(path: str | Path, pid: int | None = None) -> bool:
    """Removes the lock if pid (default: this process) holds it; True if it did."""
    path = Path(path)
    pid = pid or os.getpid()
    with _guard(path):
        holder = read_holder(path)
        if holder is None or holder.pid != pid or holder.host != socket.gethostname():
            return False
        path.unlink(missing_ok=True)
        return True


@contextmanager
def held(path: str | Path, command: str = "") -> Iterator[Holder]:
    """The lock for this process while the block runs."""
    holder = acquire(path, command=command)
    try:
        yield holder
    finally:
        release(path)
