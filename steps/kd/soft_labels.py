"""Teacher soft labels: their storage on lhotse cuts (the teachers' top-k is
steps.lm.model.top_k_soft_labels).

One level L of one cut is four arrays (custom fields of the cut, lhotse `Array`s written
with NumpyHdf5Writer), one row per token of the cut's reference at that level:

    kd_<L>_tokens  int32   [N]     the reference unit id (hard label)
    kd_<L>_spans   int32   [N, 2]  [start_frame, end_frame), 10 ms frames; sorted, disjoint
    kd_<L>_ids     int32   [N, k]  the teacher's top-k unit ids
    kd_<L>_probs   float16 [N, k]  their probabilities after temperature T, renormalised
                                   over the k, sorted descending

Frames outside every span (silence) have no target. For the AM's batches:

    labels = load_soft_labels(cut, "phone")                   # SoftLabels
    targets = expand_to_frames(labels, num_frames)            # FrameTargets: ids/probs [T, k],
                                                              # tokens [T], mask [T]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import h5py
import numpy as np
from lhotse.features.io import lookup_cache_or_open
from lhotse.utils import fastcopy


LEVELS = ("senone", "phone", "subword", "plm")  # plm: a pre-trained model's pieces (steps.kd)
FIELDS = ("tokens", "spans", "ids", "probs")
DTYPES = {"tokens": np.int32, "spans": np.int32, "ids": np.int32, "probs": np.float16}
INFO_FIELD = "kd_info"


def field_name(level: str, kind: str) -> str:
    """Custom field name on the cut, e.g. kd_phone_probs."""
    return f"kd_{level}_{kind}"


@dataclass
class SoftLabels:
    tokens: np.ndarray  # int32 [N]
    spans: np.ndarray  # int32 [N, 2]
    ids: np.ndarray  # int32 [N, k]
    probs: np.ndarray  # float16 [N, k]

    def __post_init__(self):
        self.tokens = np.asarray(self.tokens, dtype=np.int32).reshape(-1)
        n = len(self.tokens)
        self.spans = np.asarray(self.spans, dtype=np.int32).reshape(n, 2)
        self.ids = np.asarray(self.ids, dtype=np.int32).reshape(n, -1)
        self.probs = np.asarray(self.probs, dtype=np.float16).reshape(n, -1)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def top_k(self) -> int:
        return self.ids.shape[1]

    def check(self, num_frames: int | None = None) -> None:
        """Raises ValueError unless the spans are non-empty, sorted, disjoint (and inside
        num_frames) and the probabilities sorted descending."""
        s = self.spans
        if len(s):
            if np.any(s[:, 1] <= s[:, 0]):
                raise ValueError("empty span")
            if np.any(s[1:, 0] < s[:-1, 1]):
                raise ValueError("spans not sorted and disjoint")
            if s[0, 0] < 0 or (num_frames is not None and s[-1, 1] > num_frames):
                raise ValueError(f"spans outside [0, {num_frames})")
        if self.ids.shape != self.probs.shape:
            raise ValueError(f"ids {self.ids.shape} and probs {self.probs.shape} differ")
        if np.any(np.diff(self.probs.astype(np.float32), axis=1) > 0):
            raise ValueError("probabilities not sorted descending")

    def arrays(self) -> dict[str, np.ndarray]:
        return {"tokens": self.tokens, "spans": self.spans, "ids": self.ids, "probs": self.probs}


def store_soft_labels(cut, level: str, labels: SoftLabels, writer):
    """The cut with the level's four arrays written by `writer` (a lhotse NumpyHdf5Writer)
    and attached as custom fields. Keys in the file: <cut id>_<level>_<kind>."""
    custom = dict(cut.custom or {})
    for kind, array in labels.arrays().items():
        custom[field_name(level, kind)] = writer.store_array(f"{cut.id}_{level}_{kind}",
                                                             np.ascontiguousarray(array))

    return fastcopy(cut, custom=custom)


def has_soft_labels(cut, level: str) -> bool:
    return all(cut.has_custom(field_name(level, kind)) for kind in FIELDS)


def load_soft_labels(cut, level: str) -> SoftLabels:
    arrays = {kind: _read(cut, field_name(level, kind)) for kind in FIELDS}
    return SoftLabels(**arrays)


def _read(cut, name: str) -> np.ndarray:
    """cut.load_custom(name), faster for NumpyHdf5Writer arrays (see _read_hdf5)."""
    array = cut.custom.get(name) if cut.custom else None
    if getattr(array, "storage_type", None) != "numpy_hdf5" or not hasattr(array, "storage_key"):
        return cut.load_custom(name)
    return _read_hdf5(array.storage_path, array.storage_key, tuple(array.shape))


_FILES: dict[str, int] = {}  # path -> file descriptor for os.pread (position-free, fork-safe)
_DTYPES: dict[tuple[str, str], np.dtype] = {}  # (path, key suffix) -> dtype, read once


def _read_hdf5(path: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """One dataset of a NumpyHdf5Writer file (what cut.load_custom returns). These arrays
    are tiny, so h5py's per-read overhead (dtype objects, selections) is most of the cost
    of loading a batch. Here a contiguous dataset of the manifest's shape is read with one
    os.pread at the offset HDF5 reports; its dtype is looked up once per file and field
    kind (the key's suffix: one file holds one dtype per kind, as store_soft_labels writes
    it), and the stored size must match. Anything else goes through h5py."""

    dataset = h5py.h5d.open(lookup_cache_or_open(path).id, key.encode())
    kind = (path, key.rsplit("_", 1)[-1])
    dtype = _DTYPES.get(kind)
    if dtype is None:
        dtype = _DTYPES[kind] = dataset.dtype
    nbytes = math.prod(shape) * dtype.itemsize
    offset = dataset.get_offset() if nbytes else None  # None unless stored contiguously
    if offset is not None and dataset.get_storage_size() == nbytes and dtype.kind in "iuf":
        fd = _FILES.get(path)
        if fd is None:
            fd = _FILES[path] = os.open(path, os.O_RDONLY)
        data = os.pread(fd, nbytes, offset)
        if len(data) == nbytes:
            return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    out = np.empty(dataset.shape, dtype=dataset.dtype)
    if out.size:
        dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


@dataclass
class FrameTargets:
    ids: np.ndarray  # int64 [T, k]; 0 where masked
    probs: np.ndarray  # float32 [T, k]; 0 where masked
    tokens: np.ndarray  # int64 [T] hard labels; -1 where masked
    mask: np.ndarray  # bool [T]: True where a token covers the frame


def expand_to_frames(labels: SoftLabels, num_frames: int) -> FrameTargets:
    """Per-token labels -> per-frame targets; frames outside every span are masked."""
    k = labels.top_k if len(labels) else labels.ids.shape[1]
    ids = np.zeros((num_frames, k), dtype=np.int64)
    probs = np.zeros((num_frames, k), dtype=np.float32)
    tokens = np.full(num_frames, -1, dtype=np.int64)
    mask = np.zeros(num_frames, dtype=bool)
    if len(labels):
        spans = np.clip(labels.spans, 0, num_frames)
        lengths = spans[:, 1] - spans[:, 0]
        rows = np.repeat(np.arange(len(labels)), lengths)
        offsets = np.repeat(np.cumsum(lengths) - lengths - spans[:, 0], lengths)
        frames = np.arange(len(rows)) - offsets
        ids[frames] = labels.ids[rows]
        probs[frames] = labels.probs[rows].astype(np.float32)
        tokens[frames] = labels.tokens[rows]
        mask[frames] = True
    return FrameTargets(ids, probs, tokens, mask)
