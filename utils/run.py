#!/usr/bin/env python3
"""Run a command as an array of local jobs, with the interface of Kaldi's run.pl.

    utils/run.py [options] JOB=1:N exp/x/log/name.JOB.log command args...
    utils/run.py [options] exp/x/log/name.log command args...

JOB is replaced by the job index in the log path and the command. Each job's output
goes to its log, which starts with the command line and ends with the exit code and
the elapsed time. If any job fails, prints "k / N failed, see <log pattern>" and exits 1.

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
from job_spec import (  # noqa: E402
    UsageError,
    failure_message,
    parse_job_array,
    positive_int,
    run_locally,
    split_options,
)

# Accepted so that a recipe switches to utils/slurm.py by changing cmd.sh alone.
OPTIONS = {"max-jobs-run": str(os.cpu_count() or 1), "num-threads": "1", "mem": "",
           "gpu": "0", "time": "", "partition": ""}


def main(argv: list[str]) -> int:
    try:
        options, rest = split_options(argv, OPTIONS)
        max_jobs = positive_int(options, "max_jobs_run")
        threads = positive_int(options, "num_threads")
        jobs = parse_job_array(rest)
    except UsageError as e:
        print(f"run.py: {e}\n\n{__doc__}", file=sys.stderr)
        return 2
    failed = run_locally(jobs, max_jobs, threads)
    if failed:
        print(failure_message("run.py", failed, jobs), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
