"""The lexicon transducer L of the decoding graph (phones -> words), Kaldi style.

Same shape as Kaldi's `make_lexicon_fst.py --sil-prob P` on the disambiguated lexicon:

    start --eps/(1-P)--> loop          start --eps/P--> sil
    sil --SIL--> sil' --#sil--> loop    (#sil: Kaldi's optional-silence disambig symbol)
    loop --p1:WORD p2 ... pn #k--> loop (1-P)  or  --> sil (P)     for every pronunciation
    loop --#0:#0--> loop                (G's back-off symbol passes through)
    loop --$:eps--> end (final)

so optional silence may come before the first word, between words and after the last,
with probability P each time. The word label sits on the first phone. `$` is the
subsequential symbol: it marks the end of the phone string for the context transducer,
which must flush the last phone (its right context is the utterance edge). All
pronunciations of a word are alternatives without pronunciation costs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from steps.graph.fst_arrays import ArcFst
from steps.lang.lexicon import Lang, read_lexicon
from steps.lang.prepare import add_disambig_symbols

log = logging.getLogger(__name__)


@dataclass
class PhoneSymbols:
    """Phone-level symbol ids of the graph build (input side of L)."""

    phone_ids: list[int]  # real phones (with HMMs), phones.txt ids
    silence: int  # the optional silence phone (SIL)
    disambig: dict[str, int]  # "#k" -> id, including #0 and the silence disambig symbol
    sil_disambig: str  # which "#k" marks optional silence in L
    subsequential: int  # `$`, the end-of-string symbol of the context transducer

    @property
    def disambig_ids(self) -> list[int]:
        return sorted(self.disambig.values())


def disambiguated_lexicon(lang: Lang, lang_dir: str | Path) -> list[tuple[str, tuple[str, ...]]]:
    """lexicon_disambig.txt of the lang dir (written by steps.prepare_lang); made here with
    Kaldi's rule if the lang dir lacks it."""
    path = Path(lang_dir) / "lexicon_disambig.txt"
    if path.is_file():
        return read_lexicon(path)

    entries = [(w, p) for w, prons in lang.lexicon.items() for p in prons]
    log.warning("%s missing; adding disambiguation symbols here", path)
    return add_disambig_symbols(entries)[0]


def phone_symbols(lang: Lang, entries: list[tuple[str, tuple[str, ...]]]) -> PhoneSymbols:
    """Ids for the real phones, #0 .. #k of the lexicon, the optional-silence disambig
    symbol (phones.txt's last #k when the lexicon leaves it free, as prepare_lang writes it)
    and the subsequential symbol (one past the phone table)."""
    used = {p for _, pron in entries for p in pron if p.startswith("#")} | {"#0"}
    disambig = {}
    next_free = len(lang.phones) + 1  # len(phones) itself is `$`
    for symbol in sorted(used, key=lambda s: int(s[1:])):
        if symbol in lang.phone_id:
            disambig[symbol] = lang.phone_id[symbol]
        else:
            log.warning("%s is not in phones.txt; using internal id %d", symbol, next_free)
            disambig[symbol] = next_free
            next_free += 1
    in_table = [p for p in lang.phones if p.startswith("#")]
    spare = [p for p in in_table if p not in used]
    if spare:
        sil_disambig = max(spare, key=lambda s: int(s[1:]))
        disambig[sil_disambig] = lang.phone_id[sil_disambig]
    else:
        sil_disambig = f"#{max(int(s[1:]) for s in disambig) + 1}"
        disambig[sil_disambig] = next_free
    return PhoneSymbols(phone_ids=lang.real_phone_ids, silence=lang.phone_id[lang.optional_silence],
                        disambig=disambig, sil_disambig=sil_disambig,
                        subsequential=len(lang.phones))


def lexicon_fst(lang: Lang, entries: list[tuple[str, tuple[str, ...]]], symbols: PhoneSymbols,
                sil_prob: float = 0.5) -> ArcFst:
    """L with optional silence (see the module docstring); labels are phones.txt /
    words.txt ids. Words of `entries` missing from words.txt are an error."""
    if not 0.0 < sil_prob < 1.0:
        raise ValueError(f"sil_prob must be in (0, 1), got {sil_prob}")
    sil_cost, nosil_cost = -math.log(sil_prob), -math.log(1.0 - sil_prob)
    start, loop, sil, sil_pending, end = 0, 1, 2, 3, 4
    num_states = 5
    word0 = lang.word_id["#0"]
    arcs = [
        (start, loop, 0, 0, nosil_cost),
        (start, sil, 0, 0, sil_cost),
        (sil, sil_pending, symbols.silence, 0, 0.0),
        (sil_pending, loop, symbols.disambig[symbols.sil_disambig], 0, 0.0),
        (loop, loop, symbols.disambig["#0"], word0, 0.0),
        (loop, end, symbols.subsequential, 0, 0.0),
    ]
    for word, pron in entries:
        if word not in lang.word_id:
            raise ValueError(f"lexicon word {word!r} is not in words.txt")
        labels = [symbols.disambig[p] if p.startswith("#") else lang.phone_id[p] for p in pron]
        state = loop
        for i, label in enumerate(labels[:-1]):
            arcs.append((state, num_states, label, lang.word_id[word] if i == 0 else 0, 0.0))
            state = num_states
            num_states += 1
        out = lang.word_id[word] if len(labels) == 1 else 0
        arcs.append((state, loop, labels[-1], out, nosil_cost))
        arcs.append((state, sil, labels[-1], out, sil_cost))
    return ArcFst.from_arcs(num_states, start, arcs, {end: 0.0})
