"""Exact resumption of acoustic-model training: every process's RNG states (torch, numpy,
python, the SpecAugment generator, CUDA) as saved in state.pt, and reading state.pt back
only when it was saved for the same inputs and settings (its fingerprint)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from steps.am.distributed import World
from steps.core import atomic
from steps.core import checkpoint as ckpt_io

log = logging.getLogger(__name__)


def rng_state(generator: torch.Generator, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(), "augment": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    generator.set_state(state["augment"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def load_state(path: Path, fingerprint: dict, resume: bool, force: bool, world: World) -> dict | None:
    """state.pt to resume from, or None: not asked (resume false), --force (starts from
    scratch), no such file, or saved for other inputs or settings."""
    state = ckpt_io.load(path, map_location="cpu") if (resume and not force and path.exists()) else None
    if state is not None and state.get("fingerprint") != fingerprint:
        if world.main:
            log.info("--resume: %s was saved for other inputs or settings (%s); starting from "
                     "scratch", path,
                     "; ".join(atomic.fingerprint_changes(state.get("fingerprint"), fingerprint)[:4]))
        state = None
    elif resume and not path.exists() and world.main:
        log.info("--resume: no %s, starting from scratch", path)
    return state
