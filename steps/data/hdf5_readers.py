"""lhotse keeps every HDF5 file it reads from open (lookup_cache_or_open), and an open file
keeps the metadata of each dataset read from it, about 4 KB: a pass over a corpus's
alignments and soft labels (up to 13 arrays a cut) would grow by ~100 MiB an hour of
speech. A program that reads many cuts' arrays calls `close_now_and_then(reads so far)`
once a cut; every READS_PER_CLOSE cuts the cached files are closed (and reopened on the
next read), so memory stays flat.
"""

from __future__ import annotations

from lhotse.features.io import close_cached_file_handles

READS_PER_CLOSE = 256


def close_now_and_then(reads: int) -> None:
    """Closes lhotse's cached readers when `reads` (counted from 1) is a multiple of
    READS_PER_CLOSE."""
    if reads % READS_PER_CLOSE == 0:
        close_cached_file_handles()
