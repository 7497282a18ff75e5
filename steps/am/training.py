"""The acoustic model's part of the training loop (steps.train.loop), as steps.train_am runs
it: the data (steps.am.cut_store, steps.am.data), the model and its optimiser, the loss of
one batch (every term divided by its frame count over ALL processes, so that the update is
the single-process one on the global batch), the dev evaluation and the newbob decision
after every epoch, epoch checkpoints, and final.pt (the average of the last epochs) with
priors.txt and train_stats.json.

    data = load_data(config, cuts, dev_cuts, cache_dir, counts_path, lm_dir, exp_dir, world)
    train(config, data, exp_dir, seed, fingerprint, world, device, resume=True)

state.pt holds the loop's state (optimizer, position, every process's RNG states, the
SpecAugment generator's among them) and the trainer's (model, sampler position, history); a
run resumed from it gives the models of a run that was never interrupted.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from torch.nn.parallel import DistributedDataParallel

from steps.am.config import AmConfig
from steps.am.cut_store import CutStore
from steps.am.data import AmDataset, make_sampler, sequential_batches
from steps.am.distributed import World, all_reduce_sum, barrier, gather_objects
from steps.am.losses import (head_frames, head_rows, kd_sum, loss_terms, required_levels, term_weights,
                             total_loss)
from steps.am.model import AcousticModel, checkpoint_dict, log_priors_from_counts, parameter_summary
from steps.am.priors import averaged_posteriors
from steps.am.sizes import resolve_sizes, write_priors
from steps.am.spec_augment import spec_augment
from steps.core import atomic
from steps.core import checkpoint as ckpt_io
from steps.core.atomic import write_text
from steps.core.config import to_dict
from steps.core.log import summary_writer
from steps.train.averaging import average_state_dicts
from steps.train.loop import Loop, Step, Task
from steps.train.schedule import Newbob, WarmupCosine, adamw

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ one update


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    """config: TrainConfig. Adam, or AdamW with weight decay on the matrices only."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return adamw(model.named_parameters(), config.lr, config.weight_decay)


def loss_step(model, batch, config: AmConfig, world: World, augment=None) -> Step:
    """The loss of this process's share of the global batch (every term divided by its
    count over all processes), the global terms (name -> (sum, count)), and whether any
    process saw a non-finite loss (then every process skips the update)."""
    out = model(batch.feats, batch.feat_lens, augment=augment,
                aux_frames=head_frames(batch, config.head_levels, config.loss.head_frame_share))
    terms = loss_terms(config.loss, config.head_levels, out, batch)
    n = len(terms)
    sums = torch.stack([t.sum.detach().float() for t in terms])
    stats = torch.cat([torch.stack([t.count.float() for t in terms]), sums,
                       (~torch.isfinite(sums)).any().float()[None]])
    stats = all_reduce_sum(stats, world)
    counts, global_sums, bad = stats[:n], stats[n:2 * n], bool(stats[-1] > 0)
    loss = total_loss(terms, counts, scale=float(world.size))
    return Step(loss, {t.name: (float(s), float(c)) for t, s, c in zip(terms, global_sums, counts)},
                bad, batch.num_frames)


def gradient_on_batch(model, core: AcousticModel, batch, config: AmConfig, world: World) -> dict:
    """The gradient that train_step would apply (no update, no clipping): for tests that
    compare one process with several."""
    out = model(batch.feats, batch.feat_lens, aux_frames=head_frames(batch, config.head_levels))
    terms = loss_terms(config.loss, config.head_levels, out, batch)
    counts = all_reduce_sum(torch.stack([t.count.float() for t in terms]), world)
    core.zero_grad(set_to_none=True)
    total_loss(terms, counts, scale=float(world.size)).backward()
    return {name: p.grad.detach().clone() for name, p in core.named_parameters() if p.grad is not None}


@torch.no_grad()
def evaluate(model: AcousticModel, store: CutStore, max_duration: float, device: torch.device,
             levels: tuple[str, ...], soft_targets: str = "centre") -> dict:
    """Frame accuracy of every head on the dev cuts (main: senone labels; auxiliary heads:
    their level's hard labels where the dev cuts have them), the main head's CE and, where
    the dev cuts carry soft labels, each auxiliary head's held-out KL to its teacher
    (kd_<level>: the training term's per-frame mean; None without dev soft labels)."""
    model.eval()
    dataset = AmDataset(store, model.subsampling, levels, soft_targets)
    correct = {"main": 0, **{lv: 0 for lv in levels}}
    total = {"main": 0, **{lv: 0 for lv in levels}}
    kl = {lv: 0.0 for lv in levels}
    nll = 0.0
    for cuts in sequential_batches(store.cuts, max_duration):
        batch = dataset[CutSet.from_cuts(cuts)].to(device)
        out = model(batch.feats, batch.feat_lens, aux_frames=head_frames(batch, levels))
        labels = batch.senone[out.mask]
        valid = labels >= 0
        pred = out.main.argmax(dim=-1)
        correct["main"] += int((pred == labels)[valid].sum())
        total["main"] += int(valid.sum())
        nll += float(-out.main.gather(1, labels.clamp(min=0)[:, None])[:, 0][valid].sum())
        for level in levels:
            t = batch.levels[level]
            rows = head_rows(out, level)
            m, hard = t.mask[rows], t.hard[rows]
            correct[level] += int((out.aux[level].argmax(dim=-1) == hard)[m].sum())
            total[level] += int(m.sum())
            kl[level] += float(kd_sum(out.aux[level], t.ids[rows], t.probs[rows], m)[0])
    model.train()
    result = {f"acc_{k}": (correct[k] / total[k] if total[k] else None) for k in correct}
    result.update({f"kd_{k}": (kl[k] / total[k] if total[k] else None) for k in kl})
    result["main_ce"] = nll / max(1, total["main"])
    result["frames"] = total["main"]
    return result


# ------------------------------------------------------------------ data


@dataclass
class TrainingData:
    store: CutStore
    dev_store: CutStore | None
    levels: tuple[str, ...]  # soft-label levels the objective reads
    num_senones: int
    aux_units: dict[str, int]
    counts: np.ndarray  # senone counts [S]
    log_priors: torch.Tensor  # [S]


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    write_text(path, "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped))


def load_data(config: AmConfig, cuts: str, dev_cuts: str | None, cache_dir: Path | None,
              counts_path: Path | None, lm_dir: Path, exp_dir: Path, world: World) -> TrainingData:
    """The training and dev cuts, checked (skipped_{train,dev}.txt list those left out), the
    output sizes and the priors. The first process fills the disk cache, the others then
    read it."""
    levels = required_levels(config.loss.objective, config.head_levels)
    if not world.main:
        barrier(world)
    if cache_dir is not None:
        store, skipped = CutStore.load_or_build(cuts, cache_dir, levels,
                                                description="reading training cuts")
    else:
        store, skipped = CutStore.build(CutSet.from_file(cuts), levels, config.data.cache_in_memory,
                                        description="reading training cuts")
    dev_store = None
    if dev_cuts:
        dev_store, dev_skipped = CutStore.load_or_build(dev_cuts, cache_dir, config.head_levels,
                                                        required=(), description="reading dev cuts")
    if world.main:
        barrier(world)
    num_senones, aux_units, counts, counts_source = resolve_sizes(config, store, counts_path, lm_dir)
    skipped += store.drop_out_of_range({"ali": num_senones, **aux_units})
    if not len(store.cuts):
        raise SystemExit("no training cut left (see skipped_train.txt)")
    if dev_store is not None:
        dev_skipped += dev_store.drop_out_of_range({"ali": num_senones, **aux_units})
        if world.main:
            write_skipped(exp_dir / "skipped_dev.txt", dev_skipped)
    if world.main:
        write_skipped(exp_dir / "skipped_train.txt", skipped)
        log.info("training on %d cuts (%d frames, %.2f h); %d left out (%s/skipped_train.txt); "
                 "senone counts from %s", len(store.cuts), store.num_frames, store.num_frames / 360000,
                 len(skipped), exp_dir, counts_source)
    log_priors = log_priors_from_counts(torch.from_numpy(counts), config.train.prior_floor)
    return TrainingData(store, dev_store, levels, num_senones, aux_units, counts, log_priors)


# ------------------------------------------------------------------ the loop


def chosen_epoch(history: list[dict], schedule: str) -> int:
    """The epoch final.pt ends at: the last (cosine), or the one of the best dev loss
    (newbob; the earliest on a tie)."""
    if schedule != "newbob":
        return len(history)
    losses = [h["dev_loss"] for h in history]
    return losses.index(min(losses)) + 1


class AmTrainer(Task):
    """The acoustic model's part of the loop (steps.train.loop): its batches (the sampler,
    whose position is part of the state), its loss, and at each epoch's end the dev
    evaluation, the newbob decision and epoch-<n>.pt."""

    def __init__(self, config: AmConfig, data: TrainingData, exp_dir: Path, seed: int, world: World,
                 device: torch.device):
        mc, tc = config.model, config.train
        self.config, self.data, self.exp_dir, self.seed, self.world, self.device = (
            config, data, exp_dir, seed, world, device)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        self.core = AcousticModel(data.store.feature_dim, data.num_senones, mc, data.aux_units)
        self.core.set_normalisation(*data.store.mean_std())
        self.core.to(device)
        self.model = self.core
        if world.size > 1:
            self.model = DistributedDataParallel(self.core, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = build_optimizer(self.core, tc)
        self.sampler = make_sampler(data.store.cuts, config.data, seed, world.size, world.rank)
        self.steps_per_epoch = sum(1 for _ in make_sampler(data.store.cuts, config.data, seed, world.size,
                                                           world.rank))
        if tc.schedule == "newbob" and data.dev_store is None:
            raise SystemExit("train.schedule newbob decides on the dev loss: give --dev-cuts")
        # factors of the groups' rates (lr 1.0)
        self.schedule = (Newbob(1.0, tc.warmup_steps, tc) if tc.schedule == "newbob" else
                         WarmupCosine(1.0, tc.warmup_steps, self.steps_per_epoch * tc.num_epochs, tc.final_lr_ratio))
        self.generator = torch.Generator().manual_seed(seed * 1000 + world.rank)
        self.dataset = AmDataset(data.store, mc.subsampling, data.levels, config.data.soft_targets)
        self.weights = term_weights(config.loss, config.head_levels)
        self.history: list[dict] = []

    def augment(self, x, lengths):
        return spec_augment(x, lengths, self.config.data.spec_augment, self.generator)

    def start_epoch(self, loop: Loop) -> None:
        self.sampler.set_epoch(loop.pos.epoch)
        self.core.set_epoch(loop.pos.epoch)  # the DMoE's stage one (capped gates) or two

    def epoch_length(self, loop: Loop) -> int:
        return self.steps_per_epoch

    def batches(self, loop: Loop):
        for cuts in self.sampler:  # a resumed sampler starts after the batches done
            yield self.dataset[cuts].to(self.device)

    def step(self, batch) -> Step:
        augment = self.augment if self.config.data.spec_augment.enabled else None
        return loss_step(self.model, batch, self.config, self.world, augment)

    def end_epoch(self, loop: Loop) -> bool:
        config, world, epoch = self.config, self.world, loop.pos.epoch
        frames = int(all_reduce_sum(torch.tensor([float(loop.frames)], device=self.device), world)[0])
        means = loop.sums.means()
        means["total"] = sum(self.weights[k] * v for k, v in means.items())
        dev_store = self.data.dev_store
        dev = evaluate(self.core, dev_store, config.data.max_duration, self.device, config.head_levels,
                       config.data.soft_targets) if dev_store is not None and world.main else {}
        # every process needs the dev loss: the newbob schedule decides on it
        dev_loss = None
        if dev_store is not None:
            shared = torch.tensor([dev.get("main_ce", 0.0)], dtype=torch.float64, device=self.device)
            dev_loss = float(all_reduce_sum(shared, world)[0])
        entry = {"epoch": epoch + 1, "step": loop.pos.step, "train": means, "dev": dev, "dev_loss": dev_loss,
                 "lr": loop.lr(), "seconds": round(loop.seconds, 2),
                 "frames_per_second": round(frames / max(loop.seconds, 1e-9), 1),
                 "skipped_steps": loop.pos.skipped}
        self.history.append(entry)
        stop = False
        if config.train.schedule == "newbob":
            decision = self.schedule.set_dev_losses([h["dev_loss"] for h in self.history])
            stop = decision.stop
            if world.main:
                log.info("newbob after epoch %d: dev loss %.4f, %s", epoch + 1, dev_loss,
                         "stop" if stop else f"LR x {decision.scale:g} next"
                         f"{' (halving)' if decision.halving else ''}")
        if world.main:
            log.info("epoch %d: %s | dev %s | %.1f s, %.0f frames/s", epoch + 1,
                     " ".join(f"{k} {v:.4f}" for k, v in means.items()),
                     " ".join(f"{k} {v:.4f}" for k, v in dev.items() if isinstance(v, float)),
                     loop.seconds, entry["frames_per_second"])
            loop.scalars("epoch", means, epoch + 1)
            loop.scalars("dev", dev, epoch + 1)
            if loop.writer is not None:
                loop.writer.flush()
            ckpt_io.save(checkpoint_dict(self.core, to_dict(config), self.data.log_priors,
                                         torch.from_numpy(self.data.counts),
                                         {"epoch": epoch + 1, "step": loop.pos.step, "seed": self.seed}),
                         self.exp_dir / f"epoch-{epoch + 1}.pt")
        return stop

    def state_dict(self) -> dict:
        return {"kind": "acoustic_model_state", "config": to_dict(self.config),
                "state_dict": self.core.state_dict(), "sampler": self.sampler.state_dict(),
                "history": self.history, "seed": self.seed, "world_size": self.world.size}

    def load_state_dict(self, state: dict) -> None:
        self.core.load_state_dict(state["state_dict"])
        self.history = state["history"]
        if state["batch"] > 0:
            self.sampler.load_state_dict(copy.deepcopy(state["sampler"]))


def train(config: AmConfig, data: TrainingData, exp_dir: Path, seed: int, fingerprint: dict,
          world: World, device: torch.device, resume: bool = False, force: bool = False,
          stop_after_steps: int = 0) -> int:
    """Trains to final.pt (see the module docstring); with stop_after_steps, saves the state
    after that many steps and stops."""
    tc = config.train
    trainer = AmTrainer(config, data, exp_dir, seed, world, device)
    if world.main:
        sizes = parameter_summary(trainer.core)
        log.info("model: %s encoder, %d parameters in all (%s); %d senones; aux heads %s; "
                 "objective %s; %d steps per epoch and process (%d processes)", config.model.encoder,
                 sum(sizes.values()), ", ".join(f"{k} {v}" for k, v in sizes.items()), data.num_senones,
                 data.aux_units or "none", config.loss.objective, trainer.steps_per_epoch, world.size)
    loop = Loop(trainer.optimizer, trainer.schedule, trainer.core.parameters(), tc.grad_clip, relative_lr=True,
                num_epochs=tc.num_epochs, max_skipped=tc.max_skipped_steps, log_every=tc.log_every,
                state_path=exp_dir / "state.pt", fingerprint=fingerprint, save_every=tc.save_every_steps,
                stop_after=stop_after_steps, generators={"augment": trainer.generator}, device=device,
                gather=lambda obj: gather_objects(obj, world), barrier=lambda: barrier(world), rank=world.rank)
    if loop.resume(trainer, resume, force) is not None and world.main:
        log.info("resumed from %s: epoch %d, %d batches into it, step %d", loop.state_path,
                 loop.pos.epoch + 1, loop.pos.batch, loop.pos.step)
    loop.writer = summary_writer(exp_dir / "tensorboard") if world.main else None
    trainer.model.train()
    if tc.schedule == "newbob" and trainer.history:  # the schedule's state is the dev losses so far
        loop.stopped = trainer.schedule.set_dev_losses([h["dev_loss"] for h in trainer.history]).stop
    if loop.run(trainer) and world.main:
        write_final(trainer, fingerprint)
        if loop.writer is not None:
            loop.writer.close()
    barrier(world)
    return 0


def write_final(trainer: AmTrainer, fingerprint: dict) -> None:
    """final.pt (the average of the last epochs up to the chosen one), priors.txt,
    train_stats.json and .done."""
    config, data, exp_dir, history, core = (trainer.config, trainer.data, trainer.exp_dir,
                                            trainer.history, trainer.core)
    tc, device = config.train, trainer.device
    chosen = chosen_epoch(history, tc.schedule)
    epochs = list(range(max(1, chosen - tc.average_last + 1), chosen + 1))
    core.load_state_dict(average_state_dicts([exp_dir / f"epoch-{e}.pt" for e in epochs]))
    prior_counts, final_priors, prior_info = data.counts, data.log_priors, {"priors": tc.priors}
    if tc.priors == "posteriors":  # Kaldi's nnet3-am-adjust-priors (steps.am.priors)
        prior_counts = averaged_posteriors(core, data.store, config.data.max_duration, device, tc.prior_cuts)
        final_priors = log_priors_from_counts(torch.from_numpy(prior_counts), tc.prior_floor)
        # how far the model's marginals are from the counted ones: total variation
        prior_info["prior_shift"] = round(0.5 * float((final_priors.exp() - data.log_priors.exp()).abs().sum()), 6)
        log.info("priors from final.pt's averaged posteriors: total variation %.4f from the counted ones",
                 prior_info["prior_shift"])
    final = checkpoint_dict(core, to_dict(config), final_priors, torch.from_numpy(data.counts),
                            {"epoch": chosen, "step": history[chosen - 1]["step"], "seed": trainer.seed,
                             "averaged_epochs": epochs})
    ckpt_io.save(final, exp_dir / "final.pt")
    write_priors(exp_dir / "priors.txt", prior_counts, final_priors)
    final_dev = {}
    if data.dev_store is not None:
        final_dev = evaluate(core, data.dev_store, config.data.max_duration, device, config.head_levels,
                             config.data.soft_targets)
        log.info("final.pt (average of epochs %s): dev %s", epochs,
                 " ".join(f"{k} {v:.4f}" for k, v in final_dev.items() if isinstance(v, float)))
    stats = {"epochs": history, "final_dev": final_dev, "averaged_epochs": epochs,
             "schedule": tc.schedule, "epochs_run": len(history), "chosen_epoch": chosen, **prior_info,
             "parameters": parameter_summary(core), "num_senones": data.num_senones,
             "aux_units": data.aux_units, "world_size": trainer.world.size,
             "train_seconds": round(sum(h["seconds"] for h in history), 2)}
    write_text(exp_dir / "train_stats.json", json.dumps(stats, indent=1) + "\n")
    atomic.mark_done(exp_dir, {"final_dev": final_dev}, fingerprint)
    log.info("wrote %s", exp_dir / "final.pt")
