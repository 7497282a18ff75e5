"""The shared stages (utils/stages.sh) redo what a changed setting touches, and a stage
run before the stages it reads from says which file is missing and which stage makes it.

Every program decides by the fingerprint of its own inputs and settings, so changing
--num-leaves after stage 5 rebuilds the tree (not its statistics) and redoes the senone
alignments made through it. The synthetic recipe's copy reuses the tiny run's data and
stage 4-5 outputs (copied, so the session's run stays as it was);
tests/test_librispeech_recipe.py does the same on the LibriSpeech recipe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_recipe
from lhotse import CutSet

from steps.tree.decision_tree import Tree


def senone_ids(cuts_path) -> np.ndarray:
    return np.concatenate([np.asarray(c.load_custom("senone_ali")).reshape(-1) for c in CutSet.from_file(cuts_path)])


def test_changed_num_leaves_redoes_stage_5(tiny_recipe, tmp_path, monkeypatch):
    old = tiny_recipe.dir
    recipe = copy_recipe(tmp_path / "root")
    (recipe / "data").symlink_to(old / "data")  # only read by stage 5
    for name in ("mono", "mono_ali", "tree", "senone_conv", "aligner", "senone_ali"):
        shutil.copytree(old / "exp" / name, recipe / "exp" / name, symlinks=True)  # keeps mtimes
    # The old tree's size depends on the machine's floats (158-162 senones measured), but
    # its splitting ran to the budget of 200 leaves, more than the new budget allows.
    old_tree_text = (old / "exp" / "tree" / "tree.txt").read_text()
    assert json.loads((old / "exp" / "tree" / "build_info.json").read_text())["leaves_after_split"] > 150

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(["./run.sh", "--config", "conf/tiny.conf", "--stage", "5", "--stop-stage", "5",
                          "--num-leaves", "150"], cwd=recipe, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-5000:]
    log = run.stdout + run.stderr
    assert "exp/tree statistics: up to date" in log  # the statistics do not depend on the budget
    assert "setting num_leaves: 200 -> 150" in log

    tree = Tree.load(recipe / "exp" / "tree")
    assert tree.num_senones <= 150 and (recipe / "exp" / "tree" / "tree.txt").read_text() != old_tree_text
    assert json.loads((recipe / "exp" / "tree" / "build_info.json").read_text())["num_senones"] == tree.num_senones
    # The folders downstream carry the new tree and were remade with it.
    for name in ("senone_conv", "senone_ali"):
        assert (recipe / "exp" / name / "tree.txt").read_text() == (recipe / "exp" / "tree" / "tree.txt").read_text()
        assert (recipe / "exp" / name / "topology.json").read_text() == \
            (old / "exp" / "mono" / "topology.json").read_text()
    monkeypatch.chdir(recipe)  # cuts name their arrays relative to the recipe
    for part in ("train", "dev", "test"):
        ids = senone_ids(recipe / "exp" / "senone_ali" / f"cuts_{part}.jsonl.gz")
        assert ids.max() < tree.num_senones
    train = senone_ids(recipe / "exp" / "senone_ali" / "cuts_train.jsonl.gz")
    assert len(np.unique(train)) > 0.8 * tree.num_senones  # the new tree is used (measured: 97% of its senones)
    counts = (recipe / "exp" / "senone_ali" / "senone_counts.txt").read_text().splitlines()
    assert len(counts) == tree.num_senones
    assert (recipe / "exp" / "aligner" / "final.pt").stat().st_mtime > (old / "exp" / "aligner" / "final.pt").stat().st_mtime


def test_subset_cuts_takes_the_shortest_with_enough_words():
    from types import SimpleNamespace

    from steps.subset_cuts import select

    def cut(cut_id, duration, text):
        return SimpleNamespace(id=cut_id, duration=duration, supervisions=[SimpleNamespace(text=text)])

    cuts = [cut("a", 3.0, "ONE TWO THREE"), cut("b", 1.0, "CHAPTER ONE"), cut("c", 2.0, "A B C D"),
            cut("d", 2.0, "E F G"), cut("e", 5.0, "H I J")]
    assert [c.id for c in select(cuts, 2, "shortest", min_words=3)] == ["c", "d"]  # input order, ties by id
    assert [c.id for c in select(cuts, 0, "shortest")] == ["a", "b", "c", "d", "e"]
    assert [c.id for c in select(cuts, 5, "shortest", min_words=3)] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("stage, missing, maker", [
    (8, "data/kd/synth_cuts_train.jsonl.gz", 7),
    (5, "exp/mono_ali/cuts_train.jsonl.gz", 4),
    (9, "exp/am_baseline_s1/final.pt", 8),
    (4, "data/fbank/synth_cuts_train.jsonl.gz", 2),
])
def test_a_stage_before_its_inputs_names_the_missing_file_and_its_stage(tmp_path, stage, missing, maker):
    """On an empty recipe directory a stage stops before any program starts, naming each
    missing input with the stage that makes it and the earliest stage to run."""
    recipe = copy_recipe(tmp_path / "root")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run(["./run.sh", "--config", "conf/tiny.conf", "--stage", str(stage), "--stop-stage",
                          str(stage)], cwd=recipe, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert f"Stage {stage} (" in log and f"no such file {missing}; stage {maker} (" in log, log[-3000:]
    earliest = min(int(m) for m in re.findall(r"no such file \S+; stage (\d+)", log))
    assert f"Stage {stage} cannot run before stage {earliest}: run ./run.sh --stage {earliest}" in log
    assert "No such file or directory" not in log and "Traceback" not in log  # nothing else ran
    assert not (recipe / "exp").exists() or not any((recipe / "exp").iterdir())


@pytest.mark.parametrize("stage", [7, 9])
def test_a_stage_that_reads_dev_says_so_when_the_corpus_has_none(tmp_path, stage):
    recipe = copy_recipe(tmp_path / "root")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run(["./run.sh", "--config", "conf/tiny.conf", "--eval-parts", "test", "--stage", str(stage),
                          "--stop-stage", str(stage)], cwd=recipe, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert f'Stage {stage} (' in log and 'reads the dev part, but eval_parts ("test") has no dev' in log, log[-3000:]
    assert "no such file" not in log  # not the misleading "stage 5 makes it"


RECORDER = """#!/usr/bin/env bash
# stands in for the job runner: records its command line and stops the stage
echo "$*" >> "$(dirname "$0")/runner_calls.txt"
exit 1
"""


def stage_4_command(tmp_path, *options: str) -> str:
    """The runner's command line of the flat start (stage 4), the inputs faked and the
    runner replaced by one that records it."""
    recipe = copy_recipe(tmp_path / "root")
    for name in ("data/lang/phones.txt", "data/lang/words.txt", "data/lang/lexicon.txt",
                 *(f"data/fbank/synth_cuts_{p}.jsonl.gz" for p in ("train", "dev", "test"))):
        (recipe / name).parent.mkdir(parents=True, exist_ok=True)
        (recipe / name).touch()
    (recipe / "recorder.sh").write_text(RECORDER)
    (recipe / "recorder.sh").chmod(0o755)
    with open(recipe / "cmd.sh", "a") as f:
        f.write('export gpu_cmd="$PWD/recorder.sh"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "3"  # a machine's default, which the recipe must not follow
    run = subprocess.run(["./run.sh", "--config", "conf/tiny.conf", "--stage", "4", "--stop-stage", "4", *options],
                         cwd=recipe, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and (recipe / "runner_calls.txt").is_file(), run.stderr[-3000:]
    return (recipe / "runner_calls.txt").read_text()


def program_threads(line: str) -> str:
    words = line.split("steps.train_mono", 1)[1].split()
    return words[words.index("--num-threads") + 1]


def test_the_flat_start_runs_on_the_recipes_thread_count(tmp_path):
    # The flat-start model changes with torch's thread count, whose default is the machine's
    # core count: stage 4 gives the program and the runner the recipe's mono_threads.
    line = stage_4_command(tmp_path / "default")
    assert line.startswith("--num-threads 2 exp/mono/log/train_mono.job.log python -m steps.train_mono "), line
    assert program_threads(line) == "2"
    line = stage_4_command(tmp_path / "one", "--mono-threads", "1")
    assert line.startswith("--num-threads 1 ") and program_threads(line) == "1"
    line = stage_4_command(tmp_path / "torch", "--mono-threads", "0")  # torch's default: the runner is not told
    assert line.startswith("exp/mono/log/train_mono.job.log ") and program_threads(line) == "0"


def test_an_older_runs_senone_alignments_are_read_under_their_old_name(tmp_path):
    """exp/senone_ali was exp/tri_ali (and exp/aligner exp/tri1): a run made before the rename
    goes on from its stage 5 outputs; where the new folder is there, it is the one read."""
    repo = Path(__file__).resolve().parent.parent

    def read() -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", f". {repo}/utils/log.sh; . {repo}/utils/exp_dirs.sh; senone_ali_dir"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30)

    assert read().stdout.strip() == "exp/senone_ali"  # neither: where stage 5 writes
    (tmp_path / "exp" / "tri_ali").mkdir(parents=True)
    old = read()
    assert old.stdout.strip() == "exp/tri_ali" and "an older run's name of exp/senone_ali" in old.stderr
    (tmp_path / "exp" / "senone_ali").mkdir()
    new = read()
    assert new.stdout.strip() == "exp/senone_ali" and new.stderr == ""


def test_job_lines_are_written_from_words_and_run_as_those_words(tmp_path):
    """A job file line (utils/job_line.sh) keeps a value with spaces or quotes one word when
    utils/run_line.sh runs it, and plain words stay as they are for a reader."""
    repo = Path(__file__).resolve().parent.parent
    jobs = tmp_path / "jobs.txt"
    script = (f". {repo}/utils/job_line.sh; job_line printf '<%s>' --lm-weights '3 4 5' \"it's\" '' a/b_c.txt "
              f"> {jobs}; job_line printf '<%s>' '$HOME' >> {jobs}")
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    lines = jobs.read_text().splitlines()
    assert lines[0].startswith("printf '<%s>' --lm-weights '3 4 5' ") and lines[0].endswith(" '' a/b_c.txt")
    ran = [subprocess.run([f"{repo}/utils/run_line.sh", str(jobs), str(n)], capture_output=True, text=True,
                          timeout=30).stdout.splitlines()[-1] for n in (1, 2)]
    assert ran == ["<--lm-weights><3 4 5><it's><><a/b_c.txt>", "<$HOME>"]
