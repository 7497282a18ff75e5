"""Stage 1 of egs/synth/s5: the synth corpus' text, speech and lhotse manifests
(local.synth.prepare_synth; what it reads and writes is in local/synth/prepare.py).

Example (from egs/synth/s5):
  python -m local.synth --config conf/data_tiny.yaml --out-dir data --nj 2
Speaking transcripts of your own (`utt-id WORDS...` in <dir>/{train,dev,test}.txt):
  python -m local.synth --config conf/data_tiny.yaml --text-dir mytext --out-dir data
"""

from __future__ import annotations

import argparse
import logging
import sys

from local.synth.config import PARTS
from local.synth.grammar import GrammarError
from local.synth.prepare import SynthError, prepare_synth, run_job
from steps.core import jobs
from steps.core.log import setup_logging

log = logging.getLogger("local.synth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="conf/data_*.yaml")
    parser.add_argument("--out-dir", required=True,
                        help="e.g. data (text/, audio/ and manifests/ go under it)")
    parser.add_argument("--text-dir", default=None,
                        help="transcripts {train,dev,test}.txt to speak (default: generate them "
                             "from the grammar into <out-dir>/text)")
    parser.add_argument("--grammar-dir", default=None, help="overrides text.grammar_dir")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--force", action="store_true",
                        help="remake the text and the manifests of finished parts (finished audio is kept)")
    jobs.add_job_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.job is not None:
            text_dir = args.text_dir or f"{args.out_dir}/text"
            run_job(args.config, text_dir, args.out_dir, args.parts, args.job, args.nj)
        else:
            prepare_synth(args.config, args.out_dir, text_dir=args.text_dir, parts=args.parts,
                          nj=args.nj, cmd=args.cmd, force=args.force, grammar_dir=args.grammar_dir)
    except (SynthError, GrammarError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
