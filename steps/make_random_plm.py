"""Write a small randomly initialised GPT-2- or BERT-style checkpoint with a tokenizer
trained on a text (steps.kd.random_models): a stand-in for a downloaded pre-trained model,
for smoke runs of the plm level (`run.sh --plm-teacher DIR`) and benchmarks.

Reads --text (one sentence per line; upper-case corpus text is also written lower-cased,
so that a cased tokenizer learns the pieces of normalised transcripts). Writes --out-dir:
config.json, model.safetensors, tokenizer.json and the tokenizer's configs.

    python -m steps.make_random_plm --kind gpt2 --text data/text/lm_text.txt --out-dir /tmp/gpt2-tiny
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from steps.kd.random_models import write_bert, write_gpt2
from steps.core.log import setup_logging

log = logging.getLogger("steps.make_random_plm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("gpt2", "bert"), required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--vocab-size", type=int, default=400)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--max-lines", type=int, default=5000, help="lines the tokenizer is trained on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    lines = [line.strip() for line in Path(args.text).read_text().splitlines() if line.strip()]
    lines = lines[:args.max_lines]
    text = lines + [line.lower() for line in lines] + [line.capitalize() for line in lines]
    write = write_gpt2 if args.kind == "gpt2" else write_bert
    out = write(args.out_dir, text, vocab_size=args.vocab_size, layers=args.layers, dim=args.dim,
                heads=args.heads, context=args.context, seed=args.seed)
    log.info("random %s (%d layers, dim %d, context %d) -> %s", args.kind, args.layers, args.dim,
             args.context, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
