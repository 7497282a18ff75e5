"""Build the word n-gram LM for decoding and its grammar FST G (Kaldi's format_lm).

Reads the LM text (one sentence per line, words as in the lexicon) and data/lang; writes
to --out-dir, a copy of data/lang plus the LM:

    lm_<order>gram.arpa   interpolated modified Kneser-Ney, closed vocabulary = words.txt
                          minus <eps>, !SIL, #N, <s>, </s> (steps.lm.ngram says how)
    G.fst                 the ARPA as an FST, by kaldilm's arpa2fst (Kaldi's), with
                          --disambig-symbol=#0 and data/lang/words.txt as the symbol table:
                          input = output labels = word ids; back-off arcs read #0;
                          <s>/</s> become epsilon (start state / final weights); tropical,
                          costs -ln p. Binary OpenFst (kaldifst.StdVectorFst.read)
    G.fst.txt             the same in OpenFst text format (start state first), for
                          k2.Fsa.from_openfst(text, acceptor=False)
    words.txt phones.txt lexicon.txt ...   copied from --lang-dir (everything in it)
    log/make_lm.log       n-gram counts, discounts, OOV words, held-out perplexity
    .done                 written last, with the inputs' fingerprint and the figures

A finished directory is skipped unless an input (text, lang dir, options) changed or
--force is given. Blank lines of the text are skipped (and counted); words not in words.txt
are counted as <UNK> (and listed in the log).

    python -m steps.make_lm --text data/text/lm_text.txt --lang-dir data/lang --order 3 \\
        --out-dir data/lang_test [--min-count 3gram:2] [--prune 1e-8] \\
        [--valid-text data/text/lm_valid.txt] [--force]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import kaldilm

from steps.core import atomic
from steps.core.atomic import atomic_path, write_text
from steps.core.log import setup_logging
from steps.lang.lexicon import read_symbol_table
from steps.lm.kneser_ney import estimate_kneser_ney
from steps.lm.ngram import BOS, EOS, lm_vocabulary, parse_min_counts, perplexity

log = logging.getLogger(__name__)

DISAMBIG = "#0"


def read_sentences(path: str | Path) -> tuple[list[str], int]:
    """Non-blank lines of a text file, whitespace-normalised, and the number of blank ones."""
    sentences, blank = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if words:
                sentences.append(" ".join(words))
            else:
                blank += 1
    return sentences, blank


def arpa_to_g(arpa: Path, words_txt: Path, out_dir: Path) -> dict:
    """G.fst and G.fst.txt from the ARPA file; returns their sizes."""

    with atomic_path(out_dir / "G.fst") as tmp:
        text = kaldilm.arpa2fst(str(arpa), str(tmp), disambig_symbol=DISAMBIG,
                                read_symbol_table=str(words_txt), max_arpa_warnings=10)
    text = "".join(f"{line}\n" for line in text.splitlines() if line.strip())  # no blank lines
    write_text(out_dir / "G.fst.txt", text)
    arcs = finals = 0
    states = -1
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            arcs += 1
            states = max(states, int(fields[0]), int(fields[1]))
        elif fields:
            finals += 1
            states = max(states, int(fields[0]))
    return {"states": states + 1, "arcs": arcs, "final_states": finals}


def copy_lang(lang_dir: Path, out_dir: Path) -> list[str]:
    """Everything in lang_dir (not dot files) into out_dir, so out_dir is a full lang dir."""
    copied = []
    for item in sorted(lang_dir.iterdir()):
        if item.name.startswith("."):
            continue
        target = out_dir / item.name
        if item.is_dir():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(item, target)
        else:
            with atomic_path(target) as tmp:
                shutil.copy2(item, tmp)
        copied.append(item.name)
    return copied


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", required=True, help="LM training text, one sentence a line")
    parser.add_argument("--lang-dir", required=True, help="data/lang (words.txt, phones.txt)")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--out-dir", required=True, help="e.g. data/lang_test")
    parser.add_argument("--min-count", action="append", default=[], metavar="NGRAM:COUNT",
                        help="count cutoff, e.g. 3gram:2 (drop trigrams seen once); "
                             "repeat or comma-separate for several orders")
    parser.add_argument("--prune", type=float, default=0.0,
                        help="relative-entropy (Stolcke) pruning threshold, as SRILM's "
                             "-prune, e.g. 1e-8; 0 = none")
    parser.add_argument("--valid-text", default=None, help="held-out text for perplexity")
    parser.add_argument("--force", action="store_true", help="rebuild even if done")
    return parser


def main(argv: list[str] | None = None) -> int:
    # Length: the program's stages in order (inputs, estimation, pruning, outputs)
    args = get_parser().parse_args(argv)

    out_dir, lang_dir = Path(args.out_dir), Path(args.lang_dir)
    setup_logging(log_file=out_dir / "log" / "make_lm.log")
    log.info("python -m steps.make_lm %s", " ".join(argv if argv is not None else sys.argv[1:]))
    try:
        min_counts = parse_min_counts(args.min_count)
    except ValueError as e:
        parser.error(str(e))
    if args.order < 1:
        parser.error("--order must be >= 1")
    if out_dir.resolve() == lang_dir.resolve():
        parser.error("--out-dir must differ from --lang-dir")
    for path in (Path(args.text), lang_dir / "words.txt"):
        if not path.is_file():
            log.error("missing input %s", path)
            return 1
    words = read_symbol_table(lang_dir / "words.txt")
    missing = [s for s in (DISAMBIG, BOS, EOS) if s not in words]
    if missing:
        log.error("%s/words.txt lacks %s (needed by arpa2fst)", lang_dir, " ".join(missing))
        return 1

    fingerprint = atomic.inputs_fingerprint(
        [args.text, lang_dir, args.valid_text], order=args.order,
        min_counts={str(k): v for k, v in sorted(min_counts.items())}, prune=args.prune)
    if atomic.up_to_date(out_dir, fingerprint, args.force, [out_dir / "G.fst", out_dir / "G.fst.txt"]):
        return 0
    atomic.clear_done(out_dir)
    atomic.remove(out_dir / "G.fst.txt")  # nothing may build a graph with the old G while this one is made

    start = time.time()
    sentences, blank = read_sentences(args.text)
    if blank:
        log.warning("%s: skipped %d blank lines", args.text, blank)
    if not sentences:
        log.error("%s has no sentences", args.text)
        return 1
    vocab = lm_vocabulary([w for w, _ in sorted(words.items(), key=lambda x: x[1])])
    lm, stats = estimate_kneser_ney(sentences, vocab, args.order, min_counts, args.prune)
    log.info("estimated in %.1f s:\n%s", time.time() - start, stats.summary())
    if stats.oov_words:
        top = ", ".join(f"{w} {c}" for w, c in stats.oov_words.most_common(20))
        log.warning("%d word types of the text are not in words.txt (counted as <UNK>); "
                    "most frequent: %s", len(stats.oov_words), top)

    arpa = out_dir / f"lm_{args.order}gram.arpa"
    lm.write_arpa(arpa)
    counts = lm.counts()
    log.info("wrote %s: %s", arpa, ", ".join(f"ngram {n}={c}" for n, c in enumerate(counts, 1)))
    g_size = arpa_to_g(arpa, lang_dir / "words.txt", out_dir)
    log.info("wrote %s/G.fst and G.fst.txt: %d states, %d arcs, %d final states", out_dir,
             g_size["states"], g_size["arcs"], g_size["final_states"])
    copied = copy_lang(lang_dir, out_dir)
    log.info("copied from %s: %s", lang_dir, " ".join(copied))

    info = {"inputs": fingerprint["inputs"], "settings": fingerprint["settings"], "ngram_counts": counts, "seen_ngrams": stats.distinct,
            "discounts": stats.discounts, "oov_tokens": stats.oov, "G": g_size}
    if args.valid_text:
        valid, _ = read_sentences(args.valid_text)
        ppl = perplexity(lm, valid)
        log.info("held-out perplexity on %s: %.2f (%d sentences, %d words, %d OOV as <UNK>; "
                 "</s> counted)", args.valid_text, ppl["ppl"], ppl["sentences"], ppl["words"],
                 ppl["oov"])
        info["valid"] = ppl
    atomic.mark_done(out_dir, info, fingerprint)
    log.info("done in %.1f s", time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
