"""The optimiser and the learning-rate schedule of acoustic-model training (section train
of the config, steps.am.config.TrainConfig): Adam, or AdamW with weight decay on the
matrices only (not on biases and norms); linear warm-up, then cosine decay to
final_lr_ratio * lr at the last step.
"""

from __future__ import annotations

import math

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


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, config
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, config))
