"""Measure trained acoustic models side by side (the encoder comparison of
egs/synth/s5/local/compare_encoders.sh): parameters, dev frame accuracy of the main head on
senones and monophones, dev and test WER with 95% bootstrap intervals, CPU seconds per
training step (steps.am.comparison says how each is measured).

Reads:  --runs  exp dirs of steps.train_am, each with final.pt and decode_{dev,test}/
                (text, hyp.txt from steps.decode; a missing decode is reported as missing)
        --tree  the tree (exp/tree) for the senone -> phone map
        --dev-cuts   cuts with senone_ali (exp/senone_ali/cuts_dev.jsonl.gz)
        --train-cuts the training cuts (data/kd/<corpus>_cuts_train.jsonl.gz) for the timing
Writes: --out   a Markdown table, one row per run, and (runs named <system>_s<seed>)
                one per system with mean ± std over its seeds; the figures as JSON in <out>.json

    python -m steps.compare_encoders --runs exp/encoders/am_baseline_dnn_s1 \\
        exp/encoders/am_baseline_dmoe_s1 --tree exp/tree \\
        --dev-cuts exp/senone_ali/cuts_dev.jsonl.gz --train-cuts data/kd/synth_cuts_train.jsonl.gz \\
        --out exp/encoders/compare.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
from pathlib import Path

import torch

from steps.am.comparison import (
    bootstrap_wer,
    cpu_seconds_per_step,
    describe_encoder,
    frame_accuracies,
    parameters,
    render_summary,
    render_table,
)
from steps.am.config import config_from_checkpoint
from steps.am.cut_store import CutStore
from steps.am.losses import required_levels
from steps.am.model import model_from_checkpoint
from steps.core import checkpoint as ckpt_io
from steps.core.atomic import write_text
from steps.core.log import setup_logging
from steps.tree.decision_tree import Tree

log = logging.getLogger(__name__)


def measure_run(run: Path, dev: CutStore, train: CutStore, tree: Tree, timing_steps: int) -> dict:
    checkpoint = ckpt_io.load(run / "final.pt")
    model = model_from_checkpoint(checkpoint)
    config = checkpoint["config"]
    row = {"name": run.name, "objective": config["loss"]["objective"],
           "encoder": describe_encoder(model), "params": parameters(model),
           "acc": frame_accuracies(model, dev, tree, 60.0)}
    for part in ("dev", "test"):
        decode = run / f"decode_{part}"
        if (decode / "hyp.txt").is_file() and (decode / "text").is_file():
            row[part] = bootstrap_wer(decode)
        else:
            log.warning("%s: no decode of %s (%s)", run, part, decode)
            row[part] = None
    row["cpu_step"] = cpu_seconds_per_step(checkpoint, train, timing_steps)
    log.info("%s: %s", run, {k: v for k, v in row.items() if k != "name"})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="steps.train_am exp dirs")
    parser.add_argument("--tree", required=True)
    parser.add_argument("--dev-cuts", required=True)
    parser.add_argument("--train-cuts", required=True)
    parser.add_argument("--data-cache", default=None, help="steps.am.data cache dir (as train_am's)")
    parser.add_argument("--timing-steps", type=int, default=20)
    parser.add_argument("--out", required=True, help="Markdown table (and <out>.json)")
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(1)
    runs = [Path(r) for r in args.runs]
    missing = [str(r) for r in runs if not (r / "final.pt").is_file()]
    if missing:
        log.error("no final.pt in %s", ", ".join(missing))
        return 1
    tree = Tree.load(args.tree)
    dev, _ = CutStore.load_or_build(args.dev_cuts, args.data_cache, (), required=(),
                                    description="reading dev cuts")
    levels = sorted({lv for r in runs
                     for lv in required_levels(*_objective_and_heads(ckpt_io.load(r / "final.pt")))})
    train, skipped = CutStore.load_or_build(args.train_cuts, args.data_cache, tuple(levels),
                                            description="reading training cuts")
    if skipped:
        log.info("%d training cuts left out of the timing batches", len(skipped))
    rows = [measure_run(r, dev, train, tree, args.timing_steps) for r in runs]
    out = Path(args.out)
    text = "Per run (WER: 95% bootstrap interval over utterances):\n\n" + render_table(rows)
    if len(rows) > len({re.sub(r"_s\d+$", "", r["name"]) for r in rows}):
        text += "\nMean ± sample std over seeds:\n\n" + render_summary(rows)
    write_text(out, text)
    write_text(out.with_suffix(out.suffix + ".json"),
               json.dumps([{k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
                            for k, v in r.items()} for r in rows], indent=1) + "\n")
    log.info("wrote %s", out)
    return 0


def _objective_and_heads(checkpoint: dict) -> tuple[str, tuple[str, ...]]:
    config = config_from_checkpoint(checkpoint["config"])
    return config.loss.objective, config.head_levels


if __name__ == "__main__":
    sys.exit(main())
