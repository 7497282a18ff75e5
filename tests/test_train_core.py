"""The training core (steps.train): the schedules give the learning rates the trainers had
before they shared it, bit for bit; a run stopped and resumed from its state file ends
with the weights of a run never stopped; non-finite updates are skipped and counted."""

import math

import numpy as np
import pytest
import torch

from steps.core import checkpoint as ckpt_io
from steps.train.averaging import average_state_dicts
from steps.train.loop import Loop, Step, Task
from steps.train.schedule import EpochDecay, Newbob, WarmupCosine, newbob

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ schedules


def test_warmup_cosine_as_each_trainer_computed_it():
    lr, warmup, total, final = 4e-3, 10, 200, 0.05
    # the acoustic model: LambdaLR's base_lr * factor (lr 1.0 gives the factor)
    factor = WarmupCosine(1.0, warmup, total, final)
    for step in range(total + 5):
        if step < warmup:
            old = (step + 1) / warmup
        else:
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            old = final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
        assert lr * factor(step) == lr * old
    # the teacher LMs and the student: the rate itself (lr * (step + 1) / warmup in the
    # warm-up, which differs from lr * ((step + 1) / warmup) in the last bit at some steps)
    rate = WarmupCosine(lr, warmup, total, final)
    for step in range(total + 5):
        if step < warmup:
            old = lr * (step + 1) / warmup
        else:
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            old = lr * (final + (1 - final) * (0.5 * (1 + math.cos(math.pi * progress))))
        assert rate(step) == old
    # a later phase starts its own warm-up at first_step
    assert WarmupCosine(lr, warmup, total, final, first_step=30)(30) == rate(0)


def test_newbob_and_epoch_decay():
    class Config:
        start_halving_impr, end_halving_impr, halving_factor, min_epochs, num_epochs = 0.01, 0.001, 0.5, 1, 10

    schedule = Newbob(1.0, 4, Config)
    assert [schedule(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    decision = schedule.set_dev_losses([2.0, 1.5, 1.49])
    assert decision == newbob([2.0, 1.5, 1.49], Config) and schedule(10) == 0.5
    assert EpochDecay(2e-3, 0.9)(123, 3) == 2e-3 * 0.9**3


# ------------------------------------------------------------------ the loop


class Toy(Task):
    """A regression with dropout and a generator of its own (like SpecAugment's), so that a
    resumed run must restore every RNG state."""

    def __init__(self, nan_at: int = -1):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
        self.noise = torch.Generator().manual_seed(5)
        self.nan_at, self.calls, self.history = nan_at, 0, []
        data = np.random.default_rng(1)
        self.x = torch.from_numpy(data.normal(size=(24, 4))).float()
        self.y = self.x.sum(1, keepdim=True)

    def batches(self, loop):
        order = np.random.default_rng([7, loop.pos.epoch]).permutation(24).reshape(6, 4)
        return [torch.from_numpy(o) for o in order[loop.pos.batch:]]

    def epoch_length(self, loop):
        return 6

    def step(self, batch):
        self.calls += 1
        x = self.x[batch] + 0.1 * torch.randn(self.x[batch].shape, generator=self.noise)
        loss = ((self.model(x) - self.y[batch]) ** 2).mean()
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return Step(loss, {"mse": (float(loss) * len(batch), float(len(batch)))}, frames=len(batch))

    def end_epoch(self, loop):
        self.history.append(loop.sums.means()["mse"])
        return False

    def state_dict(self):
        return {"state_dict": self.model.state_dict(), "history": self.history}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["state_dict"])
        self.history = state["history"]


def toy_loop(task: Toy, path, **kwargs) -> Loop:
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=1e-2)
    return Loop(optimizer, WarmupCosine(1.0, 3, 18, 0.1), task.model.parameters(), 1.0, relative_lr=True,
                num_epochs=3, state_path=path, fingerprint={"toy": 1}, generators={"noise": task.noise},
                **kwargs)


@pytest.mark.parametrize("stop_after", [4, 6, 11])  # inside epoch 1, at its end, inside epoch 2
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, stop_after):
    whole = Toy()
    assert toy_loop(whole, tmp_path / "whole.pt").run(whole)
    part = Toy()
    assert not toy_loop(part, tmp_path / "part.pt", stop_after=stop_after).run(part)
    assert ckpt_io.load(tmp_path / "part.pt")["step"] == stop_after
    torch.manual_seed(123)  # whatever the RNGs did since: the state restores them
    np.random.seed(9)
    resumed = Toy()
    loop = toy_loop(resumed, tmp_path / "part.pt")
    assert loop.resume(resumed) is not None and loop.pos.step == stop_after
    assert loop.run(resumed)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert resumed.history == whole.history  # the epoch's figures survive a resume inside it


def test_other_fingerprint_or_older_layout_starts_from_scratch(tmp_path):
    task = Toy()
    toy_loop(task, tmp_path / "s.pt", stop_after=4).run(task)
    other = Toy()
    loop = toy_loop(other, tmp_path / "s.pt")
    loop.fingerprint = {"toy": 2}
    assert loop.resume(other) is None and loop.pos.step == 0
    ckpt_io.save({"state_dict": {}, "step": 4}, tmp_path / "old.pt")
    assert toy_loop(Toy(), tmp_path / "old.pt").resume(Toy()) is None


def test_non_finite_updates_are_skipped_and_counted(tmp_path):
    task = Toy(nan_at=2)
    loop = toy_loop(task, None)
    loop.run_epoch(task)  # step 1 updates; step 2 (NaN) must leave the weights as they were
    assert loop.pos.skipped == 1 and loop.pos.step == 6
    assert all(torch.isfinite(p).all() for p in task.model.parameters())
    strict = Toy(nan_at=1)
    with pytest.raises(SystemExit, match="more than 0 steps"):
        toy_loop(strict, None, max_skipped=0).run(strict)


def test_step_bounded_run_and_averaging(tmp_path):
    task = Toy()
    loop = toy_loop(task, tmp_path / "s.pt", max_steps=8, save_epochs=False)
    loop.num_epochs = None
    assert loop.run(task) and loop.pos.step == 8 and loop.pos.epoch == 1 and loop.pos.batch == 2
    assert ckpt_io.load(tmp_path / "s.pt")["step"] == 8  # saved at the end
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor([1])}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor([2])}
    ckpt_io.save({"state_dict": a}, tmp_path / "a.pt")
    ckpt_io.save({"state_dict": b}, tmp_path / "b.pt")
    mean = average_state_dicts([tmp_path / "a.pt", tmp_path / "b.pt"])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and torch.equal(mean["n"], b["n"])
