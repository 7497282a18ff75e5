#!/usr/bin/env python3
"""Download LibriSpeech's text resources (openslr.org resource 11) that the recipe uses:

    librispeech-lm-norm.txt.gz   the LM corpus (1.5 GB; 4.3 GB unpacked, read as .gz)
    librispeech-lexicon.txt      CMUdict plus G2P pronunciations of the LM corpus' words (5.4 MB)

with lhotse's resumable_download (an interrupted download continues; a complete file is
kept). Only run when the recipe is told it may download (run.sh --download true).

Reads:  nothing
Writes: <out-dir>/librispeech-lm-norm.txt.gz, <out-dir>/librispeech-lexicon.txt

Example (from egs/librispeech/s5):
  python local/download_lm.py --out-dir download/lm
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("download_lm")
BASE_URL = "https://www.openslr.org/resources/11"
FILES = ("librispeech-lm-norm.txt.gz", "librispeech-lexicon.txt")


def main(argv: list[str] | None = None) -> int:
    from lhotse.utils import resumable_download

    from steps.core.log import setup_logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--base-url", default=BASE_URL)
    parser.add_argument("--files", nargs="+", default=list(FILES), choices=FILES)
    args = parser.parse_args(argv)
    setup_logging()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.files:
        target = args.out_dir / name
        log.info("%s/%s -> %s", args.base_url, name, target)
        try:
            resumable_download(f"{args.base_url}/{name}", filename=target)
        except Exception as e:  # no network, server error: say which file and why
            log.error("could not download %s: %s: %s", name, type(e).__name__, e)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
