"""The training cuts' arrays, read and checked once: features (80-dim fbank), the custom
field `senone_ali` (int per 10 ms frame), and for each unit level L the four `kd_L_*`
arrays of steps.kd.soft_labels (tokens, spans, ids, probs; per TOKEN, not per frame).

    store, skipped = CutStore.build(cuts, levels=("phone",), cache=True)
    store, skipped = CutStore.load_or_build("data/kd/cuts_train.jsonl.gz", "exp/am_data_cache",
                                            levels=("phone",))

The store reads every training cut once at the start (to validate it and for the global
CMVN statistics and senone counts); with `cache_in_memory` it keeps the arrays (2.5 h of
80-dim float32 fbank is about 290 MB), otherwise it reads them again for every batch.
`CutStore.load_or_build` also keeps the validated arrays of all three levels on disk (one
directory per cuts file, named by its path, size and time: the arrays concatenated per
kind as .npy, plus a pickle of the cuts and offsets): reading 2.5 h of cuts with their 14
arrays each takes 25-80 s on 2 cores, reading the cache a few seconds, and the six
systems x three seeds all train on the same cuts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from lhotse import CutSet
from lhotse.utils import fastcopy

from steps.am.targets import IGNORE, pad_k
from steps.core.log import progress
from steps.data.hdf5_readers import close_now_and_then
from steps.kd.soft_labels import FIELDS, LEVELS, SoftLabels, field_name, has_soft_labels, load_soft_labels

log = logging.getLogger(__name__)

ALI_FIELD = "senone_ali"


class BadCut(ValueError):
    """A cut that cannot be used; the message is the reason."""


@dataclass
class CutArrays:
    feats: np.ndarray  # float32 [T, F]
    senone: Optional[np.ndarray]  # int32 [T]; None where the cut has no alignment
    levels: dict[str, SoftLabels] = field(default_factory=dict)  # the usable levels
    unusable: dict[str, str] = field(default_factory=dict)  # level -> why it is missing

    @property
    def num_frames(self) -> int:
        return self.feats.shape[0]


def load_cut_arrays(cut, levels: Sequence[str], need_alignment: bool = True) -> CutArrays:
    """The cut's arrays, checked. Raises BadCut (with the reason) for unusable features or
    alignment; a level that is missing or broken is listed in `unusable` instead."""
    if not cut.has_features:
        raise BadCut("no features")
    try:
        feats = np.asarray(cut.load_features(), dtype=np.float32)
    except Exception as e:  # unreadable storage: report, go on
        raise BadCut(f"cannot load features: {e}") from None
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise BadCut(f"features have shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise BadCut("features are not finite")
    num_frames = feats.shape[0]
    senone = None
    if cut.has_custom(ALI_FIELD):
        senone = np.asarray(cut.load_custom(ALI_FIELD)).reshape(-1).astype(np.int32)
        if len(senone) != num_frames:
            raise BadCut(f"{ALI_FIELD} has {len(senone)} frames, the features {num_frames}")
        if len(senone) and senone.min() < 0:
            raise BadCut(f"{ALI_FIELD} has negative ids")
    elif need_alignment:
        raise BadCut(f"no {ALI_FIELD}")
    arrays = CutArrays(feats, senone)
    for level in levels:
        try:
            arrays.levels[level] = _checked_soft_labels(cut, level, num_frames)
        except BadCut as e:
            arrays.unusable[level] = str(e)
    return arrays


def _checked_soft_labels(cut, level: str, num_frames: int) -> SoftLabels:
    if not has_soft_labels(cut, level):
        raise BadCut(f"no {level} soft labels")
    try:
        labels = load_soft_labels(cut, level)
        labels.check(num_frames)
    except Exception as e:  # unreadable or inconsistent arrays
        raise BadCut(f"{level} soft labels: {e}") from None
    p = labels.probs.astype(np.float32)
    if not np.isfinite(p).all() or (p < 0).any():
        raise BadCut(f"{level} soft labels: probabilities not finite or negative")
    if len(labels) and (labels.ids.min() < 0 or labels.tokens.min() < 0):
        raise BadCut(f"{level} soft labels: negative unit ids")
    return labels


def max_ids(arrays: CutArrays) -> dict[str, int]:
    """The largest unit id per target ('ali': the senone alignment; then each level)."""
    out = {"ali": int(arrays.senone.max()) if arrays.senone is not None and len(arrays.senone) else -1}
    for level, labels in arrays.levels.items():
        out[level] = max(int(labels.ids.max()) if labels.ids.size else -1,
                         int(labels.tokens.max()) if labels.tokens.size else -1)
    return out


@dataclass
class CutInfo:
    """What the store keeps of every cut without its arrays: statistics and checks."""

    num_frames: int
    feature_sum: np.ndarray  # float64 [F]
    feature_sumsq: np.ndarray  # float64 [F]
    max_ids: dict[str, int]
    unusable: dict[str, str]


CACHE_VERSION = 4  # 3: slots without an id padded with -1 (IGNORE), as targets.py does; 4: lean cuts


@dataclass
class CutStore:
    """The usable cuts, their statistics and (optionally) their arrays in memory.

    `levels` are the soft-label levels that batches carry; `require` leaves out the cuts
    that lack one of them. Statistics (CMVN, senone counts, largest ids) always describe
    the cuts that are kept."""

    cuts: CutSet
    levels: tuple[str, ...]
    cache: dict[str, CutArrays] | None
    info: dict[str, CutInfo]
    counts_by_cut: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # (senones, counts) of each
    #                                                                          alignment (no cache)
    reads: int = 0  # cuts read from disk by arrays() (steps.data.hdf5_readers)

    @classmethod
    def build(cls, cuts: CutSet, levels: Sequence[str] = (), cache: bool = True,
              need_alignment: bool = True, required: Sequence[str] | None = None,
              description: str = "reading cuts") -> tuple["CutStore", list[tuple[str, str]]]:
        """Reads every cut once. Cuts lacking a `required` level (default: all `levels`)
        are left out. Returns the store and (cut id, reason) of the cuts left out."""
        levels = tuple(levels)
        for level in levels:
            if level not in LEVELS:
                raise ValueError(f"unknown unit level {level!r} (known: {LEVELS})")
        kept, skipped, stored, info, counts = [], [], {}, {}, {}
        dim = None
        for i, cut in enumerate(progress(cuts, desc=description, leave=False, mininterval=2), start=1):
            close_now_and_then(i)
            try:
                arrays = load_cut_arrays(cut, levels, need_alignment)
            except BadCut as e:
                skipped.append((cut.id, str(e)))
                continue
            if dim is not None and arrays.feats.shape[1] != dim:
                skipped.append((cut.id, f"feature dim {arrays.feats.shape[1]} != {dim}"))
                continue
            dim = arrays.feats.shape[1]
            f64 = arrays.feats.astype(np.float64)
            info[cut.id] = CutInfo(arrays.num_frames, f64.sum(axis=0), (f64 ** 2).sum(axis=0),
                                   max_ids(arrays), dict(arrays.unusable))
            if cache:
                stored[cut.id] = arrays
            elif arrays.senone is not None:
                counts[cut.id] = tuple(a.astype(np.int32) for a in np.unique(arrays.senone, return_counts=True))
            kept.append(lean_cut(cut, levels))
        store = cls(CutSet.from_cuts(kept), levels, stored if cache else None, info,
                    None if cache else counts)
        skipped += store.require(levels if required is None else required)
        if not len(store.cuts):
            raise ValueError("no usable cut: " + "; ".join(f"{i}: {r}" for i, r in skipped[:5]))
        return store, skipped

    @classmethod
    def load_or_build(cls, cuts_path: str | Path, cache_dir: str | Path | None, levels: Sequence[str],
                      need_alignment: bool = True, required: Sequence[str] | None = None,
                      description: str = "reading cuts") -> tuple["CutStore", list[tuple[str, str]]]:
        """build() with every level cached in memory, kept on disk under cache_dir (named
        by the cuts file's path, size and time) so that the next system trained on the same
        cuts starts in seconds; then require(required, default: levels)."""
        cuts_path = Path(cuts_path)
        required = tuple(levels if required is None else required)
        if cache_dir is None:
            return cls.build(CutSet.from_file(cuts_path), levels, True, need_alignment, required,
                             description=description)
        st = cuts_path.stat()
        key = hashlib.sha1(json.dumps([str(cuts_path.resolve()), st.st_size, st.st_mtime_ns,
                                       need_alignment, CACHE_VERSION]).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"{cuts_path.name.split('.')[0]}.{key}"
        if (path / "meta.pkl").is_file():
            store, skipped = _read_cache(path)
            log.info("cut arrays of %s read from %s", cuts_path, path)
        else:
            store, skipped = cls.build(CutSet.from_file(cuts_path), LEVELS, True, need_alignment,
                                       required=(), description=description)
            _write_cache(path, store, skipped)
            log.info("cut arrays of %s cached in %s", cuts_path, path)
        skipped = list(skipped) + store.require(required)
        store.levels = tuple(levels)
        if not len(store.cuts):
            raise ValueError("no usable cut: " + "; ".join(f"{i}: {r}" for i, r in skipped[:5]))
        return store, skipped

    # ---- leaving cuts out

    def require(self, levels: Sequence[str]) -> list[tuple[str, str]]:
        """Leaves out the cuts that lack one of `levels`; returns (cut id, reason)."""
        bad = []
        for cut_id, info in self.info.items():
            missing = [info.unusable[lv] for lv in levels if lv in info.unusable]
            if missing:
                bad.append((cut_id, "; ".join(missing)))
        self._drop(bad)
        return bad

    def drop_out_of_range(self, limits: dict[str, int]) -> list[tuple[str, str]]:
        """Leaves out the cuts with ids >= limits[target] ('ali' or a level); returns them."""
        bad = []
        for cut_id, info in self.info.items():
            for key, limit in limits.items():
                if info.max_ids.get(key, -1) >= limit:
                    what = ALI_FIELD if key == "ali" else f"{key} soft labels"
                    bad.append((cut_id, f"{what}: id {info.max_ids[key]} >= the {limit} units of the model"))
                    break
        self._drop(bad)
        return bad

    def _drop(self, bad: list[tuple[str, str]]) -> None:
        if not bad:
            return
        gone = {cut_id for cut_id, _ in bad}
        self.cuts = CutSet.from_cuts([c for c in self.cuts if c.id not in gone])
        for cut_id in gone:
            self.info.pop(cut_id)
            if self.cache is not None:
                self.cache.pop(cut_id)
            if self.counts_by_cut is not None:
                self.counts_by_cut.pop(cut_id, None)

    # ---- statistics of the kept cuts

    @property
    def num_frames(self) -> int:
        return sum(i.num_frames for i in self.info.values())

    @property
    def feature_dim(self) -> int:
        return len(next(iter(self.info.values())).feature_sum)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.num_frames
        mean = sum(i.feature_sum for i in self.info.values()) / frames
        sumsq = sum(i.feature_sumsq for i in self.info.values())
        var = np.maximum(sumsq / frames - mean ** 2, 1e-10)
        return torch.from_numpy(mean).float(), torch.from_numpy(np.sqrt(var)).float()

    @property
    def senone_counts(self) -> np.ndarray:
        """int64 counts indexed by senone id (as long as the largest id + 1)."""
        if self.cache is not None:
            per_cut = [a.senone for a in self.cache.values() if a.senone is not None]
            return np.bincount(np.concatenate(per_cut)) if per_cut else np.zeros(0, dtype=np.int64)
        counts = np.zeros(max([int(ids[-1]) + 1 for ids, _ in self.counts_by_cut.values() if len(ids)] + [0]),
                          dtype=np.int64)
        for ids, n in self.counts_by_cut.values():
            np.add.at(counts, ids, n)
        return counts

    @property
    def max_id(self) -> dict[str, int]:
        out = {"ali": -1, **{level: -1 for level in self.levels}}
        for info in self.info.values():
            for key in out:
                out[key] = max(out[key], info.max_ids.get(key, -1))
        return out

    def arrays(self, cut) -> CutArrays:
        if self.cache is not None and cut.id in self.cache:
            return self.cache[cut.id]
        self.reads += 1
        close_now_and_then(self.reads)
        return load_cut_arrays(cut, self.levels, need_alignment=False)


def lean_cut(cut, levels: Sequence[str]):
    """The cut with what training reads of it: no alignments in its supervisions (the words'
    and phones' times of the earlier stages) and, of its custom fields, the senone alignment
    and the soft labels of `levels` alone; the rest is most of a cut's memory."""
    keep = {ALI_FIELD, *(field_name(level, kind) for level in levels for kind in FIELDS)}
    custom = {k: v for k, v in (cut.custom or {}).items() if k in keep}
    return fastcopy(cut, custom=custom or None,
                    supervisions=[fastcopy(s, alignment=None) for s in cut.supervisions])


def _write_cache(path: Path, store: CutStore, skipped: list) -> None:
    """The cached arrays concatenated per kind (one .npy each, fast to read back) plus a
    pickle of the cuts, their info and offsets; the directory appears complete or not at all."""
    ids = [c.id for c in store.cuts]
    items = [store.cache[i] for i in ids]
    arrays = {"feats": np.concatenate([a.feats for a in items]),
              "senone": np.concatenate([a.senone if a.senone is not None
                                        else np.full(a.num_frames, -1, np.int32) for a in items])}
    rows = {}
    for level in store.levels:
        labels = [a.levels.get(level) for a in items]
        k = max([lab.top_k for lab in labels if lab is not None] + [1])
        rows[level] = np.array([len(lab) if lab is not None else -1 for lab in labels])
        present = [lab for lab in labels if lab is not None] or [
            SoftLabels(np.zeros(1), np.zeros((1, 2)), np.zeros((1, k)), np.zeros((1, k)))]
        for kind in ("tokens", "spans", "ids", "probs"):
            parts = [getattr(lab, kind) for lab in present]
            if kind in ("ids", "probs"):  # a slot without an id: IGNORE and probability 0, as in targets.py
                parts = [pad_k(p, k, IGNORE if kind == "ids" else 0) for p in parts]
            arrays[f"{level}_{kind}"] = np.concatenate(parts)
    meta = {"cuts": list(store.cuts), "levels": store.levels, "info": store.info, "skipped": skipped,
            "frames": [a.num_frames for a in items], "has_ali": [a.senone is not None for a in items],
            "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array)
    with open(tmp / "meta.pkl", "wb") as f:  # written last: its presence marks a full cache
        pickle.dump(meta, f, protocol=4)
    try:
        os.replace(tmp, path)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(path: Path) -> tuple[CutStore, list]:
    with open(path / "meta.pkl", "rb") as f:
        meta = pickle.load(f)
    feats, senone = np.load(path / "feats.npy"), np.load(path / "senone.npy")
    level_arrays = {level: {kind: np.load(path / f"{level}_{kind}.npy")
                            for kind in ("tokens", "spans", "ids", "probs")} for level in meta["levels"]}
    cache, start = {}, 0
    row_start = {level: 0 for level in meta["levels"]}
    for i, cut in enumerate(meta["cuts"]):
        end = start + meta["frames"][i]
        arrays = CutArrays(feats[start:end], senone[start:end] if meta["has_ali"][i] else None,
                           unusable=meta["info"][cut.id].unusable)
        for level, a in level_arrays.items():
            n = int(meta["rows"][level][i])
            if n >= 0:
                r = row_start[level]
                arrays.levels[level] = SoftLabels(a["tokens"][r:r + n], a["spans"][r:r + n],
                                                  a["ids"][r:r + n], a["probs"][r:r + n])
                row_start[level] += n
        cache[cut.id] = arrays
        start = end
    return CutStore(CutSet.from_cuts(meta["cuts"]), tuple(meta["levels"]), cache, meta["info"]), \
        meta["skipped"]
