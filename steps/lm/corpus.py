"""Token corpora larger than memory: written a sentence at a time, read back as one int32
array on disk (a numpy memmap) with the sentences' offsets.

    with CorpusWriter(out / "train.txt") as train:
        train.add([3, 17, 4])
    corpus = TokenCorpus.open(out / "train.txt")
    corpus[5], len(corpus), corpus.lengths, corpus.num_tokens
    for flat, lengths in corpus.chunks(): ...

The text file (one sentence a line, unit ids) is the artifact a user reads. Beside it,
`<name>.ids` (int32 ids, end to end), `<name>.offsets.npy` (int64, sentences + 1) and
`<name>.index.json` (the text's size and mtime, counts, smallest and largest id). The writer
makes them as it writes; `open` remakes them from the text, a block of lines at a time, when
they are missing or the text has changed since. Empty lines are not sentences.
"""

from __future__ import annotations

import json
import os
import warnings
from array import array
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from steps.core.atomic import atomic_path

BLOCK_LINES = 1 << 18  # lines converted at a time when the index is made from the text
CHUNK_TOKENS = 1 << 22  # tokens per chunk of chunks(): the bigram count holds ~6 int64 copies of one


def _index_paths(path: Path) -> tuple[Path, Path, Path]:
    return (path.with_name(path.name + ".ids"), path.with_name(path.name + ".offsets.npy"),
            path.with_name(path.name + ".index.json"))


def corpus_files(path: str | Path) -> list[Path]:
    """The text and its index files."""
    return [Path(path), *_index_paths(Path(path))]


def _text_stamp(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class _IndexBuilder:
    """Appends sentences to the .ids file and keeps their offsets; finish() writes the rest."""

    def __init__(self, path: Path):
        self.path = path
        self.ids_path, self.offsets_path, self.info_path = _index_paths(path)
        self._tmp = self.ids_path.with_name(self.ids_path.name + ".tmp")
        self._ids = open(self._tmp, "wb")
        self.offsets = array("q", [0])
        self.low, self.high, self.longest = None, None, 0

    def add_block(self, flat: np.ndarray, lengths: Sequence[int]) -> None:
        if len(flat):
            low, high = int(flat.min()), int(flat.max())
            if low < -2 ** 31 or high >= 2 ** 31:
                raise ValueError(f"{self.path}: unit ids must fit in int32 (found {low}..{high})")
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
            self.longest = max(self.longest, int(max(lengths)))
        flat.astype(np.int32).tofile(self._ids)
        ends = self.offsets[-1] + np.cumsum(np.asarray(lengths, dtype=np.int64))
        self.offsets.extend(ends.tolist())

    def finish(self) -> None:
        self._ids.close()
        os.replace(self._tmp, self.ids_path)
        with atomic_path(self.offsets_path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.frombuffer(self.offsets, dtype=np.int64))
        info = {"text": _text_stamp(self.path), "sentences": len(self.offsets) - 1,
                "tokens": int(self.offsets[-1]), "min_id": self.low, "max_id": self.high,
                "max_length": self.longest}
        with atomic_path(self.info_path) as tmp:
            Path(tmp).write_text(json.dumps(info, indent=1) + "\n")

    def abandon(self) -> None:
        self._ids.close()
        self._tmp.unlink(missing_ok=True)


class CorpusWriter:
    """Writes a token corpus a sentence at a time: the text (atomically, on a clean exit) and
    its binary index. Counts so far: sentences, tokens, max_length."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._index: _IndexBuilder | None = None

    @property
    def sentences(self) -> int:
        return len(self._index.offsets) - 1 if self._index else 0

    @property
    def tokens(self) -> int:
        return self._index.offsets[-1] if self._index else 0

    @property
    def max_length(self) -> int:
        return self._index.longest if self._index else 0

    def __enter__(self) -> "CorpusWriter":
        for stale in _index_paths(self.path):
            stale.unlink(missing_ok=True)
        self._atomic = atomic_path(self.path)
        self._text = open(self._atomic.__enter__(), "w")
        self._index = _IndexBuilder(self.path)
        return self

    def add(self, units: Sequence[int]) -> None:
        if not len(units):
            raise ValueError("an empty sentence is not written")
        self._text.write(" ".join(map(str, units)) + "\n")
        self._index.add_block(np.asarray(units, dtype=np.int64), [len(units)])

    def __exit__(self, kind, error, trace) -> None:
        self._text.close()
        self._atomic.__exit__(kind, error, trace)
        if kind is None:
            self._index.finish()
        else:
            self._index.abandon()


def parse_lines(path: Path, lines: list[str]) -> tuple[np.ndarray, list[int]]:
    """Lines of a corpus text (newlines kept or not) -> (their ids end to end, each non-empty
    line's count); an empty line is no sentence."""
    kept = [line for line in lines if line.strip()]
    lengths = [line.strip().count(" ") + 1 for line in kept]  # fast path: single spaces, as written
    try:
        with warnings.catch_warnings():  # numpy warns (later: raises) where a text is not all numbers
            warnings.simplefilter("error", DeprecationWarning)
            flat = np.fromstring(" ".join(kept), dtype=np.int64, sep=" ") if kept else np.zeros(0, np.int64)
    except (DeprecationWarning, ValueError):
        flat = None
    if flat is None or len(flat) != sum(lengths):
        lengths = [len(line.split()) for line in kept]
        try:
            flat = np.array(" ".join(kept).split(), dtype=np.int64)
        except ValueError as error:
            raise ValueError(f"{path}: not a token corpus (a line of unit ids each): {error}") from None
    return flat, lengths


def _blocks(path: Path) -> Iterator[list[str]]:
    with open(path) as f:
        block = []
        for line in f:
            block.append(line)
            if len(block) == BLOCK_LINES:
                yield block
                block = []
        if block:
            yield block


class TokenCorpus:
    """Sentences of unit ids backed by the memmapped index: corpus[i] is an int64 array."""

    def __init__(self, path: Path, ids: np.ndarray, offsets: np.ndarray, info: dict):
        self.path, self.ids, self.offsets, self.info = path, ids, offsets, info

    @classmethod
    def open(cls, path: str | Path) -> "TokenCorpus":
        path = Path(path)
        ids_path, offsets_path, info_path = _index_paths(path)
        info = json.loads(info_path.read_text()) if info_path.exists() else None
        if info is None or info.get("text") != _text_stamp(path) or not ids_path.exists() \
                or not offsets_path.exists():
            builder = _IndexBuilder(path)
            try:
                for block in _blocks(path):
                    builder.add_block(*parse_lines(path, block))
            except BaseException:
                builder.abandon()
                raise
            builder.finish()
            info = json.loads(info_path.read_text())
        offsets = np.load(offsets_path)
        ids = (np.memmap(ids_path, dtype=np.int32, mode="r") if info["tokens"]
               else np.zeros(0, dtype=np.int32))
        return cls(path, ids, offsets, info)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]].astype(np.int64)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def chunks(self, max_tokens: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids as int64, lengths) of consecutive runs of whole sentences, about max_tokens
        (CHUNK_TOKENS) each."""
        max_tokens = max_tokens or CHUNK_TOKENS
        lengths = self.lengths
        first = 0
        while first < len(self):
            last = int(np.searchsorted(self.offsets, self.offsets[first] + max_tokens, side="right")) - 1
            last = min(max(last, first + 1), len(self))
            yield (self.ids[self.offsets[first]:self.offsets[last]].astype(np.int64), lengths[first:last])
            first = last

    def sentences_outside(self, num_units: int) -> tuple[int, int | None]:
        """How many sentences have an id outside 0..num_units-1, and the line (1-based, among
        non-empty lines) of the first, or None."""
        count, first, done = 0, None, 0
        for flat, lengths in self.chunks():
            bad = np.flatnonzero((flat < 0) | (flat >= num_units))
            sentences = np.unique(np.searchsorted(np.cumsum(lengths), bad, side="right"))
            if len(sentences) and first is None:
                first = done + int(sentences[0]) + 1
            count += len(sentences)
            done += len(lengths)
        return count, first


def sentences_from(corpus: TokenCorpus | Iterable[Sequence[int]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(flat ids, lengths) chunks of a TokenCorpus, or one chunk of a list of sentences."""
    if isinstance(corpus, TokenCorpus):
        yield from corpus.chunks()
        return
    sentences = list(corpus)
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    flat = (np.concatenate([np.asarray(s, dtype=np.int64) for s in sentences])
            if lengths.sum() else np.zeros(0, np.int64))
    yield flat, lengths
