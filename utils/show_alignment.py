#!/usr/bin/env python3
"""Print a cut's alignment as Kaldi-style CTM: `utt channel start duration symbol`.

    utils/show_alignment.py exp/mono_ali/cuts_dev.jsonl.gz <cut-id> [--level word|phone|both]
        [--truth]

--level picks the aligner's words (`ali_word`), phones (`ali_phone`) or both; --truth
prints the synthesiser's true segments (`word`, `espeak_phone`) next to them when present.
Without a cut id, the first cut is shown.
"""

import argparse
import sys

from lhotse import CutSet

KEYS = {"word": ["ali_word"], "phone": ["ali_phone"], "both": ["ali_word", "ali_phone"]}
TRUTH = {"ali_word": "word", "ali_phone": "espeak_phone"}


def ctm_lines(cut_id: str, items, tag: str = "") -> list[str]:
    suffix = f" {tag}" if tag else ""
    return [f"{cut_id} 1 {i.start:.2f} {i.duration:.2f} {i.symbol}{suffix}" for i in items]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cuts")
    parser.add_argument("cut_id", nargs="?")
    parser.add_argument("--level", choices=sorted(KEYS), default="both")
    parser.add_argument("--truth", action="store_true")
    args = parser.parse_args()
    cuts = CutSet.from_file(args.cuts)
    cut = next((c for c in cuts if args.cut_id in (None, c.id)), None)
    if cut is None:
        print(f"no cut '{args.cut_id}' in {args.cuts}", file=sys.stderr)
        return 1
    alignment = cut.supervisions[0].alignment or {}
    for key in KEYS[args.level]:
        if key not in alignment:
            print(f"cut {cut.id} has no '{key}' alignment", file=sys.stderr)
            return 1
        print("\n".join(ctm_lines(cut.id, alignment[key])))
        if args.truth and TRUTH[key] in alignment:
            print("\n".join(ctm_lines(cut.id, alignment[TRUTH[key]], "(truth)")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
