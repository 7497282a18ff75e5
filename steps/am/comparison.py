"""Measurements for comparing acoustic-model encoders (the DMoE comparison of issue 21):
frame accuracy of the main head on senones and on monophones, WER with a bootstrap
interval, parameter counts and CPU time per training step.

- Monophone frame accuracy: the predicted senone and the reference senone mapped to their
  phone (steps.am.expert_usage.senone_phone_classes) and compared.
- WER interval: utterances resampled with replacement (percentile bootstrap, 1000 draws,
  fixed seed); the WER of a draw is its errors over its reference words.
- CPU time per step: forward, loss (the run's own objective), backward and an AdamW update
  on the first training batches (the run's batch size), one torch thread, process CPU
  seconds (time.process_time) per step after two untimed steps; the median of 3 repeats.
  The model is rebuilt from the checkpoint, so timing never changes a trained run.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from steps.am.config import config_from_checkpoint
from steps.am.cut_store import CutStore
from steps.am.data import AmDataset, sequential_batches
from steps.am.dmoe import moe_layers
from steps.am.expert_usage import senone_phone_classes
from steps.am.losses import head_frames, loss_terms, required_levels, total_loss
from steps.am.model import AcousticModel, count_parameters, model_from_checkpoint
from steps.scoring import tables
from steps.scoring.bootstrap import RatioItems, bootstrap_interval
from steps.scoring.wer import read_text, score
from steps.tree.decision_tree import Tree


@torch.no_grad()
def frame_accuracies(model: AcousticModel, store: CutStore, tree: Tree, max_duration: float,
                     device: torch.device | str = "cpu") -> dict:
    """{"senone": acc, "phone": acc, "frames": n} of the main head over the frames with a
    senone label."""
    of_senone = torch.from_numpy(senone_phone_classes(tree)[0])
    model.eval().to(device)
    dataset = AmDataset(store, model.subsampling, ())
    right_senone = right_phone = total = 0
    for cuts in sequential_batches(store.cuts, max_duration):
        batch = dataset[CutSet.from_cuts(cuts)].to(device)
        out = model(batch.feats, batch.feat_lens, with_aux=False)
        ref = batch.senone[out.mask].cpu()
        valid = ref >= 0
        pred = out.main.argmax(-1).cpu()[valid]
        ref = ref[valid]
        right_senone += int((pred == ref).sum())
        right_phone += int((of_senone[pred] == of_senone[ref]).sum())
        total += int(valid.sum())
    return {"senone": right_senone / max(1, total), "phone": right_phone / max(1, total), "frames": total}


@dataclass
class WerInterval:
    wer: float  # %
    low: float
    high: float
    errors: int
    words: int
    utterances: int


def bootstrap_wer(decode_dir: str | Path, draws: int = 1000, level: float = 0.95,
                  seed: int = 0) -> WerInterval:
    """WER of decode_dir/hyp.txt against decode_dir/text, with a percentile bootstrap
    interval over utterances."""
    decode_dir = Path(decode_dir)
    refs, hyps = read_text(decode_dir / "text").texts, read_text(decode_dir / "hyp.txt").texts
    result = score(refs, hyps)
    errors = np.array([u.errors for u in result.utterances], dtype=np.float64)
    words = np.array([len(u.ref) for u in result.utterances], dtype=np.float64)
    if not len(words) or words.sum() == 0:
        raise ValueError(f"{decode_dir}: no reference words to score")
    interval = bootstrap_interval(RatioItems(errors, words), draws, level, seed).scaled(100)
    return WerInterval(interval.value, interval.low, interval.high, int(errors.sum()), int(words.sum()),
                       len(words))


def cpu_seconds_per_step(checkpoint: dict, store: CutStore, steps: int = 20, repeats: int = 3,
                         seed: int = 0) -> float:
    """Median over repeats of the process CPU seconds of one training step (see the module
    docstring) of a model built like the checkpoint's, on store's first batches."""
    config = checkpoint["config"]
    loss = config_from_checkpoint(config).loss  # with the loss weights of an older checkpoint
    model = model_from_checkpoint(checkpoint)  # trained weights; they are not saved back
    model.train()
    model.set_epoch(10 ** 6)  # stage two: the cap (a stage-one cost only) is not timed
    head_levels = tuple(h.level for h in model.config.aux_heads)
    levels = required_levels(loss.objective, head_levels)
    dataset = AmDataset(store, model.subsampling, levels)
    batches = list(sequential_batches(store.cuts, float(config.get("data", {}).get("max_duration", 10))))
    if len(batches) < steps + 2:
        raise ValueError(f"{len(batches)} batches, fewer than the {steps} + 2 to time")
    batches = [dataset[CutSet.from_cuts(b)] for b in batches[:steps + 2]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    torch.manual_seed(seed)
    times = []
    for _ in range(repeats):
        for i, batch in enumerate(batches):
            if i == 2:
                start = time.process_time()
            out = model(batch.feats, batch.feat_lens,
                        aux_frames=head_frames(batch, head_levels, loss.head_frame_share))
            terms = loss_terms(loss, head_levels, out, batch)
            optimizer.zero_grad(set_to_none=True)
            total_loss(terms).backward()
            optimizer.step()
        times.append((time.process_time() - start) / steps)
    return statistics.median(times)


def parameters(model: AcousticModel) -> dict:
    """Encoder, test-time model (encoder + main head) and all (with the auxiliary heads)."""
    encoder = count_parameters(model.input_layer) + count_parameters(model.layers)
    return {"encoder": encoder, "test_time": encoder + count_parameters(model.main_head),
            "all": count_parameters(model), "moe_layers": len(moe_layers(model))}


def describe_encoder(model: AcousticModel) -> str:
    c = model.config
    if c.encoder != "dmoe":
        return c.encoder
    d = c.dmoe
    if d.combine == "concat":
        kind = f"concat {d.num_experts}"
    elif d.num_experts == 1:
        kind = "single expert"
    else:
        kind = f"DMoE {d.num_experts}" + (f" top-{d.top_k}" if d.top_k else "")
        kind += f", cap {d.cap:g} for {d.cap_epochs} ep." if d.cap > 0 and d.cap_epochs else ""
    return f"{kind} ({d.expert} dim {d.expert_dim}) x {d.num_moe_layers} layers"


def render_table(rows: list[dict]) -> str:
    """Markdown: one row per run (keys as measure_run in steps.compare_encoders gives)."""
    header = ["run", "objective", "encoder", "params (test-time / all)", "dev frame acc. senone",
              "dev frame acc. monophone", "dev WER [95% CI]", "test WER [95% CI]", "CPU s / step"]

    def wer(w):
        return "missing" if w is None else f"{w.wer:.2f} [{w.low:.1f}, {w.high:.1f}]"

    lines = tables.markdown_table(header, [
        [r["name"], r["objective"], r["encoder"], f"{r['params']['test_time']:,} / {r['params']['all']:,}",
         f"{100 * r['acc']['senone']:.1f}%", f"{100 * r['acc']['phone']:.1f}%", wer(r["dev"]), wer(r["test"]),
         f"{r['cpu_step']:.3f}"] for r in rows])
    return "\n".join(lines) + "\n"


def render_summary(rows: list[dict]) -> str:
    """Markdown: the runs grouped by name without its `_s<seed>` suffix, mean ± sample std
    over the seeds of frame accuracies (%), WERs and CPU seconds per step."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(re.sub(r"_s\d+$", "", r["name"]), []).append(r)
    header = ["system", "objective", "encoder", "seeds", "params (test-time)", "dev frame acc. senone (%)",
              "dev frame acc. monophone (%)", "dev WER", "test WER", "CPU s / step"]
    cells = []
    for name, group in groups.items():
        first = group[0]
        acc = {k: tables.mean_std([100 * r["acc"][k] for r in group], "missing") for k in ("senone", "phone")}
        wer = {part: tables.mean_std([r[part].wer for r in group if r[part] is not None], "missing")
               for part in ("dev", "test")}
        cells.append([name, first["objective"], first["encoder"], str(len(group)),
                      f"{first['params']['test_time']:,}", acc["senone"], acc["phone"], wer["dev"], wer["test"],
                      f"{statistics.fmean(r['cpu_step'] for r in group):.3f}"])
    return "\n".join(tables.markdown_table(header, cells)) + "\n"
