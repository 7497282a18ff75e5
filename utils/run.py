#!/usr/bin/env python3
"""Run a command as an array of local jobs, with the interface of Kaldi's run.pl.

    utils/run.py [options] JOB=1:N exp/x/log/name.JOB.log command args...
    utils/run.py [options] exp/x/log/name.log command args...

JOB is replaced by the job index in the log path and the command. Each job's output
goes to its log, which starts with the command line and ends with the exit code and
the elapsed time. If any job fails, prints "k / N failed, see <log pattern>" and the last
lines of the failing logs, and exits 1.

One runner at a time per job array: the runner locks <log dir>/.<log name>.lock (see
steps/core/dir_lock.py); a second runner of the same array (a recipe rerun while the
first one's jobs still run) names the holder and exits 1. When the process that started
the runner dies (kill -9 of run.sh), it starts no new job.

Options:
  --max-jobs-run N   at most N jobs at once (default: the number of CPUs)
  --num-threads N, --mem X, --gpu N, --time T, --partition P
                     accepted so that a recipe can switch to utils/slurm.py by
                     changing cmd.sh alone; the local runner ignores them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from job_spec import (  # noqa: E402
    JobArray,
    UsageError,
    failure_message,
    join_command,
    parse_job_array,
    positive_int,
    run_locally,
    split_options,
)

from steps.core.dir_lock import LockHeld, acquire, release  # noqa: E402

# Accepted so that a recipe switches to utils/slurm.py by changing cmd.sh alone.
OPTIONS = {"max-jobs-run": str(os.cpu_count() or 1), "num-threads": "1", "mem": "",
           "gpu": "0", "time": "", "partition": ""}


def lock_path(jobs: JobArray) -> Path:
    template = Path(jobs.log_template)
    return template.parent / f".{template.name}.lock"


def main(argv: list[str]) -> int:
    try:
        options, rest = split_options(argv, OPTIONS)
        max_jobs = positive_int(options, "max_jobs_run")
        threads = positive_int(options, "num_threads")
        jobs = parse_job_array(rest)
    except UsageError as e:
        print(f"run.py: {e}\n\n{__doc__}", file=sys.stderr)
        return 2
    lock = lock_path(jobs)
    try:
        acquire(lock, command=join_command(["utils/run.py", *argv]))
    except LockHeld as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 1
    try:
        failed = run_locally(jobs, max_jobs, threads)
    finally:
        release(lock)
    if failed:
        print(failure_message("run.py", failed, jobs), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
