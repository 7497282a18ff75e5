"""The training loop every trainer runs: epochs of batches, one update per batch, the
learning rate from a schedule (steps.train.schedule), running figures to the progress bar
and TensorBoard, and a state file to resume from exactly (weights, optimizer, position in
the epoch, the epoch's figures so far, every process's RNG states; steps.train.state).

A trainer is a Task: it gives the loop its batches and, for each, a Step (the loss to
minimise and the figures to add up); it evaluates and checkpoints at each epoch's end, and
says what else its state holds. Everything else happens here once.

    loop = Loop(optimizer, WarmupCosine(lr, warmup, total, 0.05), model.parameters(),
                grad_clip=5.0, num_epochs=10, state_path=exp / "state.pt", fingerprint=fp)
    loop.resume(task, resume=True)      # from state.pt if it was saved for these inputs
    finished = loop.run(task)           # False: stopped after stop_after steps, state saved
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from steps.core import checkpoint as ckpt_io
from steps.core.log import progress
from steps.train.state import load_state, rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass
class Step:
    """What a task's step gives the loop for one batch."""
    loss: torch.Tensor  # what backward() is called on
    terms: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (sum, count)
    bad: bool = False  # skip the update (a non-finite loss, here or on another process)
    frames: int = 0  # for the throughput


class Sums(dict):
    """name -> [sum, count], added up over batches."""

    def add(self, terms: dict[str, tuple[float, float]]) -> None:
        for name, (s, c) in terms.items():
            total = self.get(name, [0.0, 0.0])
            self[name] = [total[0] + s, total[1] + c]

    def means(self) -> dict[str, float]:
        return {name: s / max(c, 1.0) for name, (s, c) in self.items()}


@dataclass
class Position:
    epoch: int = 0  # epochs finished
    step: int = 0  # updates taken (skipped ones too)
    batch: int = 0  # batches done in the epoch under way
    skipped: int = 0  # updates skipped for a non-finite loss or gradient


class Task:
    """What a trainer supplies; the defaults do nothing."""

    def batches(self, loop: "Loop") -> Iterable:
        """Epoch loop.pos.epoch's batches after the first loop.pos.batch (a resumed epoch);
        made lazily, so loop.pos.step is the step each batch is for."""
        raise NotImplementedError

    def step(self, batch) -> Step:
        raise NotImplementedError

    def epoch_length(self, loop: "Loop") -> int | None:
        """Batches in the epoch under way, for the progress bar (None: not known)."""
        return None

    def start_epoch(self, loop: "Loop") -> None:
        pass

    def after_step(self, loop: "Loop") -> None:
        pass

    def end_epoch(self, loop: "Loop") -> bool:
        """Evaluates, checkpoints; True: no further epoch."""
        return False

    def state_dict(self) -> dict:
        """What the saved state holds besides the loop's (weights, data position, history)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def update(optimizer: torch.optim.Optimizer, params: list, loss: torch.Tensor, grad_clip: float,
           bad: bool = False) -> tuple[float, bool]:
    """backward, clipping (of params, which may be more than the optimizer's) and the
    optimizer's step, unless the loss (bad) or the gradient is not finite. Returns the
    gradient norm and whether the update was skipped."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # always, so that every DDP process takes part in the gradient reduction
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    skipped = bad or not bool(torch.isfinite(norm))
    if skipped:
        optimizer.zero_grad(set_to_none=True)
    else:
        optimizer.step()
    return float(norm), skipped


class Loop:
    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Callable[[int, int], float], params,
                 grad_clip: float, *, relative_lr: bool = False, num_epochs: int | None = None,
                 max_steps: int | None = None, max_skipped: int | None = None, log_every: int = 0,
                 writer=None, desc: str = "epoch", state_path: Path | None = None,
                 fingerprint: dict | None = None, save_every: int = 0, save_epochs: bool = True,
                 stop_after: int = 0, generators: dict[str, torch.Generator] | None = None,
                 device=torch.device("cpu"),
                 gather: Callable[[object], list] = lambda obj: [obj], barrier: Callable[[], None] = lambda: None,
                 rank: int = 0):
        """params: what the gradient norm is clipped over. relative_lr: the schedule gives a
        factor of each group's rate at construction. max_steps: a run bounded by updates
        (one progress bar over them), else by epochs. The state is saved at each epoch's end
        (unless not save_epochs), every save_every updates, at the end, and after stop_after
        updates, where the run stops. gather, barrier, rank: several processes (gather
        collects one object from each)."""
        self.optimizer, self.schedule, self.grad_clip = optimizer, schedule, grad_clip
        self.params = list(params)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups] if relative_lr else None
        self.num_epochs, self.max_steps, self.max_skipped = num_epochs, max_steps, max_skipped
        self.log_every, self.writer, self.desc = log_every, writer, desc
        self.state_path, self.fingerprint = state_path, fingerprint
        self.save_every, self.save_epochs, self.stop_after = save_every, save_epochs, stop_after
        self.generators, self.device = generators or {}, device
        self.gather, self.barrier, self.rank, self.main = gather, barrier, rank, rank == 0
        self.pos = Position()
        self.sums, self.window = Sums(), Sums()  # the epoch under way; since the last log line
        self.frames, self.seconds = 0, 0.0  # of the epoch under way
        self.stopped = False
        self._started = time.time()
        self._bar = None

    # ---- the learning rate and the update

    def lr(self) -> float:
        """The rate of the next update (the first parameter group's)."""
        value = self.schedule(self.pos.step, self.pos.epoch)
        return self.base_lrs[0] * value if self.base_lrs else value

    def set_lr(self) -> None:
        value = self.schedule(self.pos.step, self.pos.epoch)
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = self.base_lrs[i] * value if self.base_lrs else value

    def update(self, loss: torch.Tensor, bad: bool = False) -> tuple[float, bool]:
        return update(self.optimizer, self.params, loss, self.grad_clip, bad)

    # ---- epochs

    def finished(self) -> bool:
        return (self.stopped or (self.num_epochs is not None and self.pos.epoch >= self.num_epochs)
                or (self.max_steps is not None and self.pos.step >= self.max_steps))

    def run(self, task: Task) -> bool:
        """Epochs until num_epochs, max_steps or the task says stop. False: stopped after
        stop_after updates (the state saved)."""
        if self.max_steps is not None:
            self._bar = progress(total=self.max_steps, initial=self.pos.step, desc=self.desc,
                                 disable=not self.main, mininterval=2)
        while not self.finished():
            if not self.run_epoch(task):
                return False
        if self._bar is not None:
            self._bar.close()
        if self.state_path is not None and (self.pos.batch or not self.save_epochs):  # not saved yet
            self.save(task)
        return True

    def run_epoch(self, task: Task) -> bool:
        """The epoch under way to its end (then task.end_epoch and the state saved), or to
        max_steps. False: stopped after stop_after updates."""
        task.start_epoch(self)
        self._started = time.time() - self.seconds
        bar = self._bar or progress(total=task.epoch_length(self), initial=self.pos.batch,
                                    desc=f"{self.desc} {self.pos.epoch + 1}", disable=not self.main,
                                    mininterval=5, leave=False)
        for batch in task.batches(self):
            if self.max_steps is not None and self.pos.step >= self.max_steps:
                return True
            self._step(task, batch, bar)
            if self.stop_after and self.pos.step >= self.stop_after:
                self.seconds = time.time() - self._started
                self.save(task)
                bar.close()
                if self.main:
                    log.info("stopping after step %d as asked (state in %s)", self.pos.step, self.state_path)
                return False
            if self.save_every and self.pos.step % self.save_every == 0 and not self.finished():
                self.seconds = time.time() - self._started
                self.save(task)
        if self._bar is None:
            bar.close()
        self.seconds = time.time() - self._started
        self.stopped = task.end_epoch(self)
        self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0
        self.sums, self.window, self.frames, self.seconds = Sums(), Sums(), 0, 0.0
        if self.state_path is not None and self.save_epochs:
            self.save(task)
        return True

    def _step(self, task: Task, batch, bar) -> None:
        self.set_lr()
        out = task.step(batch)
        norm, skipped = self.update(out.loss, out.bad)
        self.pos.step += 1
        self.pos.batch += 1
        self.frames += out.frames
        bar.update(1)
        if skipped:
            self.pos.skipped += 1
            log.warning("step %d: non-finite loss or gradient, update skipped (%d so far)",
                        self.pos.step, self.pos.skipped)
            if self.max_skipped is not None and self.pos.skipped > self.max_skipped:
                raise SystemExit(f"more than {self.max_skipped} steps with non-finite loss or "
                                 "gradient; giving up")
        else:
            self.sums.add(out.terms)
            self.window.add(out.terms)
        if self.log_every and self.pos.step % self.log_every == 0 or self.pos.step == self.max_steps:
            self._log_window(norm, bar)
        task.after_step(self)

    def _log_window(self, norm: float, bar) -> None:
        means = self.window.means()
        self.scalars("train", {**means, "lr": self.lr(), "grad_norm": norm}, self.pos.step)
        bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()})
        self.window = Sums()

    def scalars(self, group: str, values: dict, x: int) -> None:
        """TensorBoard curves group/<name> of the figures that are floats."""
        if self.writer is None:
            return
        for name, value in values.items():
            if isinstance(value, float):
                self.writer.add_scalar(f"{group}/{name}", value, x)

    # ---- the state

    def save(self, task: Task) -> None:
        """The state file (on the first process; every process must call this)."""
        rngs = self.gather(rng_state(self.generators, self.device))
        if self.main:
            ckpt_io.save({**task.state_dict(), "optimizer": self.optimizer.state_dict(), **asdict(self.pos),
                          "epoch_sums": dict(self.sums), "epoch_frames": self.frames,
                          "epoch_seconds": self.seconds, "rng": rngs, "fingerprint": self.fingerprint},
                         self.state_path)
        self.barrier()

    def resume(self, task: Task, resume: bool = True, force: bool = False) -> dict | None:
        """Loads the state file if there is one saved for the same fingerprint; returns it."""
        state = load_state(self.state_path, self.fingerprint, resume, force, self.main)
        if state is None:
            return None
        task.load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.pos = Position(**{name: state[name] for name in asdict(Position())})
        self.sums, self.frames, self.seconds = Sums(state["epoch_sums"]), state["epoch_frames"], state["epoch_seconds"]
        set_rng_state(state["rng"][self.rank], self.generators, self.device)
        return state
