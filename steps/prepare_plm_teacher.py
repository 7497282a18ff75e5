"""Make a pre-trained causal or masked LM (a local transformers checkpoint) the teacher of
the `plm` unit level: check and load it, write down its units and the transcript
normalisation, optionally fine-tune it on the corpus' LM text, measure it on held-out text.

Reads --model (a directory written by save_pretrained: config.json, the weights, a fast
tokenizer's tokenizer.json), the LM text (data/text/lm_text.txt) and optionally the word
list (data/lang/words.txt). Writes to --out-dir (exp/lm_plm):

    teacher.json        model directory, kind (causal|masked), normalisation, masking
                        (whole_word|none): what steps.dump_soft_labels --teachers
                        exp/lm_plm loads
    tokens.txt          the units: the tokenizer's pieces, `piece id` (the AM head's size;
                        whitespace inside a piece written as \\uXXXX)
    normalisation.txt   how transcripts are rewritten for the model (case, apostrophes)
                        and how a predicted piece is hidden from it (masking, words)
    word_pieces.txt     every word as a transcript's first word: `WORD <TAB> normalised
                        <TAB> pieces` (inside a transcript GPT-2-style pieces carry the
                        space before the word and sentence case lowers it); words the
                        tokenizer maps to nothing are marked and counted
    ppl                 held-out per-piece NLL and perplexity (whole-word
                        pseudo-perplexity for a masked model), before and after fine-tuning
    model/              with --finetune-epochs > 0: the fine-tuned model and tokenizer
    finetune.json       the fine-tuning's figures
    .done               with the fingerprint of the inputs and options: a second run with
                        the same ones is skipped (--force redoes it)

See steps.kd.pretrained_teacher (kinds, windows) and steps.kd.plm_text (normalisation).

    python -m steps.prepare_plm_teacher --model /models/gpt2 --lm-text data/text/lm_text.txt \\
        --words data/lang/words.txt --out-dir exp/lm_plm [--finetune-epochs 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import torch

from steps.core import atomic
from steps.core.atomic import write_text
from steps.kd.plm_finetune import finetune, held_out_nll, split_held_out
from steps.kd.plm_text import CASES
from steps.kd.pretrained_teacher import KINDS, MASKING, TEACHER_FILE, PlmError, PretrainedTeacher
from steps.core.log import setup_logging

log = logging.getLogger("steps.prepare_plm_teacher")
NOT_WORDS = {"<eps>", "!SIL", "<UNK>", "<s>", "</s>", "#0"}


def symbol(piece: str) -> str:
    """A piece as a symbol-table entry: whitespace written as \\uXXXX (one line, two fields)."""
    return "".join(f"\\u{ord(c):04x}" if c.isspace() else c for c in piece) or "<none>"


def word_pieces_report(teacher: PretrainedTeacher, words: list[str]) -> tuple[str, list[str]]:
    """(word_pieces.txt text, the words mapped to nothing)."""
    lines, empty = [], []
    for word in words:
        encoded = teacher.encode_words([word])
        pieces = teacher.tokenizer.convert_ids_to_tokens(encoded.ids)
        if not pieces:
            empty.append(word)
        norm = teacher.normalisation.word(word, first=True)
        lines.append(f"{word}\t{norm}\t{' '.join(pieces) if pieces else '(nothing)'}\n")
    return "".join(lines), empty


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="local transformers checkpoint directory")
    parser.add_argument("--lm-text", required=True, help="data/text/lm_text.txt")
    parser.add_argument("--words", help="data/lang/words.txt: write every word's pieces")
    parser.add_argument("--out-dir", required=True, help="exp/lm_plm")
    parser.add_argument("--kind", choices=KINDS, default="auto")
    parser.add_argument("--case", choices=CASES, default="auto")
    parser.add_argument("--valid-fraction", type=float, default=0.02)
    parser.add_argument("--max-valid-lines", type=int, default=200, help="held-out lines scored")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="0: use the model as it is")
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--finetune-max-lines", type=int, default=0, help="0: all training lines")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=0)
    parser.add_argument("--force", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    # Length: the program's stages in order (inputs, fine-tuning, outputs)
    args = get_parser().parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out_dir)
    setup_logging(log_file=out / "log" / "prepare_plm_teacher.log")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    settings = {k: v for k, v in vars(args).items() if k not in ("out_dir", "force", "device", "num_threads")}
    # a directory prepared under another masking has another pseudo-perplexity: redo it
    fingerprint = atomic.inputs_fingerprint([args.model, args.lm_text, args.words], **settings,
                                            masking=MASKING)
    if atomic.up_to_date(out, fingerprint, args.force, [out / TEACHER_FILE, out / "tokens.txt"],
                         what=f"{out} plm teacher"):
        return 0
    atomic.clear_done(out)
    try:
        teacher = PretrainedTeacher.load(args.model, args.device, args.kind, args.case)
    except PlmError as e:
        log.error("%s", e)
        return 1
    lines = [line.strip() for line in Path(args.lm_text).read_text().splitlines() if line.strip()]
    train, valid = split_held_out(lines, args.valid_fraction)
    valid = valid[:args.max_valid_lines]
    log.info("%s: %s model, %d pieces, context %d; normalisation %s", args.model, teacher.kind,
             teacher.num_units, teacher.context, teacher.normalisation.to_dict())
    model_dir = str(Path(args.model).resolve())
    figures = {"kind": teacher.kind, "pieces": teacher.num_units}
    if args.finetune_epochs > 0:
        if args.finetune_max_lines:
            train = train[:args.finetune_max_lines]
        stats = finetune(teacher, train, valid, args.finetune_epochs, args.finetune_lr,
                         args.batch_size, args.seed)
        teacher.model.save_pretrained(out / "model")
        teacher.tokenizer.save_pretrained(out / "model")
        write_text(out / "finetune.json", json.dumps(stats, indent=1) + "\n")
        model_dir = "model"
        figures.update(nll_before=stats["valid_nll_before"], nll=stats["valid_nll_after"])
        log.info("fine-tuned %d epochs (%d steps on %d lines): held-out NLL/piece %.3f -> %.3f",
                 args.finetune_epochs, stats["steps"], stats["train_lines"],
                 stats["valid_nll_before"], stats["valid_nll_after"])
    else:
        figures["nll"] = held_out_nll(teacher, valid) if valid else math.nan
    ppl = [f"model {args.model}\nkind {teacher.kind}\nvalid_lines {len(valid)}\n"]
    if "nll_before" in figures:
        ppl.append(f"teacher_nll_before_finetune {figures['nll_before']:.4f}\n"
                   f"teacher_ppl_before_finetune {math.exp(figures['nll_before']):.2f}\n")
    ppl.append(f"teacher_nll {figures['nll']:.4f}\nteacher_ppl {math.exp(figures['nll']):.2f}\n")
    if teacher.kind == "masked":
        ppl.append("(masked model: pseudo-perplexity, each piece predicted with all pieces of "
                   "its word masked and the other words given)\n")
    write_text(out / "ppl", "".join(ppl))
    write_text(out / "tokens.txt", "".join(f"{symbol(p)} {i}\n" for i, p in enumerate(teacher.pieces())))
    write_text(out / "normalisation.txt", teacher.normalisation.describe() + teacher.describe_masking())
    empty: list[str] = []
    if args.words:
        words = [line.split()[0] for line in Path(args.words).read_text().splitlines() if line.strip()]
        text, empty = word_pieces_report(teacher, [w for w in words if w not in NOT_WORDS])
        write_text(out / "word_pieces.txt", text)
        if empty:
            log.warning("%d words map to no piece (their frames get no plm target): %s%s",
                        len(empty), " ".join(empty[:10]), " ..." if len(empty) > 10 else "")
    write_text(out / TEACHER_FILE, json.dumps(
        {"model_dir": model_dir, "source": str(args.model), "kind": teacher.kind,
         "normalisation": teacher.normalisation.to_dict(), "masking": teacher.masking,
         "num_units": teacher.num_units,
         "context": teacher.context}, indent=1) + "\n")
    atomic.mark_done(out, {"kind": teacher.kind, "pieces": teacher.num_units,
                           "words_without_pieces": len(empty)}, fingerprint)
    log.info("plm teacher -> %s: held-out perplexity %.2f; %d words without pieces",
             out, math.exp(figures["nll"]), len(empty))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
