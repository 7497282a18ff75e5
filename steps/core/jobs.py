"""Fan a program out over parallel jobs through the job runner (utils/run.py,
utils/slurm.py, or whatever `--cmd` names), Kaldi-style:

    run_jobs("utils/run.py", 4, "exp/mono_ali/log/align.JOB.log",
             "steps.align", ["--cuts", "...", "--out-dir", "exp/mono_ali"])

runs `python -m steps.align ... --job JOB --nj 4` for JOB=1..4 and raises JobsFailed
(with the runner's "k / N failed, see ..." message and the failing logs' last lines) if
any job fails.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CMD = str(REPO_ROOT / "utils" / "run.py")


class JobsFailed(RuntimeError):
    pass


def run_jobs(cmd: str | None, nj: int, log_template: str | Path, module: str,
             args: list[str]) -> None:
    runner = shlex.split(cmd) if cmd else [DEFAULT_CMD]
    command = [*runner, f"JOB=1:{nj}", str(log_template), sys.executable, "-m", module,
               *[str(a) for a in args], "--job", "JOB", "--nj", str(nj)]
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()
        # From the runner's "failed" line on: it is followed by the failing logs' ends.
        start = next((i for i, line in enumerate(message) if " failed, see " in line or "job failed" in line),
                     len(message) - 1)
        raise JobsFailed("\n".join(message[start:]) if message else f"{shlex.join(command)} failed")


def job_argv(argv: list[str]) -> list[str]:
    """A program's own arguments without --nj/--job/--cmd, to pass on to its jobs
    (run_jobs adds --job JOB --nj N)."""
    result, skip_value = [], False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg in ("--nj", "--job", "--cmd"):
            skip_value = True
        elif not arg.startswith(("--nj=", "--job=", "--cmd=")):
            result.append(arg)
    return result


def add_job_arguments(parser) -> None:
    """--nj, --job and --cmd, the same for every parallel program."""
    parser.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    parser.add_argument("--job", type=int, default=None,
                        help="run as job JOB of --nj (set by the runner; 1-based)")
    parser.add_argument("--cmd", default=None,
                        help=f"job runner command (default: {DEFAULT_CMD})")
