"""Checkpoint averaging: a final model as the element-wise mean of the last epochs' weights."""

from __future__ import annotations

from pathlib import Path

import torch

from steps.core import checkpoint as ckpt_io


def average_state_dicts(paths: list[Path]) -> dict:
    """Element-wise mean of the float tensors of several checkpoints' state_dicts (others:
    the last checkpoint's)."""
    states = [ckpt_io.load(p)["state_dict"] for p in paths]
    out = {}
    for key, value in states[-1].items():
        if torch.is_floating_point(value):
            out[key] = sum(s[key].double() for s in states).div(len(states)).to(value.dtype)
        else:
            out[key] = value.clone()
    return out
