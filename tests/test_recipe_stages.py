"""The shared stages (utils/stages.sh) redo what a changed setting touches.

Every program decides by the fingerprint of its own inputs and settings, so changing
--num-leaves after stage 5 rebuilds the tree (not its statistics) and redoes the senone
alignments made through it. The synthetic recipe's copy reuses the tiny run's data and
stage 4-5 outputs (copied, so the session's run stays as it was);
tests/test_librispeech_recipe.py does the same on the LibriSpeech recipe.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
from conftest import copy_recipe
from lhotse import CutSet

from steps.tree.decision_tree import Tree


def senone_ids(cuts_path) -> np.ndarray:
    return np.concatenate([np.asarray(c.load_custom("senone_ali")).reshape(-1) for c in CutSet.from_file(cuts_path)])


def test_changed_num_leaves_redoes_stage_5(tiny_recipe, tmp_path, monkeypatch):
    old = tiny_recipe.dir
    recipe = copy_recipe(tmp_path / "root")
    (recipe / "data").symlink_to(old / "data")  # only read by stage 5
    for name in ("mono", "mono_ali", "tree", "tri_conv", "tri1", "tri_ali"):
        shutil.copytree(old / "exp" / name, recipe / "exp" / name, symlinks=True)  # keeps mtimes
    old_tree = Tree.load(old / "exp" / "tree")
    assert old_tree.num_senones > 150

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
    assert tree.num_senones <= 150
    assert json.loads((recipe / "exp" / "tree" / "build_info.json").read_text())["num_senones"] == tree.num_senones
    # The folders downstream carry the new tree and were remade with it.
    for name in ("tri_conv", "tri_ali"):
        assert (recipe / "exp" / name / "tree.txt").read_text() == (recipe / "exp" / "tree" / "tree.txt").read_text()
        assert (recipe / "exp" / name / "topology.json").read_text() == \
            (old / "exp" / "mono" / "topology.json").read_text()
    monkeypatch.chdir(recipe)  # cuts name their arrays relative to the recipe
    for part in ("train", "dev", "test"):
        ids = senone_ids(recipe / "exp" / "tri_ali" / f"cuts_{part}.jsonl.gz")
        assert ids.max() < tree.num_senones
    train = senone_ids(recipe / "exp" / "tri_ali" / "cuts_train.jsonl.gz")
    assert len(np.unique(train)) > 100  # the new budget is used
    counts = (recipe / "exp" / "tri_ali" / "senone_counts.txt").read_text().splitlines()
    assert len(counts) == tree.num_senones
    assert (recipe / "exp" / "tri1" / "final.pt").stat().st_mtime > (old / "exp" / "tri1" / "final.pt").stat().st_mtime


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
