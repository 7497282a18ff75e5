#!/usr/bin/env python3
"""Show the teacher soft labels stored on one cut, for one level (steps.dump_soft_labels).

Prints one line per token: its frames [start, end), the reference unit, the reference's
rank in the teacher's top-k (- if absent), and the top-k entries as symbol:probability.
With --png, also draws the per-frame soft labels as a heat map (rows: the units that occur
in the cut's top-k lists, columns: frames; silence frames empty; token boundaries and the
reference units marked).

    utils/show_soft_labels.py --cuts data/kd/synth_cuts_train.jsonl.gz --level phone \\
        [--cut-id ID | --index 0] [--tokens exp/lm_phone/tokens.txt] [--png phone.png]

Symbols come from --tokens, else from tokens.txt next to the teacher named in the cut's
kd_info, else ids are shown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from lhotse import CutSet

from steps.kd import soft_labels as sl  # noqa: E402
from steps.lm.tokens import read_tokens


def find_cut(cuts_path: str, cut_id: str | None, index: int):

    for i, cut in enumerate(CutSet.from_file(cuts_path)):
        if (cut_id is not None and cut.id == cut_id) or (cut_id is None and i == index):
            return cut
    raise SystemExit(f"{cuts_path}: no cut " + (f"with id {cut_id}" if cut_id else f"number {index}"))


def symbols_for(cut, level: str, tokens_path: str | None) -> list[str] | None:

    if tokens_path:
        return read_tokens(tokens_path)
    info = cut.custom.get(sl.INFO_FIELD, {}) if cut.custom else {}
    teacher = (info.get("teachers") or {}).get(level)
    if teacher:
        candidate = Path(teacher).parent / "tokens.txt"
        if candidate.exists():
            return read_tokens(candidate)
    return None


def format_table(labels: sl.SoftLabels, symbols: list[str] | None) -> list[str]:
    def name(unit: int) -> str:
        return symbols[unit] if symbols and 0 <= unit < len(symbols) else str(unit)

    lines = [f"{'#':>4} {'frames':>13} {'token':>10} {'rank':>4}  top-k (symbol:prob)"]
    for i in range(len(labels)):
        start, end = labels.spans[i]
        ids = labels.ids[i].tolist()
        rank = str(ids.index(int(labels.tokens[i])) + 1) if int(labels.tokens[i]) in ids else "-"
        entries = " ".join(f"{name(u)}:{float(p):.3f}" for u, p in zip(ids, labels.probs[i]))
        lines.append(f"{i:>4} {f'[{start}, {end})':>13} {name(int(labels.tokens[i])):>10} {rank:>4}  {entries}")
    return lines


def draw(labels: sl.SoftLabels, num_frames: int, symbols: list[str] | None, title: str,
         path: str) -> None:
    import matplotlib  # only drawing needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # only drawing needs it

    units = sorted(set(labels.ids.reshape(-1).tolist()) | set(labels.tokens.tolist()))
    row = {u: r for r, u in enumerate(units)}
    image = np.full((len(units), num_frames), np.nan)
    targets = sl.expand_to_frames(labels, num_frames)
    for t in np.flatnonzero(targets.mask):
        image[:, t] = 0.0
        for u, p in zip(targets.ids[t], targets.probs[t]):
            image[row[int(u)], t] = p
    height = max(3.0, 0.18 * len(units) + 1.5)
    fig, ax = plt.subplots(figsize=(max(8.0, num_frames / 25), height))
    shown = ax.imshow(image, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                      vmin=0, vmax=1)
    names = [symbols[u] if symbols and u < len(symbols) else str(u) for u in units]
    ax.set_yticks(range(len(units)))
    ax.set_yticklabels(names, fontsize=6)
    for i, (start, end) in enumerate(labels.spans):
        ax.axvline(start - 0.5, color="white", linewidth=0.4)
        r = row[int(labels.tokens[i])]
        ax.plot([start - 0.5, end - 0.5], [r, r], color="red", linewidth=1.0)
    ax.set_xlabel("frame (10 ms)")
    ax.set_title(title + "  (red: reference token)", fontsize=9)
    fig.colorbar(shown, ax=ax, label="probability")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True)
    parser.add_argument("--level", required=True, choices=sl.LEVELS)
    parser.add_argument("--cut-id", default=None)
    parser.add_argument("--index", type=int, default=0, help="the cut's position (without --cut-id)")
    parser.add_argument("--tokens", default=None, help="the level's tokens.txt")
    parser.add_argument("--png", default=None, help="also draw the soft labels into this file")
    args = parser.parse_args(argv)
    cut = find_cut(args.cuts, args.cut_id, args.index)
    if not sl.has_soft_labels(cut, args.level):
        raise SystemExit(f"cut {cut.id} has no {args.level} soft labels")
    labels = sl.load_soft_labels(cut, args.level)
    num_frames = (len(cut.load_custom("senone_ali")) if cut.has_custom("senone_ali")
                  else int(labels.spans[-1, 1]) if len(labels) else 0)
    symbols = symbols_for(cut, args.level, args.tokens)
    info = cut.custom.get(sl.INFO_FIELD, {})
    covered = int((labels.spans[:, 1] - labels.spans[:, 0]).sum()) if len(labels) else 0
    title = (f"cut {cut.id}  level {args.level}: {len(labels)} tokens, {num_frames} frames "
             f"({covered} with a target), top-k {labels.top_k}, T={info.get('temperature', '?')}")
    print(title)
    print("\n".join(format_table(labels, symbols)))
    if args.png:
        draw(labels, num_frames, symbols, title, args.png)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
