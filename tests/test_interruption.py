"""Stages killed with SIGKILL part-way, then run again, finish with the outputs of a run
that was never interrupted: features (steps.compute_fbank), the monophone model and the
alignments (steps.train_mono, steps.align), the soft labels (steps.dump_soft_labels) and AM
training (steps.train_am --resume).

Each program runs in its own process group (jobs included) on a few cuts of the tiny
recipe's outputs (the session's `tiny_recipe` run), from the recipe's directory so that the
relative paths inside its manifests resolve; every output goes to the test's own directory.
The kill comes when the program visibly is in the middle of its work (a job's archive
rewritten, a log line, a training state saved). Except for the monophone model, the
output directory first holds a finished run made from other inputs (other cuts, top-k or
seed), so that the interrupted run must also not mix its outputs with stale ones. After the rerun, a third run must find
everything up to date and leave it alone. Outputs are compared array by array (features,
alignments, soft labels) or tensor by tensor (models), not file by file: HDF5 and lilcom
archives hold the same arrays in files that need not be byte-identical.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from lhotse import CutSet, RecordingSet, SupervisionSet

from steps.core import checkpoint as ckpt_io
from steps.kd import soft_labels as sl

REPO = Path(__file__).resolve().parent.parent
NUM_CUTS = 24  # per test: a few seconds of work per run

RECIPE_LEVELS = ("senone", "phone", "subword")  # the tiny recipe's teachers (no --plm-teacher)


# ------------------------------------------------------------------ running and killing


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def run(args: list, cwd: Path, log: Path) -> str:
    """Runs `python -m args...` to the end; returns its output (asserts success)."""
    with open(log, "w") as out:
        result = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=cwd, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    assert result.returncode == 0, f"{args[0]} failed:\n{text[-3000:]}"
    return text


def run_and_kill(args: list, cwd: Path, log: Path, trigger: Callable[[], bool], timeout: float = 300) -> float:
    """Starts `python -m args...` in a new process group and SIGKILLs the whole group (the
    program and every job it started) as soon as trigger() holds. Fails if the program
    ends first. Returns the seconds it ran."""
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", *map(str, args)], cwd=cwd, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not trigger():
            if proc.poll() is not None:
                pytest.fail(f"{args[0]} ended (exit {proc.returncode}) before it could be interrupted:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() - start > timeout:
                pytest.fail(f"{args[0]}: no sign of progress after {timeout} s")
            time.sleep(0.01)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    # Nothing of the group may still be writing when the rerun starts.
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    return time.monotonic() - start


def stat_of(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def rewritten(path: Path) -> Callable[[], bool]:
    """True once `path` exists and is not the file it is now (new, replaced or rewritten)."""
    before = stat_of(path)
    return lambda: stat_of(path) not in (None, before)


def logged(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.is_file() and text in path.read_text(errors="replace")


def subset_cuts(src: Path, dst: Path, start: int, stop: int) -> Path:
    cuts = list(CutSet.from_file(src))[start:stop]
    assert len(cuts) == stop - start, f"{src} has too few cuts"
    CutSet.from_cuts(cuts).to_file(dst)
    return dst


def assert_up_to_date(args: list, cwd: Path, log: Path, outputs: list[Path]) -> None:
    """A third run skips the finished work and leaves its outputs alone."""
    before = {p: stat_of(p) for p in outputs}
    text = run(args, cwd, log)
    assert "up to date" in text or "nothing to do" in text, text[-2000:]
    assert {p: stat_of(p) for p in outputs} == before


# ------------------------------------------------------------------ features


def test_features_killed_and_rerun_equal_uninterrupted(tiny_recipe, tmp_path, monkeypatch):
    recipe = tiny_recipe.dir
    monkeypatch.chdir(recipe)  # the manifests' paths are relative to it
    src = recipe / "data" / "manifests"
    recordings = list(RecordingSet.from_file(src / "synth_recordings_train.jsonl.gz"))
    supervisions = SupervisionSet.from_file(src / "synth_supervisions_train.jsonl.gz")

    def manifests(directory: Path, start: int, stop: int) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        recs = RecordingSet.from_recordings(recordings[start:stop])
        recs.to_file(directory / "synth_recordings_train.jsonl.gz")
        ids = {r.id for r in recs}
        SupervisionSet.from_segments([s for s in supervisions if s.recording_id in ids]).to_file(
            directory / "synth_supervisions_train.jsonl.gz")
        return directory

    def args(manifest_dir: Path, out: Path, nj: int = 2) -> list:
        return ["steps.compute_fbank", "--manifest-dir", manifest_dir, "--corpus", "synth", "--parts", "train",
                "--out-dir", out, "--nj", nj]

    wanted = manifests(tmp_path / "manifests", 0, NUM_CUTS)
    # A finished run on other recordings, then the wanted ones, killed while the jobs write.
    out = tmp_path / "out"
    stale = manifests(tmp_path / "manifests_stale", NUM_CUTS, NUM_CUTS + 8)
    run(args(stale, out, nj=1), recipe, tmp_path / "stale.log")
    feats_dir = out / "synth_feats_train"
    trigger = rewritten(feats_dir / "feats-1.lca")
    run_and_kill(args(wanted, out), recipe, tmp_path / "killed.log", trigger)
    assert not (feats_dir / ".done").exists() and not (out / "synth_cuts_train.jsonl.gz").exists()

    text = run(args(wanted, out), recipe, tmp_path / "rerun.log")
    assert "not finished" in text
    # The uninterrupted reference: the recipe's own features of these recordings (each
    # cut's features depend on its audio alone, not on the job that computed them).
    got = {c.id: c for c in CutSet.from_file(out / "synth_cuts_train.jsonl.gz")}
    ref = {c.id: c for c in CutSet.from_file(recipe / "data" / "fbank" / "synth_cuts_train.jsonl.gz")
           if c.id in got}
    assert len(got) == NUM_CUTS and sorted(got) == sorted(ref)
    for cut_id, cut in ref.items():
        assert got[cut_id].num_frames == cut.num_frames
        np.testing.assert_array_equal(got[cut_id].load_features(), cut.load_features())
        assert got[cut_id].supervisions == cut.supervisions
    assert_up_to_date(args(wanted, out), recipe, tmp_path / "again.log", [out / "synth_cuts_train.jsonl.gz"])


# ------------------------------------------------------------------ alignment

SMALL_MONO = """\
topology: {states_per_phone: 3, silence_states: 3}
model: {hidden_dim: 64, layers: [[3, 1], [3, 1], [1, 1]], dropout: 0.1}
realign_model: {hidden_dim: 64, layers: [[1, 1], [1, 1]], dropout: 0.1}
training:
  flat_start_epochs: 3
  viterbi_rounds: 1
  epochs_per_round: 1
  max_frames_per_batch: 1500
  seed: 1
"""


def test_monophone_training_killed_and_rerun_equal_uninterrupted(tiny_recipe, tmp_path, monkeypatch):
    recipe = tiny_recipe.dir
    monkeypatch.chdir(recipe)  # the manifests' paths are relative to it
    config = tmp_path / "mono.yaml"
    config.write_text(SMALL_MONO)
    cuts = subset_cuts(recipe / "data" / "fbank" / "synth_cuts_train.jsonl.gz", tmp_path / "cuts.jsonl.gz",
                       0, 16)

    def args(exp: Path) -> list:
        return ["steps.train_mono", "--config", config, "--cuts", cuts, "--lang-dir", recipe / "data" / "lang",
                "--exp-dir", exp]

    run(args(tmp_path / "ref"), recipe, tmp_path / "ref.log")
    exp = tmp_path / "exp"
    run_and_kill(args(exp), recipe, tmp_path / "killed.log",
                 logged(exp / "log" / "train_mono.log", "Flat start epoch 1:"))
    assert not (exp / ".done").exists() and not (exp / "final.pt").exists()
    run(args(exp), recipe, tmp_path / "rerun.log")
    # Training starts again from the seed: the same model, bit for bit (CPU, same threads).
    ref, got = ckpt_io.load(tmp_path / "ref" / "final.pt"), ckpt_io.load(exp / "final.pt")
    assert ref["state_dict"].keys() == got["state_dict"].keys()
    for name, value in ref["state_dict"].items():
        assert torch.equal(got["state_dict"][name], value), name
    assert torch.equal(got["log_priors"], ref["log_priors"])
    assert (exp / "topology.json").read_text() == (tmp_path / "ref" / "topology.json").read_text()
    assert_up_to_date(args(exp), recipe, tmp_path / "again.log", [exp / "final.pt"])


def test_alignment_killed_and_rerun_equal_uninterrupted(tiny_recipe, tmp_path, monkeypatch):
    recipe = tiny_recipe.dir
    monkeypatch.chdir(recipe)  # the manifests' paths are relative to it
    train = recipe / "data" / "fbank" / "synth_cuts_train.jsonl.gz"
    wanted = subset_cuts(train, tmp_path / "cuts.jsonl.gz", 0, NUM_CUTS)

    def args(cuts: Path, out: Path, nj: int = 2) -> list:
        return ["steps.align", "--model", recipe / "exp" / "mono" / "final.pt", "--cuts", cuts,
                "--lang-dir", recipe / "data" / "lang", "--part", "sub", "--out-dir", out, "--nj", nj]

    run(args(wanted, tmp_path / "ref"), recipe, tmp_path / "ref.log")
    # A finished alignment of other cuts, then the wanted ones, killed while a job writes
    # the arrays that the finished run's manifest points at.
    out = tmp_path / "out"
    stale = subset_cuts(train, tmp_path / "stale.jsonl.gz", NUM_CUTS, NUM_CUTS + 8)
    run(args(stale, out, nj=1), recipe, tmp_path / "stale.log")
    run_and_kill(args(wanted, out), recipe, tmp_path / "killed.log", rewritten(out / "ali_sub" / "mono_ali.1.h5"))
    assert not (out / ".sub" / ".done").exists() and not (out / "cuts_sub.jsonl.gz").exists()

    text = run(args(wanted, out), recipe, tmp_path / "rerun.log")
    assert "not finished" in text
    ref = {c.id: c for c in CutSet.from_file(tmp_path / "ref" / "cuts_sub.jsonl.gz")}
    got = {c.id: c for c in CutSet.from_file(out / "cuts_sub.jsonl.gz")}
    assert len(ref) >= NUM_CUTS - 2 and sorted(got) == sorted(ref)
    for cut_id, cut in ref.items():
        np.testing.assert_array_equal(got[cut_id].load_custom("mono_ali"), cut.load_custom("mono_ali"))
        for key in ("ali_phone", "ali_word"):
            assert got[cut_id].supervisions[0].alignment[key] == cut.supervisions[0].alignment[key]
    for name in ("unaligned_sub.txt", "pron_counts_sub.txt"):
        assert (out / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    assert_up_to_date(args(wanted, out), recipe, tmp_path / "again.log", [out / "cuts_sub.jsonl.gz"])


# ------------------------------------------------------------------ soft labels


def test_soft_label_dump_killed_and_rerun_equal_uninterrupted(tiny_recipe, tmp_path, monkeypatch):
    recipe = tiny_recipe.dir
    monkeypatch.chdir(recipe)  # the manifests' paths are relative to it
    wanted = subset_cuts(recipe / "exp" / "senone_ali" / "cuts_train.jsonl.gz", tmp_path / "cuts.jsonl.gz",
                         0, NUM_CUTS)
    (bpe_model,) = recipe.glob("data/lang_bpe_*/bpe.model")

    def args(out: Path, top_k: int, nj: int = 2) -> list:
        return ["steps.dump_soft_labels", "--cuts", wanted, "--lang-dir", recipe / "data" / "lang",
                "--tree", recipe / "exp" / "tree",
                "--bpe-model", bpe_model, "--teachers", *[recipe / "exp" / f"lm_{level}" for level in RECIPE_LEVELS],
                "--top-k", top_k, "--temperature", 1.0, "--out-dir", out, "--corpus", "synth", "--nj", nj]

    run(args(tmp_path / "ref", 8), recipe, tmp_path / "ref.log")
    # A finished dump with another top-k, then the wanted one, killed while the jobs
    # rewrite the arrays the finished dump's manifest points at.
    out = tmp_path / "out"
    run(args(out, 4, nj=1), recipe, tmp_path / "stale.log")
    run_and_kill(args(out, 8), recipe, tmp_path / "killed.log", rewritten(out / "synth_train_phone.1.h5"))
    assert not (out / ".synth_train" / ".done").exists() and not (out / "synth_cuts_train.jsonl.gz").exists()

    text = run(args(out, 8), recipe, tmp_path / "rerun.log")
    assert "inputs changed" in text or "not finished" in text
    ref = {c.id: c for c in CutSet.from_file(tmp_path / "ref" / "synth_cuts_train.jsonl.gz")}
    got = {c.id: c for c in CutSet.from_file(out / "synth_cuts_train.jsonl.gz")}
    assert len(ref) == NUM_CUTS and sorted(got) == sorted(ref)
    for cut_id, cut in ref.items():
        assert got[cut_id].custom["kd_info"]["top_k"] == 8
        np.testing.assert_array_equal(got[cut_id].load_custom("senone_ali"), cut.load_custom("senone_ali"))
        for level in RECIPE_LEVELS:
            a, b = sl.load_soft_labels(cut, level), sl.load_soft_labels(got[cut_id], level)
            for kind in sl.FIELDS:
                np.testing.assert_array_equal(getattr(b, kind), getattr(a, kind), err_msg=f"{cut_id} {level} {kind}")
    assert_up_to_date(args(out, 8), recipe, tmp_path / "again.log", [out / "synth_cuts_train.jsonl.gz"])


# ------------------------------------------------------------------ AM training


def test_am_training_killed_and_resumed_equals_uninterrupted(tiny_recipe, tmp_path, monkeypatch):
    recipe = tiny_recipe.dir
    monkeypatch.chdir(recipe)  # the manifests' paths are relative to it
    conf = recipe / "conf"
    train = subset_cuts(recipe / "data" / "kd" / "synth_cuts_train.jsonl.gz", tmp_path / "train.jsonl.gz",
                        0, 2 * NUM_CUTS)
    dev = subset_cuts(recipe / "exp" / "senone_ali" / "cuts_dev.jsonl.gz", tmp_path / "dev.jsonl.gz", 0, 8)
    # Dropout and SpecAugment on, so that the resumed run must restore every RNG; a state
    # saved every 2 steps, so that the kill falls between saves.
    noisy = tmp_path / "noisy.yaml"
    noisy.write_text("model:\n  dropout: 0.2\ndata:\n  max_duration: 20\n  spec_augment:\n    enabled: true\n"
                     "train:\n  num_epochs: 2\n  save_every_steps: 2\n")

    def args(exp: Path, seed: int) -> list:
        return ["steps.train_am", "--config", conf / "am_hier.yaml", "--override", conf / "am_tiny.yaml",
                "--override", noisy, "--cuts", train, "--dev-cuts", dev, "--exp-dir", exp, "--seed", seed,
                "--senone-counts", recipe / "exp" / "senone_ali" / "senone_counts.txt", "--lm-dir", recipe / "exp",
                "--data-cache", "none", "--num-threads", 1, "--resume"]

    run(args(tmp_path / "ref", 3), recipe, tmp_path / "ref.log")
    # A finished run with another seed leaves a state.pt that must not be resumed; then the
    # wanted run is killed after it saved a state of its own.
    exp = tmp_path / "exp"
    run(args(exp, 5), recipe, tmp_path / "stale.log")
    run_and_kill(args(exp, 3), recipe, tmp_path / "killed.log", rewritten(exp / "state.pt"))
    assert not (exp / ".done").exists() and not (exp / "final.pt").exists()
    killed = (tmp_path / "killed.log").read_text()
    assert "saved for other inputs or settings" in killed and "seed: 5 -> 3" in killed

    text = run(args(exp, 3), recipe, tmp_path / "rerun.log")
    assert "resumed from" in text
    # On CPU the resumed run repeats the uninterrupted one exactly (same batches, RNG
    # states, optimizer and scheduler states), so the models are equal bit for bit.
    for name in ("epoch-1.pt", "epoch-2.pt", "final.pt"):
        ref, got = ckpt_io.load(tmp_path / "ref" / name), ckpt_io.load(exp / name)
        assert ref["state_dict"].keys() == got["state_dict"].keys()
        for key, value in ref["state_dict"].items():
            torch.testing.assert_close(got["state_dict"][key], value, rtol=0, atol=0, msg=f"{name} {key}")
    assert_up_to_date(args(exp, 3), recipe, tmp_path / "again.log", [exp / "final.pt"])


# ------------------------------------------------------------------ the markers themselves


def test_up_to_date_follows_inputs_settings_outputs_and_force(tmp_path, caplog):
    from steps.core import atomic

    caplog.set_level(logging.INFO)
    data, out = tmp_path / "data.txt", tmp_path / "out"
    data.write_text("a\n")
    lang = tmp_path / "lang"
    lang.mkdir()
    atomic.mark_done(lang, {"words": 3})
    (out / "result.txt").parent.mkdir()
    (out / "result.txt").write_text("done\n")

    def fingerprint(**settings):
        return atomic.inputs_fingerprint([data, lang, None], **settings)

    assert not atomic.up_to_date(out, fingerprint(k=1))  # never finished
    assert "not finished" in caplog.text
    atomic.mark_done(out, {"rows": 1}, fingerprint(k=1))
    assert atomic.done_with(out, fingerprint(k=1))
    assert atomic.up_to_date(out, fingerprint(k=1), outputs=[out / "result.txt"])
    assert "up to date" in caplog.text
    assert not atomic.up_to_date(out, fingerprint(k=1), force=True)
    assert "--force given" in caplog.text

    caplog.clear()
    assert not atomic.up_to_date(out, fingerprint(k=2))
    assert "inputs changed: setting k: 1 -> 2" in caplog.text
    caplog.clear()
    data.write_text("a\nb\n")  # an input rewritten
    assert not atomic.up_to_date(out, fingerprint(k=1))
    assert f"input {data} changed" in caplog.text
    atomic.mark_done(out, {}, fingerprint(k=1))
    caplog.clear()
    atomic.mark_done(lang, {"words": 40})  # an input directory remade: its .done is rewritten
    assert not atomic.up_to_date(out, fingerprint(k=1))
    assert f"input {lang} changed" in caplog.text
    atomic.mark_done(out, {}, fingerprint(k=1))
    assert atomic.up_to_date(out, fingerprint(k=1))
    (out / "result.txt").unlink()  # an output lost
    assert not atomic.up_to_date(out, fingerprint(k=1), outputs=[out / "result.txt"])
    atomic.clear_done(out)
    assert not atomic.is_done(out) and not atomic.done_with(out, fingerprint(k=1))
    # a marker of an older format is not taken for a match
    atomic.mark_done(out, {"fingerprint": "0123abcd"})
    assert atomic.redo_reason(out, fingerprint(k=1)).startswith("inputs changed: the marker was written by an older")
