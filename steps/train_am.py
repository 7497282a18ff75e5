"""Train the multi-head hybrid acoustic model (steps.am.model) with one of the objectives
of steps.am.losses (baseline, li, aux, hier) on cuts with senone alignments and cached
teacher soft labels (steps.am.data).

Reads:  --cuts   training cuts (features, senone_ali, kd_<level>_* soft labels)
        --dev-cuts  dev cuts (features, senone_ali; soft labels used where present)
        --config YAML (sections model, loss, data, train; see AmConfig) and any number of
                 --override YAML files merged on top (mappings merged key by key, lists
                 replaced): e.g. conf/am_tiny.yaml makes any system tiny
        --senone-counts  `senone_id count` per line (default exp/tri_ali/senone_counts.txt;
                 computed from the training alignments if the file is absent)
        <lm-dir>/lm_<level>/tokens.txt  the vocabulary size of each auxiliary head (unless
                 the head's num_units is set)
        --data-cache  validated cut arrays kept on disk by the first run on a cuts file
                 (default <exp-dir>/../am_data_cache, see steps.am.data.CutStore.load_or_build)
Writes to --exp-dir:
        epoch-<n>.pt   the model after epoch n (kind acoustic_model, a FrameScorer checkpoint)
        state.pt       the latest training state: model, optimizer, scheduler, sampler
                       (epoch and position), RNG states of every process, step, counters,
                       history, and the fingerprint of the inputs; --resume continues from
                       it (when the fingerprint is the same; with --force training starts
                       from scratch) to the same result as a run that was never interrupted
        final.pt       the average of the last train.average_last epochs (FrameScorer)
        priors.txt     `senone_id count log_prior` (priors floored at train.prior_floor)
        train_stats.json  per-epoch loss terms, dev frame accuracy per head, time, frames/s
        skipped_{train,dev}.txt  `cut_id reason` for every cut left out
        tensorboard/   every loss term, lr, gradient norm; dev accuracies and loss
        log/train_am.log
        .done          written last, with the fingerprint of the inputs (cuts, dev cuts,
                       senone counts, config, seed): a second run with the same ones is
                       skipped (--force retrains)

Several processes: the same command under torchrun uses DDP (gloo on CPU, nccl on CUDA),
one DynamicBucketingSampler shard per process; every loss term is divided by its frame
count over ALL processes, so the update is the single-process one on the global batch.

    python -m steps.train_am --config conf/am_hier.yaml \\
        --cuts data/kd/synth_cuts_train.jsonl.gz --dev-cuts exp/tri_ali/cuts_dev.jsonl.gz \\
        --exp-dir exp/am_hier_s1 --seed 1 [--resume] [--device cpu]
    torchrun --nproc-per-node 2 -m steps.train_am ...   (same arguments)
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from lhotse import CutSet

from steps.am.data import AmDataset, CutStore, DataConfig, make_sampler, sequential_batches, spec_augment
from steps.am.losses import LossConfig, loss_terms, required_levels, total_loss
from steps.am.model import (
    AcousticModel,
    ModelConfig,
    checkpoint_dict,
    log_priors_from_counts,
    parameter_summary,
)
from steps.core import atomic
from steps.core import checkpoint as ckpt_io
from steps.core.atomic import write_text
from steps.core.config import ConfigError, from_dict, require, to_dict
from steps.core.log import progress, setup_logging

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ config


@dataclass
class TrainConfig:
    num_epochs: int = 4
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4  # adamw only; not on biases and norms
    warmup_steps: int = 100
    final_lr_ratio: float = 0.05  # cosine decay from lr to lr * final_lr_ratio at the last step
    grad_clip: float = 5.0
    average_last: int = 2  # final.pt = average of the last N epochs
    log_every: int = 20  # steps between TensorBoard points
    save_every_steps: int = 0  # also save state.pt every N steps inside an epoch (0: epoch ends only)
    prior_floor: float = 1e-5
    max_skipped_steps: int = 50  # abort when more steps than this had non-finite loss/gradients

    def __post_init__(self):
        require(self.num_epochs >= 1, "num_epochs", "must be at least 1")
        require(self.lr > 0, "lr", "must be positive")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        require(0.0 <= self.final_lr_ratio <= 1.0, "final_lr_ratio", "must be in [0, 1]")
        require(self.grad_clip > 0, "grad_clip", "must be positive")
        require(1 <= self.average_last <= self.num_epochs, "average_last",
                f"must be in 1..num_epochs ({self.num_epochs})")
        require(self.log_every >= 1, "log_every", "must be at least 1")
        require(self.save_every_steps >= 0, "save_every_steps", "must be >= 0")
        require(0.0 < self.prior_floor < 1.0, "prior_floor", "must be in (0, 1)")
        require(self.max_skipped_steps >= 0, "max_skipped_steps", "must be >= 0")


@dataclass
class AmConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        objective, levels = self.loss.objective, [h.level for h in self.model.aux_heads]
        if objective in ("baseline", "li"):
            require(not levels, "model.aux_heads",
                    f"objective {objective} trains no auxiliary head; remove them or use aux/hier")
        elif objective == "aux":
            require(len(levels) >= 1, "model.aux_heads", "objective aux needs at least one head")
        else:
            require(sorted(levels) == ["phone", "senone", "subword"], "model.aux_heads",
                    f"objective hier needs one head per level (senone, phone, subword), got {levels}")


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _defines(data, dotted: str) -> bool:
    """Whether a YAML mapping sets the dotted key (list indices as [i])."""
    node = data
    for part in dotted.replace("[", ".[").split("."):
        if part.startswith("[") and isinstance(node, list):
            index = int(part[1:-1])
            if index >= len(node):
                return False
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def load_am_config(path: str | Path, overrides: list[str | Path] = ()) -> AmConfig:
    """The config file with the override files merged on top; errors name the file that
    set the offending key (or all of them when no single file did)."""
    sources = [Path(path), *map(Path, overrides)]
    datas = [_read_yaml(p) for p in sources]
    merged = {}
    for data in datas:
        merged = _merge(merged, data)
    try:
        return from_dict(AmConfig, merged, "")
    except ConfigError as e:
        message = str(e)[2:] if str(e).startswith(": ") else str(e)
        key = message.split(": ", 1)[0]
        setting = [p for p, d in zip(sources, datas) if _defines(d, key)]
        where = str(setting[-1]) if setting else " + ".join(map(str, sources))
        raise ConfigError(f"{where}: {message}") from None


# ------------------------------------------------------------------ sizes and priors


def read_counts(path: Path) -> np.ndarray:
    counts = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected `senone_id count`, got {line!r}")
        counts[int(parts[0])] = int(parts[1])
    out = np.zeros(max(counts) + 1 if counts else 0, dtype=np.int64)
    for i, c in counts.items():
        out[i] = c
    return out


def count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def resolve_sizes(config: AmConfig, store: CutStore, counts_path: Path | None, lm_dir: Path
                  ) -> tuple[int, dict[str, int], np.ndarray, str]:
    """(num_senones, aux head sizes, senone counts [S], where the counts came from)."""
    counts, source = store.senone_counts, "the training alignments"
    if counts_path is not None and counts_path.is_file():
        counts, source = read_counts(counts_path), str(counts_path)
    seen = max(len(counts), store.max_id["ali"] + 1, store.max_id.get("senone", -1) + 1)
    num_senones = config.model.num_senones or seen
    if num_senones < len(counts):
        raise ConfigError(f"model.num_senones: {num_senones} is less than the {len(counts)} "
                          f"senones in {source}")
    full = np.zeros(num_senones, dtype=np.int64)
    full[: len(counts)] = counts
    aux = {}
    for i, head in enumerate(config.model.aux_heads):
        if head.num_units is not None:
            aux[head.level] = head.num_units
        elif head.level == "senone":
            aux[head.level] = num_senones
        else:
            tokens = lm_dir / f"lm_{head.level}" / "tokens.txt"
            if not tokens.is_file():
                raise ConfigError(f"model.aux_heads[{i}].num_units: not set and {tokens} does not "
                                  "exist (give --lm-dir or the head's num_units)")
            aux[head.level] = count_lines(tokens)
    return num_senones, aux, full, source


def write_priors(path: Path, counts: np.ndarray, log_priors: torch.Tensor) -> None:
    write_text(path, "".join(f"{i} {int(c)} {float(p):.6f}\n"
                             for i, (c, p) in enumerate(zip(counts, log_priors))))


# ------------------------------------------------------------------ distributed


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_world(device: str) -> tuple[World, torch.device]:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), torch.device(device)
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    return World(rank, size, local_rank), torch.device(f"cuda:{local_rank}") if cuda else torch.device(device)


def all_reduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    if world.size > 1:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


def gather_objects(obj, world: World) -> list:
    if world.size == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------ training pieces


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def lr_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to final_lr_ratio at total_steps."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.final_lr_ratio + (1 - config.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def train_step(model, core: AcousticModel, optimizer, batch, config: AmConfig, world: World,
               augment=None) -> dict:
    """One update on this process's share of the global batch. Returns the global terms
    (name -> (sum, count)), the gradient norm and whether the step was skipped (non-finite
    loss or gradient: the same decision on every process)."""
    out = model(batch.feats, batch.feat_lens, augment=augment)
    terms = loss_terms(config.loss.objective, config.loss.li_lambda, core.config.aux_heads, out, batch)
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
    out = model(batch.feats, batch.feat_lens)
    terms = loss_terms(config.loss.objective, config.loss.li_lambda, core.config.aux_heads, out, batch)
    counts = all_reduce_sum(torch.stack([t.count.float() for t in terms]), world)
    core.zero_grad(set_to_none=True)
    total_loss(terms, counts, scale=float(world.size)).backward()
    return {name: p.grad.detach().clone() for name, p in core.named_parameters() if p.grad is not None}


@torch.no_grad()
def evaluate(model: AcousticModel, store: CutStore, max_duration: float, device: torch.device,
             levels: tuple[str, ...]) -> dict:
    """Frame accuracy of every head on the dev cuts (main: senone labels; auxiliary heads:
    their level's hard labels where the dev cuts have them) and the main head's CE."""
    model.eval()
    dataset = AmDataset(store, model.subsampling, levels)
    correct = {"main": 0, **{lv: 0 for lv in levels}}
    total = {"main": 0, **{lv: 0 for lv in levels}}
    nll = 0.0
    for cuts in sequential_batches(store.cuts, max_duration):
        batch = dataset[CutSet.from_cuts(cuts)].to(device)
        out = model(batch.feats, batch.feat_lens)
        labels = batch.senone[out.mask]
        valid = labels >= 0
        pred = out.main.argmax(dim=-1)
        correct["main"] += int((pred == labels)[valid].sum())
        total["main"] += int(valid.sum())
        nll += float(-out.main.gather(1, labels.clamp(min=0)[:, None])[:, 0][valid].sum())
        for level in levels:
            t = batch.levels[level]
            m = t.mask[out.mask]
            hard = t.hard[out.mask]
            correct[level] += int((out.aux[level].argmax(dim=-1) == hard)[m].sum())
            total[level] += int(m.sum())
    model.train()
    result = {f"acc_{k}": (correct[k] / total[k] if total[k] else None) for k in correct}
    result["main_ce"] = nll / max(1, total["main"])
    result["frames"] = total["main"]
    return result


def average_state_dicts(paths: list[Path]) -> dict:
    """Element-wise mean of the float tensors of several checkpoints' state_dicts (others:
    the last checkpoint's)."""
    states = [ckpt_io.load(p)["state_dict"] for p in paths]
    out = {}
    for key, value in states[-1].items():
        if torch.is_floating_point(value):
            out[key] = sum(s[key].double() for s in states).div(len(states)).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def rng_state(generator: torch.Generator, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(), "augment": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    generator.set_state(state["augment"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    write_text(path, "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped))


def _summary_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # training goes on without curves
        log.warning("TensorBoard unavailable (%s); no curves written", e)
        return None
    return SummaryWriter(str(path))


def fingerprint(args, config: AmConfig) -> dict:
    """What a run's models are made from: the cuts, the senone counts, the teachers'
    vocabularies (aux heads' sizes), the merged config and the seed."""
    lm_dir = Path(args.lm_dir)
    vocabularies = [lm_dir / f"lm_{h.level}" / "tokens.txt" for h in config.model.aux_heads
                    if h.num_units is None]
    settings = to_dict(config)
    if config.model.encoder != "dmoe":  # so runs finished before the dmoe section existed stay done
        del settings["model"]["dmoe"]
    return atomic.inputs_fingerprint([args.cuts, args.dev_cuts, args.senone_counts, *vocabularies],
                                     config=settings, seed=args.seed)


# ------------------------------------------------------------------ the program


def train(args) -> int:
    world, device = init_world(args.device)
    exp_dir = Path(args.exp_dir)
    config = load_am_config(args.config, args.override or [])
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    print_ = fingerprint(args, config)
    if atomic.redo_reason(exp_dir, print_, args.force, [exp_dir / "final.pt"]) is None:
        if world.main:
            log.info("%s already trained with the same data, config and seed, nothing to do "
                     "(--force retrains)", exp_dir)
        return 0
    if world.main:
        log.info("%s: training: %s", exp_dir, atomic.redo_reason(exp_dir, print_, args.force,
                                                                  [exp_dir / "final.pt"]))
    barrier(world)
    if world.main:
        atomic.clear_done(exp_dir)
        # The old model goes first: nothing may decode with it while this one trains.
        atomic.remove(exp_dir / "final.pt")
    mc, tc = config.model, config.train
    levels = required_levels(config.loss.objective, mc.aux_heads)
    head_levels = tuple(h.level for h in mc.aux_heads)

    # ---- data (the first process fills the disk cache, the others then read it)
    cache_dir = None
    if config.data.cache_in_memory and args.data_cache != "none":
        cache_dir = exp_dir.parent / "am_data_cache" if args.data_cache == "auto" else Path(args.data_cache)
    if not world.main:
        barrier(world)
    if cache_dir is not None:
        store, skipped = CutStore.load_or_build(args.cuts, cache_dir, levels,
                                                description="reading training cuts")
    else:
        store, skipped = CutStore.build(CutSet.from_file(args.cuts), levels, config.data.cache_in_memory,
                                        description="reading training cuts")
    dev_store = None
    if args.dev_cuts:
        dev_store, dev_skipped = CutStore.load_or_build(args.dev_cuts, cache_dir, head_levels,
                                                        required=(), description="reading dev cuts")
    if world.main:
        barrier(world)
    counts_path = Path(args.senone_counts) if args.senone_counts else None
    num_senones, aux_units, counts, counts_source = resolve_sizes(config, store, counts_path,
                                                                  Path(args.lm_dir))
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
    log_priors = log_priors_from_counts(torch.from_numpy(counts), tc.prior_floor)
    counts_t = torch.from_numpy(counts)

    # ---- model, optimizer, schedule
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    feature_dim = store.feature_dim
    core = AcousticModel(feature_dim, num_senones, mc, aux_units)
    core.set_normalisation(*store.mean_std())
    core.to(device)
    model = core
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(core, tc)
    sampler = make_sampler(store.cuts, config.data, args.seed, world.size, world.rank)
    steps_per_epoch = sum(1 for _ in make_sampler(store.cuts, config.data, args.seed, world.size,
                                                  world.rank))
    total_steps = steps_per_epoch * tc.num_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, tc))
    generator = torch.Generator().manual_seed(args.seed * 1000 + world.rank)
    dataset = AmDataset(store, mc.subsampling, levels)
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
    # --force starts from scratch; a state saved for other inputs or settings is not resumed.
    state = ckpt_io.load(state_path, map_location="cpu") if (args.resume and not args.force
                                                             and state_path.exists()) else None
    if state is not None and state.get("fingerprint") != print_:
        if world.main:
            log.info("--resume: %s was saved for other inputs or settings (%s); starting from "
                     "scratch", state_path,
                     "; ".join(atomic.fingerprint_changes(state.get("fingerprint"), print_)[:4]))
        state = None
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
        set_rng_state(state["rng"][world.rank], generator, device)
        if world.main:
            log.info("resumed from %s: epoch %d, %d batches into it, step %d", state_path, epoch + 1,
                     state["batches_done"], step)
    elif args.resume and not state_path.exists() and world.main:
        log.info("--resume: no %s, starting from scratch", state_path)

    def save_state(batches_done: int, sums: dict, frames: int, seconds: float) -> None:
        rngs = gather_objects(rng_state(generator, device), world)
        if world.main:
            ckpt_io.save({"kind": "acoustic_model_state", "config": to_dict(config),
                          "state_dict": core.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
                          "step": step, "epoch": epoch, "batches_done": batches_done,
                          "epoch_sums": sums, "epoch_frames": frames, "epoch_seconds": seconds,
                          "skipped_steps": skipped_steps, "history": history, "rng": rngs,
                          "seed": args.seed, "world_size": world.size, "fingerprint": print_},
                         state_path)
        barrier(world)

    writer = _summary_writer(exp_dir / "tensorboard") if world.main else None
    augment = None
    if config.data.spec_augment.enabled:
        def augment(x, lengths):
            return spec_augment(x, lengths, config.data.spec_augment, generator)

    model.train()
    while epoch < tc.num_epochs:
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
            result = train_step(model, core, optimizer, batch, config, world, augment)
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
            if args.stop_after_steps and step >= args.stop_after_steps:
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
        weights = {"main_ce": 1.0, "main_li": 1.0,
                   **{f"kd_{h.level}": h.beta for h in mc.aux_heads},
                   **{f"ce_{h.level}": h.alpha for h in mc.aux_heads}}
        means["total"] = sum(weights[k] * v for k, v in means.items())
        dev = evaluate(core, dev_store, config.data.max_duration, device, head_levels) \
            if dev_store is not None and world.main else {}
        entry = {"epoch": epoch + 1, "step": step, "train": means, "dev": dev,
                 "seconds": round(elapsed, 2), "frames_per_second": round(frames / max(elapsed, 1e-9), 1),
                 "skipped_steps": skipped_steps}
        history.append(entry)
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
                                         {"epoch": epoch + 1, "step": step, "seed": args.seed}),
                         exp_dir / f"epoch-{epoch + 1}.pt")
        epoch += 1
        save_state(0, {}, 0, 0.0)

    # ---- the final model
    if world.main:
        epochs = list(range(tc.num_epochs - tc.average_last + 1, tc.num_epochs + 1))
        final = checkpoint_dict(core, to_dict(config), log_priors, counts_t,
                                {"epoch": tc.num_epochs, "step": step, "seed": args.seed,
                                 "averaged_epochs": epochs})
        final["state_dict"] = average_state_dicts([exp_dir / f"epoch-{e}.pt" for e in epochs])
        ckpt_io.save(final, exp_dir / "final.pt")
        write_priors(exp_dir / "priors.txt", counts, log_priors)
        if dev_store is not None:
            core.load_state_dict(final["state_dict"])
            final_dev = evaluate(core, dev_store, config.data.max_duration, device, head_levels)
            log.info("final.pt (average of epochs %s): dev %s", epochs,
                     " ".join(f"{k} {v:.4f}" for k, v in final_dev.items() if isinstance(v, float)))
        else:
            final_dev = {}
        stats = {"epochs": history, "final_dev": final_dev, "averaged_epochs": epochs,
                 "parameters": parameter_summary(core), "num_senones": num_senones,
                 "aux_units": aux_units, "world_size": world.size,
                 "train_seconds": round(sum(h["seconds"] for h in history), 2)}
        write_text(exp_dir / "train_stats.json", json.dumps(stats, indent=1) + "\n")
        if writer is not None:
            writer.close()
        atomic.mark_done(exp_dir, {"final_dev": final_dev}, print_)
        log.info("wrote %s", exp_dir / "final.pt")
    barrier(world)
    return 0


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML: sections model, loss, data, train")
    parser.add_argument("--override", action="append", default=[],
                        help="YAML merged on top of --config (repeatable), e.g. conf/am_tiny.yaml")
    parser.add_argument("--cuts", required=True, help="training cuts with soft labels")
    parser.add_argument("--dev-cuts", default=None, help="dev cuts for frame accuracy")
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="continue from exp-dir/state.pt")
    parser.add_argument("--force", action="store_true", help="retrain even if finished")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--senone-counts", default="exp/tri_ali/senone_counts.txt",
                        help="`senone_id count` per line; from the training cuts if absent")
    parser.add_argument("--lm-dir", default="exp",
                        help="where lm_<level>/tokens.txt give the auxiliary heads' sizes")
    parser.add_argument("--data-cache", default="auto",
                        help="directory for the validated cut arrays shared by runs on the same cuts "
                             "(auto: <exp-dir>/../am_data_cache; none: no disk cache)")
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--stop-after-steps", type=int, default=0,
                        help="save the state and stop after this many steps (to test --resume)")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    log_name = "train_am.log" if rank == 0 else f"train_am.rank{rank}.log"
    setup_logging(log_file=Path(args.exp_dir) / "log" / log_name)
    try:
        return train(args)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
