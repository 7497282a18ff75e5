"""What exact resumption needs besides the weights and the optimizer: every RNG state (torch,
numpy, python, CUDA and a trainer's own generators, such as SpecAugment's), and reading a
saved training state back only when it was saved for the same inputs and settings (its
fingerprint)."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from steps.core import atomic
from steps.core import checkpoint as ckpt_io

log = logging.getLogger(__name__)


def rng_state(generators: dict[str, torch.Generator], device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(),
             "generators": {name: g.get_state() for name, g in generators.items()}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, generators: dict[str, torch.Generator], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def load_state(path: Path, fingerprint: dict | None, resume: bool = True, force: bool = False,
               main: bool = True) -> dict | None:
    """The state to resume from, or None: not asked (resume false), force (start from
    scratch), no such file, or saved for other inputs or settings (fingerprint None: any)."""
    if not resume or force or not path.exists():
        if resume and not force and main:
            log.info("--resume: no %s, starting from scratch", path)
        return None
    state = ckpt_io.load(path, map_location="cpu")
    if "batch" not in state:  # saved before the shared loop (no position in the epoch)
        if main:
            log.info("--resume: %s has an older layout; starting from scratch", path)
        return None
    if fingerprint is not None and _plain(state.get("fingerprint")) != _plain(fingerprint):
        if main:
            log.info("--resume: %s was saved for other inputs or settings (%s); starting from "
                     "scratch", path,
                     "; ".join(atomic.fingerprint_changes(state.get("fingerprint"), fingerprint)[:4]))
        return None
    return state


def _plain(value):
    """value as JSON would keep it (tuples as lists), so that saved and new compare alike."""
    return json.loads(json.dumps(value, default=str))
