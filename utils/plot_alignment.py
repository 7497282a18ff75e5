#!/usr/bin/env python3
"""Draw a cut's alignment over its spectrogram (fbank) as a PNG.

    utils/plot_alignment.py exp/mono_ali/cuts_dev.jsonl.gz <cut-id> out.png

Aligned word boundaries are drawn as solid lines with the words above the image,
aligned phone boundaries as thin lines with the phones below; the synthesiser's true
word starts, when the cut has them, as dashed lines.
"""

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from lhotse import CutSet  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cuts")
    parser.add_argument("cut_id")
    parser.add_argument("png")
    args = parser.parse_args()
    cuts = CutSet.from_file(args.cuts)
    cut = next((c for c in cuts if c.id == args.cut_id), None)
    if cut is None:
        print(f"no cut '{args.cut_id}' in {args.cuts}", file=sys.stderr)
        return 1
    feats = cut.load_features()
    alignment = cut.supervisions[0].alignment or {}
    duration = feats.shape[0] * cut.frame_shift
    fig, ax = plt.subplots(figsize=(max(8.0, duration * 3), 4))
    # alignment times are on the recording's timeline (steps.data.ali_times): so is the x axis
    ax.imshow(feats.T, origin="lower", aspect="auto", extent=(cut.start, cut.start + duration, 0, feats.shape[1]),
              cmap="magma")
    top = feats.shape[1]
    for item in alignment.get("ali_phone", []):
        ax.axvline(item.start, color="white", linewidth=0.5, alpha=0.6)
        ax.text(item.start + item.duration / 2, 2, item.symbol, color="white", fontsize=7, ha="center")
    for item in alignment.get("ali_word", []):
        ax.axvline(item.start, color="cyan", linewidth=1.5)
        ax.axvline(item.end, color="cyan", linewidth=1.5)
        ax.text(item.start + item.duration / 2, top + 1, item.symbol, color="black", fontsize=8, ha="center")
    for item in alignment.get("word", []):
        ax.axvline(item.start, color="lime", linewidth=1.0, linestyle="--")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(cut.id, pad=14)
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
