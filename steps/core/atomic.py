"""Outputs that are either complete or absent, and stages that redo only what changed.

A file is written under a temporary name in its own directory and renamed onto its
final name only when the writer finished, so an interrupted program never leaves a
half-written file under a name that a later stage would take for a finished one.
A directory's work is marked finished by a `.done` file written last.

A stage program skips its work when the `.done` of its output directory holds the same
fingerprint as the inputs it is given now (steps.core.atomic.inputs_fingerprint: the
settings, and each input file's size and modification time; an input directory stands
for its own `.done`, which is rewritten whenever that directory is remade):

    fingerprint = atomic.inputs_fingerprint([cuts, lang_dir], config=to_dict(config))
    if atomic.up_to_date(out_dir, fingerprint, force=args.force, outputs=[final]):
        return                      # logged: "up to date ..., nothing to do"
    atomic.clear_done(out_dir)      # logged above: why it is (re)done
    ...                             # write the outputs (atomic_path, write_text)
    atomic.mark_done(out_dir, {"num_cuts": n}, fingerprint=fingerprint)

A stage that redoes its work first clears its `.done` (and removes the outputs a later
stage reads when those point at files it is about to rewrite), so a run killed at any
point is redone from a clean state by the next one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger(__name__)

DONE = ".done"


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


def copy_file(src: str | Path, dst: str | Path) -> Path:
    """Copies src to dst atomically (Kaldi's steps copy `tree` and `final.mdl` into the
    directories they make, so a folder carries its context). An identical dst is left
    alone: its stamp, which later stages fingerprint, changes only with its content."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and (dst.resolve() == src.resolve() or
                         (dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes())):
        return dst
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def mark_done(directory: str | Path, info: dict | None = None, fingerprint: dict | None = None) -> None:
    """Marks a directory's outputs as finished (written last, atomically); with the
    fingerprint of the inputs they were made from, for up_to_date()."""
    info = dict(info or {})
    if fingerprint is not None:
        info["fingerprint"] = fingerprint
    write_text(Path(directory) / DONE, json.dumps(info, indent=2, sort_keys=True) + "\n")


def is_done(directory: str | Path) -> bool:
    return (Path(directory) / DONE).is_file()


def clear_done(directory: str | Path) -> None:
    (Path(directory) / DONE).unlink(missing_ok=True)


# ------------------------------------------------------------------ fingerprints


def path_stamp(path: str | Path) -> list | None:
    """[size, mtime_ns] of a file; of a directory, its `.done`'s (the directory's
    outputs were last remade then), or, without one, [files, bytes, newest mtime_ns] of
    the files below it (temporary and hidden files and log/ left out); None if absent."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    if path.is_dir():
        if (path / DONE).is_file():
            st = (path / DONE).stat()
            return [DONE, st.st_size, st.st_mtime_ns]
        count = size = newest = 0
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "log")
            for name in files:
                if name.startswith("."):
                    continue
                st = (Path(root) / name).stat()
                count, size, newest = count + 1, size + st.st_size, max(newest, st.st_mtime_ns)
        return [count, size, newest]
    return None


def _plain(value):
    """JSON-plain form (tuples as lists, paths as strings), as a reread .done has it."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def inputs_fingerprint(paths: Iterable[str | Path | None], **settings) -> dict:
    """What a stage's outputs are made from: each input path (as given; None entries are
    ignored) with its path_stamp, and the settings (config dicts, options, seed)."""
    inputs = {str(p): path_stamp(p) for p in paths if p is not None and str(p) != ""}
    return {"inputs": inputs, "settings": _plain(settings)}


def source_fingerprint(*paths: str | Path) -> dict:
    """A short hash of the content of each program source a stage's outputs depend on
    (content, not mtime: a checkout must not redo a stage, an edit must), for the
    settings of inputs_fingerprint: `sources=atomic.source_fingerprint(__file__)`."""
    return {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16] for p in paths}


def read_fingerprint(directory: str | Path):
    """The fingerprint stored in a directory's `.done`, or None."""
    try:
        return json.loads((Path(directory) / DONE).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def done_with(directory: str | Path, fingerprint: dict) -> bool:
    """Whether the directory is finished and was made from these inputs and settings."""
    return is_done(directory) and read_fingerprint(directory) == _plain(fingerprint)


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def fingerprint_changes(old, new: dict) -> list[str]:
    """What differs between a stored fingerprint and a new one, for a person to read."""
    new = _plain(new)
    if not isinstance(old, dict) or set(old) != {"inputs", "settings"}:
        return ["the marker was written by an older version (no comparable fingerprint)"]
    changes = []
    old_inputs, new_inputs = old.get("inputs") or {}, new["inputs"]
    for path in sorted(set(old_inputs) | set(new_inputs)):
        if path not in new_inputs:
            changes.append(f"input {path} no longer given")
        elif path not in old_inputs:
            changes.append(f"new input {path}")
        elif new_inputs[path] is None:
            changes.append(f"input {path} is missing")
        elif old_inputs[path] != new_inputs[path]:
            changes.append(f"input {path} changed")
    old_settings, new_settings = _flatten(old.get("settings") or {}), _flatten(new["settings"])
    for key in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(key, "<unset>") != new_settings.get(key, "<unset>"):
            changes.append(f"setting {key}: {_short(old_settings.get(key, '<unset>'))} -> "
                           f"{_short(new_settings.get(key, '<unset>'))}")
    return changes


def redo_reason(directory: str | Path, fingerprint: dict, force: bool = False,
                outputs: Iterable[str | Path] = ()) -> str | None:
    """Why the directory's work must be (re)done, or None if it is finished with these
    inputs and settings and every path of `outputs` exists."""
    directory = Path(directory)
    if force:
        return "--force given"
    if not is_done(directory):
        return f"not finished (no {directory / DONE}: never run, interrupted or failed)"
    missing = [str(p) for p in outputs if not Path(p).exists()]
    if missing:
        return f"output missing: {', '.join(missing)}"
    stored = read_fingerprint(directory)
    if stored == _plain(fingerprint):
        return None
    changes = fingerprint_changes(stored, fingerprint)
    shown = "; ".join(changes[:6]) + (f"; ... ({len(changes) - 6} more)" if len(changes) > 6 else "")
    return f"inputs changed: {shown}" if changes else "inputs changed"


def up_to_date(directory: str | Path, fingerprint: dict, force: bool = False,
               outputs: Iterable[str | Path] = (), what: str | None = None,
               logger: logging.Logger | None = None) -> bool:
    """True (and logged) when the directory's work can be skipped; otherwise logs why it
    is (re)done and returns False. `what` names the work in the log (default: the
    directory)."""
    logger = logger or log
    name = what or str(directory)
    reason = redo_reason(directory, fingerprint, force, outputs)
    if reason is None:
        logger.info("%s: up to date (already done with the same inputs and settings), nothing "
                    "to do (--force redoes it)", name, stacklevel=2)
        return True
    logger.info("%s: (re)doing it: %s", name, reason, stacklevel=2)
    return False


def remove(*paths: str | Path) -> None:
    """Removes files (outputs a redo is about to replace), ignoring those that are absent."""
    for path in paths:
        Path(path).unlink(missing_ok=True)
