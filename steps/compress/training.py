"""Training a student: phase 1 generates (or predicts) the cached teacher layers, phase 2
fine-tunes the senone head with frame CE on the top representation.

    examples, skipped = load_examples(cuts, num_teacher_layers=4)      # all in memory
    trainer = Trainer(model, config, exp_dir, seed)
    trainer.run(examples, dev_examples)                                 # resumable

Data: every cut is read once (features, senone_ali, teacher_layers); sizes are small (a
student is trained on the same cuts as the AM). Batches: cuts sorted by length, cut into
groups of at most max_duration seconds, the groups shuffled per epoch with the seed.
Targets at the student's output rate: senone labels as steps.am.targets (frame j*s + s//2),
teacher layers as cached (the dump's frame rate must equal the student's subsampling).

Schedule: per phase, linear warm-up over warmup_steps then cosine decay to 5% of the
phase's lr. state.pt is written after every epoch (model, optimizer, epoch, history, the
RNG state); a rerun continues from it.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from steps.am.targets import IGNORE, senone_targets
from steps.compress.config import StudentConfig
from steps.compress.layer_cache import FIELD, load_layers
from steps.compress.losses import distill_loss
from steps.compress.teacher import TeacherError
from steps.core import checkpoint as ckpt_io

log = logging.getLogger(__name__)
ALI_FIELD = "senone_ali"


@dataclass
class Example:
    id: str
    feats: np.ndarray  # float32 [T, F]
    senone: Optional[np.ndarray]  # int64 [T]
    layers: Optional[np.ndarray]  # float16 [N, L, D] (kept small in memory)


def load_examples(cuts, num_teacher_layers: int | None, subsampling: int,
                  need_senones: bool = True) -> tuple[list[Example], list[tuple[str, str]]]:
    """The usable cuts and (cut id, reason) for those left out. num_teacher_layers None:
    teacher layers are not read."""
    examples, skipped = [], []
    for cut in tqdm(cuts, desc="reading cuts", disable=None):
        try:
            if not cut.has_features:
                raise ValueError("no features")
            feats = np.asarray(cut.load_features(), dtype=np.float32)
            senone = None
            if cut.has_custom(ALI_FIELD):
                senone = np.asarray(cut.load_custom(ALI_FIELD)).reshape(-1).astype(np.int64)
                if len(senone) != len(feats):
                    raise ValueError(f"{ALI_FIELD} has {len(senone)} frames, the features {len(feats)}")
            elif need_senones:
                raise ValueError(f"no {ALI_FIELD}")
            layers = None
            if num_teacher_layers is not None:
                if not cut.has_custom(FIELD):
                    raise ValueError(f"no {FIELD} (cut not in the teacher dump)")
                layers = load_layers(cut, num_teacher_layers).astype(np.float16)
                expected = (len(feats) + subsampling - 1) // subsampling
                if layers.shape[0] != expected:
                    raise ValueError(f"{FIELD} has {layers.shape[0]} frames, the student at subsampling "
                                     f"{subsampling} makes {expected}")
            examples.append(Example(cut.id, feats, senone, layers))
        except (ValueError, TeacherError, OSError) as e:
            skipped.append((cut.id, str(e)))
    return examples, skipped


def make_batches(examples: list[Example], max_duration: float, seed: int, epoch: int) -> list[list[Example]]:
    order = sorted(examples, key=lambda e: (len(e.feats), e.id))
    batches, current, frames = [], [], 0
    limit = max(1, int(max_duration * 100))  # 10 ms frames
    for example in order:
        if current and frames + len(example.feats) > limit:
            batches.append(current)
            current, frames = [], 0
        current.append(example)
        frames += len(example.feats)
    if current:
        batches.append(current)
    random.Random(seed * 1000 + epoch).shuffle(batches)
    return batches


def collate(batch: list[Example], subsampling: int, device) -> dict:
    lens = np.array([len(e.feats) for e in batch], dtype=np.int64)
    feats = np.zeros((len(batch), int(lens.max()), batch[0].feats.shape[1]), dtype=np.float32)
    for b, e in enumerate(batch):
        feats[b, : len(e.feats)] = e.feats
    out = {"feats": torch.from_numpy(feats).to(device), "lens": torch.from_numpy(lens).to(device),
           "senone": senone_targets([e.senone for e in batch], lens, subsampling).to(device)}
    if batch[0].layers is not None:
        n = (lens + subsampling - 1) // subsampling
        _, num_layers, dim = batch[0].layers.shape
        layers = np.zeros((len(batch), int(n.max()), num_layers, dim), dtype=np.float32)
        for b, e in enumerate(batch):
            layers[b, : len(e.layers)] = e.layers
        out["layers"] = torch.from_numpy(layers).to(device)
    return out


def feature_stats(examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    stacked = np.concatenate([e.feats for e in examples]).astype(np.float64)
    return torch.from_numpy(stacked.mean(0)).float(), torch.from_numpy(stacked.std(0)).float()


def senone_counts(examples: list[Example], num_senones: int) -> torch.Tensor:
    counts = np.zeros(num_senones, dtype=np.int64)
    for e in examples:
        if e.senone is not None:
            counts += np.bincount(e.senone, minlength=num_senones)[:num_senones]
    return torch.from_numpy(counts)


def lr_at(step: int, total: int, lr: float, warmup: int, final_ratio: float = 0.05) -> float:
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def frame_accuracy(model, examples: list[Example], max_duration: float, device) -> float | None:
    model.eval()
    right = total = 0
    for batch in make_batches(examples, max_duration, 0, 0):
        data = collate(batch, model.subsampling, device)
        out = model(data["feats"], data["lens"])
        labels = data["senone"][out.mask]
        keep = labels != IGNORE
        right += int((out.main.argmax(-1)[keep] == labels[keep]).sum())
        total += int(keep.sum())
    model.train()
    return right / total if total else None


class Trainer:
    def __init__(self, model, config: StudentConfig, exp_dir: Path, seed: int, device="cpu"):
        self.model, self.config, self.exp_dir, self.seed = model, config, Path(exp_dir), seed
        self.device = torch.device(device)
        self.history: list[dict] = []

    def phase_of(self, epoch: int) -> str:
        return "distill" if epoch < self.config.train.distill_epochs else "finetune"

    def _optimizer(self, phase: str):
        t = self.config.train
        if phase == "finetune" and t.freeze_body:
            params = list(self.model.senone_head.parameters())
        else:
            params = [p for n, p in self.model.named_parameters()
                      if phase == "finetune" or not n.startswith("senone_head.")]
        lr = t.lr if phase == "distill" else t.finetune_lr
        return torch.optim.AdamW(params, lr=lr, weight_decay=t.weight_decay), lr

    def run(self, examples: list[Example], dev: list[Example]) -> list[dict]:
        t = self.config.train
        total_epochs = t.distill_epochs + t.finetune_epochs
        state_path = self.exp_dir / "state.pt"
        start, optimizer, phase = 0, None, None
        if state_path.is_file():
            state = ckpt_io.load(state_path)
            self.model.load_state_dict(state["model"])
            start, self.history = state["epoch"], state["history"]
            phase = self.phase_of(start - 1)
            optimizer, _ = self._optimizer(phase)
            optimizer.load_state_dict(state["optimizer"])
            random.setstate(state["python_rng"])
            torch.set_rng_state(state["torch_rng"])
            log.info("resuming after epoch %d (%s) from %s", start, phase, state_path)
        self.model.to(self.device).train()
        for epoch in range(start, total_epochs):
            new_phase = self.phase_of(epoch)
            if new_phase != phase:
                optimizer, _ = self._optimizer(new_phase)
                phase = new_phase
            first = 0 if phase == "distill" else t.distill_epochs
            epochs_in_phase = t.distill_epochs if phase == "distill" else t.finetune_epochs
            batches = make_batches(examples, t.max_duration, self.seed, epoch)
            steps_in_phase = epochs_in_phase * len(batches)
            base_lr = t.lr if phase == "distill" else t.finetune_lr
            sums: dict[str, float] = {}
            began = time.perf_counter()
            for index, batch in enumerate(tqdm(batches, desc=f"epoch {epoch + 1} {phase}", disable=None)):
                step = (epoch - first) * len(batches) + index
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, steps_in_phase, base_lr, t.warmup_steps)
                data = collate(batch, self.model.subsampling, self.device)
                loss, figures = self._loss(data, phase)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
                optimizer.step()
                for k, v in {"loss": float(loss), **figures}.items():
                    sums[k] = sums.get(k, 0.0) + v
            record = {"epoch": epoch + 1, "phase": phase, "seconds": round(time.perf_counter() - began, 1),
                      **{k: round(v / len(batches), 4) for k, v in sums.items()}}
            if phase == "finetune" and dev:
                record["dev_frame_accuracy"] = frame_accuracy(self.model, dev, t.max_duration, self.device)
            self.history.append(record)
            log.info("epoch %d %s: %s", epoch + 1, phase,
                     " ".join(f"{k} {v}" for k, v in record.items() if k not in ("epoch", "phase")))
            ckpt_io.save({"model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                          "epoch": epoch + 1, "history": self.history, "python_rng": random.getstate(),
                          "torch_rng": torch.get_rng_state()}, state_path)
        return self.history

    def _loss(self, data: dict, phase: str):
        out = self.model(data["feats"], data["lens"], with_senones=phase == "finetune")
        if phase == "distill":
            return distill_loss(out.layers, data["layers"], out.mask, self.config.loss)
        labels = data["senone"][out.mask]
        loss = F.nll_loss(out.main, labels, ignore_index=IGNORE)
        return loss, {"ce": float(loss)}
