"""utils/slurm.py against a real one-node Slurm cluster started by the test: munged,
slurmctld and slurmd from Debian's slurm-wlm, a slurm.conf written under a temporary
folder (this host as controller and only node, its own ports, state / spool / log
directories, munge socket), stopped at the end.

Checks a throttled job array (no two tasks of a `%1` array overlap in time), a failing
task counted and reported as utils/run.py does, and the tiny recipe's stages 2 and 8 with
cmd.sh pointing at utils/slurm.py, each job's log framed by its header and trailer.

Skipped, with the reason, when the binaries are missing, the test does not run as root
(SlurmUser=root) or the daemons do not come up. The tiny recipe's outputs are taken from
LM2AM_TINY_RECIPE (a finished `run.sh --config conf/tiny.conf`, e.g.
/work/runs/tiny/egs/synth/s5) when it is set, otherwise from the session's tiny run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import copy_recipe

REPO = Path(__file__).resolve().parent.parent
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "sinfo", "squeue", "munge")
HEADER = re.compile(r"\A# .+\n# Started at .+\n")
TRAILER = re.compile(r"# Accounting: time=\d+ threads=\d+\n# Ended \(code (\d+)\) at .+, elapsed time \d+ seconds\n\Z")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _munge_key() -> Path:
    """/etc/munge/munge.key, created (1 KiB of random bytes, owned by munge, 0400) if missing."""
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        shutil.chown(key.parent, "munge", "munge")
        shutil.chown(key, "munge", "munge")
    return key


def _slurm_conf(base: Path, host: str, ports: list[int], munge_socket: Path) -> str:
    cpus = os.cpu_count() or 1
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"""ClusterName=lm2amtest
SlurmctldHost={host}
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory={max(1, mem_mb - 1024)} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not written)"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """Environment (SLURM_CONF) of a running one-node cluster; the daemons stop afterwards."""
    missing = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if missing:
        pytest.skip(f"Slurm / munge not installed (missing {', '.join(missing)}; Debian: slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the one-node cluster runs its daemons as root (SlurmUser=root); not root here")
    # a short path: a unix socket's path is limited to ~100 bytes
    base = Path(tmp_path_factory.mktemp("slurm"))
    for name in ("state", "spool", "log", "munge"):
        (base / name).mkdir()
    (base / "munge").chmod(0o755)
    host = socket.gethostname().split(".")[0]
    munge_socket = base / "munge" / "munge.socket"
    conf = base / "slurm.conf"
    conf.write_text(_slurm_conf(base, host, _free_ports(2), munge_socket))
    env = dict(os.environ, SLURM_CONF=str(conf))
    processes: list[subprocess.Popen] = []
    try:
        key = _munge_key()
        commands = [
            [_which("munged"), "-F", "-f", f"--socket={munge_socket}", f"--key-file={key}",
             f"--pid-file={base}/munge/munged.pid", f"--log-file={base}/log/munged.log",
             f"--seed-file={base}/munge/munged.seed"],
            [_which("slurmctld"), "-D", "-f", str(conf)],
            [_which("slurmd"), "-D", "-f", str(conf)],
        ]
        for command in commands:
            processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                              stderr=open(base / "log" / f"{Path(command[0]).name}.stderr", "w")))
            if command is commands[0]:
                _wait(lambda: munge_socket.exists(), 10)
        up = _wait(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                          text=True).stdout.strip() == "idle", 60)
        dead = [p.args[0] for p in processes if p.poll() is not None]
        if not up or dead:
            pytest.skip("the Slurm daemons did not come up" + (f" ({', '.join(dead)} exited)" if dead else "")
                        + f"; slurmctld.log:\n{_tail(base / 'log' / 'slurmctld.log')}\n"
                        f"slurmd.log:\n{_tail(base / 'log' / 'slurmd.log')}")
        yield env
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def _check_framed(log: Path, command_word: str) -> int:
    """The log's header names the command and the start; its trailer gives the exit code
    and the time. Returns the exit code."""
    text = log.read_text()
    assert HEADER.match(text), f"{log} does not start with the command and the start time:\n{text[:300]}"
    assert command_word in text.splitlines()[0]
    trailer = TRAILER.search(text)
    assert trailer, f"{log} does not end with the exit code and the elapsed time:\n{text[-300:]}"
    return int(trailer.group(1))


def test_job_array_throttle_and_failure(slurm, tmp_path):
    log = tmp_path / "log" / "t.JOB.log"
    # each task records when it ran and under which Slurm job; task 2 fails
    command = ["sh", "-c", "echo task JOB array $SLURM_ARRAY_JOB_ID; date +%s.%N; sleep 2; "
               "date +%s.%N; test JOB -ne 2"]
    out = subprocess.run([sys.executable, str(REPO / "utils" / "slurm.py"), "--max-jobs-run", "1",
                          "JOB=1:3", str(log), *command], env=slurm, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1, out.stderr
    # the same report as utils/run.py's
    assert out.stderr.splitlines()[0] == f"slurm.py: 1 / 3 failed, see {tmp_path}/log/t.*.log"
    # followed by the failing log's last lines, as utils/run.py shows them
    assert f"the end of {tmp_path}/log/t.2.log:" in out.stderr
    sbatch = (tmp_path / "log" / "q" / "t.sbatch").read_text()
    assert "--array=1-3%1" in sbatch
    spans = []
    for index in (1, 2, 3):
        path = tmp_path / "log" / f"t.{index}.log"
        assert _check_framed(path, "sh") == (1 if index == 2 else 0)
        lines = path.read_text().splitlines()
        task = next(line for line in lines if line.startswith("task "))
        assert re.fullmatch(rf"task {index} array \d+", task), f"not run as a Slurm array task: {task}"
        times = [float(line) for line in lines if re.fullmatch(r"\d+\.\d+", line)]
        spans.append((times[0], times[1]))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"the %1 throttle let tasks overlap: {spans}"


@pytest.fixture(scope="module")
def tiny_outputs(request) -> Path:
    """A finished tiny recipe run: LM2AM_TINY_RECIPE, else this session's."""
    given = os.environ.get("LM2AM_TINY_RECIPE")
    if given:
        path = Path(given)
        if not (path / "data" / "kd").is_dir():
            pytest.fail(f"LM2AM_TINY_RECIPE={given} is not a finished tiny run (no data/kd)")
        return path
    return request.getfixturevalue("tiny_recipe").dir


def test_tiny_recipe_stages_2_and_8_on_slurm(slurm, tmp_path, tiny_outputs):
    recipe = copy_recipe(tmp_path / "root")
    (recipe / "cmd.sh").write_text('export train_cmd="utils/slurm.py --mem 2G"\n'
                                   'export decode_cmd="utils/slurm.py --mem 2G"\n')
    # stage 8 reads the features, the soft labels, the senone alignments and the teachers'
    # vocabularies; stage 2 the manifests and the audio
    for part in ("data/manifests", "data/audio", "data/fbank", "data/kd", "exp/senone_ali"):
        shutil.copytree(tiny_outputs / part, recipe / part, ignore=shutil.ignore_patterns("log", "q"))
    for level in ("senone", "phone", "subword"):
        (recipe / "exp" / f"lm_{level}").mkdir(parents=True)
        shutil.copy2(tiny_outputs / "exp" / f"lm_{level}" / "tokens.txt", recipe / "exp" / f"lm_{level}")
    env = {k: v for k, v in slurm.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*options):
        out = subprocess.run(["./run.sh", "--config", "conf/tiny.conf", *options], cwd=recipe, env=env,
                             capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, f"run.sh {' '.join(options)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        return out

    # stage 8 before stage 2: the soft-label cuts point into the copied features
    run("--stage", "8", "--stop-stage", "8", "--systems", "baseline aux_phone", "--seeds", "1", "--aa-seeds", "")
    jobs = (recipe / "exp" / "am_jobs.txt").read_text().splitlines()
    assert len(jobs) == 2
    for index, system in ((1, "baseline"), (2, "aux_phone")):
        assert _check_framed(recipe / "exp" / "log" / f"train_am.{index}.log", "run_line.sh") == 0
        assert (recipe / "exp" / f"am_{system}_s1" / "final.pt").is_file()
    assert "--array=1-2%2" in (recipe / "exp" / "log" / "q" / "train_am.sbatch").read_text()

    before = {p.name: p.stat().st_mtime for p in (recipe / "data" / "fbank").glob("*.jsonl.gz")}
    run("--stage", "2", "--stop-stage", "2", "--force", "true")
    for part in ("train", "dev", "test"):
        cuts = recipe / "data" / "fbank" / f"synth_cuts_{part}.jsonl.gz"
        assert cuts.stat().st_mtime > before[cuts.name], f"{cuts} not rewritten"
        for job in (1, 2):
            assert _check_framed(recipe / "data" / "fbank" / "log" / f"fbank_synth_{part}.{job}.log",
                                 "steps.compute_fbank") == 0
        assert (recipe / "data" / "fbank" / "log" / "q" / f"fbank_synth_{part}.sbatch").is_file()
