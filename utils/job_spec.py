"""What the job runners share: the JOB=1:N range, the log path and command with JOB
substituted, and the bash wrapper that runs one job and frames its log.

utils/run.py runs the wrapper locally; utils/slurm.py hands it to sbatch or srun. Both
give the same logs, in Kaldi's run.pl format:

    # <command line, JOB substituted>
    # Started at <date>
    #
    <output of the command>
    # Accounting: time=<seconds> threads=<n>
    # Ended (code <exit status>) at <date>, elapsed time <seconds> seconds
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?::(\d+))?$")

# $1 = job index, $2 = log path, $3 = command (JOB already substituted), $4 = threads.
WRAPPER = r"""#!/usr/bin/env bash
job_index=$1 log=$2 command=$3 threads=${4:-1}
mkdir -p "$(dirname "$log")"
{
  printf '# %s\n# Started at %s\n#\n' "$command" "$(date)"
} > "$log"
SECONDS=0
( bash -c "$command" ) >> "$log" 2>&1
status=$?
{
  printf '# Accounting: time=%d threads=%s\n' "$SECONDS" "$threads"
  printf '# Ended (code %d) at %s, elapsed time %d seconds\n' "$status" "$(date)" "$SECONDS"
} >> "$log"
exit $status
"""

_ENDED = re.compile(r"^# Ended \(code (-?\d+)\)", re.MULTILINE)


class UsageError(Exception):
    pass


@dataclass
class JobArray:
    """A job range and the templates it is substituted into."""

    variable: str  # the name substituted, "JOB" by convention
    first: int
    last: int
    log_template: str
    command_template: str

    @property
    def indices(self) -> range:
        return range(self.first, self.last + 1)

    @property
    def num_jobs(self) -> int:
        return self.last - self.first + 1

    def substitute(self, template: str, index: int) -> str:
        return re.sub(rf"\b{self.variable}\b", str(index), template)

    def log_path(self, index: int) -> Path:
        return Path(self.substitute(self.log_template, index))

    def command(self, index: int) -> str:
        return self.substitute(self.command_template, index)

    def log_pattern(self) -> str:
        return re.sub(rf"\b{self.variable}\b", "*", self.log_template)


def split_options(argv: list[str], defaults: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Leading `--name value` pairs, checked against the names in defaults; returns the
    options (defaults filled in, keys with '_' for '-') and the arguments after them."""
    options = {name.replace("-", "_"): value for name, value in defaults.items()}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name = argv[i][2:]
        if name not in defaults:
            raise UsageError(f"unknown option --{name}")
        if i + 1 >= len(argv):
            raise UsageError(f"option --{name} needs a value")
        options[name.replace("-", "_")] = argv[i + 1]
        i += 2
    return options, argv[i:]


def positive_int(options: dict[str, str], name: str) -> int:
    value = options[name]
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got '{value}'")
    return int(value)


def join_command(args: list[str]) -> str:
    """Kaldi's quoting: words without blanks pass through as they are (so `|`, `>`
    and `&&` stay shell syntax); words with blanks are quoted."""
    return " ".join(a if a and not re.search(r"\s", a) else shlex.quote(a) for a in args)


def parse_job_array(args: list[str]) -> JobArray:
    """`[JOB=1:N] log cmd args...` (without the runner's own options)."""
    if not args:
        raise UsageError("missing log file and command")
    variable, first, last = "JOB", 1, 1
    match = _RANGE.match(args[0])
    if match:
        variable = match.group(1)
        first = int(match.group(2))
        last = int(match.group(3)) if match.group(3) is not None else first
        if last < first:
            raise UsageError(f"empty job range '{args[0]}'")
        args = args[1:]
    elif "=" in args[0] and ":" in args[0]:
        raise UsageError(f"bad job range '{args[0]}', expected e.g. JOB=1:4")
    if len(args) < 2:
        raise UsageError("missing log file or command")
    log_template, command_args = args[0], args[1:]
    if first != last and not re.search(rf"\b{variable}\b", log_template):
        raise UsageError(
            f"the log file '{log_template}' must contain {variable} when running several jobs"
        )
    return JobArray(variable, first, last, log_template, join_command(command_args))


def exit_code_from_log(log: Path) -> int | None:
    """The exit status that the wrapper wrote at the end of a log, or None."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    codes = _ENDED.findall(text)
    return int(codes[-1]) if codes else None


def write_wrapper(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "run_job.sh"
    path.write_text(WRAPPER)
    path.chmod(0o755)
    return path


TAIL_LINES = 12  # of each failing log shown on the console
TAIL_LOGS = 2    # failing logs shown


def log_tail(log: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last lines a job wrote to its log (the runner's own framing left out)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ["(no log: the job did not start)"]
    body = [line for line in text.replace("\r", "\n").splitlines()
            if line.strip() not in ("", "#") and not line.startswith(("# Accounting:", "# Ended (code", "# Started at"))]
    return body[-lines:]


def failure_message(runner: str, failed: int, jobs: JobArray) -> str:
    """'k / N failed, see <logs>', then the last lines of the first failing logs, so that
    the recipe's console shows what went wrong."""
    if jobs.num_jobs == 1:
        lines = [f"{runner}: job failed, see {jobs.log_path(jobs.first)}"]
    else:
        lines = [f"{runner}: {failed} / {jobs.num_jobs} failed, see {jobs.log_pattern()}"]
    failing = [i for i in jobs.indices if exit_code_from_log(jobs.log_path(i)) != 0]
    for index in failing[:TAIL_LOGS]:
        log = jobs.log_path(index)
        lines.append(f"{runner}: the end of {log}:")
        lines += [f"  {line}" for line in log_tail(log)]
    if len(failing) > TAIL_LOGS:
        lines.append(f"{runner}: ... and {len(failing) - TAIL_LOGS} more failing logs")
    return "\n".join(lines)


def run_locally(jobs: JobArray, max_jobs: int, threads: int, launcher: list[str] = (),
                runner: str = "run.py") -> int:
    """Runs every job through the wrapper, at most max_jobs at a time, each behind the
    optional launcher prefix (e.g. srun and its options); returns how many failed or were
    not started. When the process that started the runner dies (a recipe killed), no new
    job is started: the running ones finish, the rest count as failed."""
    parent = os.getppid()
    with tempfile.TemporaryDirectory(prefix="lm2am-jobs-") as tmp:
        wrapper = write_wrapper(Path(tmp))
        pending = list(jobs.indices)
        running: dict[int, subprocess.Popen] = {}
        failed = 0
        while pending or running:
            if pending and len(running) < max_jobs and os.getppid() != parent:
                print(f"{runner}: the process that started it (pid {parent}) is gone: not starting "
                      f"the {len(pending)} jobs left ({jobs.log_path(pending[0])} ...)", file=sys.stderr)
                failed += len(pending)
                pending.clear()
            while pending and len(running) < max_jobs:
                index = pending.pop(0)
                running[index] = subprocess.Popen(
                    [*launcher, "bash", str(wrapper), str(index), str(jobs.log_path(index)),
                     jobs.command(index), str(threads)]
                )
            for index, process in list(running.items()):
                if process.poll() is not None:
                    failed += process.returncode != 0
                    del running[index]
            if running:
                time.sleep(0.05)
        return failed
