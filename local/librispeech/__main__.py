"""Stage 1 of egs/librispeech/s5: LibriSpeech -> the recipe's lhotse manifests
(local.librispeech.prepare_librispeech; what it reads and writes is in
local/librispeech/prepare.py). The LM text is local/librispeech/lm_text.py.

Example (from egs/librispeech/s5):
  python -m local.librispeech --corpus-dir /data/LibriSpeech --out-dir data/manifests \\
      --train-parts train-clean-100 --extra-parts dev-other test-other --nj 8
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from local.librispeech.prepare import LibriSpeechError, prepare_librispeech
from local.librispeech.text import TRAIN_PARTS
from steps.core.log import setup_logging

log = logging.getLogger("local.librispeech")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.librispeech", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", required=True, type=Path,
                        help="the LibriSpeech directory (holds train-clean-100/, dev-clean/, ...)")
    parser.add_argument("--out-dir", required=True, type=Path, help="e.g. data/manifests")
    parser.add_argument("--train-parts", nargs="+", default=["train-clean-100"], choices=TRAIN_PARTS)
    parser.add_argument("--extra-parts", nargs="*", default=["dev-other", "test-other"],
                        choices=["dev-other", "test-other"])
    parser.add_argument("--alignments-dir", type=Path, default=None,
                        help="tree of <speaker>-<chapter>.alignment.txt files (default: --corpus-dir)")
    parser.add_argument("--download", action="store_true",
                        help="download the parts missing under --corpus-dir (lhotse's download_librispeech)")
    parser.add_argument("--check-audio", choices=["header", "decode"], default="header",
                        help="header: open every file's header (fast); decode: read every file to the end")
    parser.add_argument("--nj", type=int, default=1, help="threads for lhotse's preparation")
    parser.add_argument("--force", action="store_true", help="redo finished parts")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        prepare_librispeech(args.corpus_dir, args.out_dir, train_parts=args.train_parts,
                            extra_parts=args.extra_parts, alignments_dir=args.alignments_dir,
                            download=args.download, check_audio=args.check_audio, nj=args.nj,
                            force=args.force)
    except LibriSpeechError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
