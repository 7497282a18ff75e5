"""The acoustic model's training config: sections model (steps.am.model, structure only),
loss (steps.am.losses: objective and every loss weight), data (steps.am.data) and train
(TrainConfig below), read from YAML with steps.core.config (a `base:` file and --override
files merged on top):

    config = load_am_config("conf/am_hier.yaml", ["conf/am_tiny.yaml"])

A config in the layout before the loss weights moved (beta / alpha inside
model.aux_heads[]) is rejected with the key's new place; a checkpoint in that layout is
translated (`config_from_checkpoint`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from steps.am.data import DataConfig
from steps.am.losses import LossConfig, check_heads
from steps.am.model import ModelConfig, split_legacy_weights
from steps.core.config import ConfigError, from_dict, load_config, require, to_dict


@dataclass
class TrainConfig:
    num_epochs: int = 4  # newbob: the most epochs
    schedule: Literal["cosine", "newbob"] = "cosine"  # steps.train.schedule
    start_halving_impr: float = 0.01  # newbob: relative dev-loss improvement that starts halving
    end_halving_impr: float = 0.001  # newbob: ... that ends training, once halving
    halving_factor: float = 0.5  # newbob
    min_epochs: int = 1  # newbob: no stop before this many epochs
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
    priors: Literal["counts", "posteriors"] = "counts"  # steps.am.priors
    prior_cuts: int = 1000  # posteriors: training cuts averaged over (0: all)
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
        require(self.start_halving_impr >= self.end_halving_impr >= 0, "end_halving_impr",
                "must be in [0, start_halving_impr]")
        require(0.0 < self.halving_factor < 1.0, "halving_factor", "must be in (0, 1)")
        require(1 <= self.min_epochs <= self.num_epochs, "min_epochs",
                f"must be in 1..num_epochs ({self.num_epochs})")
        require(self.log_every >= 1, "log_every", "must be at least 1")
        require(self.save_every_steps >= 0, "save_every_steps", "must be >= 0")
        require(0.0 < self.prior_floor < 1.0, "prior_floor", "must be in (0, 1)")
        require(self.prior_cuts >= 0, "prior_cuts", "must be >= 0")
        require(self.max_skipped_steps >= 0, "max_skipped_steps", "must be >= 0")


@dataclass
class AmConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        problem = check_heads(self.loss, self.model.aux_heads)
        if problem is not None:
            require(False, *problem)

    @property
    def head_levels(self) -> tuple[str, ...]:
        return tuple(h.level for h in self.model.aux_heads)


_LEGACY_KEY = re.compile(r"model\.aux_heads\[\d+\]\.(beta|alpha): unknown key")


def load_am_config(path: str | Path, overrides: list[str | Path] = ()) -> AmConfig:
    """The config file (with its base) and the override files merged on top; errors name
    the file that set the offending key (or all of them when no single file did)."""
    try:
        return load_config(path, AmConfig, overrides)
    except ConfigError as e:
        old = _LEGACY_KEY.search(str(e))
        if old is None:
            raise
        raise ConfigError(f"{e}. Loss weights are the loss section's now: write it as "
                          f"loss.kd.<the head's level>.{old[1]}") from None


def config_from_checkpoint(config: dict, source: str = "checkpoint config") -> AmConfig:
    """The AmConfig saved in a checkpoint (its "config"), translating the layout before the
    loss weights moved: model.aux_heads[].beta/alpha become loss.kd.<level>."""
    config = copy.deepcopy(config)
    model, weights = split_legacy_weights(config.get("model", {}))
    if weights:
        config["model"] = model
        config["loss"] = {**config.get("loss", {}),
                          "kd": {**weights, **config.get("loss", {}).get("kd", {})}}
    return from_dict(AmConfig, config, source)


def settings_for_fingerprint(config: AmConfig) -> dict:
    """The config as the runs' fingerprints hold it: the layout of the runs that came before
    (each head's loss weights in its model.aux_heads entry, no dmoe section for other
    encoders, no loss.head_frame_share where the heads read every frame), so that their
    finished runs stay finished."""
    settings = to_dict(config)
    if config.model.encoder != "dmoe":
        del settings["model"]["dmoe"]
    if config.loss.head_frame_share == 1.0:
        del settings["loss"]["head_frame_share"]
    del settings["loss"]["kd"]  # check_heads: every level in it has a head
    for head in settings["model"]["aux_heads"]:
        weights = config.loss.weights(head["level"])
        head["beta"], head["alpha"] = weights.beta, weights.alpha
    return settings
