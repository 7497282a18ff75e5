"""Build the word n-gram LM for decoding and its grammar FST G (Kaldi's format_lm), or
install a prebuilt ARPA (--arpa) in its place.

Estimating (--text): reads the LM text (one sentence per line, words as in the lexicon)
and data/lang; writes to --out-dir, a copy of data/lang plus the LM:

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

A prebuilt ARPA (--arpa, plain or gzip, e.g. openslr's LibriSpeech 3-gram.pruned.1e-7 or
4-gram; read as a stream, steps.lm.arpa) is installed instead of estimating one, in two
steps around steps.prepare_lang (as Kaldi's format_lm.sh needs the lang first):

  1. --arpa A --text T --vocab-text --out-dir D: writes D/vocab_text.txt, T's lines then
     the ARPA's words one a line (<s>, </s>, <unk> left out): the text to give
     steps.prepare_lang as --lm-text, so that the ARPA's words join the vocabulary
     wherever the lexicon has a pronunciation for them.
  2. --arpa A --lang-dir L --out-dir D [--order N] [--no-g]: writes D/lm_<order>gram.arpa,
     the ARPA restricted to L's words.txt (n-grams with a word words.txt lacks, i.e. a
     word without a pronunciation, are left out: counted in the log and .done, the words
     listed with their unigram log10 p in D/arpa_oov.txt), then G.fst and G.fst.txt from
     it (not with --no-g: a rescoring LM, whose G nothing reads) and the copy of L. --order
     is checked against the ARPA's (the stages name the file by it).

    python -m steps.make_lm --arpa download/lm/3-gram.pruned.1e-7.arpa.gz \\
        --text data/text/lm_text.txt --vocab-text --out-dir data/local/lm_vocab
    python -m steps.make_lm --arpa download/lm/3-gram.pruned.1e-7.arpa.gz --lang-dir data/lang \\
        --order 3 --out-dir data/lang_test
    python -m steps.make_lm --arpa download/lm/4-gram.arpa.gz --lang-dir data/lang --order 4 \\
        --out-dir data/lang_rescore --no-g
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
from steps.lm.arpa import ArpaError, arpa_words, read_counts, restrict_arpa
from steps.lm.kneser_ney import estimate_kneser_ney
from steps.lm.ngram import BOS, EOS, UNK, BackoffLM, lm_vocabulary, parse_min_counts, perplexity

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
    parser.add_argument("--text", default=None, help="LM training text, one sentence a line")
    parser.add_argument("--arpa", default=None,
                        help="a prebuilt ARPA (plain or .gz) to install instead of estimating one")
    parser.add_argument("--vocab-text", action="store_true",
                        help="with --arpa and --text: write <out-dir>/vocab_text.txt (step 1 above)")
    parser.add_argument("--no-g", action="store_true",
                        help="with --arpa: the restricted ARPA only, no G (a rescoring LM)")
    parser.add_argument("--lang-dir", default=None, help="data/lang (words.txt, phones.txt)")
    parser.add_argument("--order", type=int, default=None,
                        help="n-gram order (default 3; with --arpa, checked against the ARPA's)")
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
    # Length: the program's stages in order (checks, inputs, estimation or a prebuilt ARPA, outputs)
    parser = get_parser()
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    if args.arpa is None and (args.vocab_text or args.no_g):
        parser.error("--vocab-text and --no-g go with --arpa")
    if args.arpa is not None and (args.min_count or args.prune):
        parser.error("--min-count and --prune shape an estimated LM, not a prebuilt --arpa")
    if args.vocab_text:
        if args.text is None:
            parser.error("--vocab-text needs --text (the LM text whose lines come first)")
    elif args.lang_dir is None:
        parser.error("--lang-dir is required (unless --vocab-text)")
    elif (args.text is None) == (args.arpa is None):
        parser.error("give one of --text (estimate an LM) and --arpa (install a prebuilt one)")
    elif out_dir.resolve() == Path(args.lang_dir).resolve():
        parser.error("--out-dir must differ from --lang-dir")
    try:
        min_counts = parse_min_counts(args.min_count)
    except ValueError as e:
        parser.error(str(e))
    if args.order is not None and args.order < 1:
        parser.error("--order must be >= 1")

    setup_logging(log_file=out_dir / "log" / "make_lm.log")
    log.info("python -m steps.make_lm %s", " ".join(argv if argv is not None else sys.argv[1:]))
    inputs = [args.text, args.arpa] + ([] if args.vocab_text else [Path(args.lang_dir) / "words.txt"])
    for path in map(Path, filter(None, inputs)):
        if not path.is_file():
            log.error("missing input %s", path)
            return 1
    try:
        if args.vocab_text:
            return write_vocab_text(Path(args.arpa), Path(args.text), out_dir, args.force)
        words = read_symbol_table(Path(args.lang_dir) / "words.txt")
        missing = [s for s in (DISAMBIG, BOS, EOS) if s not in words]
        if missing:
            log.error("%s/words.txt lacks %s (needed by arpa2fst)", args.lang_dir, " ".join(missing))
            return 1
        if args.arpa is not None:
            return install_arpa(args, words)
    except ArpaError as e:
        log.error("%s", e)
        return 1
    return estimate(args, words, min_counts)


def estimate(args, words: dict[str, int], min_counts: dict[int, int]) -> int:
    """The Kneser-Ney LM of --text, its G and the copy of the lang dir."""
    out_dir, lang_dir, order = Path(args.out_dir), Path(args.lang_dir), args.order or 3
    fingerprint = atomic.inputs_fingerprint(
        [args.text, lang_dir, args.valid_text], order=order,
        min_counts={str(k): v for k, v in sorted(min_counts.items())}, prune=args.prune)
    if atomic.up_to_date(out_dir, fingerprint, args.force, [out_dir / "G.fst", out_dir / "G.fst.txt"]):
        return 0
    atomic.clear_done(out_dir)
    atomic.remove(out_dir / "G.fst.txt")  # nothing may build a graph with the old G while this one is made
    atomic.remove(out_dir / "arpa_oov.txt")  # of a prebuilt ARPA installed here before

    start = time.time()
    sentences, blank = read_sentences(args.text)
    if blank:
        log.warning("%s: skipped %d blank lines", args.text, blank)
    if not sentences:
        log.error("%s has no sentences", args.text)
        return 1
    vocab = lm_vocabulary([w for w, _ in sorted(words.items(), key=lambda x: x[1])])
    lm, stats = estimate_kneser_ney(sentences, vocab, order, min_counts, args.prune)
    log.info("estimated in %.1f s:\n%s", time.time() - start, stats.summary())
    if stats.oov_words:
        top = ", ".join(f"{w} {c}" for w, c in stats.oov_words.most_common(20))
        log.warning("%d word types of the text are not in words.txt (counted as <UNK>); "
                    "most frequent: %s", len(stats.oov_words), top)

    arpa = out_dir / f"lm_{order}gram.arpa"
    lm.write_arpa(arpa)
    counts = lm.counts()
    log.info("wrote %s: %s", arpa, ", ".join(f"ngram {n}={c}" for n, c in enumerate(counts, 1)))
    info = {"inputs": fingerprint["inputs"], "settings": fingerprint["settings"], "ngram_counts": counts,
            "seen_ngrams": stats.distinct, "discounts": stats.discounts, "oov_tokens": stats.oov,
            "G": make_g(arpa, lang_dir, out_dir)}
    finish(args, out_dir, info, fingerprint, lm, start)
    return 0


def make_g(arpa: Path, lang_dir: Path, out_dir: Path) -> dict:
    g_size = arpa_to_g(arpa, lang_dir / "words.txt", out_dir)
    log.info("wrote %s/G.fst and G.fst.txt: %d states, %d arcs, %d final states", out_dir,
             g_size["states"], g_size["arcs"], g_size["final_states"])
    return g_size


def finish(args, out_dir: Path, info: dict, fingerprint: dict, lm: BackoffLM | None, start: float) -> None:
    """The copy of the lang dir, the held-out perplexity (--valid-text), .done."""
    copied = copy_lang(Path(args.lang_dir), out_dir)
    log.info("copied from %s: %s", args.lang_dir, " ".join(copied))
    if args.valid_text:
        lm = lm or BackoffLM.read_arpa(out_dir / f"lm_{len(info['ngram_counts'])}gram.arpa")
        valid, _ = read_sentences(args.valid_text)
        ppl = perplexity(lm, valid)
        log.info("held-out perplexity on %s: %.2f (%d sentences, %d words, %d OOV as <UNK>; "
                 "</s> counted)", args.valid_text, ppl["ppl"], ppl["sentences"], ppl["words"],
                 ppl["oov"])
        info["valid"] = ppl
    atomic.mark_done(out_dir, info, fingerprint)
    log.info("done in %.1f s", time.time() - start)


def install_arpa(args, words: dict[str, int]) -> int:
    """Step 2 of --arpa: the ARPA restricted to words.txt, its G (unless --no-g), the lang copy."""
    out_dir, lang_dir, source = Path(args.out_dir), Path(args.lang_dir), Path(args.arpa)
    order = max(read_counts(source))
    if args.order is not None and args.order != order:
        log.error("%s is a %d-gram LM, not --order %d", source, order, args.order)
        return 1
    fingerprint = atomic.inputs_fingerprint([source, lang_dir, args.valid_text], arpa=True, order=order,
                                            no_g=args.no_g)
    arpa = out_dir / f"lm_{order}gram.arpa"
    outputs = [arpa] if args.no_g else [arpa, out_dir / "G.fst", out_dir / "G.fst.txt"]
    if atomic.up_to_date(out_dir, fingerprint, args.force, outputs):
        return 0
    atomic.clear_done(out_dir)
    atomic.remove(out_dir / "G.fst.txt")  # nothing may build a graph with the old G while this one is made
    if args.no_g:
        atomic.remove(out_dir / "G.fst")  # an earlier run's, of another LM

    start = time.time()
    vocab = lm_vocabulary([w for w, _ in sorted(words.items(), key=lambda x: x[1])])
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = restrict_arpa(source, arpa, vocab)
    log.info("wrote %s from %s in %.1f s: %s", arpa, source, time.time() - start,
             ", ".join(f"ngram {n}={c}" for n, c in enumerate(kept.kept, 1)))
    if kept.renamed_unk:
        log.info("the ARPA's %s is words.txt's %s", kept.renamed_unk, UNK)
    oov = sorted(kept.dropped_words.items(), key=lambda x: (-x[1], x[0]))
    write_text(out_dir / "arpa_oov.txt", "".join(f"{w} {p:.6f}\n" for w, p in oov))
    if oov:
        log.warning("%d of the ARPA's %d words are not in %s/words.txt (no pronunciation in the "
                    "lexicon): their n-grams are left out (%s; unigram probability %.3g), the words "
                    "listed in %s, e.g. %s", len(oov), kept.declared[0], lang_dir,
                    ", ".join(f"{n}-grams {d}" for n, d in enumerate(kept.dropped, 1)),
                    kept.dropped_mass(), out_dir / "arpa_oov.txt", " ".join(w for w, _ in oov[:10]))
    else:
        log.info("every word of the ARPA is in %s/words.txt", lang_dir)
    info = {"inputs": fingerprint["inputs"], "settings": fingerprint["settings"], "arpa": str(source),
            "ngram_counts": kept.kept, "declared_ngram_counts": kept.declared,
            "arpa_words_not_in_words_txt": len(oov), "dropped_ngrams": kept.dropped,
            "dropped_unigram_mass": kept.dropped_mass(), "renamed_unk": kept.renamed_unk}
    if not args.no_g:
        info["G"] = make_g(arpa, lang_dir, out_dir)
    finish(args, out_dir, info, fingerprint, None, start)
    return 0


def write_vocab_text(source: Path, text: Path, out_dir: Path, force: bool) -> int:
    """Step 1 of --arpa: <out-dir>/vocab_text.txt, the text's lines then the ARPA's words."""
    fingerprint = atomic.inputs_fingerprint([source, text], vocab_text=True)
    out = out_dir / "vocab_text.txt"
    if atomic.up_to_date(out_dir, fingerprint, force, [out]):
        return 0
    atomic.clear_done(out_dir)
    start = time.time()
    special = {BOS, EOS, UNK.lower()}
    words = [w for w in arpa_words(source) if w.lower() not in special]
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        with open(text, "rb") as lines:
            shutil.copyfileobj(lines, f, 1 << 20)
            if f.tell():  # a last line without its newline gets one
                lines.seek(-1, 2)
                f.write(b"" if lines.read(1) == b"\n" else b"\n")
        f.write("".join(f"{w}\n" for w in words).encode("utf-8"))
    log.info("wrote %s: %s's lines, then the %d words of %s (%.1f s)", out, text, len(words), source,
             time.time() - start)
    atomic.mark_done(out_dir, {"arpa_words": len(words)}, fingerprint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
