"""Typed configs of the compression step (YAML in conf/compress/, loaded by steps.core.config).

Teacher (conf/compress/teacher_*.yaml): which model, which of its layers are cached and how.
Student (conf/compress/student_*.yaml): sections model, loss, train.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from steps.core.config import require

TEACHER_KINDS = ("am", "hubert", "wavlm")


@dataclass
class TeacherConfig:
    kind: Literal["am", "hubert", "wavlm"] = "am"
    # am: a checkpoint of steps.train_am (final.pt); hubert / wavlm: a directory written by
    # transformers' save_pretrained (config.json + weights)
    path: str = ""
    # hidden layers to cache, in generation order; 0 = the input layer's output (am) or the
    # transformer's input (hubert/wavlm), i = the output of layer i
    layers: list[int] = field(default_factory=list)
    storage: Literal["float16", "lilcom"] = "float16"
    lilcom_tick_power: int = -8  # lilcom stores multiples of 2^tick_power (-8: 0.0039)
    sample_rate: int = 16000  # hubert / wavlm: the rate the model was trained at

    def __post_init__(self):
        require(bool(self.path), "path", "must name the teacher checkpoint or directory")
        require(len(self.layers) >= 1, "layers", "must list at least one layer")
        require(all(i >= 0 for i in self.layers), "layers", f"must be >= 0, got {self.layers}")
        require(len(set(self.layers)) == len(self.layers), "layers", f"repeated: {self.layers}")
        require(self.sample_rate > 0, "sample_rate", "must be positive")


@dataclass
class StudentModelConfig:
    # generative: GenDistiller (step l generates teacher layer l from the generated l-1);
    # parallel: DistilHuBERT (one encoder, one prediction head per teacher layer)
    kind: Literal["generative", "parallel"] = "generative"
    frontend_dim: int = 64  # front end: spliced fbank -> frontend_dim (steps.am.model.InputLayer)
    input_context: int = 2
    subsampling: int = 3  # must give the teacher cache's frame rate
    hidden_dim: int = 64  # generator step / encoder width
    bottleneck_dim: int = 32
    kernel_size: int = 3  # time context per block: bidirectional in time
    blocks_per_step: int = 2  # generative: TDNN-F blocks inside one generator step
    share_steps: bool = True  # generative: one generator for every step (+ a step embedding)
    num_layers: int = 4  # parallel: encoder layers
    prefinal_dim: int = 64  # senone head
    dropout: float = 0.0

    def __post_init__(self):
        for key in ("frontend_dim", "hidden_dim", "bottleneck_dim", "blocks_per_step", "num_layers",
                    "prefinal_dim"):
            require(getattr(self, key) > 0, key, "must be positive")
        require(self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size", "must be odd")
        require(self.subsampling in (1, 2, 3, 4), "subsampling", "must be 1, 2, 3 or 4")
        require(self.input_context >= self.subsampling // 2, "input_context",
                "must be >= subsampling // 2")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")


@dataclass
class DistillLossConfig:
    l1_weight: float = 1.0
    cos_weight: float = 1.0  # DistilHuBERT's lambda
    # logsigmoid: -log sigmoid(cos) (DistilHuBERT eq. 1); distance: 1 - cos
    cos_form: Literal["logsigmoid", "distance"] = "logsigmoid"

    def __post_init__(self):
        require(self.l1_weight >= 0, "l1_weight", "must be >= 0")
        require(self.cos_weight >= 0, "cos_weight", "must be >= 0")
        require(self.l1_weight + self.cos_weight > 0, "l1_weight", "both weights are 0")


@dataclass
class StudentTrainConfig:
    distill_epochs: int = 10  # phase 1: layer generation (0: a student from scratch on senones)
    finetune_epochs: int = 10  # phase 2: senone head with CE on the top representation
    freeze_body: bool = False  # phase 2: train the head alone
    lr: float = 4.0e-3
    finetune_lr: float = 2.0e-3
    weight_decay: float = 1.0e-4
    warmup_steps: int = 10
    grad_clip: float = 5.0
    max_duration: float = 10.0  # seconds of speech per batch
    prior_floor: float = 1.0e-5

    def __post_init__(self):
        require(self.distill_epochs >= 0, "distill_epochs", "must be >= 0")
        require(self.finetune_epochs >= 1, "finetune_epochs", "must be at least 1")
        require(self.lr > 0 and self.finetune_lr > 0, "lr", "must be positive")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        require(self.grad_clip > 0, "grad_clip", "must be positive")
        require(self.max_duration > 0, "max_duration", "must be positive")
        require(0.0 < self.prior_floor < 1.0, "prior_floor", "must be in (0, 1)")


@dataclass
class StudentConfig:
    model: StudentModelConfig = field(default_factory=StudentModelConfig)
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)
    train: StudentTrainConfig = field(default_factory=StudentTrainConfig)
