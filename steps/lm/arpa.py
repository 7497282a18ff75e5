"""Prebuilt ARPA files, such as openslr's LibriSpeech LMs (resource 11: 3-gram.pruned.1e-7,
4-gram; gzip'd, up to hundreds of millions of n-grams), read as a stream, line by line,
plain or gzip: nothing but the header and the vocabulary is held in memory. Its checked
line reader (read_header, ngram_lines) is also what BackoffLM.read_arpa builds a model from.

    counts = read_counts("3-gram.pruned.1e-7.arpa.gz")      # {1: 200003, 2: ..., 3: ...}
    words = arpa_words("3-gram.pruned.1e-7.arpa.gz")        # the 1-gram section's words
    kept = restrict_arpa("4-gram.arpa.gz", "lm_4gram.arpa", vocabulary)   # Restriction

restrict_arpa writes the n-grams all of whose words are in the vocabulary (<s> and </s>
always are), with the header's counts corrected, and says what it left out: the words
(with their unigram log10 probabilities) and the n-grams of each order. The kept entries
are copied unchanged, and a back-off model scores a word after a history from entries
made of those words only, so every sentence over the vocabulary scores as in the whole
model; the mass of the words left out is simply never reached (as Kaldi's arpa2fst does
with words missing from its symbol table, but counted here). An ARPA's <unk> is written
as the vocabulary's <UNK> when the vocabulary has only that spelling.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterator, TextIO

from steps.core.atomic import atomic_path

BOS, EOS, UNK = "<s>", "</s>", "<UNK>"  # the sentence marks and the unknown word
SECTION = re.compile(r"\\(\d+)-grams:")
COUNT = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")


class ArpaError(ValueError):
    """A malformed or cut-short ARPA file (the message names the file and line)."""


def open_arpa(path: str | Path) -> TextIO:
    """The file as text, gunzipped on the fly if it is gzip (by its magic bytes)."""
    path = Path(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if gzipped:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def numbered_lines(path: Path, f: TextIO) -> Iterator[tuple[int, str]]:
    """(line number, line) of an open ARPA; a cut-short gzip stream is an ArpaError."""
    try:
        yield from enumerate(f, 1)
    except (EOFError, OSError, zlib.error) as e:  # an interrupted download, usually
        raise ArpaError(f"{path}: unreadable or cut short ({type(e).__name__}: {e}); "
                        "fetch it again") from e


def read_header(path: Path, lines: Iterator[tuple[int, str]]) -> dict[int, int]:
    """The \\data\\ counts; consumes the lines up to the first section line."""
    counts: dict[int, int] = {}
    seen_data = False
    for number, line in lines:
        text = line.strip()
        if text == "\\data\\":
            seen_data = True
        elif seen_data and (match := COUNT.fullmatch(text)):
            counts[int(match.group(1))] = int(match.group(2))
        elif SECTION.fullmatch(text):
            if not counts or int(SECTION.fullmatch(text).group(1)) != 1:
                raise ArpaError(f"{path}:{number}: {text!r} before the \\data\\ counts")
            if sorted(counts) != list(range(1, max(counts) + 1)):
                raise ArpaError(f"{path}: \\data\\ declares orders {sorted(counts)}")
            return counts
        elif text and seen_data:
            raise ArpaError(f"{path}:{number}: unexpected {text!r} in the \\data\\ header")
    raise ArpaError(f"{path}: no \\data\\ header with a \\1-grams: section")


def ngram_lines(path: Path, lines: Iterator[tuple[int, str]], declared: dict[int, int]
                ) -> Iterator[tuple[int, list[str] | None, str]]:
    """After read_header: (n, fields, line) of every n-gram line, and (n, None, line) where
    the n-gram section starts, for n above 1 (read_header has read the 1-grams' line).
    Checks that the sections follow each other from 1 to the header's order, that each line
    has its order's fields, that each section holds as many lines as declared, and that
    \\end\\ closes the file; any of these wrong is an ArpaError."""
    order = max(declared)
    found = [0] * order
    n = 1
    for number, line in lines:
        if line.startswith("\\"):
            text = line.strip()
            if text == "\\end\\":
                break
            match = SECTION.fullmatch(text)
            if not match or int(match.group(1)) != n + 1 or n + 1 > order:
                raise ArpaError(f"{path}:{number}: unexpected {text!r} after the {n}-grams")
            n += 1
            yield n, None, line
            continue
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (n + 1, n + 2):
            raise ArpaError(f"{path}:{number}: bad {n}-gram line {line.strip()!r}")
        found[n - 1] += 1
        yield n, fields, line
    else:
        raise ArpaError(f"{path}: no \\end\\ (cut short?)")
    wrong = [f"ngram {k}={declared[k]}, found {f}" for k, f in enumerate(found, 1) if declared[k] != f]
    if wrong:
        raise ArpaError(f"{path}: the \\data\\ header disagrees with the sections: {'; '.join(wrong)}")


def read_counts(path: str | Path) -> dict[int, int]:
    """{order: count} as the \\data\\ header declares them (reads the header only)."""
    path = Path(path)
    with open_arpa(path) as f:
        return read_header(path, numbered_lines(path, f))


def arpa_words(path: str | Path) -> list[str]:
    """The words of the 1-gram section in file order (<s>, </s>, <unk> included)."""
    path = Path(path)
    words = []
    with open_arpa(path) as f:
        lines = numbered_lines(path, f)
        declared = read_header(path, lines)
        for n, fields, _ in ngram_lines(path, lines, declared):
            if n > 1:  # the 1-grams are read; the rest of the file is not needed
                break
            words.append(fields[1])
    if len(words) != declared[1]:
        raise ArpaError(f"{path}: \\data\\ says ngram 1={declared[1]}, found {len(words)}")
    return words


@dataclass
class Restriction:
    """What restrict_arpa kept of an ARPA file and what it left out."""

    declared: list[int]  # n-grams of each order, as the header says (order 1 first)
    kept: list[int]
    dropped_words: dict[str, float] = field(default_factory=dict)  # word -> its unigram log10 p
    renamed_unk: str | None = None  # the ARPA's spelling of <UNK>, when it was renamed

    @property
    def order(self) -> int:
        return len(self.declared)

    @property
    def dropped(self) -> list[int]:
        return [d - k for d, k in zip(self.declared, self.kept)]

    def dropped_mass(self) -> float:
        """Unigram probability of the words left out (what a sentence start loses at most)."""
        return sum(10.0 ** p for p in self.dropped_words.values())


def restrict_arpa(src: str | Path, dst: str | Path, vocabulary: Collection[str]) -> Restriction:
    """Writes dst (plain text): src's n-grams whose words are all in vocabulary (plus <s>,
    </s>), the header counting them; returns what was kept and left out. The kept lines
    go to a temporary file first (the header comes before them), so the step needs dst's
    size twice on disk for a moment. Raises ArpaError on a malformed or cut-short file."""
    src, dst = Path(src), Path(dst)
    allowed = set(vocabulary) | {BOS, EOS}
    body = dst.with_name(f".{dst.name}.body.tmp")
    try:
        with open_arpa(src) as f, open(body, "w", encoding="utf-8") as out:
            restriction = _copy_kept(src, numbered_lines(src, f), allowed, out)
        with atomic_path(dst) as tmp, open(tmp, "w", encoding="utf-8") as out:
            out.write("\n\\data\\\n")
            out.write("".join(f"ngram {n}={c}\n" for n, c in enumerate(restriction.kept, 1)))
            with open(body, encoding="utf-8") as kept_lines:
                shutil.copyfileobj(kept_lines, out, 1 << 20)
            out.write("\n\\end\\\n")
    finally:
        body.unlink(missing_ok=True)
    return restriction


def _copy_kept(src: Path, lines: Iterator[tuple[int, str]], allowed: set[str], out: TextIO) -> Restriction:
    declared = read_header(src, lines)
    order = max(declared)
    kept = [0] * order
    dropped_words: dict[str, float] = {}
    rename = {}  # the ARPA's <unk> -> the vocabulary's <UNK>
    if UNK in allowed:
        rename = {w: UNK for w in ("<unk>", "<Unk>") if w not in allowed}
    renamed = None
    out.write("\n\\1-grams:\n")
    for n, fields, line in ngram_lines(src, lines, declared):
        if fields is None:
            out.write(f"\n\\{n}-grams:\n")
            continue
        words = fields[1:n + 1]
        if rename and not rename.keys().isdisjoint(words):
            renamed = next(w for w in words if w in rename)
            fields[1:n + 1] = words = [rename.get(w, w) for w in words]
            line = "\t".join(fields) + "\n"
        if allowed.issuperset(words):
            out.write(line if line.endswith("\n") else line + "\n")
            kept[n - 1] += 1
        elif n == 1:
            dropped_words[words[0]] = float(fields[0])
    declared_list = [declared[k] for k in range(1, order + 1)]
    return Restriction(declared_list, kept, dropped_words, renamed)
