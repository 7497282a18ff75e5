"""Learning-rate schedules, one each, for every trainer. A schedule maps the loop's position
(steps and epochs done) to a learning rate; with lr=1.0 it is a factor of each parameter
group's own rate (Loop(relative_lr=True), torch's LambdaLR convention).

- WarmupCosine: linear warm-up over `warmup` steps, then cosine decay to final_ratio * lr
  at `total` steps (the acoustic model, the teacher LMs, each phase of the student);
- Newbob: Kaldi nnet1's schedule (steps/nnet/train_scheduler.sh) on the dev loss after each
  epoch, after the same warm-up: the LR stays until an epoch improves the best dev loss by
  less than start_halving_impr (relative), is multiplied by halving_factor after that epoch
  and every later one, and training stops once, halving, an epoch improves it by less than
  end_halving_impr (not before min_epochs; at num_epochs at the latest). An epoch that makes
  the dev loss worse counts as no improvement; unlike nnet1 its weights are kept (AdamW's
  moments would not match the earlier ones) and the final model is taken from the epoch of
  the best dev loss instead (steps.am.training);
- EpochDecay: lr * decay**epoch, the same for every step of an epoch (Kaldi's train_mono.sh
  style; the alignment models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


class WarmupCosine:
    def __init__(self, lr: float, warmup: int, total: int, final_ratio: float, first_step: int = 0):
        """first_step: the loop's step this schedule starts at (a later training phase)."""
        self.lr, self.warmup, self.total, self.final_ratio = lr, warmup, total, final_ratio
        self.first_step = first_step

    def __call__(self, step: int, epoch: int = 0) -> float:
        step -= self.first_step
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.lr * (self.final_ratio + (1 - self.final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class NewbobDecision:
    scale: float  # LR multiplier for the next epoch
    stop: bool  # no further epoch
    halving: bool


def newbob(dev_losses: list[float], config) -> NewbobDecision:
    """The newbob decision after the epochs whose dev losses are given (in order); config has
    start_halving_impr, end_halving_impr, halving_factor, min_epochs and num_epochs."""
    scale, halving, best = 1.0, False, math.inf
    for epoch, loss in enumerate(dev_losses, start=1):
        improvement = (best - loss) / best if math.isfinite(best) else math.inf
        if halving and improvement < config.end_halving_impr and epoch >= config.min_epochs:
            return NewbobDecision(scale, True, halving)
        if improvement < config.start_halving_impr:
            halving = True
        if halving:
            scale *= config.halving_factor
        best = min(best, loss)
    return NewbobDecision(scale, len(dev_losses) >= config.num_epochs, halving)


class Newbob:
    """Warm-up, then the newbob scale, which set_dev_losses() updates at each epoch's end
    (from the whole history, so that a resumed run gets it back)."""

    def __init__(self, lr: float, warmup: int, config):
        self.lr, self.warmup, self.config = lr, warmup, config
        self.scale = 1.0

    def set_dev_losses(self, dev_losses: list[float]) -> NewbobDecision:
        decision = newbob(dev_losses, self.config)
        self.scale = decision.scale
        return decision

    def __call__(self, step: int, epoch: int = 0) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup * self.scale
        return self.lr * self.scale


class EpochDecay:
    def __init__(self, lr: float, decay: float):
        self.lr, self.decay = lr, decay

    def __call__(self, step: int, epoch: int = 0) -> float:
        return self.lr * self.decay**epoch


def adamw(named_parameters, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (not on biases and norms)."""
    params = list(named_parameters)
    decay = [p for _, p in params if p.dim() >= 2]
    no_decay = [p for _, p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)
