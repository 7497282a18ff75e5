"""Batches for acoustic-model training: fbank features, senone alignments and the teachers'
soft labels, at the model's output frame rate.

What a cut must carry (see the conventions): features (80-dim fbank), the custom field
`senone_ali` (int per 10 ms frame), and for each unit level L the training needs the four
`kd_L_*` arrays of steps.kd.soft_labels (tokens, spans, ids, probs; per TOKEN, not per frame).

    store, skipped = CutStore.build(cuts, levels=("phone",), cache=True)
    sampler = make_sampler(store.cuts, config, seed=1)          # DynamicBucketingSampler
    dataset = AmDataset(store, subsampling=3, levels=("phone",))
    for cuts in sampler:
        batch = dataset[cuts]                                     # AmBatch

Frame rate. With frame subsampling s the model emits one output per s input frames
(n = ceil(T / s) outputs for T frames); output j covers input frames [j*s, j*s + s) and
takes the labels of input frame min(j*s + s//2, T - 1), its centre. Every target in an
AmBatch is at that output rate: senone [B, N], and per level ids/probs [B, N, k],
mask [B, N], hard [B, N] (N = the longest n in the batch).

Soft labels are expanded from tokens to frames for the whole batch at once, with no loop
over frames: the token starts of all cuts are laid on one axis (cut b's frames offset by
b x stride) and every queried frame finds its token with one np.searchsorted; a frame is
covered if it lies before that token's end. Frames covered by no token (silence) get
mask False, hard label -1, ids 0 and probs 0.

The store reads every training cut once at the start (to validate it and for the global
CMVN statistics and senone counts); with `cache_in_memory` it keeps the arrays (2.5 h of
80-dim float32 fbank is about 290 MB), otherwise it reads them again for every batch.
`CutStore.load_or_build` also keeps the validated arrays of all three levels on disk (one
directory per cuts file, named by its path, size and time: the arrays concatenated per
kind as .npy, plus a pickle of the cuts and offsets): reading 2.5 h of cuts with their 14
arrays each takes 25-80 s on 2 cores, reading the cache a few seconds, and the six
systems x three seeds all train on the same cuts.
Batches are built in the training process (no DataLoader workers): on a 2-core machine
the cached arrays make loading cheap, and the sampler's position then is exactly the
number of batches trained, which is what resuming needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from lhotse import CutSet

from steps.core.config import require
from steps.core.log import progress
from steps.kd.soft_labels import LEVELS, SoftLabels, has_soft_labels, load_soft_labels

log = logging.getLogger(__name__)

ALI_FIELD = "senone_ali"
IGNORE = -1  # label of frames without a target (padding, silence for soft-label levels)


# ------------------------------------------------------------------ configs


@dataclass
class SpecAugmentConfig:
    """Time and frequency masking on the normalised features (masked values become 0,
    the global mean), per utterance; off unless enabled."""

    enabled: bool = False
    num_freq_masks: int = 2
    max_freq_width: int = 10
    num_time_masks: int = 2
    max_time_width: int = 20  # frames; a mask never covers more than max_time_frac of a cut
    max_time_frac: float = 0.1

    def __post_init__(self):
        require(self.num_freq_masks >= 0, "num_freq_masks", "must be >= 0")
        require(self.max_freq_width >= 0, "max_freq_width", "must be >= 0")
        require(self.num_time_masks >= 0, "num_time_masks", "must be >= 0")
        require(self.max_time_width >= 0, "max_time_width", "must be >= 0")
        require(0.0 <= self.max_time_frac <= 1.0, "max_time_frac", "must be in [0, 1]")


@dataclass
class DataConfig:
    max_duration: float = 200.0  # seconds of speech per batch and process
    num_buckets: int = 10
    shuffle: bool = True
    cache_in_memory: bool = True
    spec_augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)

    def __post_init__(self):
        require(self.max_duration > 0, "max_duration", "must be positive")
        require(self.num_buckets >= 1, "num_buckets", "must be at least 1")


# ------------------------------------------------------------------ per-cut arrays


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


CACHE_VERSION = 2  # 2: the plm level


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
    counts_by_cut: dict[str, np.ndarray] | None = None  # bincount of each alignment (no cache)

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
        for cut in progress(cuts, desc=description, leave=False, mininterval=2):
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
                counts[cut.id] = np.bincount(arrays.senone)
            kept.append(cut)
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
        counts = np.zeros(max([len(c) for c in self.counts_by_cut.values()] + [0]), dtype=np.int64)
        for c in self.counts_by_cut.values():
            counts[: len(c)] += c
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
        return load_cut_arrays(cut, self.levels, need_alignment=False)


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
            if kind in ("ids", "probs"):
                parts = [_pad_k(p, k, 0) for p in parts]
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


# ------------------------------------------------------------------ frame targets


def output_lengths(num_frames: np.ndarray | torch.Tensor, subsampling: int):
    """n = ceil(T / s) outputs per utterance."""
    return (num_frames + subsampling - 1) // subsampling


def output_positions(num_frames: np.ndarray, subsampling: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions [B, N]: the input frame whose labels output j takes, valid [B, N])."""
    num_frames = np.asarray(num_frames, dtype=np.int64)
    n = output_lengths(num_frames, subsampling)
    width = int(n.max()) if len(n) else 0
    j = np.arange(width)
    positions = np.minimum(j[None, :] * subsampling + subsampling // 2, num_frames[:, None] - 1)
    return positions, j[None, :] < n[:, None]


@dataclass
class LevelTargets:
    ids: torch.Tensor  # int64 [B, N, k]; 0 where masked
    probs: torch.Tensor  # float32 [B, N, k]; 0 where masked
    mask: torch.Tensor  # bool [B, N]: a token covers the frame
    hard: torch.Tensor  # int64 [B, N]: the token's reference unit id; -1 where masked

    def to(self, device) -> "LevelTargets":
        return LevelTargets(*(t.to(device) for t in (self.ids, self.probs, self.mask, self.hard)))


def expand_soft_labels(labels: Sequence[SoftLabels | None], num_frames: Sequence[int],
                       subsampling: int = 1) -> LevelTargets:
    """Per-token soft labels of B cuts -> per-frame targets at the output rate, vectorised
    (one searchsorted over the whole batch). A cut given as None gets no targets."""
    num_frames = np.asarray(num_frames, dtype=np.int64)
    positions, valid = output_positions(num_frames, subsampling)
    batch, width = positions.shape
    k = max([lab.top_k for lab in labels if lab is not None] + [1])
    stride = int(num_frames.max()) + 1 if batch else 1
    present = [(b, lab) for b, lab in enumerate(labels) if lab is not None and len(lab)]
    ids = np.zeros((batch, width, k), dtype=np.int64)
    probs = np.zeros((batch, width, k), dtype=np.float32)
    hard = np.full((batch, width), IGNORE, dtype=np.int64)
    mask = np.zeros((batch, width), dtype=bool)
    if present:
        offsets = np.concatenate([np.full(len(lab), b * stride, dtype=np.int64) for b, lab in present])
        spans = np.concatenate([lab.spans for _, lab in present]).astype(np.int64)
        limit = np.concatenate([np.full(len(lab), num_frames[b]) for b, lab in present])
        starts = spans[:, 0] + offsets
        ends = np.minimum(spans[:, 1], limit) + offsets
        token_ids = np.concatenate([_pad_k(lab.ids, k, 0) for _, lab in present])
        token_probs = np.concatenate([_pad_k(lab.probs.astype(np.float32), k, 0.0)
                                      for _, lab in present])
        token_hard = np.concatenate([lab.tokens for _, lab in present]).astype(np.int64)
        query = (np.arange(batch, dtype=np.int64)[:, None] * stride + positions).reshape(-1)
        row = np.searchsorted(starts, query, side="right") - 1
        safe = np.maximum(row, 0)
        covered = (row >= 0) & (query < ends[safe]) & valid.reshape(-1)
        flat = np.flatnonzero(covered)
        rows = row[flat]
        ids.reshape(-1, k)[flat] = token_ids[rows]
        probs.reshape(-1, k)[flat] = token_probs[rows]
        hard.reshape(-1)[flat] = token_hard[rows]
        mask.reshape(-1)[flat] = True
    return LevelTargets(torch.from_numpy(ids), torch.from_numpy(probs), torch.from_numpy(mask),
                        torch.from_numpy(hard))


def _pad_k(array: np.ndarray, k: int, value) -> np.ndarray:
    if array.shape[1] == k:
        return array
    out = np.full((array.shape[0], k), value, dtype=array.dtype)
    out[:, : array.shape[1]] = array
    return out


def senone_targets(alignments: Sequence[np.ndarray | None], num_frames: Sequence[int],
                   subsampling: int = 1) -> torch.Tensor:
    """Frame alignments -> [B, N] labels at the output rate; -1 for padding and for cuts
    without an alignment."""
    num_frames = np.asarray(num_frames, dtype=np.int64)
    positions, valid = output_positions(num_frames, subsampling)
    out = np.full(positions.shape, IGNORE, dtype=np.int64)
    for b, ali in enumerate(alignments):
        if ali is not None:
            n = int(valid[b].sum())
            out[b, :n] = ali[positions[b, :n]]
    return torch.from_numpy(out)


# ------------------------------------------------------------------ batches


@dataclass
class AmBatch:
    cut_ids: list[str]
    feats: torch.Tensor  # float32 [B, T, F] raw fbank, zero padded
    feat_lens: torch.Tensor  # int64 [B]
    senone: torch.Tensor  # int64 [B, N]; -1 = no label
    out_lens: torch.Tensor  # int64 [B]
    levels: dict[str, LevelTargets]

    def to(self, device) -> "AmBatch":
        return AmBatch(self.cut_ids, self.feats.to(device), self.feat_lens.to(device),
                       self.senone.to(device), self.out_lens.to(device),
                       {k: v.to(device) for k, v in self.levels.items()})

    @property
    def num_frames(self) -> int:
        return int(self.feat_lens.sum())


def collate(cut_ids: Sequence[str], items: Sequence[CutArrays], levels: Sequence[str],
            subsampling: int) -> AmBatch:
    lengths = np.array([a.num_frames for a in items], dtype=np.int64)
    feats = np.zeros((len(items), int(lengths.max()), items[0].feats.shape[1]), dtype=np.float32)
    for b, a in enumerate(items):
        feats[b, : a.num_frames] = a.feats
    targets = {level: expand_soft_labels([a.levels.get(level) for a in items], lengths, subsampling)
               for level in levels}
    return AmBatch(list(cut_ids), torch.from_numpy(feats), torch.from_numpy(lengths),
                   senone_targets([a.senone for a in items], lengths, subsampling),
                   torch.from_numpy(output_lengths(lengths, subsampling)), targets)


class AmDataset(torch.utils.data.Dataset):
    """Map-style dataset in lhotse's manner: indexed by a CutSet (a sampler's batch)."""

    def __init__(self, store: CutStore, subsampling: int, levels: Sequence[str] | None = None):
        self.store = store
        self.subsampling = subsampling
        self.levels = tuple(store.levels if levels is None else levels)

    def __getitem__(self, cuts: CutSet) -> AmBatch:
        cuts = list(cuts)
        return collate([c.id for c in cuts], [self.store.arrays(c) for c in cuts], self.levels,
                       self.subsampling)

    def __len__(self) -> int:  # batches are defined by the sampler
        raise TypeError("AmDataset is indexed by CutSets from a sampler")


def _torch_sampler_compat() -> None:
    """lhotse's samplers call torch's Sampler.__init__() without `data_source`, which
    torch < 2 requires; give it the default that newer torch has."""
    import inspect

    init = torch.utils.data.Sampler.__init__
    parameter = inspect.signature(init).parameters.get("data_source")
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        def compatible_init(self, data_source=None):
            return None

        torch.utils.data.Sampler.__init__ = compatible_init


def make_sampler(cuts: CutSet, config: DataConfig, seed: int, world_size: int = 1, rank: int = 0,
                 shuffle: bool | None = None):
    from lhotse.dataset import DynamicBucketingSampler

    _torch_sampler_compat()
    num_buckets = max(1, min(config.num_buckets, len(cuts) // 2))
    with warnings.catch_warnings():  # the cuts are in memory on purpose (see the store)
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        return DynamicBucketingSampler(cuts, max_duration=config.max_duration,
                                       shuffle=config.shuffle if shuffle is None else shuffle,
                                       num_buckets=num_buckets, seed=seed, world_size=world_size,
                                       rank=rank, drop_last=False)


def sequential_batches(cuts: CutSet, max_duration: float) -> Iterable[list]:
    """Cuts in order, in batches of at most max_duration seconds (for evaluation)."""
    batch, total = [], 0.0
    for cut in sorted(cuts, key=lambda c: c.duration):
        if batch and total + cut.duration > max_duration:
            yield batch
            batch, total = [], 0.0
        batch.append(cut)
        total += cut.duration
    if batch:
        yield batch


# ------------------------------------------------------------------ SpecAugment


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """Masks bands of normalised features [B, T, F] (in a copy) with 0, the global mean.
    Random numbers come from `generator` (on the CPU), so training can be resumed exactly."""
    if not config.enabled:
        return x
    batch, _, dim = x.shape
    keep = torch.ones(batch, x.shape[1], dim, dtype=torch.bool)
    for b in range(batch):
        length = int(lengths[b])
        for _ in range(config.num_freq_masks):
            width = int(torch.randint(0, config.max_freq_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, dim - width + 1), (1,), generator=generator))
            keep[b, :, start:start + width] = False
        time_limit = min(config.max_time_width, int(config.max_time_frac * length))
        for _ in range(config.num_time_masks):
            width = int(torch.randint(0, time_limit + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, length - width + 1), (1,), generator=generator))
            keep[b, start:start + width, :] = False
    return x * keep.to(x.device, x.dtype)
