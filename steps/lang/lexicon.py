"""The lang directory in Kaldi's formats, and what the rest of the toolkit asks of it.

    data/lang/phones.txt     <eps> 0, SIL 1, SPN 2, nonsilence phones, #0 #1 ... (disambig)
    data/lang/words.txt      <eps> 0, !SIL 1, <UNK> 2, words, #0, <s>, </s>
    data/lang/lexicon.txt    WORD P1 P2 ...   (one line per pronunciation)

`Lang.load("data/lang")` reads them into one object:

    lang = Lang.load("data/lang")
    lang.phone_id["AH"], lang.phones[5], lang.prons("HELLO") -> [("HH", "AH", "L", "OW"), ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from steps.core.atomic import write_text

SILENCE = "SIL"
SPOKEN_NOISE = "SPN"
UNK = "<UNK>"
EPS = "<eps>"


def read_symbol_table(path: str | Path) -> dict[str, int]:
    """`sym id` per line, Kaldi style."""
    table: dict[str, int] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected 'symbol id', got {line!r}")
        table[parts[0]] = int(parts[1])
    return table


def write_symbol_table(path: str | Path, symbols: list[str]) -> None:

    write_text(path, "".join(f"{s} {i}\n" for i, s in enumerate(symbols)))


def read_lexicon(path: str | Path) -> list[tuple[str, tuple[str, ...]]]:
    """(word, phones) per line, in file order; several lines per word for alternatives."""
    entries = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise ValueError(f"{path}:{number}: word without pronunciation: {line!r}")
        entries.append((parts[0], tuple(parts[1:])))
    return entries


def write_lexicon(path: str | Path, entries: list[tuple[str, tuple[str, ...]]]) -> None:

    write_text(path, "".join(f"{w} {' '.join(p)}\n" for w, p in entries))


@dataclass
class Lang:
    """Phones, words and pronunciations of a lang directory."""

    phones: list[str]  # index = phone id; includes <eps> and disambiguation symbols
    words: list[str]  # index = word id
    lexicon: dict[str, list[tuple[str, ...]]]  # word -> pronunciations, file order
    silence_phones: tuple[str, ...] = (SILENCE, SPOKEN_NOISE)
    optional_silence: str = SILENCE
    unk: str = UNK
    phone_id: dict[str, int] = field(init=False)
    word_id: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.phone_id = {p: i for i, p in enumerate(self.phones) if p}
        self.word_id = {w: i for i, w in enumerate(self.words) if w}

    @classmethod
    def load(cls, lang_dir: str | Path) -> "Lang":
        lang_dir = Path(lang_dir)
        phones = _dense(read_symbol_table(lang_dir / "phones.txt"), lang_dir / "phones.txt")
        words = _dense(read_symbol_table(lang_dir / "words.txt"), lang_dir / "words.txt")
        lexicon: dict[str, list[tuple[str, ...]]] = {}
        for word, pron in read_lexicon(lang_dir / "lexicon.txt"):
            lexicon.setdefault(word, []).append(pron)
        silence_file = lang_dir / "silence_phones.txt"
        silence = (
            tuple(silence_file.read_text().split())
            if silence_file.exists()
            else (SILENCE, SPOKEN_NOISE)
        )
        return cls(phones=phones, words=words, lexicon=lexicon, silence_phones=silence)

    @property
    def real_phones(self) -> list[str]:
        """Phones that have HMMs: everything but <eps> and #N, in id order."""
        return [p for p in self.phones[1:] if not p.startswith("#")]

    @property
    def real_phone_ids(self) -> list[int]:
        return [self.phone_id[p] for p in self.real_phones]

    @property
    def disambig_phone_ids(self) -> list[int]:
        return [i for i, p in enumerate(self.phones) if p.startswith("#")]

    @property
    def silence_phone_ids(self) -> set[int]:
        return {self.phone_id[p] for p in self.silence_phones if p in self.phone_id}

    def prons(self, word: str) -> list[tuple[str, ...]]:
        """Pronunciations of word; an out-of-vocabulary word gets those of <UNK>."""
        return self.lexicon.get(word) or self.lexicon[self.unk]

    def oov(self, words: list[str]) -> list[str]:
        return [w for w in words if w not in self.lexicon]


def _dense(table: dict[str, int], path: Path) -> list[str]:
    """A symbol table as a list indexed by id; ids must be 0..n-1 without gaps."""
    symbols = [""] * len(table)
    for symbol, index in table.items():
        if not 0 <= index < len(table) or symbols[index]:
            raise ValueError(f"{path}: ids must be 0..{len(table) - 1} without repeats")
        symbols[index] = symbol
    return symbols
