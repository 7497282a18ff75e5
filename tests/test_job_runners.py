"""utils/run.py and utils/slurm.py: JOB substitution, log framing, failure counts,
--max-jobs-run; the Slurm runner against fake sbatch/srun that record their arguments."""

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def runner(repo, name, *args, env=None, cwd=None):
    return subprocess.run([sys.executable, str(repo / "utils" / name), *args],
                          capture_output=True, text=True, env=env, cwd=cwd)


def read_log(path: Path):
    lines = path.read_text().splitlines()
    return lines[0], lines[1:-2], lines[-2:], lines


def test_job_substitution_and_log_framing(repo, tmp_path):
    log = tmp_path / "log" / "echo.JOB.log"
    out = runner(repo, "run.py", "JOB=1:3", str(log), "echo", "job", "JOB", "of", "3")
    assert out.returncode == 0, out.stderr
    for job in (1, 2, 3):
        text = (tmp_path / "log" / f"echo.{job}.log").read_text().splitlines()
        assert text[0] == f"# echo job {job} of 3"
        assert text[1].startswith("# Started at")
        assert f"job {job} of 3" in text
        assert re.match(r"# Accounting: time=\d+ threads=1", text[-2])
        assert re.match(r"# Ended \(code 0\) at .*, elapsed time \d+ seconds", text[-1])


def test_shell_operators_pass_through_and_quoted_words_stay_whole(repo, tmp_path):
    log = tmp_path / "log" / "x.JOB.log"
    out = runner(repo, "run.py", "JOB=2:2", str(log), "echo", "a b", "JOB", "|", "tr", "a", "A")
    assert out.returncode == 0, out.stderr
    assert "A b 2" in (tmp_path / "log" / "x.2.log").read_text()


def test_failures_are_counted_and_reported(repo, tmp_path):
    log = tmp_path / "log" / "t.JOB.log"
    # Jobs 2 and 4 fail, with different exit codes.
    out = runner(repo, "run.py", "JOB=1:5", str(log), "bash", "-c",
                 "seq 1 30 | sed s/^/line-JOB-/; case JOB in 2) echo bad input 2; exit 3;; 4) exit 1;; esac")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0] == f"run.py: 2 / 5 failed, see {tmp_path}/log/t.*.log"
    # The console shows the end of each failing log: its last 12 lines, framing left out.
    assert lines[1] == f"run.py: the end of {tmp_path}/log/t.2.log:"
    assert lines[2:14] == [f"  line-2-{i}" for i in range(20, 31)] + ["  bad input 2"]
    assert lines[14] == f"run.py: the end of {tmp_path}/log/t.4.log:"
    assert lines[15:] == [f"  line-4-{i}" for i in range(19, 31)]
    assert "# Ended (code 3)" in (tmp_path / "log" / "t.2.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "log" / "t.3.log").read_text()


def test_single_job_without_range(repo, tmp_path):
    out = runner(repo, "run.py", str(tmp_path / "one.log"), "false")
    assert out.returncode == 1
    assert "job failed, see" in out.stderr and "one.log" in out.stderr


def test_usage_errors(repo, tmp_path):
    out = runner(repo, "run.py", "JOB=1:3", str(tmp_path / "same.log"), "true")
    assert out.returncode == 2 and "must contain JOB" in out.stderr
    out = runner(repo, "run.py", "--max-jobs", "2", "JOB=1:2", str(tmp_path / "a.JOB.log"), "true")
    assert out.returncode == 2 and "unknown option --max-jobs" in out.stderr
    out = runner(repo, "run.py", "JOB=3:1", str(tmp_path / "a.JOB.log"), "true")
    assert out.returncode == 2 and "empty job range" in out.stderr


def intervals(tmp_path, n):
    spans = []
    for job in range(1, n + 1):
        start, end = (tmp_path / f"span.{job}").read_text().split()
        spans.append((float(start), float(end)))
    return spans


def overlapping(spans):
    return sum(1 for i, a in enumerate(spans) for b in spans[i + 1:]
               if a[0] < b[1] and b[0] < a[1])


@pytest.mark.parametrize("max_jobs, expect_overlap", [(1, False), (4, True)])
def test_max_jobs_run(repo, tmp_path, max_jobs, expect_overlap):
    command = (f"date +%s.%N > {tmp_path}/span.JOB; sleep 0.4; "
               f"date +%s.%N >> {tmp_path}/span.JOB")
    out = runner(repo, "run.py", "--max-jobs-run", str(max_jobs), "JOB=1:4",
                 str(tmp_path / "log" / "s.JOB.log"), "bash", "-c", command)
    assert out.returncode == 0, out.stderr
    spans = intervals(tmp_path, 4)
    assert (overlapping(spans) > 0) == expect_overlap


FAKE_SBATCH = textwrap.dedent("""\
    #!{python}
    # Records its arguments, then runs the array script once per task, like sbatch --wait.
    import json, os, re, subprocess, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_SLURM_RECORD"], "a") as f:
        f.write(json.dumps(["sbatch", *args]) + "\\n")
    array = next(a for a in args if a.startswith("--array="))
    first, last = map(int, re.match(r"--array=(\\d+)-(\\d+)", array).groups())
    status = 0
    for task in range(first, last + 1):
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(task))
        status |= subprocess.run(["bash", args[-1]], env=env).returncode
    print("12345")
    sys.exit(1 if status else 0)
    """)

FAKE_SRUN = textwrap.dedent("""\
    #!{python}
    # Records its arguments, then runs the command after the options.
    import json, os, subprocess, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_SLURM_RECORD"], "a") as f:
        f.write(json.dumps(["srun", *args]) + "\\n")
    command = [a for a in args if not a.startswith("--")]
    sys.exit(subprocess.run(command).returncode)
    """)


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(text.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "slurm_calls.jsonl"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_SLURM_RECORD=str(record))

    def calls():
        return [json.loads(line) for line in record.read_text().splitlines()]
    return env, calls


def test_slurm_sbatch_array_options_and_logs(repo, tmp_path, fake_slurm):
    env, calls = fake_slurm
    log = tmp_path / "exp" / "log" / "train.JOB.log"
    out = runner(repo, "slurm.py", "--partition", "gpu", "--mem", "8G", "--gpu", "1",
                 "--num-threads", "4", "--time", "2:00:00", "--max-jobs-run", "2",
                 "--extra", "--account=asr", "JOB=1:3", str(log), "echo", "task", "JOB",
                 env=env)
    assert out.returncode == 0, out.stderr
    (call,) = calls()
    assert call[0] == "sbatch"
    assert "--wait" in call and "--array=1-3%2" in call
    for expected in ("--partition=gpu", "--mem=8G", "--gres=gpu:1", "--cpus-per-task=4",
                     "--time=2:00:00", "--account=asr", "--job-name=train"):
        assert expected in call, (expected, call)
    for job in (1, 2, 3):
        text = (tmp_path / "exp" / "log" / f"train.{job}.log").read_text().splitlines()
        assert text[0] == f"# echo task {job}"
        assert f"task {job}" in text
        assert text[-1].startswith("# Ended (code 0)")
        assert text[-2] == "# Accounting: time=0 threads=4" or text[-2].endswith("threads=4")


def test_slurm_sbatch_failures_are_counted(repo, tmp_path, fake_slurm):
    env, _ = fake_slurm
    log = tmp_path / "log" / "f.JOB.log"
    out = runner(repo, "slurm.py", "JOB=1:4", str(log), "test", "JOB", "-le", "1", env=env)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0] == f"slurm.py: 3 / 4 failed, see {tmp_path}/log/f.*.log"
    assert lines[1:4] == [f"slurm.py: the end of {tmp_path}/log/f.2.log:", "  # test 2 -le 1",
                          f"slurm.py: the end of {tmp_path}/log/f.3.log:"]
    assert lines[-1] == "slurm.py: ... and 1 more failing logs"


def test_slurm_srun_launcher(repo, tmp_path, fake_slurm):
    env, calls = fake_slurm
    log = tmp_path / "log" / "s.JOB.log"
    out = runner(repo, "slurm.py", "--launcher", "srun", "--mem", "2G", "JOB=1:2", str(log),
                 "echo", "JOB", env=env)
    assert out.returncode == 0, out.stderr
    recorded = calls()
    assert len(recorded) == 2
    assert all(c[0] == "srun" and "--mem=2G" in c and "--ntasks=1" in c for c in recorded)
    assert "2" in (tmp_path / "log" / "s.2.log").read_text().splitlines()


def test_slurm_without_sbatch_says_so(repo, tmp_path):
    env = dict(os.environ, PATH="/nonexistent")
    out = subprocess.run([sys.executable, str(repo / "utils" / "slurm.py"), "JOB=1:2",
                          str(tmp_path / "l.JOB.log"), "true"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "sbatch not found" in out.stderr


def test_a_second_runner_of_the_same_array_is_refused_while_the_first_runs(repo, tmp_path):
    log = tmp_path / "log" / "t.JOB.log"
    first = subprocess.Popen([str(repo / "utils" / "run.py"), "JOB=1:2", str(log), "sleep", "3"],
                             stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "log" / ".t.JOB.log.lock"
    for _ in range(100):
        if lock.is_file():
            break
        time.sleep(0.05)
    second = runner(repo, "run.py", "JOB=1:2", str(log), "true")
    assert second.returncode == 1
    held = json.loads(lock.read_text())
    assert held["pid"] == first.pid
    assert f"is in use by another run (pid {first.pid} on {held['host']}, since {held['since']}: " \
           f"utils/run.py JOB=1:2 {log} sleep 3)" in second.stderr
    # Another array in the same log directory is not held up.
    assert runner(repo, "run.py", "JOB=1:1", str(tmp_path / "log" / "u.JOB.log"), "true").returncode == 0
    assert first.wait(timeout=30) == 0
    assert not lock.exists()  # given back
    assert runner(repo, "run.py", "JOB=1:2", str(log), "true").returncode == 0


def test_runner_starts_no_new_job_when_its_parent_dies(repo, tmp_path):
    """kill -9 of the script that started the runner: the running job finishes, the rest
    are never started."""
    log = tmp_path / "log" / "t.JOB.log"
    parent = subprocess.Popen(
        ["bash", "-c", f"{repo}/utils/run.py --max-jobs-run 1 JOB=1:4 {log} sleep 1.5 ';' echo done JOB "
                       f"2> {tmp_path}/runner.err; echo never"], stdout=subprocess.PIPE, text=True)
    first_log = tmp_path / "log" / "t.1.log"
    for _ in range(100):
        if first_log.is_file():
            break
        time.sleep(0.05)
    parent.kill()
    parent.wait()
    lock = tmp_path / "log" / ".t.JOB.log.lock"
    for _ in range(200):  # the runner lives on until its running job ends
        if not lock.exists():
            break
        time.sleep(0.05)
    assert not lock.exists()
    assert "done 1" in first_log.read_text() and "# Ended (code 0)" in first_log.read_text()
    assert sorted(p.name for p in (tmp_path / "log").glob("t.*.log")) == ["t.1.log"]
    err = (tmp_path / "runner.err").read_text()
    assert f"the process that started it (pid {parent.pid}) is gone: not starting the 3 jobs left" in err
    assert "run.py: 3 / 4 failed" in err
