"""Which experts the frames of each phone use in a DMoE acoustic model (the analysis of
Eigen et al. 2013, section 4.2), and the senone -> phone map it and the frame accuracies
need.

A frame's expert in a MoE layer is the expert with its largest gate; its combination is
the tuple of those over the MoE layers (E1 x E2 x ... combinations). The phone of a frame
is that of its reference senone (the tree's root the senone's leaf hangs under; a root
shared by several phones gives the class "A/B"). Silence frames are counted like any
other phone.

    usage = collect_usage(model, store, tree, max_duration=60)
    print("\\n".join(summary_lines(usage)))      # combinations in use, gate entropy
    plot_usage(usage, "experts.png")           # per layer and joint heatmaps, rows = phones

Gate entropy: the mean over frames of H(g_t) (nats; 0 = one expert takes the frame, log E
= even spread), and the entropy of the mean gate over all frames (log E = every expert
used equally overall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from tqdm import tqdm

from steps.am.cut_store import CutStore
from steps.am.data import AmDataset, sequential_batches
from steps.am.dmoe import moe_layers
from steps.am.model import AcousticModel
from steps.tree.decision_tree import Tree


def senone_phone_classes(tree: Tree) -> tuple[np.ndarray, list[str]]:
    """(class id of every senone [S] (-1: under no root), class names): a class is the
    phone set of a tree root, one phone in a tree with one root per phone."""
    classes: list[tuple[int, ...]] = []
    of_senone = np.full(tree.num_senones, -1, dtype=np.int64)
    for root in tree.roots:
        phones = tuple(sorted(root.phones))
        if phones not in classes:
            classes.append(phones)
        for state in root.states:
            for senone in tree.senones_of(phones[0], state):
                of_senone[senone] = classes.index(phones)
    names = ["/".join(tree.phones[p] for p in c) for c in classes]
    return of_senone, names


@dataclass
class ExpertUsage:
    phones: list[str]  # row names
    num_experts: list[int]  # per MoE layer
    counts: list[np.ndarray] = field(default_factory=list)  # per layer [P, E]: frames by top expert
    joint: np.ndarray | None = None  # [P, prod(E)]: frames by combination (row-major over layers)
    entropy_sum: list[float] = field(default_factory=list)  # per layer: sum over frames of H(g_t)
    gate_sum: list[np.ndarray] = field(default_factory=list)  # per layer [E]: sum of gates
    frames: int = 0

    def mean_entropy(self, layer: int) -> float:
        return self.entropy_sum[layer] / max(1, self.frames)

    def entropy_of_mean_gate(self, layer: int) -> float:
        p = self.gate_sum[layer] / max(1e-12, self.gate_sum[layer].sum())
        return float(-(p[p > 0] * np.log(p[p > 0])).sum())

    def combinations_in_use(self, threshold: float = 0.01) -> int:
        """How many combinations carry at least `threshold` of all frames."""
        return int((self.joint.sum(0) >= threshold * max(1, self.frames)).sum())

    def combination_names(self) -> list[str]:
        return ["-".join(str(i) for i in combo) for combo in np.ndindex(*self.num_experts)]


@torch.no_grad()
def collect_usage(model: AcousticModel, store: CutStore, tree: Tree, max_duration: float,
                  device: torch.device | str = "cpu", progress: bool = True) -> ExpertUsage:
    """Runs the model (eval mode: no cap) over the store's cuts and counts, per phone, the
    frames of every expert and combination (frames with a senone label only)."""

    layers = moe_layers(model)
    if not layers:
        raise ValueError("the model has no MoE layer (model.encoder is "
                         f"{model.config.encoder!r}, not dmoe)")
    of_senone, names = senone_phone_classes(tree)
    if model.num_senones > len(of_senone):
        raise ValueError(f"the model has {model.num_senones} senones, the tree {len(of_senone)}")
    model.eval().to(device)
    for layer in layers:
        layer.record = True
    sizes = [layer.config.num_experts for layer in layers]
    usage = ExpertUsage(names, sizes, [np.zeros((len(names), e), dtype=np.int64) for e in sizes],
                        np.zeros((len(names), math.prod(sizes)), dtype=np.int64),
                        [0.0] * len(layers), [np.zeros(e) for e in sizes])
    dataset = AmDataset(store, model.subsampling, ())
    batches = list(sequential_batches(store.cuts, max_duration))
    try:
        for cuts in tqdm(batches, desc="expert usage", disable=not progress, mininterval=5):
            batch = dataset[CutSet.from_cuts(cuts)].to(device)
            out = model(batch.feats, batch.feat_lens, with_aux=False)
            senone = batch.senone[out.mask]
            valid = senone >= 0
            phone = torch.from_numpy(of_senone)[senone.clamp(min=0).cpu()]
            valid &= phone >= 0
            phone = phone[valid].numpy()
            combo = np.zeros(len(phone), dtype=np.int64)
            for i, layer in enumerate(layers):
                g = layer.last_gates[out.mask][valid].cpu().double()
                top = g.argmax(-1).numpy()
                np.add.at(usage.counts[i], (phone, top), 1)
                combo = combo * sizes[i] + top
                usage.entropy_sum[i] += float(-(g * g.clamp(min=1e-30).log()).sum())
                usage.gate_sum[i] += g.sum(0).numpy()
            np.add.at(usage.joint, (phone, combo), 1)
            usage.frames += len(phone)
    finally:
        for layer in layers:
            layer.record, layer.last_gates = False, None
    return usage


def summary_lines(usage: ExpertUsage, threshold: float = 0.01) -> list[str]:
    total = math.prod(usage.num_experts)
    shape = "x".join(map(str, usage.num_experts))
    lines = [f"frames: {usage.frames} (dev, with a senone label)",
             f"combinations with >= {100 * threshold:g}% of frames: "
             f"{usage.combinations_in_use(threshold)} of {total} ({shape})"]
    for i, e in enumerate(usage.num_experts):
        share = usage.counts[i].sum(0) / max(1, usage.frames)
        lines.append(f"MoE layer {i + 1}: gate entropy {usage.mean_entropy(i):.3f} nats per frame, "
                     f"{usage.entropy_of_mean_gate(i):.3f} of the mean gate (max log {e} = "
                     f"{math.log(e):.3f}); top-expert shares " + " ".join(f"{s:.2f}" for s in share))
    return lines


def plot_usage(usage: ExpertUsage, path: str | Path, min_frames: int = 1) -> Path:
    """PNG: one heatmap per MoE layer (phones x experts) and the joint one (phones x
    combinations); each row is the share of that phone's frames (rows sum to 1); phones
    with fewer than min_frames frames are left out."""
    import matplotlib  # only drawing needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # only drawing needs it

    rows = [i for i in range(len(usage.phones)) if usage.joint[i].sum() >= min_frames]
    names = [f"{usage.phones[i]} ({int(usage.joint[i].sum())})" for i in rows]
    panels = [(f"MoE layer {i + 1}", c[rows], [str(e) for e in range(c.shape[1])])
              for i, c in enumerate(usage.counts)]
    panels.append(("joint (" + "-".join(f"L{i + 1}" for i in range(len(usage.counts))) + ")",
                   usage.joint[rows], usage.combination_names()))
    widths = [max(1.5, 0.3 * len(p[2])) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths) + 2.5, 0.22 * len(rows) + 1.8),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (title, counts, labels) in zip(axes[0], panels):
        share = counts / np.maximum(1, counts.sum(1, keepdims=True))
        image = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(names if ax is axes[0][0] else [], fontsize=6)
        ax.set_xlabel("expert" if title.startswith("MoE") else "combination", fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.02, label="share of the phone's frames")
    fig.suptitle(f"expert usage per phone ({usage.frames} frames; "
                 f"{usage.combinations_in_use()} of {usage.joint.shape[1]} combinations with >= 1%)",
                 fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
