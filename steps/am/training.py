"""The acoustic model's training loop, as steps.train_am runs it: the data (steps.am.cut_store,
steps.am.data), the model, one update per batch (every loss term divided by its frame count
over ALL processes, so that the update is the single-process one on the global batch), the
dev evaluation after every epoch, epoch checkpoints and state.pt (exact resumption), and
final.pt (the average of the last epochs) with priors.txt and train_stats.json.

    data = load_data(config, cuts, dev_cuts, cache_dir, counts_path, lm_dir, exp_dir, world)
    train(config, data, exp_dir, seed, fingerprint, world, device, resume=True)

The state (steps.am.resume) holds model, optimizer, scheduler, sampler position, every
process's RNG states, step, counters and history; a run resumed from it gives the models of
a run that was never interrupted.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from torch.nn.parallel import DistributedDataParallel

from steps.am import resume as resume_io
from steps.am.averaging import average_state_dicts
from steps.am.config import AmConfig
from steps.am.cut_store import CutStore
from steps.am.data import AmDataset, make_sampler, sequential_batches
from steps.am.distributed import World, all_reduce_sum, barrier, gather_objects
from steps.am.losses import (head_frames, head_rows, kd_sum, loss_terms, required_levels, term_weights,
                             total_loss)
from steps.am.model import AcousticModel, checkpoint_dict, log_priors_from_counts, parameter_summary
from steps.am.optim import Schedule, build_optimizer, build_scheduler
from steps.am.priors import averaged_posteriors
from steps.am.sizes import resolve_sizes, write_priors
from steps.am.spec_augment import spec_augment
from steps.core import atomic
from steps.core import checkpoint as ckpt_io
from steps.core.atomic import write_text
from steps.core.config import to_dict
from steps.core.log import progress, summary_writer

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ one update


def train_step(model, core: AcousticModel, optimizer, batch, config: AmConfig, world: World,
               augment=None) -> dict:
    """One update on this process's share of the global batch. Returns the global terms
    (name -> (sum, count)), the gradient norm and whether the step was skipped (non-finite
    loss or gradient: the same decision on every process)."""
    out = model(batch.feats, batch.feat_lens, augment=augment,
                aux_frames=head_frames(batch, config.head_levels))
    terms = loss_terms(config.loss, config.head_levels, out, batch)
    n = len(terms)
    sums = torch.stack([t.sum.detach().float() for t in terms])
    stats = torch.cat([torch.stack([t.count.float() for t in terms]), sums,
                       (~torch.isfinite(sums)).any().float()[None]])
    stats = all_reduce_sum(stats, world)
    counts, global_sums, bad = stats[:n], stats[n:2 * n], bool(stats[-1] > 0)
    loss = total_loss(terms, counts, scale=float(world.size))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # always, so that every DDP process takes part in the gradient reduction
    norm = torch.nn.utils.clip_grad_norm_(core.parameters(), config.train.grad_clip)
    skipped = bad or not bool(torch.isfinite(norm))
    if skipped:
        optimizer.zero_grad(set_to_none=True)
    else:
        optimizer.step()
    return {"terms": {t.name: (float(s), float(c)) for t, s, c in zip(terms, global_sums, counts)},
            "grad_norm": float(norm), "skipped": skipped}


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


def train(config: AmConfig, data: TrainingData, exp_dir: Path, seed: int, fingerprint: dict,
          world: World, device: torch.device, resume: bool = False, force: bool = False,
          stop_after_steps: int = 0) -> int:
    """Trains to final.pt (see the module docstring); with stop_after_steps, saves the state
    after that many steps and stops."""
    mc, tc = config.model, config.train
    store, dev_store, levels, head_levels = data.store, data.dev_store, data.levels, config.head_levels
    num_senones, aux_units, counts, log_priors = data.num_senones, data.aux_units, data.counts, data.log_priors
    counts_t = torch.from_numpy(counts)

    # ---- model, optimizer, schedule
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    core = AcousticModel(store.feature_dim, num_senones, mc, aux_units)
    core.set_normalisation(*store.mean_std())
    core.to(device)
    model = core
    if world.size > 1:
        model = DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(core, tc)
    sampler = make_sampler(store.cuts, config.data, seed, world.size, world.rank)
    steps_per_epoch = sum(1 for _ in make_sampler(store.cuts, config.data, seed, world.size,
                                                  world.rank))
    total_steps = steps_per_epoch * tc.num_epochs
    if tc.schedule == "newbob" and dev_store is None:
        raise SystemExit("train.schedule newbob decides on the dev loss: give --dev-cuts")
    schedule = Schedule(total_steps, tc)
    scheduler = build_scheduler(optimizer, schedule)
    generator = torch.Generator().manual_seed(seed * 1000 + world.rank)
    dataset = AmDataset(store, mc.subsampling, levels, config.data.soft_targets)
    if world.main:
        sizes = parameter_summary(core)
        log.info("model: %s encoder, %d parameters in all (%s); %d senones; aux heads %s; "
                 "objective %s; %d steps per epoch and process (%d processes)", mc.encoder,
                 sum(sizes.values()), ", ".join(f"{k} {v}" for k, v in sizes.items()), num_senones,
                 aux_units or "none", config.loss.objective, steps_per_epoch, world.size)

    # ---- resume
    step, epoch, skipped_steps, history = 0, 0, 0, []
    # (batches done in the current epoch, its loss sums, frames, seconds so far)
    resume_point: tuple[int, dict, int, float] = (0, {}, 0, 0.0)
    state_path = exp_dir / "state.pt"
    state = resume_io.load_state(state_path, fingerprint, resume, force, world)
    if state is not None:
        core.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, skipped_steps, history = (state["step"], state["epoch"], state["skipped_steps"],
                                               state["history"])
        if state["batches_done"] > 0:
            sampler.load_state_dict(copy.deepcopy(state["sampler"]))
            resume_point = (state["batches_done"], state["epoch_sums"], state["epoch_frames"],
                            state["epoch_seconds"])
        resume_io.set_rng_state(state["rng"][world.rank], generator, device)
        if world.main:
            log.info("resumed from %s: epoch %d, %d batches into it, step %d", state_path, epoch + 1,
                     state["batches_done"], step)

    def save_state(batches_done: int, sums: dict, frames: int, seconds: float) -> None:
        rngs = gather_objects(resume_io.rng_state(generator, device), world)
        if world.main:
            ckpt_io.save({"kind": "acoustic_model_state", "config": to_dict(config),
                          "state_dict": core.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
                          "step": step, "epoch": epoch, "batches_done": batches_done,
                          "epoch_sums": sums, "epoch_frames": frames, "epoch_seconds": seconds,
                          "skipped_steps": skipped_steps, "history": history, "rng": rngs,
                          "seed": seed, "world_size": world.size, "fingerprint": fingerprint},
                         state_path)
        barrier(world)

    writer = summary_writer(exp_dir / "tensorboard") if world.main else None
    def augment(x, lengths):
        return spec_augment(x, lengths, config.data.spec_augment, generator)

    weights = term_weights(config.loss, head_levels)
    model.train()
    stopped = False
    if tc.schedule == "newbob" and history:  # the schedule's state is the dev losses so far
        stopped = schedule.set_dev_losses([h["dev_loss"] for h in history]).stop
    while epoch < tc.num_epochs and not stopped:
        sampler.set_epoch(epoch)
        core.set_epoch(epoch)  # the DMoE's stage one (capped gates) or two
        batches_done, sums, frames, seconds = resume_point
        resume_point = (0, {}, 0, 0.0)
        window: dict[str, list[float]] = {}
        started = time.time() - seconds
        bar = progress(total=steps_per_epoch, initial=batches_done, desc=f"epoch {epoch + 1}",
                       disable=not world.main, mininterval=5, leave=False)
        for cuts in sampler:
            batch = dataset[cuts].to(device)
            result = train_step(model, core, optimizer, batch, config, world,
                                augment if config.data.spec_augment.enabled else None)
            scheduler.step()
            step += 1
            batches_done += 1
            bar.update(1)
            frames += batch.num_frames
            if result["skipped"]:
                skipped_steps += 1
                log.warning("step %d: non-finite loss or gradient, update skipped (%d so far)",
                            step, skipped_steps)
                if skipped_steps > tc.max_skipped_steps:
                    raise SystemExit(f"more than {tc.max_skipped_steps} steps with non-finite "
                                     "loss or gradient; giving up")
            else:
                for name, (s, c) in result["terms"].items():
                    for acc in (sums, window):
                        acc[name] = [acc.get(name, [0.0, 0.0])[0] + s, acc.get(name, [0.0, 0.0])[1] + c]
            if step % tc.log_every == 0 and writer is not None:
                for name, (s, c) in window.items():
                    writer.add_scalar(f"train/{name}", s / max(c, 1.0), step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/grad_norm", result["grad_norm"], step)
                bar.set_postfix({k: f"{s / max(c, 1):.3f}" for k, (s, c) in window.items()})
                window = {}
            if stop_after_steps and step >= stop_after_steps:
                save_state(batches_done, sums, frames, time.time() - started)
                bar.close()
                if world.main:
                    log.info("stopping after step %d as asked (state in %s)", step, state_path)
                return 0
            if tc.save_every_steps and step % tc.save_every_steps == 0:
                save_state(batches_done, sums, frames, time.time() - started)
        bar.close()
        elapsed = time.time() - started
        frames = int(all_reduce_sum(torch.tensor([float(frames)], device=device), world)[0])
        means = {name: s / max(c, 1.0) for name, (s, c) in sums.items()}
        means["total"] = sum(weights[k] * v for k, v in means.items())
        dev = evaluate(core, dev_store, config.data.max_duration, device, head_levels,
                       config.data.soft_targets) if dev_store is not None and world.main else {}
        # every process needs the dev loss: the newbob schedule decides on it
        dev_loss = None
        if dev_store is not None:
            shared = torch.tensor([dev.get("main_ce", 0.0)], dtype=torch.float64, device=device)
            dev_loss = float(all_reduce_sum(shared, world)[0])
        entry = {"epoch": epoch + 1, "step": step, "train": means, "dev": dev, "dev_loss": dev_loss,
                 "lr": scheduler.get_last_lr()[0],
                 "seconds": round(elapsed, 2), "frames_per_second": round(frames / max(elapsed, 1e-9), 1),
                 "skipped_steps": skipped_steps}
        history.append(entry)
        if tc.schedule == "newbob":
            decision = schedule.set_dev_losses([h["dev_loss"] for h in history])
            stopped = decision.stop
            if world.main:
                log.info("newbob after epoch %d: dev loss %.4f, %s", epoch + 1, dev_loss,
                         "stop" if stopped else f"LR x {decision.scale:g} next"
                         f"{' (halving)' if decision.halving else ''}")
        if world.main:
            log.info("epoch %d: %s | dev %s | %.1f s, %.0f frames/s", epoch + 1,
                     " ".join(f"{k} {v:.4f}" for k, v in means.items()),
                     " ".join(f"{k} {v:.4f}" for k, v in dev.items() if isinstance(v, float)),
                     elapsed, entry["frames_per_second"])
            if writer is not None:
                for name, value in means.items():
                    writer.add_scalar(f"epoch/{name}", value, epoch + 1)
                for name, value in dev.items():
                    if isinstance(value, float):
                        writer.add_scalar(f"dev/{name}", value, epoch + 1)
                writer.flush()
            ckpt_io.save(checkpoint_dict(core, to_dict(config), log_priors, counts_t,
                                         {"epoch": epoch + 1, "step": step, "seed": seed}),
                         exp_dir / f"epoch-{epoch + 1}.pt")
        epoch += 1
        save_state(0, {}, 0, 0.0)

    # ---- the final model
    if world.main:
        chosen = chosen_epoch(history, tc.schedule)
        epochs = list(range(max(1, chosen - tc.average_last + 1), chosen + 1))
        core.load_state_dict(average_state_dicts([exp_dir / f"epoch-{e}.pt" for e in epochs]))
        prior_counts, final_priors, prior_info = counts, log_priors, {"priors": tc.priors}
        if tc.priors == "posteriors":  # Kaldi's nnet3-am-adjust-priors (steps.am.priors)
            prior_counts = averaged_posteriors(core, store, config.data.max_duration, device, tc.prior_cuts)
            final_priors = log_priors_from_counts(torch.from_numpy(prior_counts), tc.prior_floor)
            # how far the model's marginals are from the counted ones: total variation
            prior_info["prior_shift"] = round(0.5 * float((final_priors.exp() - log_priors.exp()).abs().sum()), 6)
            log.info("priors from final.pt's averaged posteriors: total variation %.4f from the counted ones",
                     prior_info["prior_shift"])
        final = checkpoint_dict(core, to_dict(config), final_priors, counts_t,
                                {"epoch": chosen, "step": history[chosen - 1]["step"], "seed": seed,
                                 "averaged_epochs": epochs})
        ckpt_io.save(final, exp_dir / "final.pt")
        write_priors(exp_dir / "priors.txt", prior_counts, final_priors)
        if dev_store is not None:
            final_dev = evaluate(core, dev_store, config.data.max_duration, device, head_levels,
                                 config.data.soft_targets)
            log.info("final.pt (average of epochs %s): dev %s", epochs,
                     " ".join(f"{k} {v:.4f}" for k, v in final_dev.items() if isinstance(v, float)))
        else:
            final_dev = {}
        stats = {"epochs": history, "final_dev": final_dev, "averaged_epochs": epochs,
                 "schedule": tc.schedule, "epochs_run": len(history), "chosen_epoch": chosen, **prior_info,
                 "parameters": parameter_summary(core), "num_senones": num_senones,
                 "aux_units": aux_units, "world_size": world.size,
                 "train_seconds": round(sum(h["seconds"] for h in history), 2)}
        write_text(exp_dir / "train_stats.json", json.dumps(stats, indent=1) + "\n")
        if writer is not None:
            writer.close()
        atomic.mark_done(exp_dir, {"final_dev": final_dev}, fingerprint)
        log.info("wrote %s", exp_dir / "final.pt")
    barrier(world)
    return 0
