"""The unit levels' token vocabularies and the LM text turned into token corpora (senones through the tree, phones through the lexicon, subwords through sentencepiece)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import sentencepiece as spm

from steps.core.log import progress
from steps.hmm import units
from steps.lm.corpus import CorpusWriter, parse_lines
from steps.lang.lexicon import SILENCE, Lang, read_symbol_table

LEVELS = ("senone", "phone", "subword")


Converter = Callable[[list[str]], list[int]]


def phone_units(lang: Lang) -> list[str]:
    """The phone level's units: real phones except SIL, in phones.txt order."""
    return [p for p in lang.real_phones if p != SILENCE]


def senone_units(num_senones: int) -> list[str]:
    return [str(i) for i in range(num_senones)]


def subword_units(sp) -> list[str]:
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def phone_unit_map(lang: Lang) -> dict[int, int]:
    """phones.txt id -> phone unit id."""
    return {lang.phone_id[p]: i for i, p in enumerate(phone_units(lang))}


def read_tokens(path: str | Path) -> list[str]:
    """tokens.txt -> symbols indexed by unit id."""

    table = read_symbol_table(path)
    symbols = [""] * len(table)
    for symbol, index in table.items():
        symbols[index] = symbol
    return symbols


def read_pron_counts(path: str | Path) -> dict[str, dict[tuple[str, ...], float]]:
    """Pronunciation counts from the training alignments. Lines are either
    `COUNT WORD P1 P2 ...` (Kaldi's get_prons.sh) or `WORD COUNT P1 P2 ...`."""
    counts: dict[str, dict[tuple[str, ...], float]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise ValueError(f"{path}:{number}: expected 'COUNT WORD PHONES...', got {line!r}")
        if _is_number(parts[0]):
            count, word = float(parts[0]), parts[1]
        elif _is_number(parts[1]):
            word, count = parts[0], float(parts[1])
        else:
            raise ValueError(f"{path}:{number}: no count in {line!r}")
        pron = tuple(parts[2:])
        counts.setdefault(word, {})
        counts[word][pron] = counts[word].get(pron, 0.0) + count
    return counts


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def choose_prons(lang: Lang, pron_counts: dict[str, dict[tuple[str, ...], float]] | None
                 ) -> dict[str, tuple[str, ...]]:
    """word -> pronunciation to use: the most frequent in pron_counts among the lexicon's
    pronunciations (ties: lexicon order), else the lexicon's first."""
    choice = {}
    for word, prons in lang.lexicon.items():
        best = prons[0]
        seen = (pron_counts or {}).get(word, {})
        if seen:
            best = max(prons, key=lambda p: (seen.get(p, 0.0), -prons.index(p)))
        choice[word] = best
    return choice


def phone_converter(lang: Lang, pron_choice: dict[str, tuple[str, ...]] | None,
                    words_to_phones=None) -> Converter:
    """words -> phone unit ids. words_to_phones defaults to steps.hmm.units.words_to_phones."""
    words_to_phones = words_to_phones or units.words_to_phones
    to_unit = phone_unit_map(lang)

    def convert(words: list[str]) -> list[int]:
        return [to_unit[p] for p in words_to_phones(words, lang, pron_choice) if p in to_unit]

    return convert


def senone_converter(lang: Lang, pron_choice: dict[str, tuple[str, ...]] | None, topology, tree,
                     words_to_phones=None, phones_to_senones=None) -> Converter:
    """words -> senone ids (steps.hmm.units by default)."""
    if words_to_phones is None or phones_to_senones is None:
        words_to_phones = words_to_phones or units.words_to_phones
        phones_to_senones = phones_to_senones or units.phones_to_senones

    def convert(words: list[str]) -> list[int]:
        return list(phones_to_senones(words_to_phones(words, lang, pron_choice), topology, tree))

    return convert


def subword_converter(sp) -> Converter:
    def convert(words: list[str]) -> list[int]:
        return list(sp.encode(" ".join(words)))

    return convert


def load_sentencepiece(path: str | Path):

    sp = spm.SentencePieceProcessor()
    sp.load(str(path))
    return sp


def is_valid_sentence(text: str, fraction: float) -> bool:
    """Deterministic hold-out by the MD5 of the sentence text."""
    digest = int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16)
    return digest < fraction * 0x100000000


def make_corpus(lines: Iterable[str], convert: Converter, valid_fraction: float,
                train: CorpusWriter, valid: CorpusWriter) -> list[tuple[int, str]]:
    """Writes each text line's units to train or valid (steps.lm.corpus.CorpusWriter, a
    sentence at a time: the text need not fit in memory); returns the skipped lines (line
    number, reason)."""
    skipped = []
    for number, line in enumerate(progress(lines, desc="sentences", mininterval=5), 1):
        words = line.split()
        if not words:
            skipped.append((number, "empty line"))
            continue
        try:
            units = convert(words)
        except Exception as e:  # a bad line is reported, never the end of the run
            skipped.append((number, f"conversion failed: {type(e).__name__}: {e}"))
            continue
        if not units:
            skipped.append((number, "no units"))
            continue
        (valid if is_valid_sentence(" ".join(words), valid_fraction) else train).add(units)
    return skipped


def read_corpus(path: str | Path) -> list[np.ndarray]:
    """train.txt / valid.txt -> sentences of unit ids (int64 arrays; empty lines skipped), all
    in memory (steps.lm.corpus.TokenCorpus reads a large one from disk)."""
    flat, lengths = parse_lines(Path(path), Path(path).read_text().splitlines())
    return np.split(flat, np.cumsum(lengths)[:-1]) if lengths else []
