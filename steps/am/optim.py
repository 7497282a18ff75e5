"""The optimiser and the learning-rate schedule of acoustic-model training (section train
of the config, steps.am.config.TrainConfig): Adam, or AdamW with weight decay on the
matrices only (not on biases and norms); linear warm-up, then (train.schedule)

- cosine: cosine decay to final_lr_ratio * lr at the last step of num_epochs;
- newbob: Kaldi nnet1's schedule (steps/nnet/train_scheduler.sh), on the dev loss (the main
  head's frame CE) after each epoch: the LR stays until an epoch improves the best dev loss
  by less than start_halving_impr (relative), is multiplied by halving_factor after that
  epoch and every later one, and training stops once, halving, an epoch improves it by less
  than end_halving_impr (not before min_epochs; at num_epochs at the latest). An epoch that
  makes the dev loss worse counts as no improvement; unlike nnet1 its weights are kept
  (AdamW's moments would not match the earlier ones) and final.pt is taken from the epoch
  of the best dev loss instead (steps.am.training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    """config: TrainConfig."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def lr_factor(step: int, total_steps: int, config) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to final_lr_ratio at total_steps."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.final_lr_ratio + (1 - config.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_factor(step: int, config) -> float:
    return (step + 1) / config.warmup_steps if step < config.warmup_steps else 1.0


@dataclass
class Newbob:
    scale: float  # LR multiplier for the next epoch
    stop: bool  # no further epoch
    halving: bool


def newbob(dev_losses: list[float], config) -> Newbob:
    """The newbob decision after the epochs whose dev losses are given (in order)."""
    scale, halving, best = 1.0, False, math.inf
    for epoch, loss in enumerate(dev_losses, start=1):
        improvement = (best - loss) / best if math.isfinite(best) else math.inf
        if halving and improvement < config.end_halving_impr and epoch >= config.min_epochs:
            return Newbob(scale, True, halving)
        if improvement < config.start_halving_impr:
            halving = True
        if halving:
            scale *= config.halving_factor
        best = min(best, loss)
    return Newbob(scale, len(dev_losses) >= config.num_epochs, halving)


class Schedule:
    """The LR factor per step: warm-up times cosine decay, or times the newbob scale, which
    set_dev_losses() updates at each epoch's end (from the history, so that a resumed run
    gets it back)."""

    def __init__(self, total_steps: int, config):
        self.total_steps, self.config = total_steps, config
        self.scale = 1.0

    def set_dev_losses(self, dev_losses: list[float]) -> Newbob:
        decision = newbob(dev_losses, self.config)
        self.scale = decision.scale
        return decision

    def __call__(self, step: int) -> float:
        if self.config.schedule == "cosine":
            return lr_factor(step, self.total_steps, self.config)
        return warmup_factor(step, self.config) * self.scale


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: Schedule
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
