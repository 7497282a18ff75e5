"""Download LibriSpeech's text resources (openslr.org resource 11) that the recipe uses:

    librispeech-lm-norm.txt.gz   the LM corpus (1.5 GB; 4.3 GB unpacked, read as .gz)
    librispeech-lexicon.txt      CMUdict plus G2P pronunciations of the LM corpus' words (5.4 MB)

and, asked by name (--files; run.sh does with lm_source=openslr), the published ARPA LMs
over its 200k-word vocabulary (upper case), those of Kaldi's LibriSpeech results:

    3-gram.pruned.1e-7.arpa.gz   first pass (Kaldi's tgmed; 34 MB)
    3-gram.pruned.3e-7.arpa.gz   first pass, more pruned (Kaldi's tgsmall)
    3-gram.arpa.gz               unpruned (Kaldi's tglarge)
    4-gram.arpa.gz               rescoring (Kaldi's fglarge; 1.4 GB)

with lhotse's resumable_download (an interrupted download continues; a complete file is
kept). Only run when the recipe is told it may download (run.sh --download true).

Reads:  nothing
Writes: <out-dir>/<file> for each of --files (default: the LM corpus and the lexicon)

Example (from egs/librispeech/s5):
  python -m local.librispeech.download_lm --out-dir download/lm
  python -m local.librispeech.download_lm --out-dir download/lm --files 3-gram.pruned.1e-7.arpa.gz 4-gram.arpa.gz
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from lhotse.utils import resumable_download

from steps.core.log import setup_logging

log = logging.getLogger(__name__)
BASE_URL = "https://www.openslr.org/resources/11"
FILES = ("librispeech-lm-norm.txt.gz", "librispeech-lexicon.txt")
ARPAS = ("3-gram.pruned.1e-7.arpa.gz", "3-gram.pruned.3e-7.arpa.gz", "3-gram.arpa.gz", "4-gram.arpa.gz")


def download_lm(out_dir: str | Path, base_url: str = BASE_URL, files: Sequence[str] = FILES) -> list[Path]:
    """Downloads the files into out_dir (a complete file is kept) and returns their paths;
    raises OSError (or what the download raised) naming the file that failed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in files:
        target = out_dir / name
        log.info("%s/%s -> %s", base_url, name, target)
        try:
            resumable_download(f"{base_url}/{name}", filename=target)
        except Exception as e:  # no network, server error: say which file and why
            raise OSError(f"could not download {name}: {type(e).__name__}: {e}") from e
        paths.append(target)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.librispeech.download_lm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--base-url", default=BASE_URL)
    parser.add_argument("--files", nargs="+", default=list(FILES), choices=FILES + ARPAS)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        download_lm(args.out_dir, args.base_url, args.files)
    except OSError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
