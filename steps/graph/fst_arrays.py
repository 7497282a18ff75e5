"""Weighted transducers as numpy arc arrays, and their exchange with OpenFst (kaldifst).

The graph build does its heavy algorithms (composition, determinization, minimization) in
OpenFst through kaldifst, and everything that is a simple relabelling or a local rewrite
(building L, C and H, removing disambiguation symbols, adding self-loops, projecting) on
numpy arrays. Crossing between the two goes through OpenFst's binary VectorFst format,
read and written here with numpy: kaldifst's text route (compile / to_str) takes ~20 s
per 5M arcs each way, the binary route about a second.

Conventions: tropical weights as float32 costs (-log prob), `final[s] == inf` for a
non-final state, label 0 = epsilon, arcs kept sorted by source state.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import kaldifst
import numpy as np

FST_MAGIC = 2125659606
VECTOR_FILE_VERSION = 2
# kExpanded | kMutable: every other property bit "unknown", so OpenFst tests what it needs.
HEADER_PROPERTIES = 0x3
CONST_FILE_VERSION = 2
CONST_PROPERTIES = 0x1  # kExpanded
ARC_DTYPE = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])
INF = np.float32(np.inf)


@dataclass
class ArcFst:
    """A transducer: start state, final costs per state, arcs sorted by source."""

    start: int
    final: np.ndarray  # float32 [S], inf = not final
    src: np.ndarray  # int32 [A]
    dst: np.ndarray  # int32 [A]
    ilabel: np.ndarray  # int32 [A]
    olabel: np.ndarray  # int32 [A]
    weight: np.ndarray  # float32 [A]

    @property
    def num_states(self) -> int:
        return len(self.final)

    @property
    def num_arcs(self) -> int:
        return len(self.src)

    @classmethod
    def from_arcs(cls, num_states: int, start: int, arcs: list[tuple[int, int, int, int, float]],
                  finals: dict[int, float]) -> "ArcFst":
        """From (src, dst, ilabel, olabel, cost) tuples and {state: final cost}."""
        table = np.array(arcs, dtype=np.float64).reshape(-1, 5)
        final = np.full(num_states, INF, dtype=np.float32)
        for state, cost in finals.items():
            final[state] = cost
        return cls.build(start, final, table[:, 0], table[:, 1], table[:, 2], table[:, 3], table[:, 4])

    @classmethod
    def build(cls, start, final, src, dst, ilabel, olabel, weight) -> "ArcFst":
        """Arrays in any arc order; sorts them by source state (stable)."""
        src = np.asarray(src, dtype=np.int32)
        order = np.argsort(src, kind="stable")
        return cls(int(start), np.asarray(final, dtype=np.float32), src[order],
                   np.asarray(dst, dtype=np.int32)[order], np.asarray(ilabel, dtype=np.int32)[order],
                   np.asarray(olabel, dtype=np.int32)[order], np.asarray(weight, dtype=np.float32)[order])

    def arc_starts(self) -> np.ndarray:
        """[S+1] index of each state's first arc (CSR row pointer)."""
        return np.searchsorted(self.src, np.arange(self.num_states + 1, dtype=np.int64)).astype(np.int64)

    # -- OpenFst binary ------------------------------------------------------------------

    def to_bytes(self, fst_type: str = "vector") -> bytes:
        if fst_type == "const":
            return _const_fst_bytes(self)
        if fst_type != "vector":
            raise ValueError(f"fst_type must be vector or const, got {fst_type!r}")
        return _vector_fst_bytes(self)

    def write(self, path: str | Path, fst_type: str = "vector") -> None:
        """OpenFst binary: "vector" (VectorFst) or "const" (ConstFst: read-only, compact,
        what Kaldi's mkgraph.sh leaves HCLG as)."""
        Path(path).write_bytes(self.to_bytes(fst_type))

    @classmethod
    def read(cls, path: str | Path) -> "ArcFst":
        """A standard-arc VectorFst or ConstFst binary file."""
        data = Path(path).read_bytes()
        if _fst_type(data, str(path)) == "const":
            return _parse_const_fst(data, str(path))
        return _parse_vector_fst(data, str(path))

    def to_kaldifst(self):

        with _scratch_file() as path:
            self.write(path)
            return kaldifst.StdVectorFst.read(path)

    @classmethod
    def from_kaldifst(cls, fst) -> "ArcFst":

        if not isinstance(fst, kaldifst.StdVectorFst):
            fst = kaldifst.StdVectorFst(fst)
        with _scratch_file() as path:
            if not fst.write(path):
                raise IOError(f"kaldifst could not write {path}")
            return cls.read(path)


class _scratch_file:
    """A temporary file path that is removed afterwards (TMPDIR decides where)."""

    def __enter__(self) -> str:
        handle, self.path = tempfile.mkstemp(suffix=".fst", prefix="lm2am-")
        os.close(handle)
        return self.path

    def __exit__(self, *exc):
        if os.path.exists(self.path):
            os.unlink(self.path)


def _header(num_states: int, start: int, fst_type: str = "vector", num_arcs: int = 0) -> bytes:
    def string(s: str) -> bytes:
        return struct.pack("<i", len(s)) + s.encode()

    version = VECTOR_FILE_VERSION if fst_type == "vector" else CONST_FILE_VERSION
    properties = HEADER_PROPERTIES if fst_type == "vector" else CONST_PROPERTIES
    return (struct.pack("<i", FST_MAGIC) + string(fst_type) + string("standard")
            + struct.pack("<iiQqqq", version, 0, properties, start, num_states, num_arcs))


def fst_type_of(path: str | Path) -> str:
    """"vector", "const", ... from an OpenFst binary file's header."""
    with open(path, "rb") as f:
        return _fst_type(f.read(64), str(path))


def _fst_type(data: bytes, name: str) -> str:
    (magic,) = struct.unpack_from("<i", data, 0)
    if magic != FST_MAGIC:
        raise ValueError(f"{name}: not an OpenFst binary file")
    (length,) = struct.unpack_from("<i", data, 4)
    return data[8: 8 + length].decode()


CONST_STATE_DTYPE = np.dtype([("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("niepsilons", "<u4"),
                              ("noepsilons", "<u4")])


def _const_fst_bytes(fst: ArcFst) -> bytes:
    """ConstFst binary (unaligned): header, a 20-byte record per state (final, first arc,
    arcs, input- and output-epsilon arcs), then the arcs, 16 bytes each."""
    num_states, num_arcs = fst.num_states, fst.num_arcs
    starts = fst.arc_starts()
    states = np.zeros(num_states, dtype=CONST_STATE_DTYPE)
    states["final"] = fst.final
    states["pos"] = starts[:-1]
    states["narcs"] = np.diff(starts)
    states["niepsilons"] = np.bincount(fst.src[fst.ilabel == 0], minlength=num_states)
    states["noepsilons"] = np.bincount(fst.src[fst.olabel == 0], minlength=num_states)
    records = np.empty(num_arcs, dtype=ARC_DTYPE)
    records["ilabel"], records["olabel"] = fst.ilabel, fst.olabel
    records["weight"], records["nextstate"] = fst.weight, fst.dst
    header = _header(num_states, fst.start if num_states else -1, "const", num_arcs)
    return header + states.tobytes() + records.tobytes()


def _parse_const_fst(data: bytes, name: str) -> ArcFst:
    pos = 8 + len("const")
    (length,) = struct.unpack_from("<i", data, pos)
    pos += 4 + length
    version, flags, _props, start, num_states, num_arcs = struct.unpack_from("<iiQqqq", data, pos)
    pos += struct.calcsize("<iiQqqq")
    if flags & 0x3:
        raise ValueError(f"{name}: FSTs with stored symbol tables are not supported here")
    if flags & 0x4:  # aligned: each array starts at a multiple of 16
        pos = (pos + 15) // 16 * 16
    states = np.frombuffer(data, dtype=CONST_STATE_DTYPE, count=num_states, offset=pos)
    pos += states.nbytes
    if flags & 0x4:
        pos = (pos + 15) // 16 * 16
    records = np.frombuffer(data, dtype=ARC_DTYPE, count=num_arcs, offset=pos)
    narcs = states["narcs"].astype(np.int64)
    src = np.repeat(np.arange(num_states, dtype=np.int32), narcs)
    first = np.cumsum(narcs) - narcs  # where each state's arcs go in state order
    # each state's arcs lie at records[pos : pos + narcs]; gather them in state order
    index = np.repeat(states["pos"].astype(np.int64), narcs) + np.arange(len(src)) - np.repeat(first, narcs)
    records = records[index]
    return ArcFst(int(start), states["final"].astype(np.float32), src, records["nextstate"].astype(np.int32),
                  records["ilabel"].astype(np.int32), records["olabel"].astype(np.int32),
                  records["weight"].astype(np.float32))


def _vector_fst_bytes(fst: ArcFst) -> bytes:
    """VectorFst binary: header, then per state: final (f32), narcs (i64), arcs (16 bytes)."""
    num_states, num_arcs = fst.num_states, fst.num_arcs
    start = fst.start if num_states else -1
    header = _header(num_states, start)
    starts = fst.arc_starts()
    narcs = np.diff(starts)
    state_offset = len(header) + 12 * np.arange(num_states, dtype=np.int64) + 16 * starts[:-1]
    total = len(header) + 12 * num_states + 16 * num_arcs
    buffer = np.zeros(total, dtype=np.uint8)
    buffer[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    # Overlapping byte windows, so that each record is written with one fancy assignment.
    states = np.zeros(num_states, dtype=np.dtype([("final", "<f4"), ("narcs", "<i8")]))
    states["final"] = fst.final
    states["narcs"] = narcs
    if num_states:
        _windows(buffer, 12)[state_offset] = states.view(np.uint8).reshape(-1, 12)
    if num_arcs:
        records = np.empty(num_arcs, dtype=ARC_DTYPE)
        records["ilabel"], records["olabel"] = fst.ilabel, fst.olabel
        records["weight"], records["nextstate"] = fst.weight, fst.dst
        local = np.arange(num_arcs, dtype=np.int64) - starts[fst.src]
        _windows(buffer, 16)[state_offset[fst.src] + 12 + 16 * local] = records.view(np.uint8).reshape(-1, 16)
    return buffer.tobytes()


def _windows(buffer: np.ndarray, width: int) -> np.ndarray:
    return np.lib.stride_tricks.as_strided(buffer, shape=(max(len(buffer) - width + 1, 0), width),
                                           strides=(1, 1), writeable=True)


def _parse_vector_fst(data: bytes, name: str) -> ArcFst:
    def string(pos: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<i", data, pos)
        return data[pos + 4: pos + 4 + length].decode(), pos + 4 + length

    (magic,) = struct.unpack_from("<i", data, 0)
    if magic != FST_MAGIC:
        raise ValueError(f"{name}: not an OpenFst binary file")
    fst_type, pos = string(4)
    arc_type, pos = string(pos)
    if fst_type != "vector" or arc_type != "standard":
        raise ValueError(f"{name}: expected a standard-arc vector FST, got {fst_type}/{arc_type}")
    version, flags, _props, start, num_states, _num_arcs = struct.unpack_from("<iiQqqq", data, pos)
    pos += struct.calcsize("<iiQqqq")
    if flags & 0x3:
        raise ValueError(f"{name}: FSTs with stored symbol tables are not supported here")
    # States are variable-length records; one pass finds where each begins.
    offsets = [0] * num_states
    counts = [0] * num_states
    unpack = struct.Struct("<q").unpack_from
    for state in range(num_states):
        offsets[state] = pos
        (n,) = unpack(data, pos + 4)
        counts[state] = n
        pos += 12 + 16 * n
    buffer = np.frombuffer(data, dtype=np.uint8)
    offset = np.array(offsets, dtype=np.int64)
    narcs = np.array(counts, dtype=np.int64)
    read_windows = np.lib.stride_tricks.as_strided(buffer, shape=(max(len(buffer) - 15, 0), 16), strides=(1, 1))
    final_windows = np.lib.stride_tricks.as_strided(buffer, shape=(max(len(buffer) - 3, 0), 4), strides=(1, 1))
    final = final_windows[offset].copy().view("<f4").reshape(-1) if num_states else np.zeros(0, np.float32)
    src = np.repeat(np.arange(num_states, dtype=np.int32), narcs)
    first = np.concatenate([[0], np.cumsum(narcs)[:-1]]) if num_states else np.zeros(0, np.int64)
    local = np.arange(len(src), dtype=np.int64) - first[src] if len(src) else np.zeros(0, np.int64)
    records = read_windows[offset[src] + 12 + 16 * local].copy().view(ARC_DTYPE).reshape(-1)
    return ArcFst(int(start), final.astype(np.float32), src, records["nextstate"].astype(np.int32),
                  records["ilabel"].astype(np.int32), records["olabel"].astype(np.int32),
                  records["weight"].astype(np.float32))


# -- small array algorithms used by the graph build and the tests --------------------------


def relabel(fst: ArcFst, *, ilabel_map: np.ndarray | None = None,
            olabel_map: np.ndarray | None = None) -> ArcFst:
    """Maps labels through lookup tables (index = old label)."""
    return ArcFst(fst.start, fst.final, fst.src, fst.dst,
                  fst.ilabel if ilabel_map is None else ilabel_map[fst.ilabel].astype(np.int32),
                  fst.olabel if olabel_map is None else olabel_map[fst.olabel].astype(np.int32),
                  fst.weight)


def project_output(fst: ArcFst) -> ArcFst:
    """The acceptor of the output strings (ilabel := olabel)."""
    return ArcFst(fst.start, fst.final, fst.src, fst.dst, fst.olabel.copy(), fst.olabel, fst.weight)


def kaldifst_size(fst) -> tuple[int, int]:
    """States and arcs of a kaldifst FST; arcs from the size of its binary VectorFst form
    (header + 12 bytes a state + 16 an arc), cheaper than visiting them from Python."""

    fst = fst if isinstance(fst, kaldifst.StdVectorFst) else kaldifst.StdVectorFst(fst)
    states = fst.num_states
    with _scratch_file() as path:
        fst.write(path)
        size = Path(path).stat().st_size
    return states, (size - len(_header(states, 0)) - 12 * states) // 16


def kaldifst_from_text(text: str):
    """OpenFst text format (integer labels) -> kaldifst.StdVectorFst; blank lines ignored."""

    lines = [line for line in text.splitlines() if line.strip()]
    return kaldifst.compile("\n".join(lines) + "\n")
