"""The teacher-layer cache: the chosen hidden layers of a teacher for every cut, computed
once and stored through lhotse writers, like the soft labels (steps.kd.soft_labels).

    <dump-dir>/cuts_<part>.jsonl.gz   the input cuts plus the custom field `teacher_layers`:
                                      an array [N, L * D] (N frames at the teacher's rate,
                                      L layers of D dims, layer-major inside a frame)
    <dump-dir>/layers_<part>.h5       float16 arrays (NumpyHdf5Writer), or
    <dump-dir>/layers_<part>.lca      lilcom arrays (LilcomChunkyWriter, tick 2^tick_power)
    <dump-dir>/teacher.json           the teacher (kind, path, fingerprint, layers, dim,
                                      frame_subsampling, storage) and the disk figures:
                                      bytes, hours of speech, MB per hour, the storage error
                                      (max and relative RMS against float32)
    <dump-dir>/bad_cuts_<part>.txt    `cut_id reason` for every cut left out

Storage: float16 keeps 11 significant bits (relative error <= 2^-11 = 0.05%); lilcom
stores multiples of 2^tick_power after a log-like compression of larger values (measured
error in teacher.json). Disk per hour of speech, float16: L x D x 2 bytes per frame, i.e.
L x D x 2 x 360000 / subsampling bytes per hour (4 layers x 256 at 30 ms: 246 MB/h, measured
247 MB/h on the tiny recipe; lilcom at tick 2^-8: 164 MB/h, max error 0.002). A HuBERT Base
teacher, 4 layers x 768 mapped to 10 ms frames: 2.2 GB/h in float16.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lilcom
import numpy as np
from lhotse import CutSet, LilcomChunkyWriter, NumpyHdf5Writer
from lhotse.utils import fastcopy
from tqdm import tqdm

from steps.core import atomic
from steps.compress.config import TeacherConfig
from steps.compress.teacher import TeacherError, teacher_fingerprint

log = logging.getLogger(__name__)

FIELD = "teacher_layers"
ERROR_SAMPLE_CUTS = 20  # cuts read back to measure the storage error


def storage_file(dump_dir: Path, part: str, storage: str) -> Path:
    return Path(dump_dir) / (f"layers_{part}.h5" if storage == "float16" else f"layers_{part}.lca")


def open_writer(path: Path, storage: str, tick_power: int):
    if storage == "float16":
        return NumpyHdf5Writer(path, mode="w")
    return LilcomChunkyWriter(path, mode="w", tick_power=tick_power)


def encode(layers: np.ndarray, storage: str) -> np.ndarray:
    """[N, L, D] float32 -> the stored [N, L * D] array (float16, or float32 for lilcom)."""
    flat = layers.reshape(layers.shape[0], -1)
    return np.ascontiguousarray(flat.astype(np.float16 if storage == "float16" else np.float32))


def load_layers(cut, num_layers: int) -> np.ndarray:
    """The cached layers of a cut: float32 [N, L, D]."""
    if not cut.has_custom(FIELD):
        raise TeacherError(f"{cut.id}: no {FIELD} (not a cut of a teacher-layer dump)")
    flat = np.asarray(cut.load_custom(FIELD), dtype=np.float32)
    return flat.reshape(flat.shape[0], num_layers, -1)


def dump_layers(cuts: CutSet, teacher, config: TeacherConfig, dump_dir: Path, part: str) -> dict:
    """Runs the teacher over every cut and writes the cache; returns the figures of
    teacher.json. Cuts that fail are listed in bad_cuts_<part>.txt, not fatal."""
    dump_dir = Path(dump_dir)
    dump_dir.mkdir(parents=True, exist_ok=True)
    target = storage_file(dump_dir, part, config.storage)
    kept, bad = [], []
    seconds, frames, sq_err, sq_ref, max_err = 0.0, 0, 0.0, 0.0, 0.0
    with atomic.atomic_path(target) as tmp:
        with open_writer(tmp, config.storage, config.lilcom_tick_power) as writer:
            for index, cut in enumerate(tqdm(cuts, desc=f"teacher layers {part}", disable=None)):
                try:
                    layers = teacher.layers_of(cut)
                except TeacherError as e:
                    bad.append((cut.id, str(e)))
                    continue
                except Exception as e:  # one unreadable cut must not stop the dump
                    bad.append((cut.id, f"{type(e).__name__}: {e}"))
                    continue
                if not np.isfinite(layers).all():
                    bad.append((cut.id, "non-finite teacher activations"))
                    continue
                stored = encode(layers, config.storage)
                array = writer.store_array(cut.id, stored)
                if index < ERROR_SAMPLE_CUTS:
                    back = (stored.astype(np.float32) if config.storage == "float16"
                            else _read_back(writer, cut.id, stored))
                    diff = back - layers.reshape(layers.shape[0], -1)
                    sq_err += float((diff ** 2).sum())
                    sq_ref += float((layers ** 2).sum())
                    max_err = max(max_err, float(np.abs(diff).max()))
                kept.append(fastcopy(cut, custom={**(cut.custom or {}), FIELD: _relocate(array, target)}))
                seconds += cut.duration
                frames += layers.shape[0]
    cuts_path = dump_dir / f"cuts_{part}.jsonl.gz"
    with atomic.atomic_path(cuts_path) as tmp:
        CutSet.from_cuts(kept).to_file(tmp)
    atomic.write_text(dump_dir / f"bad_cuts_{part}.txt", "".join(f"{c} {r}\n" for c, r in bad))
    size = target.stat().st_size
    hours = seconds / 3600
    figures = {
        "cuts": len(kept), "bad_cuts": len(bad), "frames": frames, "hours": round(hours, 5),
        "bytes": size, "mb_per_hour": round(size / 1e6 / hours, 2) if hours else None,
        "storage_max_abs_error": max_err,
        "storage_relative_rms_error": (sq_err / sq_ref) ** 0.5 if sq_ref else None,
    }
    log.info("%s: %d cuts (%d left out, see %s), %.3f h, %.1f MB: %s MB per hour of speech; "
             "storage error max %.2g, relative RMS %.2g", part, len(kept), len(bad),
             dump_dir / f"bad_cuts_{part}.txt", hours, size / 1e6, figures["mb_per_hour"], max_err,
             figures["storage_relative_rms_error"] or 0.0)
    return figures


def _read_back(writer, key: str, stored: np.ndarray) -> np.ndarray:
    # the chunky writer has only appended bytes so far; decode this array from memory
    return lilcom.decompress(lilcom.compress(stored, tick_power=writer.tick_power)).astype(np.float32)


def _relocate(array, final_path: Path):
    """The manifest of an array written into the temporary file, pointing at the final one."""
    return fastcopy(array, storage_path=str(final_path))


def teacher_record(config: TeacherConfig, teacher, fingerprint: str) -> dict:
    return {"kind": config.kind, "path": str(config.path), "fingerprint": fingerprint,
            "layers": list(config.layers), "dim": teacher.dim,
            "frame_subsampling": teacher.frame_subsampling, "storage": config.storage,
            "lilcom_tick_power": config.lilcom_tick_power if config.storage == "lilcom" else None,
            "teacher_parameters": teacher.num_parameters}


def read_dump_info(dump_dir: Path) -> dict:
    path = Path(dump_dir) / "teacher.json"
    if not path.is_file():
        raise TeacherError(f"{path} not found: run steps.dump_teacher_layers first")
    return json.loads(path.read_text())


def check_dump(dump_dir: Path, config: TeacherConfig) -> dict:
    """teacher.json of the dump, after checking it was made by the configured teacher."""
    info = read_dump_info(dump_dir)
    expected = teacher_fingerprint(config)
    if info.get("fingerprint") != expected:
        raise TeacherError(
            f"{dump_dir} was dumped from another teacher than the one configured: its teacher is "
            f"{info.get('kind')} {info.get('path')} layers {info.get('layers')} (fingerprint "
            f"{str(info.get('fingerprint'))[:12]}), the config names {config.kind} {config.path} "
            f"layers {list(config.layers)} (fingerprint {expected[:12]}); dump again or fix the config")
    return info
