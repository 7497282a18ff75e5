#!/usr/bin/env python3
"""Run a command as an array of Slurm jobs, with the interface of Kaldi's run.pl
(and utils/run.py): same JOB=1:N range, same logs, same failure report.

    utils/slurm.py [options] JOB=1:N exp/x/log/name.JOB.log command args...

By default the jobs go to Slurm as one job array through `sbatch --wait`, which blocks
until every task has ended; with `--launcher srun` each job is started by its own `srun`
(useful inside an allocation from salloc). Either way a job's exit code is read from the
end of its log, so a task that Slurm kills (time limit, memory) counts as failed.

Options, and what they become on the sbatch/srun command line:
  --partition P      --partition=P                        (default: the cluster's)
  --mem M            --mem=M, memory per job, e.g. 4G     (default: the cluster's)
  --gpu N            --gres=gpu:N                         (default 0: none asked)
  --num-threads N    --cpus-per-task=N                    (default 1)
  --time T           --time=T, e.g. 4:00:00               (default: the partition's)
  --max-jobs-run N   sbatch: --array=1-N%M throttle; srun: at most N srun at once
                     (default: no limit)
  --extra "ARGS"     passed as they are, e.g. "--account=asr --qos=high"
  --launcher L       sbatch (default) or srun
The sbatch script and Slurm's own output go to <log dir>/q/.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_spec import (  # noqa: E402
    JobArray,
    UsageError,
    exit_code_from_log,
    failure_message,
    parse_job_array,
    positive_int,
    run_locally,
    split_options,
    write_wrapper,
)

OPTIONS = {"partition": "", "mem": "", "gpu": "0", "num-threads": "1", "time": "",
           "max-jobs-run": "0", "extra": "", "launcher": "sbatch"}


def slurm_resource_args(options: dict[str, str]) -> list[str]:
    args = []
    if options["partition"]:
        args.append(f"--partition={options['partition']}")
    if options["mem"]:
        args.append(f"--mem={options['mem']}")
    if int(options["gpu"]) > 0:
        args.append(f"--gres=gpu:{int(options['gpu'])}")
    args.append(f"--cpus-per-task={positive_int(options, 'num_threads')}")
    if options["time"]:
        args.append(f"--time={options['time']}")
    args.extend(shlex.split(options["extra"]))
    return args


def array_script(jobs: JobArray, wrapper: Path, threads: int) -> str:
    """A batch script that runs the wrapper for the task's own JOB index."""
    lines = ["#!/usr/bin/env bash", 'case "$SLURM_ARRAY_TASK_ID" in']
    for index in jobs.indices:
        call = " ".join(shlex.quote(a) for a in ["bash", str(wrapper), str(index),
                        str(jobs.log_path(index)), jobs.command(index), str(threads)])
        lines.append(f"  {index}) exec {call} ;;")
    lines += ['  *) echo "unexpected SLURM_ARRAY_TASK_ID=$SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;',
              "esac", ""]
    return "\n".join(lines)


def submit_array(jobs: JobArray, options: dict[str, str]) -> int:
    """Submits the job array, waits for it; returns how many jobs failed."""
    queue_dir = jobs.log_path(jobs.first).parent / "q"
    wrapper = write_wrapper(queue_dir)
    threads = positive_int(options, "num_threads")
    name = jobs.log_path(jobs.first).name.split(".")[0] or "lm2am"
    script = queue_dir / f"{name}.sh"
    script.write_text(array_script(jobs, wrapper, threads))
    for index in jobs.indices:  # a stale footer must not pass for this run's
        jobs.log_path(index).unlink(missing_ok=True)
    throttle = int(options["max_jobs_run"])
    array = f"{jobs.first}-{jobs.last}" + (f"%{throttle}" if throttle > 0 else "")
    command = ["sbatch", "--wait", "--parsable", f"--job-name={name}", f"--array={array}",
               f"--output={queue_dir}/{name}.%a.out", *slurm_resource_args(options), str(script)]
    (queue_dir / f"{name}.sbatch").write_text(shlex.join(command) + "\n")
    try:
        subprocess.run(command, check=False)
    except FileNotFoundError:
        raise UsageError("sbatch not found on PATH; is this a Slurm cluster?") from None
    return sum(exit_code_from_log(jobs.log_path(index)) != 0 for index in jobs.indices)


def main(argv: list[str]) -> int:
    try:
        options, rest = split_options(argv, OPTIONS)
        jobs = parse_job_array(rest)
        if options["launcher"] == "sbatch":
            failed = submit_array(jobs, options)
        elif options["launcher"] == "srun":
            limit = int(options["max_jobs_run"]) or jobs.num_jobs
            launcher = ["srun", "--ntasks=1", *slurm_resource_args(options)]
            failed = run_locally(jobs, limit, positive_int(options, "num_threads"), launcher)
        else:
            raise UsageError(f"--launcher must be sbatch or srun, got '{options['launcher']}'")
    except (UsageError, ValueError) as e:
        print(f"slurm.py: {e}\n\n{__doc__}", file=sys.stderr)
        return 2
    if failed:
        print(failure_message("slurm.py", failed, jobs), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
