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
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Sequence

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
