"""Turn the LM text into one unit level's token corpus for its teacher LM.

Reads data/text/lm_text.txt (one sentence per line, uppercase words) and writes to --out-dir:

    tokens.txt        the level's unit vocabulary, `sym id`, ids from 0 (the conventions'
                      "Unit vocabularies": senone "0".."S-1"; phone: the real phones except
                      SIL, SPN included, phones.txt order; subword: the sentencepiece pieces)
    train.txt         one sentence per line as space-separated unit ids
    valid.txt         the held-out sentences, same format
    tokens_info.json  counts, the pronunciation source, skipped lines
    skipped.txt       `line_number<TAB>reason` for every line not turned into tokens
    .tokens/.done     written last, with the fingerprint of the inputs (text, lang, tree,
                      topology, sentencepiece model, pronunciation counts) and options: a
                      second run with the same ones is skipped (--force redoes it), so that
                      the teacher trained on these files is not retrained for nothing

Levels:
- phone: words -> phones with steps.units.words_to_phones. Pronunciation of a word with
  several: the one seen most often in the training alignments when --pron-counts is given
  (ties and unseen words: the lexicon's first), else the lexicon's first. OOV words become
  <UNK>'s pronunciation (SPN).
- senone: the same phones, then steps.units.phones_to_senones (contexts across word
  boundaries, as in the alignment, consecutive repeats collapsed).
- subword: sentencepiece ids of the sentence (--bpe-model).
No word-boundary tokens are added: the acoustic model does not need them for senones or
phones, and sentencepiece pieces already mark word starts (the '▁' prefix).

Held-out split: a sentence goes to valid.txt when the MD5 of its text falls in the first
--valid-fraction of the hash range (2% by default): deterministic, the same for all three
levels, and repeated sentences never straddle train and valid.

    python -m steps.lm_tokens --level senone --lm-text data/text/lm_text.txt \\
        --lang-dir data/lang --tree exp/tree \\
        --pron-counts exp/tri_ali/pron_counts_train.txt --out-dir exp/lm_senone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from steps.core import atomic
from steps.core.atomic import atomic_path, write_text
from steps.lang.lexicon import SILENCE, Lang, write_symbol_table
from steps.core.log import progress

log = logging.getLogger(__name__)

LEVELS = ("senone", "phone", "subword")
Converter = Callable[[list[str]], list[int]]


# ------------------------------------------------------------------ vocabularies


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
    from steps.lang.lexicon import read_symbol_table

    table = read_symbol_table(path)
    symbols = [""] * len(table)
    for symbol, index in table.items():
        symbols[index] = symbol
    return symbols


# ------------------------------------------------------------------ pronunciations


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


# ------------------------------------------------------------------ converters


def phone_converter(lang: Lang, pron_choice: dict[str, tuple[str, ...]] | None,
                    words_to_phones=None) -> Converter:
    """words -> phone unit ids. words_to_phones defaults to steps.units.words_to_phones."""
    if words_to_phones is None:
        from steps.hmm.units import words_to_phones
    to_unit = phone_unit_map(lang)

    def convert(words: list[str]) -> list[int]:
        return [to_unit[p] for p in words_to_phones(words, lang, pron_choice) if p in to_unit]

    return convert


def senone_converter(lang: Lang, pron_choice: dict[str, tuple[str, ...]] | None, topology, tree,
                     words_to_phones=None, phones_to_senones=None) -> Converter:
    """words -> senone ids (steps.hmm.units by default)."""
    if words_to_phones is None or phones_to_senones is None:
        from steps.hmm import units
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
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.load(str(path))
    return sp


# ------------------------------------------------------------------ corpus


def is_valid_sentence(text: str, fraction: float) -> bool:
    """Deterministic hold-out by the MD5 of the sentence text."""
    digest = int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16)
    return digest < fraction * 0x100000000


def make_corpus(lines: Iterable[str], convert: Converter, valid_fraction: float
                ) -> tuple[list[list[int]], list[list[int]], list[tuple[int, str]]]:
    """(train, valid, skipped (line number, reason)) from the text lines."""
    train, valid, skipped = [], [], []
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
        (valid if is_valid_sentence(" ".join(words), valid_fraction) else train).append(units)
    return train, valid, skipped


def read_corpus(path: str | Path) -> list[np.ndarray]:
    """train.txt / valid.txt -> sentences of unit ids (int64 arrays; empty lines skipped)."""
    text = Path(path).read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    lengths = [line.count(" ") + 1 for line in lines]  # fast path: single spaces, as written
    flat = np.fromstring(text, dtype=np.int64, sep=" ")
    if len(flat) != sum(lengths):
        lengths = [len(line.split()) for line in lines]
        flat = np.array(" ".join(lines).split(), dtype=np.int64)
    return np.split(flat, np.cumsum(lengths)[:-1])


def write_corpus(path: str | Path, sentences: list[list[int]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            for s in sentences:
                f.write(" ".join(map(str, s)) + "\n")


def main(argv: list[str] | None = None) -> int:
    from steps.core.log import setup_logging

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--level", choices=LEVELS, required=True)
    parser.add_argument("--lm-text", required=True)
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--tree", help="exp/tree (senone level)")
    parser.add_argument("--topology", help="default: topology.json next to the tree (senone level)")
    parser.add_argument("--bpe-model", help="data/lang_bpe_N/bpe.model (subword level)")
    parser.add_argument("--pron-counts", help="pronunciation counts of the training alignments")
    parser.add_argument("--valid-fraction", type=float, default=0.02)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--force", action="store_true", help="redo even if done with the same inputs")
    args = parser.parse_args(argv)
    if args.tree and args.topology is None:
        tree_file = Path(args.tree) / "tree.txt" if Path(args.tree).is_dir() else Path(args.tree)
        args.topology = str(tree_file.parent / "topology.json")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(log_file=out / "log" / "lm_tokens.log")
    # Only the inputs this level reads.
    uses_prons = args.level in ("phone", "senone")
    inputs = [args.lm_text, args.lang_dir,
              args.tree if args.level == "senone" else None,
              args.topology if args.level == "senone" else None,
              args.bpe_model if args.level == "subword" else None,
              args.pron_counts if uses_prons else None]
    fingerprint = atomic.inputs_fingerprint(inputs, level=args.level, valid_fraction=args.valid_fraction)
    marker_dir = out / ".tokens"
    if atomic.up_to_date(marker_dir, fingerprint, args.force,
                         [out / n for n in ("tokens.txt", "train.txt", "valid.txt")],
                         what=f"{out} {args.level} tokens"):
        return 0
    atomic.clear_done(marker_dir)
    # No teacher may be trained on a mixture of old and new files.
    atomic.remove(*[out / n for n in ("tokens.txt", "train.txt", "valid.txt")])

    lang = Lang.load(args.lang_dir)
    pron_source = "lexicon first"
    pron_counts = None
    if args.pron_counts and args.level in ("phone", "senone"):
        pron_counts = read_pron_counts(args.pron_counts)
        pron_source = f"most frequent in {args.pron_counts}"
    pron_choice = choose_prons(lang, pron_counts)

    if args.level == "phone":
        units = phone_units(lang)
        convert = phone_converter(lang, pron_choice)
    elif args.level == "senone":
        if not (args.tree and args.topology):
            parser.error("--level senone needs --tree and --topology")
        from steps.hmm.topology import Topology
        from steps.tree.decision_tree import Tree

        tree = Tree.load(args.tree)
        topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
        units = senone_units(tree.num_senones)
        convert = senone_converter(lang, pron_choice, topology, tree)
    else:
        if not args.bpe_model:
            parser.error("--level subword needs --bpe-model")
        sp = load_sentencepiece(args.bpe_model)
        units = subword_units(sp)
        convert = subword_converter(sp)
        pron_source = "n/a"

    lines = Path(args.lm_text).read_text().splitlines()
    oov = sum(1 for line in lines for w in line.split() if w not in lang.lexicon)
    train, valid, skipped = make_corpus(lines, convert, args.valid_fraction)
    if not train or not valid:
        log.error("%s: %d train and %d valid sentences; both must be non-empty",
                  args.lm_text, len(train), len(valid))
        return 1

    write_symbol_table(out / "tokens.txt", units)
    write_corpus(out / "train.txt", train)
    write_corpus(out / "valid.txt", valid)
    write_text(out / "skipped.txt", "".join(f"{n}\t{r}\n" for n, r in skipped))
    info = {
        "level": args.level, "num_units": len(units), "lm_text": args.lm_text,
        "train_sentences": len(train), "valid_sentences": len(valid),
        "train_tokens": sum(map(len, train)), "valid_tokens": sum(map(len, valid)),
        "mean_tokens_per_sentence": round(sum(map(len, train)) / len(train), 2),
        "max_tokens_per_sentence": max(map(len, train + valid)),
        "skipped_lines": len(skipped), "oov_words": oov, "pronunciations": pron_source,
        "valid_fraction": args.valid_fraction,
    }
    write_text(out / "tokens_info.json", json.dumps(info, indent=2) + "\n")
    atomic.mark_done(marker_dir, {"train_sentences": len(train), "valid_sentences": len(valid)}, fingerprint)
    log.info("%s level: %d units; %d train / %d valid sentences, %d / %d tokens "
             "(mean %.1f per sentence, max %d); %d lines skipped (see %s); %d OOV word tokens; "
             "pronunciations: %s", args.level, len(units), len(train), len(valid),
             info["train_tokens"], info["valid_tokens"], info["mean_tokens_per_sentence"],
             info["max_tokens_per_sentence"], len(skipped), out / "skipped.txt", oov, pron_source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
