"""AM training: config errors name file and key; a tiny end-to-end run (outputs, scorer,
priors, dev accuracy per head); newbob's decisions on the dev losses a run saw; --resume
gives the uninterrupted result; two DDP processes compute the single-process gradient of
the same global batch, and the entry point runs under torchrun.

Length: every test here trains on the one module-scoped synthetic corpus (`data`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet

from steps.am.config import TrainConfig, config_from_checkpoint, load_am_config, settings_for_fingerprint
from steps.am.cut_store import CutStore
from steps.am.model import model_from_checkpoint
from steps.train.schedule import NewbobDecision, newbob
from steps.am.priors import spread_subset
from steps.am.scorer import load_scorer
from steps.am.training import evaluate
from steps.core import checkpoint as ckpt_io
from steps.core.config import ConfigError
from steps.kd.soft_labels import load_soft_labels
from steps.toy.am_data import make_synthetic_am_data
from steps.train_am import main

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "egs" / "synth" / "s5" / "conf"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 12 phones in 40 senones: each (phone, state) has a senone of its own, so a phone head can learn
    return make_synthetic_am_data(tmp_path_factory.mktemp("am_train"), num_cuts=60, num_dev=8, num_phones=12,
                                  num_senones=40, num_subwords=30, top_k=3, mean_words=2.5,
                                  dev_soft_labels=True)


def args_for(data, exp_dir, system="aux_phone", extra_overrides=(), *more):
    argv = ["--config", str(CONF / f"am_{system}.yaml"), "--override", str(CONF / "am_tiny.yaml")]
    for o in extra_overrides:
        argv += ["--override", str(o)]
    return argv + ["--cuts", str(data["train"]), "--dev-cuts", str(data["dev"]), "--exp-dir", str(exp_dir),
                   "--seed", "3", "--senone-counts", str(data["senone_counts"]),
                   "--lm-dir", str(data["lm_dir"]), "--num-threads", "1", *more]


def free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ config errors


def test_config_errors_name_file_and_key(tmp_path):
    bad = write(tmp_path / "bad.yaml", "model:\n  hidden_dimm: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: model.hidden_dimm: unknown key"):
        load_am_config(bad)
    over = write(tmp_path / "over.yaml", "train:\n  lr: -1.0\n")
    with pytest.raises(ConfigError, match=r"over.yaml: train.lr: must be positive"):
        load_am_config(CONF / "am_baseline.yaml", [over])
    typo = write(tmp_path / "typo.yaml", "data:\n  max_duration: lots\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: data.max_duration: expected a number"):
        load_am_config(CONF / "am_hier.yaml", [typo])
    two = write(tmp_path / "two.yaml", "loss:\n  objective: hier\n" + "model:\n  aux_heads:\n"
                "    - {level: phone, layer: 2}\n")
    with pytest.raises(ConfigError, match=r"two.yaml: model.aux_heads: objective hier needs one head per level"):
        load_am_config(two)
    li = write(tmp_path / "li.yaml", "loss:\n  objective: li\n  li_lambda: 1.5\n")
    with pytest.raises(ConfigError, match=r"li.yaml: loss.li_lambda: must be in \[0, 1\]"):
        load_am_config(li)
    share = write(tmp_path / "share.yaml", "loss:\n  head_frame_share: 0\n")
    with pytest.raises(ConfigError, match=r"share.yaml: loss.head_frame_share: must be in \(0, 1\]"):
        load_am_config(CONF / "am_hier.yaml", [share])
    # loss weights belong to the loss section: the old place is named with the new one
    old = write(tmp_path / "old.yaml", "model:\n  aux_heads:\n    - {level: phone, layer: 4, beta: 0.3}\n")
    with pytest.raises(ConfigError, match=r"old.yaml: model.aux_heads\[0\].beta: unknown key.*"
                                          r"write it as loss.kd.<the head's level>.beta"):
        load_am_config(CONF / "am_aux_phone.yaml", [old])
    stray = write(tmp_path / "stray.yaml", "loss:\n  kd:\n    subword: {beta: 0.5}\n")
    with pytest.raises(ConfigError, match=r"stray.yaml: loss.kd.subword: no auxiliary head of level subword"):
        load_am_config(CONF / "am_aux_phone.yaml", [stray])
    heads = write(tmp_path / "heads.yaml", "loss:\n  objective: aux\n")
    with pytest.raises(ConfigError, match=r"heads.yaml: model.aux_heads: objective aux needs at least one head"):
        load_am_config(CONF / "am_baseline.yaml", [heads])
    # every system config loads, also with the tiny override
    for system in ("baseline", "li", "aux_senone", "aux_phone", "aux_subword", "hier"):
        tiny = load_am_config(CONF / f"am_{system}.yaml", [CONF / "am_tiny.yaml"])
        full = load_am_config(CONF / f"am_{system}.yaml")
        assert tiny.model.aux_heads == full.model.aux_heads and tiny.model.hidden_dim < full.model.hidden_dim
        assert tiny.loss == full.loss and set(full.loss.kd) == set(full.head_levels)


def test_config_composition(tmp_path):
    """A system file is its `base:` with its own lines merged on top; overrides then merge
    over both; an error names the file in the chain that set the key."""
    hier = load_am_config(CONF / "am_hier.yaml")
    assert hier.model.num_layers == 6 and hier.data.max_duration == 80  # from am_common.yaml
    assert [(h.level, h.layer) for h in hier.model.aux_heads] == [("senone", 2), ("phone", 4), ("subword", 6)]
    assert {lv: w.beta for lv, w in hier.loss.kd.items()} == {"senone": 0.3, "phone": 0.3, "subword": 0.3}
    flat = load_am_config(CONF / "am_hier.yaml", [CONF / "tune" / "hier.flat.yaml"])
    assert [h.layer for h in flat.model.aux_heads] == [6, 6, 6]
    assert {(w.beta, w.alpha) for w in flat.loss.kd.values()} == {(0.3, 0.0)}  # hier's weights kept
    heavier = load_am_config(CONF / "am_hier.yaml", [CONF / "tune" / "hier.beta1.0.yaml"])
    assert {(w.beta, w.alpha) for w in heavier.loss.kd.values()} == {(1.0, 0.0)}  # alpha kept from am_hier.yaml
    # the hard-label controls: their system's model and weight, on hard labels only
    for level in ("senone", "phone", "subword"):
        system, control = (load_am_config(CONF / f"am_aux_{level}{s}.yaml") for s in ("", "_hard"))
        assert control.model == system.model and control.loss.objective == "aux"
        assert (control.loss.kd[level].beta, control.loss.kd[level].alpha) == (0.0, system.loss.kd[level].beta)
    write(tmp_path / "common.yaml", "model:\n  num_layers: 3\ntrain:\n  lr: -1.0\n")
    system = write(tmp_path / "system.yaml", "base: common.yaml\nmodel:\n  hidden_dim: 32\n")
    with pytest.raises(ConfigError, match=r"common.yaml: train.lr: must be positive"):
        load_am_config(system)
    write(tmp_path / "common.yaml", "base: system.yaml\n")
    with pytest.raises(ConfigError, match=r"chain loops back"):
        load_am_config(system)


def test_checkpoints_with_the_old_layout_load():
    """Checkpoints written while beta and alpha were in model.aux_heads: the model loads,
    the weights come back in loss.kd."""
    config = load_am_config(CONF / "am_hier.yaml", [CONF / "am_tiny.yaml"])
    from steps.am.model import AcousticModel, checkpoint_dict
    from steps.core.config import to_dict

    model = AcousticModel(80, 40, config.model, {"senone": 40, "phone": 12, "subword": 30})
    checkpoint = checkpoint_dict(model, to_dict(config), torch.zeros(40), torch.ones(40))
    for where in (checkpoint["model_config"], checkpoint["config"]["model"]):  # as they were written
        for head in where["aux_heads"]:
            head.update(beta=0.3 if head["level"] != "phone" else 0.7, alpha=0.0)
    del checkpoint["config"]["loss"]["kd"]
    loaded = model_from_checkpoint(checkpoint)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    translated = config_from_checkpoint(checkpoint["config"])
    assert translated.model == config.model
    assert {lv: w.beta for lv, w in translated.loss.kd.items()} == {"senone": 0.3, "phone": 0.7, "subword": 0.3}


# ------------------------------------------------------------------ end to end and resume


def state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_end_to_end_and_resume(data, tmp_path):
    # dropout and SpecAugment on, so that the RNG states matter for the resumed run
    noisy = write(tmp_path / "noisy.yaml", "model:\n  dropout: 0.2\ndata:\n  max_duration: 20\n"
                  "  spec_augment:\n    enabled: true\ntrain:\n  num_epochs: 2\n  average_last: 2\n"
                  "loss:\n  kd:\n    phone: {beta: 1.0}\n")  # the head's weight the figures below were measured at
    full = tmp_path / "full"
    assert main(args_for(data, full, "aux_phone", [noisy])) == 0
    for name in ("final.pt", "epoch-1.pt", "epoch-2.pt", "state.pt", "priors.txt", "train_stats.json",
                 ".done", "skipped_train.txt"):
        assert (full / name).exists(), name
    assert any((full / "tensorboard").iterdir())
    stats = json.loads((full / "train_stats.json").read_text())
    assert stats["num_senones"] == 40 and stats["aux_units"] == {"phone": 12}
    dev = stats["final_dev"]
    assert dev["acc_main"] > 0.2  # 40 senones: chance is ~0.1 at best
    # the phone head learnt its teacher: 12 phones, chance ~0.08, an untrained head scored 0.10;
    # measured 0.38 after these 2 noisy epochs (0.95 after 10 plain ones)
    assert dev["acc_phone"] >= 0.25
    assert set(stats["epochs"][0]["train"]) == {"main_ce", "kd_phone", "total"}
    # held-out KL to the teacher (the dev cuts carry soft labels): the program's figure is
    # evaluate()'s on final.pt, and below that of the same model with its phone head
    # re-initialised (measured 1.47 against 1.72: 2 noisy epochs on 60 cuts)
    dev_store, _ = CutStore.load_or_build(data["dev"], None, ("phone",), required=())
    model = model_from_checkpoint(ckpt_io.load(full / "final.pt"))
    assert evaluate(model, dev_store, 20.0, torch.device("cpu"), ("phone",))["kd_phone"] == \
        pytest.approx(dev["kd_phone"], rel=1e-5)
    torch.manual_seed(0)
    for layer in (model.aux_heads["phone"].proj, model.aux_heads["phone"].output):
        layer.reset_parameters()
    untrained = evaluate(model, dev_store, 20.0, torch.device("cpu"), ("phone",))["kd_phone"]
    assert 0.0 < dev["kd_phone"] < 0.9 * untrained

    # final.pt: the average of epochs 1 and 2, a FrameScorer with the floored priors
    final = ckpt_io.load(full / "final.pt")
    e1, e2 = ckpt_io.load(full / "epoch-1.pt"), ckpt_io.load(full / "epoch-2.pt")
    key = "main_head.output.weight"
    torch.testing.assert_close(final["state_dict"][key], (e1["state_dict"][key] + e2["state_dict"][key]) / 2)
    scorer = load_scorer(full / "final.pt")
    cut = next(iter(CutSet.from_file(data["dev"])))
    post = scorer.log_posteriors(torch.from_numpy(cut.load_features()))
    assert post.shape == (cut.num_frames, 40)
    counts = np.array([int(line.split()[1]) for line in Path(data["senone_counts"]).read_text().splitlines()])
    priors = [line.split() for line in (full / "priors.txt").read_text().splitlines()]
    assert [int(p[1]) for p in priors] == counts.tolist()
    expected = np.log(np.maximum(counts / counts.sum(), 1e-5) / np.maximum(counts / counts.sum(), 1e-5).sum())
    np.testing.assert_allclose([float(p[2]) for p in priors], expected, atol=1e-5)
    np.testing.assert_allclose(scorer.log_priors.numpy(), expected, rtol=1e-5)

    # a finished run is not redone
    mtime = (full / "final.pt").stat().st_mtime
    assert main(args_for(data, full, "aux_phone", [noisy])) == 0
    assert (full / "final.pt").stat().st_mtime == mtime

    # interrupted in the middle of epoch 1, then resumed: the same models, bit for bit
    steps_per_epoch = stats["epochs"][0]["step"]
    assert steps_per_epoch >= 3
    part = tmp_path / "part"
    assert main(args_for(data, part, "aux_phone", [noisy], "--stop-after-steps",
                         str(steps_per_epoch // 2))) == 0
    assert not (part / "final.pt").exists() and (part / "state.pt").exists()
    assert main(args_for(data, part, "aux_phone", [noisy], "--resume")) == 0
    for name in ("epoch-1.pt", "epoch-2.pt", "final.pt"):
        assert state_dicts_equal(ckpt_io.load(full / name)["state_dict"], ckpt_io.load(part / name)["state_dict"]), name
    # what the floats depended on (README.md, Reproducibility); the resumed run keeps what it had before
    env = json.loads((full / "run_env.json").read_text())
    assert env["torch_threads"] == 1 and env["earlier"] == [] and env["versions"]["torch"]
    assert {"OMP_NUM_THREADS", "MKL_NUM_THREADS"} <= set(env["env"]) and "isa" in env["cpu"]
    resumed_env = json.loads((part / "run_env.json").read_text())
    assert [e["torch_threads"] for e in resumed_env["earlier"]] == [1] and resumed_env["torch_threads"] == 1
    # interrupted at an epoch end (state.pt after epoch 1), resumed
    ends = tmp_path / "ends"
    assert main(args_for(data, ends, "aux_phone", [noisy], "--stop-after-steps", str(steps_per_epoch + 1))) == 0
    assert main(args_for(data, ends, "aux_phone", [noisy], "--resume")) == 0
    assert state_dicts_equal(ckpt_io.load(full / "final.pt")["state_dict"],
                             ckpt_io.load(ends / "final.pt")["state_dict"])


def test_newbob_decisions_by_hand():
    config = TrainConfig(num_epochs=10, schedule="newbob", start_halving_impr=0.01, end_halving_impr=0.001)
    losses = [2.0, 1.5, 1.49, 1.485, 1.4849]
    # improvements: inf, 25%, 0.67% (< 1%: halving from here), 0.34%, 0.007% (< 0.1%: stop)
    assert [newbob(losses[:n], config).scale for n in range(1, 5)] == [1.0, 1.0, 0.5, 0.25]
    assert not any(newbob(losses[:n], config).stop for n in range(1, 5))
    assert newbob(losses, config) == NewbobDecision(0.25, True, True)
    # not before min_epochs: halving goes on
    late = TrainConfig(num_epochs=10, schedule="newbob", min_epochs=6)
    assert newbob(losses, late) == NewbobDecision(0.125, False, True)
    # a worse epoch is no improvement (it starts halving); the next is measured against the best
    assert newbob([2.0, 2.1], config) == NewbobDecision(0.5, False, True)
    assert newbob([2.0, 2.1, 1.9], config) == NewbobDecision(0.25, False, True)
    # num_epochs is the most
    assert newbob([3.0, 2.0], TrainConfig(num_epochs=2, average_last=1, schedule="newbob")).stop


def newbob_by_hand(losses: list[float], config) -> tuple[list[float], int]:
    """Kaldi's newbob rule written out, epoch by epoch, on the dev losses a run saw: the LR
    scale each epoch ran at, and the number of epochs after which the rule stops."""
    best, halving, scale, scales = math.inf, False, 1.0, []
    for epoch, loss in enumerate(losses, start=1):
        scales.append(scale)  # the scale the epochs before it decided
        improvement = math.inf if epoch == 1 else (best - loss) / best
        if halving and improvement < config.end_halving_impr and epoch >= config.min_epochs:
            return scales, epoch  # halving, and no longer improving enough: stop
        halving = halving or improvement < config.start_halving_impr
        if halving:
            scale *= config.halving_factor
        best = min(best, loss)
    return scales, config.num_epochs


def test_newbob_training_stops_on_dev_and_keeps_the_best_epoch(data, tmp_path):
    # The dev losses differ from machine to machine (float summation order), and with them
    # where newbob stops (here after 5 epochs, elsewhere after 6): every decision is checked
    # against the losses this run saw, not against one machine's trajectory.
    schedule = write(tmp_path / "newbob.yaml", "train:\n  num_epochs: 6\n  average_last: 1\n"
                     "  schedule: newbob\n  start_halving_impr: 0.5\n  end_halving_impr: 0.1\n"
                     "  warmup_steps: 1\nloss:\n  kd:\n    phone: {beta: 1.0}\n")
    run = tmp_path / "run"
    assert main(args_for(data, run, "aux_phone", [schedule])) == 0
    stats = json.loads((run / "train_stats.json").read_text())
    history = stats["epochs"]
    losses = [h["dev_loss"] for h in history]
    assert losses == [h["dev"]["main_ce"] for h in history]
    config = load_am_config(CONF / "am_aux_phone.yaml", [CONF / "am_tiny.yaml", schedule]).train
    scales, stop_after = newbob_by_hand(losses, config)
    # it ran exactly as many epochs as the rule allows on these losses (stop, or num_epochs)
    assert stats["epochs_run"] == len(history) == stop_after <= config.num_epochs
    assert newbob(losses, config).stop and not any(newbob(losses[:n], config).stop for n in range(1, len(losses)))
    # each epoch ran at the LR the decisions before it gave
    assert [h["lr"] for h in history] == pytest.approx([config.lr * s for s in scales], rel=1e-6)
    assert [newbob(losses[:n], config).scale for n in range(len(losses))] == scales
    best = losses.index(min(losses)) + 1
    assert stats["chosen_epoch"] == best and stats["averaged_epochs"] == [best]
    final = ckpt_io.load(run / "final.pt")
    assert final["epoch"] == best
    assert state_dicts_equal(final["state_dict"], ckpt_io.load(run / f"epoch-{best}.pt")["state_dict"])
    # interrupted after its first epoch and resumed: the same decisions and models
    steps_per_epoch = history[0]["step"]
    part = tmp_path / "part"
    assert main(args_for(data, part, "aux_phone", [schedule], "--stop-after-steps", str(steps_per_epoch + 1))) == 0
    assert main(args_for(data, part, "aux_phone", [schedule], "--resume")) == 0
    resumed = json.loads((part / "train_stats.json").read_text())
    assert [h["dev_loss"] for h in resumed["epochs"]] == losses
    assert state_dicts_equal(final["state_dict"], ckpt_io.load(part / "final.pt")["state_dict"])


def test_newbob_stops_before_num_epochs_whatever_the_losses(data, tmp_path):
    # Improvements are at most 1 (positive losses), so thresholds above 1 make the rule halve
    # after epoch 2 and stop after epoch 3 on every machine: the loop's early stop is covered.
    schedule = write(tmp_path / "newbob.yaml", "train:\n  num_epochs: 6\n  average_last: 1\n"
                     "  schedule: newbob\n  start_halving_impr: 1.5\n  end_halving_impr: 1.5\n"
                     "  warmup_steps: 1\n")
    run = tmp_path / "run"
    assert main(args_for(data, run, "baseline", [schedule])) == 0
    stats = json.loads((run / "train_stats.json").read_text())
    config = load_am_config(CONF / "am_baseline.yaml", [CONF / "am_tiny.yaml", schedule]).train
    assert stats["epochs_run"] == len(stats["epochs"]) == 3
    assert [h["lr"] for h in stats["epochs"]] == pytest.approx([config.lr, config.lr, config.lr / 2], rel=1e-6)
    assert not (run / "epoch-4.pt").exists()


def test_priors_from_averaged_posteriors(data, tmp_path):
    # Kaldi's nnet3-am-adjust-priors: the final model's posteriors averaged over the training
    # frames, here all of them, computed again cut by cut from final.pt
    settings = write(tmp_path / "priors.yaml", "train:\n  num_epochs: 1\n  average_last: 1\n"
                     "  priors: posteriors\n  prior_cuts: 0\n")
    run = tmp_path / "run"
    assert main(args_for(data, run, "li", [settings])) == 0
    final = ckpt_io.load(run / "final.pt")
    model = model_from_checkpoint(final)
    expected = torch.zeros(40, dtype=torch.float64)
    for cut in CutSet.from_file(data["train"]):
        feats = torch.from_numpy(cut.load_features())[None]
        with torch.no_grad():
            expected += model(feats, torch.tensor([feats.shape[1]]), with_aux=False).main.double().exp().sum(0)
    priors = (expected / expected.sum()).clamp(min=1e-5)
    wanted = (priors / priors.sum()).log()
    torch.testing.assert_close(final["log_priors"].double(), wanted, atol=1e-4, rtol=1e-4)
    lines = [line.split() for line in (run / "priors.txt").read_text().splitlines()]
    np.testing.assert_allclose([float(x[2]) for x in lines], wanted.numpy(), atol=1e-4)
    assert [int(x[1]) for x in lines] == [int(v) for v in expected.tolist()]  # expected counts
    stats = json.loads((run / "train_stats.json").read_text())
    counted = torch.from_numpy(np.array([int(line.split()[1]) for line in
                                         Path(data["senone_counts"]).read_text().splitlines()], dtype=np.float64))
    counted = (counted / counted.sum()).clamp(min=1e-5)
    counted = counted / counted.sum()
    assert stats["priors"] == "posteriors"
    assert stats["prior_shift"] == pytest.approx(0.5 * float((wanted.exp() - counted).abs().sum()), abs=1e-4)
    assert 0.0 < stats["prior_shift"] < 1.0
    assert spread_subset(list(range(10)), 4) == [0, 3, 6, 9] and spread_subset([1, 2], 5) == [1, 2]


def test_span_soft_targets_train_and_report(data, tmp_path):
    settings = write(tmp_path / "span.yaml", "data:\n  soft_targets: span\ntrain:\n  num_epochs: 1\n"
                     "  average_last: 1\n")
    run = tmp_path / "run"
    assert main(args_for(data, run, "aux_phone", [settings])) == 0
    stats = json.loads((run / "train_stats.json").read_text())
    assert stats["final_dev"]["kd_phone"] > 0 and stats["final_dev"]["acc_phone"] is not None
    assert config_from_checkpoint(ckpt_io.load(run / "final.pt")["config"]).data.soft_targets == "span"
    # the reported dev KL, by hand: output j's teacher mixes the soft labels of its covered
    # input frames 3j..3j+2, each frame weighted equally; frames without a token left out
    model = model_from_checkpoint(ckpt_io.load(run / "final.pt"))
    kl, outputs = 0.0, 0
    for cut in CutSet.from_file(data["dev"]):
        labels, feats = load_soft_labels(cut, "phone"), torch.from_numpy(cut.load_features())
        with torch.no_grad():
            log_p = model(feats[None], torch.tensor([len(feats)])).aux["phone"].double()
        for j in range(len(log_p)):
            rows = [i for f in range(3 * j, min(3 * j + 3, len(feats)))
                    for i, (a, b) in enumerate(labels.spans) if a <= f < b]
            mixed = {}
            for i in rows:
                for u, q in zip(labels.ids[i].tolist(), labels.probs[i].astype(float)):
                    mixed[u] = mixed.get(u, 0.0) + q / len(rows)
            kl += sum(q * (math.log(q) - float(log_p[j, u])) for u, q in mixed.items() if q > 0)
            outputs += bool(rows)
    assert stats["final_dev"]["kd_phone"] == pytest.approx(kl / outputs, rel=1e-4)
    dev_store, _ = CutStore.load_or_build(data["dev"], None, ("phone",), required=())
    centre = evaluate(model, dev_store, 20.0, torch.device("cpu"), ("phone",))["kd_phone"]
    assert abs(centre - kl / outputs) > 1e-3 * centre  # the centre rule gives another figure


def test_newbob_needs_dev_cuts(data, tmp_path):
    schedule = write(tmp_path / "newbob.yaml", "train:\n  schedule: newbob\n")
    argv = args_for(data, tmp_path / "run", "aux_phone", [schedule])
    i = argv.index("--dev-cuts")
    with pytest.raises(SystemExit, match="newbob decides on the dev loss: give --dev-cuts"):
        main(argv[:i] + argv[i + 2:])


# ------------------------------------------------------------------ several processes

DDP_SCRIPT = r'''
import sys, torch
from pathlib import Path
from lhotse import CutSet
from torch.nn.parallel import DistributedDataParallel
from steps.am.config import load_am_config
from steps.am.cut_store import CutStore
from steps.am.data import AmDataset
from steps.am.distributed import init_world
from steps.am.losses import required_levels
from steps.am.model import AcousticModel
from steps.am.sizes import resolve_sizes
from steps.am.training import gradient_on_batch

config_path, override, cuts_path, lm_dir, out = sys.argv[1:6]
world, device = init_world("cpu")
config = load_am_config(config_path, [override])
levels = required_levels(config.loss.objective, config.head_levels)
store, _ = CutStore.build(CutSet.from_file(cuts_path), levels, True)
num_senones, aux, _, _ = resolve_sizes(config, store, None, Path(lm_dir))
torch.manual_seed(0)
model = AcousticModel(store.feature_dim, num_senones, config.model, aux)
model.set_normalisation(*store.mean_std())
cuts = list(store.cuts)[:7]
mine = cuts[world.rank::world.size] if world.size > 1 else cuts
batch = AmDataset(store, config.model.subsampling, levels)[CutSet.from_cuts(mine)]
wrapped = DistributedDataParallel(model) if world.size > 1 else model
grads = gradient_on_batch(wrapped, model, batch, config, world)
if world.rank == 0:
    torch.save(grads, out)
'''


def test_ddp_gradient_equals_single_process(data, tmp_path):
    script = write(tmp_path / "ddp_grad.py", DDP_SCRIPT)
    nodrop = write(tmp_path / "nodrop.yaml", "model:\n  dropout: 0.0\n  hidden_dim: 32\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    common = [str(CONF / "am_hier.yaml"), str(nodrop), str(data["train"]), str(data["lm_dir"])]
    subprocess.run([sys.executable, str(script), *common, str(tmp_path / "one.pt")], check=True, env=env,
                   cwd=REPO)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", free_port(), str(script), *common, str(tmp_path / "two.pt")],
                   check=True, env=env, cwd=REPO)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) > 10
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=2e-6, rtol=1e-4, msg=name)
    assert any(n.startswith("aux_heads.subword") for n in one)


def test_entry_point_under_torchrun(data, tmp_path):
    exp = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    one_epoch = write(tmp_path / "one_epoch.yaml", "train:\n  num_epochs: 1\n  average_last: 1\n")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", free_port(), "-m", "steps.train_am",
                             *args_for(data, exp, "hier", [one_epoch])],
                            env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((exp / "train_stats.json").read_text())
    assert stats["world_size"] == 2
    assert set(stats["epochs"][0]["train"]) == {"main_ce", "kd_senone", "kd_phone", "kd_subword", "total"}
    assert load_scorer(exp / "final.pt").num_outputs == 40


def test_one_seed_gives_every_system_the_same_start_and_batches(data, tmp_path):
    """Common random numbers: under one seed every system starts from the same weights of
    the layers they share and sees the same batches in the same order, so a per-seed
    difference between two systems holds none of that seed's luck (RESULTS.md measures how
    much of the spread this removes). Another seed starts elsewhere."""
    from steps.am.distributed import World
    from steps.am.training import AmTrainer, load_data

    def start(system: str, seed: int):
        config = load_am_config(CONF / f"am_{system}.yaml", [CONF / "am_tiny.yaml"])
        loaded = load_data(config, str(data["train"]), str(data["dev"]), None, Path(data["senone_counts"]),
                           Path(data["lm_dir"]), tmp_path / f"{system}_{seed}", World())
        trainer = AmTrainer(config, loaded, tmp_path / f"{system}_{seed}", seed, World(), torch.device("cpu"))
        shared = {k: v for k, v in trainer.core.state_dict().items() if not k.startswith("aux_heads.")}
        trainer.sampler.set_epoch(1)
        return shared, [[c.id for c in batch] for batch in trainer.sampler], trainer.core

    base, base_batches, _ = start("baseline", 5)
    for system in ("li", "aux_phone", "hier"):
        shared, batches, core = start(system, 5)
        assert shared.keys() == base.keys()
        assert all(torch.equal(shared[k], base[k]) for k in base), system
        assert batches == base_batches, system
    assert len(core.aux_heads) == 3  # hier: heads the baseline lacks, made after the shared layers
    other, other_batches, _ = start("baseline", 6)
    assert not torch.equal(other["main_head.output.weight"], base["main_head.output.weight"])
    assert other_batches != base_batches


def test_a_setting_added_later_leaves_finished_runs_finished(tmp_path):
    # runs made before loss.head_frame_share read every frame: their fingerprint lacks the key
    every = settings_for_fingerprint(load_am_config(CONF / "am_aux_senone.yaml"))
    assert "head_frame_share" not in every["loss"]
    half = write(tmp_path / "half.yaml", "loss:\n  head_frame_share: 0.5\n")
    assert settings_for_fingerprint(load_am_config(CONF / "am_aux_senone.yaml", [half]))["loss"]["head_frame_share"] == 0.5
