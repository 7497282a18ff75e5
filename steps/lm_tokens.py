"""Turn the LM text into one unit level's token corpus for its teacher LM.

Reads data/text/lm_text.txt (one sentence per line, uppercase words) and writes to --out-dir:

    tokens.txt        the level's unit vocabulary, `sym id`, ids from 0 (the conventions'
                      "Unit vocabularies": senone "0".."S-1"; phone: the real phones except
                      SIL, SPN included, phones.txt order; subword: the sentencepiece pieces)
    train.txt         one sentence per line as space-separated unit ids
    valid.txt         the held-out sentences, same format
    <train|valid>.txt.{ids,offsets.npy,index.json}
                      their binary index (steps.lm.corpus), which the teacher's training reads
                      from disk a batch at a time; the text is read and written a line at a time
    tokens_info.json  counts, the pronunciation source, skipped lines
    skipped.txt       `line_number<TAB>reason` for every line not turned into tokens
    .tokens/.done     written last, with the fingerprint of the inputs (text, lang, tree,
                      topology, sentencepiece model, pronunciation counts) and options: a
                      second run with the same ones is skipped (--force redoes it), so that
                      the teacher trained on these files is not retrained for nothing

Levels:
- phone: words -> phones with steps.hmm.units.words_to_phones. Pronunciation of a word with
  several: the one seen most often in the training alignments when --pron-counts is given
  (ties and unseen words: the lexicon's first), else the lexicon's first. OOV words become
  <UNK>'s pronunciation (SPN).
- senone: the same phones, then steps.hmm.units.phones_to_senones (contexts across word
  boundaries, as in the alignment, consecutive repeats collapsed).
- subword: sentencepiece ids of the sentence (--bpe-model).
No word-boundary tokens are added: the acoustic model does not need them for senones or
phones, and sentencepiece pieces already mark word starts (the '▁' prefix).

Held-out split: a sentence goes to valid.txt when the MD5 of its text falls in the first
--valid-fraction of the hash range (2% by default): deterministic, the same for all three
levels, and repeated sentences never straddle train and valid.

    python -m steps.lm_tokens --level senone --lm-text data/text/lm_text.txt \\
        --lang-dir data/lang --tree exp/tree \\
        --pron-counts exp/senone_ali/pron_counts_train.txt --out-dir exp/lm_senone
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from steps.core import atomic
from steps.core.atomic import write_text
from steps.core.log import setup_logging
from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang, write_symbol_table
from steps.lm.corpus import CorpusWriter, corpus_files
from steps.lm.tokens import (
    LEVELS,
    choose_prons,
    load_sentencepiece,
    make_corpus,
    phone_converter,
    phone_units,
    read_pron_counts,
    senone_converter,
    senone_units,
    subword_converter,
    subword_units,
)
from steps.tree.decision_tree import Tree

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: list[str] | None = None) -> int:

    # Length: the program's stages in order (inputs, each level's corpus, outputs)
    args = get_parser().parse_args(argv)
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

    oov = 0

    def counted(text):  # the OOV word tokens, counted on the way through
        nonlocal oov
        for line in text:
            oov += sum(1 for w in line.split() if w not in lang.lexicon)
            yield line

    write_symbol_table(out / "tokens.txt", units)
    # a line at a time, in and out: an LM text of any size
    with open(args.lm_text) as text, CorpusWriter(out / "train.txt") as train, \
            CorpusWriter(out / "valid.txt") as valid:
        skipped = make_corpus(counted(text), convert, args.valid_fraction, train, valid)
    if not train.sentences or not valid.sentences:
        atomic.remove(out / "tokens.txt", *corpus_files(out / "train.txt"), *corpus_files(out / "valid.txt"))
        log.error("%s: %d train and %d valid sentences; both must be non-empty",
                  args.lm_text, train.sentences, valid.sentences)
        return 1

    write_text(out / "skipped.txt", "".join(f"{n}\t{r}\n" for n, r in skipped))
    info = {
        "level": args.level, "num_units": len(units), "lm_text": args.lm_text,
        "train_sentences": train.sentences, "valid_sentences": valid.sentences,
        "train_tokens": train.tokens, "valid_tokens": valid.tokens,
        "mean_tokens_per_sentence": round(train.tokens / train.sentences, 2),
        "max_tokens_per_sentence": max(train.max_length, valid.max_length),
        "skipped_lines": len(skipped), "oov_words": oov, "pronunciations": pron_source,
        "valid_fraction": args.valid_fraction,
    }
    write_text(out / "tokens_info.json", json.dumps(info, indent=2) + "\n")
    atomic.mark_done(marker_dir, {"train_sentences": train.sentences, "valid_sentences": valid.sentences}, fingerprint)
    log.info("%s level: %d units; %d train / %d valid sentences, %d / %d tokens "
             "(mean %.1f per sentence, max %d); %d lines skipped (see %s); %d OOV word tokens; "
             "pronunciations: %s", args.level, len(units), train.sentences, valid.sentences,
             info["train_tokens"], info["valid_tokens"], info["mean_tokens_per_sentence"],
             info["max_tokens_per_sentence"], len(skipped), out / "skipped.txt", oov, pron_source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
