#!/usr/bin/env python3
"""Which experts each phone's frames use in a DMoE acoustic model (model.encoder: dmoe),
on a set of aligned cuts: a PNG heatmap per MoE layer (phones x experts) and a joint one
(phones x expert combinations), each row the share of that phone's frames; printed: how
many of the combinations carry at least 1% of the frames, and the gate entropy per layer.
The library code is steps.am.expert_usage.

    utils/show_experts.py --model exp/am_dmoe_s1/final.pt --tree exp/tree \\
        --cuts exp/senone_ali/cuts_dev.jsonl.gz --out exp/am_dmoe_s1/experts.png
"""

import argparse
import sys

from steps.am.cut_store import CutStore
from steps.am.expert_usage import collect_usage, plot_usage, summary_lines
from steps.am.model import model_from_checkpoint
from steps.core import checkpoint as ckpt_io
from steps.tree.decision_tree import Tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="acoustic model checkpoint (final.pt)")
    parser.add_argument("--tree", required=True, help="exp/tree: the senone -> phone map")
    parser.add_argument("--cuts", required=True, help="cuts with features and senone_ali (dev)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--threshold", type=float, default=0.01,
                        help="share of frames for a combination to count as in use")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds per batch")
    args = parser.parse_args()
    model = model_from_checkpoint(ckpt_io.load(args.model))
    if model.config.encoder != "dmoe" or model.config.dmoe.combine != "gated":
        print(f"{args.model}: not a gated DMoE model (encoder {model.config.encoder!r}); "
              "nothing to show", file=sys.stderr)
        return 1
    store, skipped = CutStore.load_or_build(args.cuts, None, (), required=(), description="reading cuts")
    if skipped:
        print(f"{len(skipped)} cuts left out (first: {skipped[0][0]}: {skipped[0][1]})", file=sys.stderr)
    usage = collect_usage(model, store, Tree.load(args.tree), args.max_duration)
    print("\n".join(summary_lines(usage, args.threshold)))
    print(f"wrote {plot_usage(usage, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
