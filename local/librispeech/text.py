"""LibriSpeech's part names, how the recipe maps them to its own, and text normalisation.

Shared by local/librispeech/prepare.py (transcripts) and lm_text.py (the LM text).

Normalisation (the toolkit's conventions, which are LibriSpeech's own style): accents
folded (NFKD, combining marks dropped), UPPERCASE, every character other than A-Z and
the apostrophe becomes a space, tokens made only of apostrophes are dropped, single
spaces. LibriSpeech's transcripts and librispeech-lm-norm.txt pass through unchanged
(words such as DON'T, 'TIS and FATHERS' keep their apostrophes).
"""

from __future__ import annotations

import re
import unicodedata

CORPUS = "librispeech"
TRAIN_PARTS = ("train-clean-100", "train-clean-360", "train-other-500")
EVAL_PARTS = {"dev-clean": "dev", "test-clean": "test", "dev-other": "dev_other",
              "test-other": "test_other"}
ALL_PARTS = TRAIN_PARTS + tuple(EVAL_PARTS)

_NOT_WORD = re.compile(r"[^A-Z' ]+")


def normalise(text: str) -> str:
    """A transcript or LM sentence in the toolkit's conventions (see the module docstring)."""
    if text.isascii():
        folded = text.upper()
    else:
        decomposed = unicodedata.normalize("NFKD", text)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
    return " ".join(w for w in _NOT_WORD.sub(" ", folded).split() if w.strip("'"))


def recipe_parts(train_parts: list[str], extra_parts: list[str]) -> dict[str, list[str]]:
    """The recipe's parts and the LibriSpeech parts each is made of, in order: train (the
    training parts combined), dev (dev-clean), test (test-clean), then the extra
    evaluation parts (dev-other -> dev_other, test-other -> test_other)."""
    bad = [p for p in train_parts if p not in TRAIN_PARTS]
    if bad or not train_parts:
        raise ValueError(f"training parts must be among {', '.join(TRAIN_PARTS)} (got {train_parts})")
    bad = [p for p in extra_parts if p not in ("dev-other", "test-other")]
    if bad:
        raise ValueError(f"extra parts must be among dev-other, test-other (got {bad})")
    parts = {"train": list(dict.fromkeys(train_parts)), "dev": ["dev-clean"], "test": ["test-clean"]}
    for part in dict.fromkeys(extra_parts):
        parts[EVAL_PARTS[part]] = [part]
    return parts
