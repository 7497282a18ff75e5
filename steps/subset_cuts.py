"""The training subset of the flat-start monophone model (Kaldi's
utils/subset_data_dir.sh --shortest, as its LibriSpeech recipe does for train_mono.sh).

steps.train_mono keeps every utterance's features in memory and sees each one many
times; on LibriSpeech a few thousand utterances are enough to learn where the phones are
(steps.align then aligns every utterance with the model). `shortest` takes the N
shortest cuts with at least --min-words words (flat start learns fastest on short
utterances, but LibriSpeech's very shortest are one-word "CHAPTER ..." headings);
`random` takes N cuts drawn with a fixed seed. Ties are broken by cut id, so the subset
does not depend on the input's order.

Reads:  --cuts (fbank cuts of the training part)
Writes: --out (the subset, same cuts; the input itself is copied when N is 0 or covers it)
        <out's dir>/.<out's name>/.done  written last, with the fingerprint of the input and
                                  options: a second run with the same ones is skipped (and
                                  --out keeps its stamp, so the model trained on it is not
                                  redone; --force redoes it)

Example (from egs/librispeech/s5):
  python -m steps.subset_cuts --cuts data/fbank/librispeech_cuts_train.jsonl.gz --num 4000 \\
      --out data/fbank/librispeech_cuts_train_4000short.jsonl.gz
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from pathlib import Path

from lhotse import CutSet

from steps.core import atomic
from steps.core.log import setup_logging

log = logging.getLogger(__name__)


def select(cuts: list, num: int, strategy: str, min_words: int = 1, seed: int = 1) -> list:
    """The cuts of the subset, in the input's order."""
    if num <= 0 or num >= len(cuts):
        return list(cuts)
    words = {c.id: len(" ".join(s.text or "" for s in c.supervisions).split()) for c in cuts}
    eligible = [c for c in cuts if words[c.id] >= min_words]
    if len(eligible) < num:  # too few long enough: top up with the rest
        eligible += [c for c in cuts if words[c.id] < min_words]
    if strategy == "shortest":
        chosen = sorted(eligible, key=lambda c: (c.duration, c.id))[:num]
    else:
        chosen = random.Random(seed).sample(sorted(eligible, key=lambda c: c.id), num)
    keep = {c.id for c in chosen}
    return [c for c in cuts if c.id in keep]


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, type=Path)
    parser.add_argument("--num", type=int, required=True, help="cuts in the subset (0: all)")
    parser.add_argument("--strategy", choices=["shortest", "random"], default="shortest")
    parser.add_argument("--min-words", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--force", action="store_true", help="redo even if done with the same inputs")
    args = parser.parse_args(argv)
    setup_logging()
    marker_dir = args.out.parent / f".{args.out.name}"
    fingerprint = atomic.inputs_fingerprint([args.cuts], num=args.num, strategy=args.strategy,
                                            min_words=args.min_words, seed=args.seed)
    if atomic.up_to_date(marker_dir, fingerprint, args.force, [args.out], what=str(args.out)):
        return 0
    atomic.clear_done(marker_dir)
    cuts = list(CutSet.from_file(args.cuts))
    subset = select(cuts, args.num, args.strategy, args.min_words, args.seed)
    with atomic.atomic_path(args.out) as tmp:
        CutSet.from_cuts(subset).to_file(tmp)
    atomic.mark_done(marker_dir, {"num_cuts": len(subset)}, fingerprint)
    hours = sum(c.duration for c in subset) / 3600
    log.info("%s: %d of %d cuts (%s), %.2f h -> %s", args.cuts, len(subset), len(cuts),
             args.strategy if len(subset) < len(cuts) else "all", hours, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
