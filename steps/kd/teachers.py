"""The teacher LMs of a dump: a trained unit-level LM (steps.train_lm) or a pre-trained one, scored in batches of tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from steps.core import checkpoint as ckpt_io
from steps.kd.pretrained_teacher import TEACHER_FILE, PlmError, PretrainedTeacher
from steps.lm.model import TransformerLM, model_from_checkpoint, unit_logits, unit_top_k


@dataclass
class Teacher:
    level: str
    model: TransformerLM
    path: Path
    batch_tokens: int = 8192

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu"):
        """A steps.train_lm teacher, or a pre-trained one (steps.kd.pretrained_teacher) for a
        directory with teacher.json or a transformers config.json."""
        path = Path(directory)
        if path.is_dir() and ((path / TEACHER_FILE).is_file() or (path / "config.json").is_file()):
            try:
                return PretrainedTeacher.load(path, device)
            except PlmError as e:
                raise SystemExit(f"plm teacher: {e}") from None
        path = path / "final.pt" if path.is_dir() else path
        checkpoint = ckpt_io.load(path, map_location=device)
        return cls(checkpoint["level"], model_from_checkpoint(checkpoint, device), path)

    @property
    def num_units(self) -> int:
        return self.model.num_units

    def fits(self, length: int) -> bool:
        """Whether a reference of `length` units fits in one window."""
        extra = 1 if self.model.causal else 2
        return length + extra <= self.model.config.max_context

    def unit_logits(self, sentences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        return unit_logits(self.model, sentences, self.batch_tokens)

    def top_k(self, sentences: Sequence[Sequence[int]], k: int, temperature: float
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sentence (ids [n, k], probs [n, k]): the soft label of every position."""
        return unit_top_k(self.model, sentences, k, temperature, self.batch_tokens)
