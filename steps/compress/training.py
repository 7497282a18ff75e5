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
phase's lr. The loop (steps.train.loop) writes state.pt after every epoch (model,
optimizer, position, history, the RNG states); a rerun continues from it.
"""

from __future__ import annotations

import logging
import random
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
from steps.train.loop import Loop, Step, Task
from steps.train.schedule import WarmupCosine

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


class Trainer(Task):
    """The student's part of the loop (steps.train.loop): per phase its own optimiser (the
    fine-tuning one sees the senone head alone with freeze_body) and schedule, the phase's
    loss, and the history with the dev frame accuracy of each fine-tuning epoch."""

    def __init__(self, model, config: StudentConfig, exp_dir: Path, seed: int, device="cpu"):
        self.model, self.config, self.exp_dir, self.seed = model, config, Path(exp_dir), seed
        self.device = torch.device(device)
        self.history: list[dict] = []
        self.examples: list[Example] = []
        self.dev: list[Example] = []
        self.phase = self.phase_of(0)
        # the schedule is each phase's (start_epoch)
        self.loop = Loop(self._optimizer(self.phase), lambda step, epoch: 0.0, self.model.parameters(),
                         config.train.grad_clip, num_epochs=config.train.distill_epochs + config.train.finetune_epochs,
                         state_path=self.exp_dir / "state.pt", device=self.device)

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
        return torch.optim.AdamW(params, lr=lr, weight_decay=t.weight_decay)

    def run(self, examples: list[Example], dev: list[Example]) -> list[dict]:
        self.examples, self.dev = examples, dev
        if self.loop.resume(self) is not None:
            log.info("resuming after epoch %d (%s) from %s", self.loop.pos.epoch, self.phase, self.loop.state_path)
        self.model.to(self.device).train()
        self.loop.run(self)
        return self.history

    def start_epoch(self, loop: Loop) -> None:
        """A new phase's optimiser, and the phase's schedule: warm-up and cosine decay to 5%
        over its epochs."""
        t, phase = self.config.train, self.phase_of(loop.pos.epoch)
        if phase != self.phase:
            loop.optimizer, self.phase = self._optimizer(phase), phase
        first, epochs = (0, t.distill_epochs) if phase == "distill" else (t.distill_epochs, t.finetune_epochs)
        per_epoch = len(make_batches(self.examples, t.max_duration, self.seed, loop.pos.epoch))
        lr = t.lr if phase == "distill" else t.finetune_lr
        loop.schedule = WarmupCosine(lr, t.warmup_steps, epochs * per_epoch, 0.05, first_step=first * per_epoch)

    def epoch_length(self, loop: Loop) -> int:
        return len(self.batches(loop))

    def batches(self, loop: Loop) -> list[list[Example]]:
        return make_batches(self.examples, self.config.train.max_duration, self.seed, loop.pos.epoch)[loop.pos.batch:]

    def step(self, batch) -> Step:
        data = collate(batch, self.model.subsampling, self.device)
        loss, figures = self._loss(data, self.phase)
        return Step(loss, {k: (v, 1.0) for k, v in {"loss": float(loss), **figures}.items()})

    def end_epoch(self, loop: Loop) -> bool:
        epoch, t = loop.pos.epoch, self.config.train
        record = {"epoch": epoch + 1, "phase": self.phase, "seconds": round(loop.seconds, 1),
                  **{k: round(v, 4) for k, v in loop.sums.means().items()}}
        if self.phase == "finetune" and self.dev:
            record["dev_frame_accuracy"] = frame_accuracy(self.model, self.dev, t.max_duration, self.device)
        self.history.append(record)
        log.info("epoch %d %s: %s", epoch + 1, self.phase,
                 " ".join(f"{k} {v}" for k, v in record.items() if k not in ("epoch", "phase")))
        return False

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        """The weights, the history, and the optimiser of the phase of the last epoch done
        (the loop loads its state next)."""
        self.model.load_state_dict(state["model"])
        self.history = state["history"]
        self.phase = self.phase_of(state["epoch"] - 1)
        self.loop.optimizer = self._optimizer(self.phase)

    def _loss(self, data: dict, phase: str):
        out = self.model(data["feats"], data["lens"], with_senones=phase == "finetune")
        if phase == "distill":
            return distill_loss(out.layers, data["layers"], out.mask, self.config.loss)
        labels = data["senone"][out.mask]
        loss = F.nll_loss(out.main, labels, ignore_index=IGNORE)
        return loss, {"ce": float(loss)}
