"""Pronunciations for words the lexicon lacks: espeak-ng's American English (en-us)
phonemes, mapped onto CMUdict's phone set (stress-free, as data/lang uses it).

    g2p = EspeakG2P()
    prons, rejected = g2p.convert(["SMOOTHIE", "B2B"])
    prons    -> {"SMOOTHIE": ("S", "M", "UW", "DH", "IY")}
    rejected -> {"B2B": "not-a-word: digits or symbols (only letters, ' and - are converted)"}

Chosen by measurement against g2p-en's CMUdict-trained model (utils/bench/bench_g2p.py,
BENCHMARKS.md "bench_g2p"): espeak-ng is a dependency already, needs no model download and
is independent of CMUdict, so CMUdict's words are a fair test set for it.

espeak-ng runs as a program (`espeak-ng -q -x`), once for all the words, one word a line:
its C library holds one global voice and option state per process, which the synth corpus
(local/synth/espeak.py) sets for itself. A word is converted when it is made of letters,
with apostrophes or hyphens inside or an apostrophe at either end (O'BRIEN, MOTHER-IN-LAW,
BORROWERS'); anything else (digits, symbols, <NOISE>) is rejected with its reason, as is a
word whose phonemes include one that the map below lacks.
"""

from __future__ import annotations

import re
import shutil
import subprocess

# espeak-ng's ascii phoneme names (en-us voice) -> CMUdict phones. The r-coloured vowels
# of en-us carry their R (A@ is "ɑːɹ"); 3 and 3: are ER; @L and n- are syllabic l and n.
# Checked by the confusion counts of espeak's output against CMUdict on 6,000 words that
# are not in the benchmark's held-out list.
PHONE_MAP: dict[str, tuple[str, ...]] = {
    # vowels
    "@": ("AH",), "@-": ("AH",), "V": ("AH",), "a#": ("AH",),
    "3": ("ER",), "3:": ("ER",),
    "I": ("IH",), "I2": ("IH",), "I#": ("IH",),
    "i": ("IY",), "i:": ("IY",),
    "E": ("EH",), "e": ("EH",),
    "a": ("AE",), "aa": ("AE",),
    "0": ("AA",), "A:": ("AA",), "A~": ("AA", "N"),
    "O": ("AO",), "O:": ("AO",), "O2": ("AO",),
    "oU": ("OW",), "eI": ("EY",), "aI": ("AY",), "aU": ("AW",), "OI": ("OY",),
    "u:": ("UW",), "U": ("UH",),
    "i@": ("IY", "AH"), "aI@": ("AY", "AH"), "u@": ("UW", "AH"),
    "A@": ("AA", "R"), "o@": ("AO", "R"), "O@": ("AO", "R"), "e@": ("EH", "R"),
    "i@3": ("IH", "R"), "U@": ("UH", "R"), "aI3": ("AY", "ER"), "aI@3": ("AY", "ER"),
    # syllabic consonants, linking r, glottal stop and flaps
    "@L": ("AH", "L"), "n-": ("AH", "N"), "m-": ("AH", "M"), "l-": ("L",), "r-": (),
    "?": ("T",), "t#": ("T",), "t2": ("T",), "d#": ("D",),
    # consonants
    "b": ("B",), "d": ("D",), "f": ("F",), "g": ("G",), "h": ("HH",), "j": ("Y",),
    "k": ("K",), "l": ("L",), "m": ("M",), "n": ("N",), "N": ("NG",), "p": ("P",),
    "r": ("R",), "s": ("S",), "t": ("T",), "v": ("V",), "w": ("W",), "W": ("W",),
    "z": ("Z",), "x": ("K",), "D": ("DH",), "T": ("TH",), "S": ("SH",), "Z": ("ZH",),
    "tS": ("CH",), "dZ": ("JH",),
}
# espeak's marks: stress (' ,), unstressed (=), syllable/palatal marks (;); _ is a pause
_MARKS = str.maketrans("", "", "',=;")
_WORD = re.compile(r"'?[^\W\d_]+(?:['-][^\W\d_]+)*'?")
_LANGUAGE_SWITCH = re.compile(r"\([\w-]+\)")  # "(fr)" around a word espeak speaks in French


class G2PError(RuntimeError):
    pass


def reject_reason(word: str) -> str | None:
    """Why a word is not converted, or None if it is made of letters (see the docstring)."""
    if _WORD.fullmatch(word):
        return None
    return "not-a-word: digits or symbols (only letters, ' and - are converted)"


def to_cmudict(tokens: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """CMUdict phones of espeak's phoneme names (marks allowed), and the names the map
    lacks. An R after a phone that ends in R (ER, or A@ r as in "starring") is dropped:
    CMUdict writes one."""
    phones: list[str] = []
    unknown: list[str] = []
    for token in tokens:
        name = token.translate(_MARKS)
        if not name or name.startswith("_"):
            continue
        mapped = PHONE_MAP.get(name)
        if mapped is None:
            unknown.append(name)
            continue
        for phone in mapped:
            if phone == "R" and phones and phones[-1] in ("R", "ER"):
                continue
            phones.append(phone)
    return tuple(phones), unknown


class EspeakG2P:
    """espeak-ng (a voice of it, en-us by default) mapped to CMUdict's phones."""

    name = "espeak"

    def __init__(self, voice: str = "en-us", program: str = "espeak-ng"):
        found = shutil.which(program)
        if found is None:
            raise G2PError(f"{program} not found: install the Debian package espeak-ng "
                           "(utils/setup_env.sh does), or turn G2P off (--g2p none)")
        self.voice, self.program = voice, found

    def version(self) -> str:
        out = subprocess.run([self.program, "--version"], capture_output=True, text=True).stdout
        found = re.search(r"text-to-speech:\s*(\S+)", out)
        return found.group(1) if found else out.strip()

    def phonemes(self, words: list[str]) -> list[list[str]]:
        """espeak's phoneme names per word (marks kept), one espeak run for all of them."""
        if not words:
            return []
        text = "".join(f"{w.lower()}\n" for w in words)
        done = subprocess.run([self.program, "-q", "-x", "--sep=|", "-v", self.voice],
                              input=text, capture_output=True, text=True)
        lines = done.stdout.splitlines()
        if done.returncode != 0 or len(lines) != len(words):
            raise G2PError(f"{self.program} -v {self.voice} failed (exit {done.returncode}, "
                           f"{len(lines)} lines for {len(words)} words): {done.stderr.strip()[:300]}")
        return [[t for t in _LANGUAGE_SWITCH.sub(" ", line).replace(" ", "|").split("|") if t]
                for line in lines]

    def convert(self, words: list[str]) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
        """(word -> CMUdict phones) for the words it converts, (word -> reason) for the rest."""
        rejected = {w: r for w in words if (r := reject_reason(w)) is not None}
        todo = [w for w in dict.fromkeys(words) if w not in rejected]
        prons: dict[str, tuple[str, ...]] = {}
        for word, tokens in zip(todo, self.phonemes(todo)):
            phones, unknown = to_cmudict(tokens)
            if unknown:
                rejected[word] = f"unmapped-espeak-phoneme: {' '.join(unknown)}"
            elif not phones:
                rejected[word] = "no-phonemes: espeak-ng said nothing for it"
            else:
                prons[word] = phones
        return prons, rejected


METHODS = {"espeak": EspeakG2P}
