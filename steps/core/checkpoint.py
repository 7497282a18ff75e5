"""Saving and loading torch checkpoints the same way on torch 1.13 and 2.x."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from steps.core.atomic import atomic_path

# torch >= 2.6 loads only tensors by default; our checkpoints also hold configs and
# optimizer state, and they are our own files.
_LOAD_KWARGS = (
    {"weights_only": False} if "weights_only" in inspect.signature(torch.load).parameters else {}
)


def save(obj: Any, path: str | Path) -> None:
    """torch.save, atomically: an interrupted save never leaves a truncated checkpoint."""
    # Through a file object: given a path, torch names the zip's folder after the (temporary,
    # per-process) file name, so equal checkpoints would differ in their bytes.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    return torch.load(path, map_location=map_location, **_LOAD_KWARGS)
