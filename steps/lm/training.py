"""Training a teacher LM on one level's token corpus: batches, schedule, resumable epochs, held-out perplexity against the bigram anchor."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from steps.core import checkpoint as ckpt_io
from steps.core.atomic import write_text
from steps.core.config import require, to_dict
from steps.core.log import summary_writer
from steps.lm.bigram import Bigram, perplexity
from steps.lm.model import KIND, ModelConfig, Specials, build_model, log_likelihood
from steps.lm.corpus import TokenCorpus
from steps.lm.tokens import read_tokens
from steps.train.loop import Loop, Step, Task
from steps.train.schedule import WarmupCosine, adamw

log = logging.getLogger(__name__)


EXIT_WORSE_THAN_BIGRAM = 3


@dataclass
class TrainConfig:
    batch_tokens: int = 4096  # padded positions per batch
    max_steps: int = 1000
    max_epochs: Optional[float] = None  # stop earlier if this many passes over train.txt are done
    lr: float = 2e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio at max_steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mask_prob: float = 0.15  # masked objective: share of unit positions predicted
    valid_every: int = 250
    valid_max_tokens: int = 50000  # held-out units used for the perplexity (first sentences)
    save_every: int = 250
    log_every: int = 25
    seed: int = 1
    # exit with status 3 when the teacher does not beat the bigram (tiny configs: false,
    # they only warn)
    fail_if_worse_than_bigram: bool = True

    def __post_init__(self):
        require(self.batch_tokens > 0, "batch_tokens", "must be positive")
        require(self.max_steps > 0, "max_steps", "must be positive")
        require(self.max_epochs is None or self.max_epochs > 0, "max_epochs", "must be positive")
        require(self.lr > 0, "lr", "must be positive")
        require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        require(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "must be in [0, 1]")
        require(0.0 < self.mask_prob < 1.0, "mask_prob", "must be in (0, 1)")
        require(self.valid_every > 0 and self.save_every > 0 and self.log_every > 0,
                "valid_every", "valid_every, save_every and log_every must be positive")
        require(self.valid_max_tokens > 0, "valid_max_tokens", "must be positive")


@dataclass
class LmConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def model_length(num_units: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Positions sentences of num_units take in one training example each."""
    extra = 1 if config.objective == "causal" else 2  # causal: [bos] u (targets u [eos])
    return np.minimum(num_units + extra, config.max_context)


def epoch_batches(lengths: np.ndarray, batch_tokens: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Sentence indices per batch for one epoch: shuffled, then sorted by length within
    pools of ~50 batches (little padding), batches shuffled. Deterministic in (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    pool = max(1, 50 * batch_tokens // max(1, int(lengths.mean())))
    batches = []
    for p in range(0, len(order), pool):
        chunk = order[p:p + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        start = 0
        for i in range(1, len(chunk) + 1):
            if i == len(chunk) or (i > start and (i + 1 - start) * lengths[chunk[i]] > batch_tokens):
                batches.append(chunk[start:i])
                start = i
    return [batches[i] for i in rng.permutation(len(batches))]


def make_batch(sentences: Sequence[Sequence[int]], specials: Specials, config: ModelConfig,
               mask_prob: float, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs [B, L], lengths [B], targets [B, L] with -100 where nothing is predicted)."""
    context = config.max_context
    examples = []
    for units in sentences:
        full = np.concatenate([[specials.bos], np.asarray(units, dtype=np.int64), [specials.eos]])
        if config.objective == "causal":
            width = min(len(full) - 1, context)
            start = int(rng.integers(0, len(full) - 1 - width + 1))
            inputs, targets = full[start:start + width], full[start + 1:start + width + 1]
        else:
            width = min(len(full), context)
            start = int(rng.integers(0, len(full) - width + 1))
            inputs = full[start:start + width].copy()
            targets = np.full(width, -100, dtype=np.int64)
            candidates = np.flatnonzero(inputs < specials.num_units)
            chosen = candidates[rng.random(len(candidates)) < mask_prob]
            if len(chosen) == 0 and len(candidates):
                chosen = candidates[rng.integers(0, len(candidates), 1)]
            targets[chosen] = inputs[chosen]
            action = rng.random(len(chosen))  # BERT: 80% [mask], 10% random unit, 10% kept
            inputs[chosen[action < 0.8]] = specials.mask
            swap = chosen[(action >= 0.8) & (action < 0.9)]
            inputs[swap] = rng.integers(0, specials.num_units, len(swap))
        examples.append((inputs, targets))
    width = max(len(i) for i, _ in examples)
    x = torch.full((len(examples), width), specials.pad, dtype=torch.long)
    y = torch.full((len(examples), width), -100, dtype=torch.long)
    for b, (inputs, targets) in enumerate(examples):
        x[b, :len(inputs)] = torch.from_numpy(inputs)
        y[b, :len(targets)] = torch.from_numpy(targets)
    return x, torch.tensor([len(i) for i, _ in examples]), y


def learning_rate(step: int, config: TrainConfig) -> float:
    return WarmupCosine(config.lr, config.warmup_steps, config.max_steps, config.min_lr_ratio)(step)


def valid_subset(valid: Iterable[np.ndarray], max_tokens: int) -> list[np.ndarray]:
    """The first sentences, up to max_tokens (at least one)."""
    subset, total = [], 0
    for s in valid:
        if subset and total + len(s) > max_tokens:
            break
        subset.append(s)
        total += len(s)
    return subset


class LmTrainer(Task):
    """A teacher LM's part of the loop (steps.train.loop): batches of sentences, each made
    with an RNG of its own step (random crops, masking), the cross-entropy, the held-out
    perplexity every valid_every steps."""

    def __init__(self, level: str, config: LmConfig, train_set, valid_set, num_units: int, device):
        tc, mc = config.train, config.model
        self.level, self.config, self.train_set, self.valid_set, self.device = (
            level, config, train_set, valid_set, device)
        self.num_units = num_units
        self.lengths = model_length(train_set.lengths, mc)
        self.num_batches = len(epoch_batches(self.lengths, tc.batch_tokens, tc.seed, 0))
        torch.manual_seed(tc.seed)
        self.model = build_model(num_units, mc).to(device)
        self.optimizer = adamw(self.model.named_parameters(), tc.lr, tc.weight_decay)

    def batches(self, loop: Loop):
        tc = self.config.train
        batches = epoch_batches(self.lengths, tc.batch_tokens, tc.seed, loop.pos.epoch)
        self.num_batches = len(batches)
        for index in batches[loop.pos.batch:]:
            rng = np.random.default_rng([tc.seed, loop.pos.step, 1])
            yield make_batch([self.train_set[i] for i in index], self.model.specials, self.config.model,
                             tc.mask_prob, rng)

    def step(self, batch) -> Step:
        x, n, y = batch
        logits = self.model(x.to(self.device), n.to(self.device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(self.device).reshape(-1),
                               ignore_index=-100)
        return Step(loss, {"loss": (float(loss), 1.0)})

    def after_step(self, loop: Loop) -> None:
        step = loop.pos.step
        if step % self.config.train.valid_every == 0 and step < loop.max_steps:
            ppl = perplexity(*log_likelihood(self.model, self.valid_set, device=self.device))
            self.model.train()
            log.info("step %d: held-out %s %.3f", step, _ppl_name(self.config.model), ppl)
            loop.scalars("valid", {"ppl": ppl}, step)

    def state_dict(self) -> dict:
        return {"kind": KIND + "_state", "level": self.level, "config": to_dict(self.config),
                "num_units": self.num_units, "state_dict": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["state_dict"])


def read_data(level: str, data_dir: Path, config: LmConfig) -> tuple[TokenCorpus, list, int]:
    """The training sentences (checked; read from disk as they are needed, steps.lm.corpus),
    the held-out ones the perplexity is measured on, and the number of units."""
    tc, mc = config.train, config.model
    units = read_tokens(data_dir / "tokens.txt")
    train_set = TokenCorpus.open(data_dir / "train.txt")
    valid_set = valid_subset(TokenCorpus.open(data_dir / "valid.txt"), tc.valid_max_tokens)
    num_units = len(units)
    info = train_set.info
    if info["tokens"] and (info["min_id"] < 0 or info["max_id"] >= num_units):
        count, first = train_set.sentences_outside(num_units)
        raise ValueError(f"{data_dir}/train.txt: {count} sentences have ids outside "
                         f"0..{num_units - 1} (first: line {first})")
    long = int(np.sum(train_set.lengths + 2 > mc.max_context))
    log.info("%s: %d units, %d train sentences (%d tokens, %d longer than the context of %d: "
             "random crops), %d held-out sentences (%d tokens) for the perplexity",
             level, num_units, len(train_set), train_set.num_tokens, long, mc.max_context,
             len(valid_set), sum(map(len, valid_set)))
    return train_set, valid_set, num_units


def train(level: str, config: LmConfig, data_dir: Path, exp_dir: Path, resume: bool,
          device: torch.device, config_path: Path | None = None, inputs: dict | None = None) -> dict:
    """Trains and evaluates one teacher; returns the perplexity report (also in exp_dir/ppl).
    `inputs`: the fingerprint stored with the training state; --resume continues only from a
    state with the same one."""
    tc, mc = config.train, config.model
    trainer = LmTrainer(level, config, *read_data(level, data_dir, config), device)
    model = trainer.model
    log.info("model: %d parameters, objective %s", sum(p.numel() for p in model.parameters()),
             mc.objective)
    max_steps = tc.max_steps
    if tc.max_epochs is not None:
        max_steps = min(max_steps, int(math.ceil(tc.max_epochs * trainer.num_batches)))
    # the module's learning_rate, looked up at each step
    loop = Loop(trainer.optimizer, lambda step, epoch: learning_rate(step, tc), model.parameters(),
                tc.grad_clip, max_steps=max_steps, log_every=tc.log_every, desc=f"train {level} LM",
                state_path=exp_dir / "checkpoint.pt", fingerprint=inputs, save_every=tc.save_every,
                save_epochs=False, device=device)
    if loop.resume(trainer, resume):
        log.info("resumed from %s at step %d (epoch %d, batch %d)", loop.state_path, loop.pos.step,
                 loop.pos.epoch, loop.pos.batch)
    loop.writer = summary_writer(exp_dir / "tensorboard")
    model.train()
    started = time.time()
    loop.run(trainer)
    log.info("%d steps (epoch %d) in %.1f s this run", loop.pos.step, loop.pos.epoch, time.time() - started)
    report = evaluate(trainer, loop.pos.step)
    loop.scalars("valid", {"ppl": report["teacher_ppl"], "bigram_ppl": report["bigram_ppl"]}, loop.pos.step)
    if loop.writer:
        loop.writer.close()
    write_text(exp_dir / "ppl", "".join(f"{k} {_fmt(v)}\n" for k, v in report.items()))
    ckpt_io.save({"kind": KIND, "level": level, "config": to_dict(config), "num_units": trainer.num_units,
                  "state_dict": model.state_dict(), "ppl": report}, exp_dir / "final.pt")
    return report


def evaluate(trainer: LmTrainer, steps: int) -> dict:
    """The held-out (pseudo-)perplexity of the teacher and of the bigram anchor."""
    mc = trainer.config.model
    teacher_ll, events = log_likelihood(trainer.model, trainer.valid_set, device=trainer.device)
    with_eos = mc.objective == "causal"
    bigram = Bigram.train(trainer.train_set, trainer.num_units)
    bigram_ll, bigram_events = bigram.log_likelihood(trainer.valid_set, with_eos)
    assert events == bigram_events, (events, bigram_events)
    report = {
        "level": trainer.level, "objective": mc.objective, "measure": _ppl_name(mc),
        "teacher_ppl": perplexity(teacher_ll, events),
        "bigram_ppl": perplexity(bigram_ll, bigram_events),
        "bigram": "interpolated Kneser-Ney bigram on train.txt",
        "valid_sentences": len(trainer.valid_set), "events": events,
        "events_include_eos": with_eos, "steps": steps, "epochs": round(steps / max(1, trainer.num_batches), 3),
    }
    report["teacher_beats_bigram"] = report["teacher_ppl"] < report["bigram_ppl"]
    return report


def _ppl_name(config: ModelConfig) -> str:
    return "perplexity" if config.objective == "causal" else "pseudo-perplexity"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
