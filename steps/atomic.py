"""Outputs that are either complete or absent.

A file is written under a temporary name in its own directory and renamed onto its
final name only when the writer finished, so an interrupted program never leaves a
half-written file under a name that a later stage would take for a finished one.
A directory's work is marked finished by a `.done` file written last.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_sibling(path: Path) -> Path:
    # Keeps the full name as a suffix so that suffix-sniffing writers (lhotse's
    # .jsonl.gz, torch, h5py) treat the temporary file like the final one.
    return path.with_name(f".tmp{os.getpid()}-{path.name}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path to write to; it becomes `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def mark_done(directory: str | Path, info: dict | None = None) -> None:
    """Marks a directory's outputs as finished (written last, atomically)."""
    write_text(Path(directory) / ".done", json.dumps(info or {}, indent=2, sort_keys=True) + "\n")


def is_done(directory: str | Path) -> bool:
    return (Path(directory) / ".done").is_file()


def clear_done(directory: str | Path) -> None:
    (Path(directory) / ".done").unlink(missing_ok=True)
