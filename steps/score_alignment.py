"""How far the aligner's word boundaries are from the true ones.

For every word of every cut that carries both the true word segments (supervision
alignment `word`, from the synthesiser) and the aligner's (`ali_word`), the absolute
differences of the start times and of the end times are pooled. Reported per part: the
median and 90th percentile absolute boundary error, and the share of boundaries within
20 ms and within 50 ms. Cuts whose two word sequences differ are reported and skipped.

A reference may know word starts only: a reference word of duration 0 contributes its
start alone (`starts` and `ends` in the output count what was scored). When no cut carries
reference boundaries (most real corpora), the program says "no reference boundaries:
nothing scored", writes that to --out (cuts 0) and exits 0, so a recipe copied from synth
goes on.

Reads:  alignment cuts (e.g. exp/mono_ali/cuts_dev.jsonl.gz)
Writes: --out (e.g. exp/mono_ali/quality_dev.json) and a one-line summary on stdout

Example:
  python -m steps.score_alignment --cuts exp/mono_ali/cuts_dev.jsonl.gz \\
      --out exp/mono_ali/quality_dev.json
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from lhotse import CutSet

from steps.core import atomic
from steps.core.log import setup_logging
from steps.scoring.boundaries import NoReferences, score_cuts

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True)
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--truth-key", default="word")
    parser.add_argument("--hyp-key", default="ali_word")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        quality, mismatched = score_cuts(CutSet.from_file(args.cuts), args.truth_key, args.hyp_key)
    except NoReferences as e:
        log.info("%s", e)
        atomic.write_text(args.out, json.dumps({"cuts": 0, "boundaries": 0, "note": str(e)}, indent=1) + "\n")
        print(f"{Path(args.cuts).name}: no reference boundaries: nothing scored")
        return
    if mismatched:
        log.warning("%d cuts have different word sequences in the two alignments, e.g. %s",
                    len(mismatched), ", ".join(mismatched[:5]))
    atomic.write_text(args.out, json.dumps(asdict(quality), indent=1) + "\n")
    print(f"{Path(args.cuts).name}: {quality.summary()}")


if __name__ == "__main__":
    main()
