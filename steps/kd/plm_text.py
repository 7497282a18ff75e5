"""Transcripts as a pre-trained LM expects them, and its tokenizer pieces mapped back to words.

The corpora here write words in upper case with ASCII apostrophes (CMUdict: DON'T). A
pre-trained model saw ordinary text, so each transcript is normalised first:

- case: `lower` when the tokenizer lowercases its input itself or its vocabulary has
  almost no upper-case pieces (under 5% of the pieces with a lower-case letter: uncased
  BERT-style models); otherwise `sentence`: all lower case except the first letter of the
  transcript and the pronoun I (I, I'M, I'LL, ...), as in running text. Proper names stay
  lower case (the lexicon does not mark them). `keep` and `upper` can be asked for.
- apostrophes: ASCII ' when the tokenizer knows it (not mapped to its unknown token),
  else the typographic ’ when it knows that, else removed.
Normalisation only changes letters in place (or drops apostrophes), so a normalised word
still lines up with its aligned word one to one.

Pieces to words: the normalised words are joined with single spaces and tokenised once
(a fast tokenizer, for its character offsets); each piece belongs to the word its
characters overlap (a piece made of the space alone goes to the word after it) and counts
those characters as its letters, which share the word's frames as sentencepiece pieces do
(steps.kd.alignment_tokens.piece_boundaries).

Words from the pieces alone (word_marks, for a masked teacher's whole-word masking, whose
input is piece ids): the tokenizer's own marks say where words begin. WordPiece (BERT): a
piece without the `##` continuation prefix begins a word, so punctuation the tokenizer
splits off is a word of its own (DON'T -> don ' t: three words, as in BERT's whole-word
masking); byte-level BPE (GPT-2, RoBERTa) and sentencepiece (Metaspace): a piece that
begins with the space mark (Ġ, ▁) does, so words are the space-separated ones; a BPE with an
end-of-word suffix (</w>): a word ends with the piece that carries it. A tokenizer with
none of these marks makes every piece a word.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

CASES = ("auto", "lower", "sentence", "keep", "upper")
PRONOUN_I = {"I", "I'M", "I'LL", "I'D", "I'VE"}


@dataclass(frozen=True)
class Normalisation:
    case: str  # lower | sentence | keep | upper
    apostrophe: str  # "'" | "’" | "" (removed)

    def word(self, word: str, first: bool) -> str:
        if self.case == "lower":
            out = word.lower()
        elif self.case == "upper":
            out = word.upper()
        elif self.case == "sentence":
            if word.upper() in PRONOUN_I:
                out = "I" + word[1:].lower()
            else:
                out = word.lower()
                if first:
                    out = out[:1].upper() + out[1:]
        else:
            out = word
        return out.replace("'", self.apostrophe)

    def sentence(self, words: Sequence[str]) -> list[str]:
        return [self.word(w, i == 0) for i, w in enumerate(words)]

    def describe(self) -> str:
        apostrophe = {"'": "ASCII ' kept", "\u2019": "ASCII ' -> \u2019 (U+2019)",
                      "": "apostrophes removed"}[self.apostrophe]
        case = {"lower": "all lower case",
                "sentence": "lower case, first letter of the transcript and the pronoun I upper",
                "keep": "as written", "upper": "all upper case"}[self.case]
        return f"case: {self.case} ({case})\napostrophe: {apostrophe}\n"

    def to_dict(self) -> dict:
        return {"case": self.case, "apostrophe": self.apostrophe}


def _knows(tokenizer, text: str) -> bool:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return bool(ids) and (tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids)


def lowercases_input(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None)
    if normalizer is not None and normalizer.normalize_str("AB") == "ab":
        return True
    return bool(getattr(tokenizer, "do_lower_case", False))


def choose_normalisation(tokenizer, case: str = "auto") -> Normalisation:
    """The normalisation for this tokenizer (see the module docstring)."""
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if case == "auto":
        if lowercases_input(tokenizer):
            case = "lower"
        else:
            pieces = tokenizer.get_vocab().keys()
            upper = sum(any(c.isupper() for c in p) for p in pieces)
            lower = sum(any(c.islower() for c in p) for p in pieces)
            case = "lower" if upper < 0.05 * max(lower, 1) else "sentence"
    if _knows(tokenizer, "'"):
        apostrophe = "'"
    elif _knows(tokenizer, "\u2019"):
        apostrophe = "\u2019"
    else:
        apostrophe = ""
    return Normalisation(case, apostrophe)


@dataclass
class WordPieces:
    """One transcript in the model's pieces."""

    ids: list[int]  # the pieces of the whole transcript, in order
    word: list[int]  # per piece: index of its word
    letters: list[int]  # per piece: characters of its word it covers
    empty_words: list[int] = field(default_factory=list)  # words that got no piece
    unknown: int = 0  # pieces that are the tokenizer's unknown token

    def of_word(self, index: int) -> list[int]:
        """Positions (into ids) of word `index`'s pieces."""
        return [j for j, w in enumerate(self.word) if w == index]


def encode_words(tokenizer, normalisation: Normalisation, words: Sequence[str]) -> WordPieces:
    """The transcript `words` (as the lexicon writes them) in the model's pieces."""
    texts = normalisation.sentence(words)
    starts, position = [], 0
    for text in texts:
        starts.append(position)
        position += len(text) + 1
    ends = [s + len(t) for s, t in zip(starts, texts)]
    if not texts:
        return WordPieces([], [], [])
    encoded = tokenizer(" ".join(texts), add_special_tokens=False, return_offsets_mapping=True)
    ids, word_of, letters = [], [], []
    for piece, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"]):
        index = max(0, bisect.bisect_right(starts, start) - 1)
        if start >= ends[index]:  # starts in the space after a word: the next word's
            index = min(index + 1, len(texts) - 1)
        overlap = max(0, min(end, ends[index]) - max(start, starts[index]))
        ids.append(int(piece))
        word_of.append(index)
        letters.append(overlap)
    seen = set(word_of)
    unk = tokenizer.unk_token_id
    return WordPieces(ids, word_of, letters, [i for i in range(len(texts)) if i not in seen],
                      sum(1 for i in ids if unk is not None and i == unk))


@dataclass(frozen=True)
class WordMarks:
    """Which pieces begin or end a word (see the module docstring)."""

    rule: str  # how words are told apart, in words
    opens: np.ndarray  # bool [pieces]: the piece begins a word
    closes: np.ndarray  # bool [pieces]: a word ends with the piece

    def words(self, ids: Sequence[int]) -> list[int]:
        """Per piece: the index of its word."""
        out, word = [], -1
        for j, piece in enumerate(ids):
            if j == 0 or self.opens[piece] or self.closes[ids[j - 1]]:
                word += 1
            out.append(word)
        return out


def _find(spec, key: str, value: str) -> list[dict]:
    """The parts of a tokenizer.json component (Sequences included) whose `key` is `value`."""
    if isinstance(spec, list):
        return [found for item in spec for found in _find(item, key, value)]
    if not isinstance(spec, dict):
        return []
    here = [spec] if spec.get(key) == value else []
    return here + [found for item in spec.values() if isinstance(item, (dict, list))
                   for found in _find(item, key, value)]


def space_mark(spec: dict) -> str | None:
    """The character a tokenizer writes for the space before a word, if any."""
    if _find(spec.get("pre_tokenizer"), "type", "ByteLevel"):
        return "\u0120"  # byte-level BPE writes the space byte as Ġ
    for part in _find(spec.get("pre_tokenizer"), "type", "Metaspace"):
        return part.get("replacement") or "\u2581"
    for part in _find(spec.get("normalizer"), "type", "Replace"):  # sentencepiece BPE (Llama)
        if part.get("pattern") == {"String": " "} and part.get("content"):
            return part["content"]
    return None


def word_marks(tokenizer) -> WordMarks:
    """Word boundaries of a fast tokenizer's pieces (see the module docstring)."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model") or {}
    pieces = [p or "" for p in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    prefix, suffix = model.get("continuing_subword_prefix"), model.get("end_of_word_suffix")
    mark = space_mark(spec)
    opens, closes = np.zeros(len(pieces), dtype=bool), np.zeros(len(pieces), dtype=bool)
    if prefix:
        rule = f"a piece without the prefix {prefix!r} begins a word"
        opens[:] = [not p.startswith(prefix) for p in pieces]
    elif suffix:
        rule = f"a piece ending in {suffix!r} ends a word"
        closes[:] = [p.endswith(suffix) for p in pieces]
    elif mark:
        rule = f"a piece beginning with the space mark {mark!r} (U+{ord(mark):04X}) begins a word"
        opens[:] = [p.startswith(mark) for p in pieces]
    else:
        rule = "every piece is a word (the tokenizer marks no word boundaries)"
        opens[:] = True
    special = [i for i in tokenizer.all_special_ids if i < len(pieces)]  # never inside a word
    opens[special] = closes[special] = True
    return WordMarks(rule, opens, closes)
