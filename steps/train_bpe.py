"""Train the sentencepiece model of the subword level on the LM text (icefall's
local/train_bpe_model.py, unigram).

Piece ids are the subword unit ids of the toolkit (exp/lm_subword/tokens.txt uses them
as they are), so the model has no pieces that are not units: <unk> is id 0 (a word
with characters never seen in training), there are no <s>/</s>/<pad> pieces (the
teacher LMs add their own special tokens after the unit ids) and no <blk> (no CTC here).
Training is deterministic: one thread, a fixed seed, the first --max-sentences
sentences of the text (no sampling), and no file path recorded in the model.

Reads:  --lm-text (one sentence per line, UPPERCASE words)
Writes: <lang-dir>/bpe.model, <lang-dir>/tokens.txt (`piece id`, id order),
        <lang-dir>/.done (marker with the inputs' fingerprint)

Example:
  python -m steps.train_bpe --lm-text data/text/lm_text.txt --lang-dir data/lang_bpe_500 \\
      --vocab-size 500
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import re
from pathlib import Path

import sentencepiece as spm

from steps.core import atomic
from steps.core.log import setup_logging

log = logging.getLogger(__name__)
SEED = 4242


def train_bpe(text_path: Path, model_path: Path, vocab_size: int, max_sentences: int = 100_000_000) -> None:
    """Trains a unigram sentencepiece model on the first max_sentences lines of text_path
    and writes it to model_path. The text goes in as an iterator and the model comes out
    through a buffer, so that no path is recorded in the model: the same text gives the
    same bytes wherever it lies."""

    spm.set_random_generator_seed(SEED)
    model = io.BytesIO()
    with open(text_path, encoding="utf-8") as f:
        sentences = (line.rstrip("\n") for line in itertools.islice(f, max_sentences))
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences, model_writer=model, vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, num_threads=1,
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, minloglevel=2)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(model_path) as tmp:
        tmp.write_bytes(model.getvalue())


def failure_message(error: str, text: Path, vocab_size: int) -> str:
    """What to change when sentencepiece fails. A size above what the text's characters and
    words give (a small corpus) is named with run.sh's option and the largest size that fits
    (sentencepiece's own bound, which trains): an error rather than a smaller model, since
    data/lang_bpe_<N> is named by the size asked for."""

    # e.g. "... Vocabulary size too high (500). Please set it to a value <= 303."
    limit = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", error)
    if limit is None:
        return f"train_bpe: sentencepiece failed on {text}: {error}"
    return (f"train_bpe: --vocab-size {vocab_size} is too large for {text}: its text gives at most "
            f"{limit.group(1)} pieces; set --bpe-vocab-size in run.sh (bpe_vocab_size) to {limit.group(1)} "
            f"or less (sentencepiece: {error[error.index('Vocabulary size too high'):]})")


def token_lines(model_path: Path) -> str:
    """tokens.txt: `piece id` for every piece, in id order."""

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    return "".join(f"{sp.id_to_piece(i)} {i}\n" for i in range(sp.get_piece_size()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm-text", required=True)
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--vocab-size", type=int, default=500)
    parser.add_argument("--max-sentences", type=int, default=100_000_000,
                        help="train on at most this many sentences (the first ones)")
    parser.add_argument("--force", action="store_true", help="retrain even if done with the same inputs")
    args = parser.parse_args(argv)
    setup_logging()

    lang_dir, text = Path(args.lang_dir), Path(args.lm_text)
    if not text.is_file():
        raise SystemExit(f"train_bpe: missing LM text {text}")
    stamp = atomic.inputs_fingerprint([text], vocab_size=args.vocab_size, max_sentences=args.max_sentences,
                                      seed=SEED)
    model = lang_dir / "bpe.model"
    if atomic.up_to_date(lang_dir, stamp, args.force, [model, lang_dir / "tokens.txt"]):
        return
    atomic.clear_done(lang_dir)
    try:
        train_bpe(text, model, args.vocab_size, args.max_sentences)
    except RuntimeError as e:
        raise SystemExit(failure_message(str(e), text, args.vocab_size)) from None
    atomic.write_text(lang_dir / "tokens.txt", token_lines(model))
    atomic.mark_done(lang_dir, {"vocab_size": args.vocab_size}, stamp)
    log.info("wrote %s and %s (%d pieces)", model, lang_dir / "tokens.txt", args.vocab_size)


if __name__ == "__main__":
    main()
