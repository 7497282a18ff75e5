"""Acoustic-model training speed per system on synthetic data shaped like the real thing.

Makes (once, under --work-dir) cuts like data/kd/<corpus>_cuts_train.jsonl.gz: fbank-like
features (LilcomChunkyWriter), `senone_ali`, and soft labels at the three levels
(NumpyHdf5Writer, steps.kd.soft_labels), plus dev cuts and exp/lm_<level>/tokens.txt. The
features carry the senones (a mean per senone plus noise), so the models do learn.

Then, for every system config (conf/am_{baseline,li,aux_senone,aux_phone,aux_subword,hier}.yaml),
times one update on the same batches (after warm-up steps; the systems take turns, and
per-step medians are reported, so that other jobs on a shared machine hit them alike) and
prints the training throughput in input frames per second of wall and of CPU time, and the
step time relative to the baseline; with --full it also runs the whole steps.train_am
program per system and prints its wall time.

    utils/bench/bench_am.py --work-dir /tmp/bench_am --hours 2.5 [--full] [--threads 2]
                            [--recipe egs/synth/s5]

With --recipe (a recipe trained through its teachers, stage 6), the output sizes are that
recipe's: senones from exp/tree/senones.txt, phone and subword units from
exp/lm_<level>/tokens.txt. The step ratio depends on them: the auxiliary heads' output
layers grow with the units, the encoder does not.

make_synthetic_am_data() is also what the tests use for their tiny data.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from steps.am.config import load_am_config
from steps.am.cut_store import CutStore
from steps.am.data import AmDataset, make_sampler
from steps.am.distributed import World
from steps.am.losses import required_levels
from steps.am.model import AcousticModel, parameter_summary
from steps.am.sizes import resolve_sizes
from steps.am.training import build_optimizer, loss_step
from steps.train.loop import update
from steps.toy.am_data import make_synthetic_am_data

SYSTEMS = ("baseline", "li", "aux_senone", "aux_phone", "aux_subword", "hier")
CONF_DIR = Path(__file__).resolve().parents[2] / "egs" / "synth" / "s5" / "conf"


# ------------------------------------------------------------------ synthetic data


# ------------------------------------------------------------------ timing


class SystemTimer:
    """One system's model and optimizer on a fixed list of batches, timed step by step."""

    def __init__(self, config_path: Path, store, overrides: list[Path], lm_dir: Path, num_batches: int,
                 seed: int = 1):

        self.config = load_am_config(config_path, overrides)
        num_senones, aux_units, _, _ = resolve_sizes(self.config, store, None, lm_dir)
        torch.manual_seed(seed)
        self.model = AcousticModel(store.feature_dim, num_senones, self.config.model, aux_units)
        self.model.set_normalisation(*store.mean_std())
        self.optimizer = build_optimizer(self.model, self.config.train)
        self.parameters = parameter_summary(self.model)
        levels = required_levels(self.config.loss.objective, self.config.head_levels)
        dataset = AmDataset(store, self.config.model.subsampling, levels)
        self.batches = []
        for cuts in make_sampler(store.cuts, self.config.data, seed):
            self.batches.append(dataset[cuts])
            if len(self.batches) == num_batches:
                break
        self.wall, self.cpu, self.frames = [], [], []

    def run(self, indices) -> None:

        self.model.train()
        for i in indices:
            batch = self.batches[i % len(self.batches)]
            wall, cpu = time.perf_counter(), time.process_time()
            out = loss_step(self.model, batch, self.config, World())
            update(self.optimizer, list(self.model.parameters()), out.loss, self.config.train.grad_clip, out.bad)
            self.wall.append(time.perf_counter() - wall)
            self.cpu.append(time.process_time() - cpu)
            self.frames.append(batch.num_frames)

    def summary(self) -> dict:
        # per-step medians: robust to other jobs on a shared machine
        wall = float(np.median(np.array(self.wall) / np.array(self.frames)))
        cpu = float(np.median(np.array(self.cpu) / np.array(self.frames)))
        mean_frames = float(np.mean(self.frames))
        return {"seconds_per_step": wall * mean_frames, "cpu_seconds_per_step": cpu * mean_frames,
                "frames_per_second": 1.0 / wall, "frames_per_cpu_second": 1.0 / cpu,
                "parameters": self.parameters, "steps": len(self.wall)}


def recipe_sizes(recipe: Path) -> tuple[int, int, int]:
    """(senones, phone units, subword units) of a recipe trained through stage 6."""
    files = [recipe / "exp" / "tree" / "senones.txt"] + \
            [recipe / "exp" / f"lm_{level}" / "tokens.txt" for level in ("phone", "subword")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"--recipe {recipe}: not trained through stage 6 ({', '.join(missing)} missing)")
    senones, phones, subwords = (sum(1 for line in f.open() if line.strip()) for f in files)
    return senones, phones, subwords


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="/tmp/lm2am_bench_am")
    parser.add_argument("--hours", type=float, default=2.5, help="synthetic training speech")
    parser.add_argument("--num-senones", type=int, default=1500)
    parser.add_argument("--num-subwords", type=int, default=500)
    parser.add_argument("--num-phones", type=int, default=40)
    parser.add_argument("--recipe", help="take the three sizes from this trained recipe")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--conf-dir", default=str(CONF_DIR))
    parser.add_argument("--override", action="append", default=[], help="e.g. conf/am_tiny.yaml")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--steps", type=int, default=1, help="steps per system and round")
    parser.add_argument("--rounds", type=int, default=24, help="rounds of turns among the systems")
    parser.add_argument("--batches", type=int, default=12, help="distinct batches per system")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also run steps.train_am per system")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    if args.recipe:
        args.num_senones, args.num_phones, args.num_subwords = recipe_sizes(Path(args.recipe))
    print(f"sizes{' of ' + args.recipe if args.recipe else ''}: {args.num_senones} senones, "
          f"{args.num_phones} phones, {args.num_subwords} subwords, teacher top-{args.top_k}")
    # about 2.7 s per synthetic utterance
    num_cuts = max(10, int(args.hours * 3600 / 2.7))
    started = time.time()
    paths = make_synthetic_am_data(work / "data", num_cuts=num_cuts, num_dev=max(5, num_cuts // 20),
                                   num_senones=args.num_senones, num_subwords=args.num_subwords,
                                   num_phones=args.num_phones, top_k=args.top_k)
    print(f"data: {num_cuts} training cuts in {work / 'data'} ({time.time() - started:.1f} s)")
    started = time.time()
    store, _ = CutStore.load_or_build(paths["train"], work / "am_data_cache", ("senone", "phone", "subword"))
    print(f"store: {store.num_frames} frames ({store.num_frames / 360000:.2f} h) read in "
          f"{time.time() - started:.1f} s")
    conf = Path(args.conf_dir)
    timers = {system: SystemTimer(conf / f"am_{system}.yaml", store, [Path(o) for o in args.override],
                                  paths["lm_dir"], args.batches) for system in args.systems}
    for timer in timers.values():  # warm-up, not timed
        timer.run(range(args.warmup))
        timer.wall, timer.cpu, timer.frames = [], [], []
    # the systems take turns, a few steps each, so that load from other jobs hits them alike
    for round_index in range(args.rounds):
        for timer in timers.values():
            timer.run(range(round_index * args.steps, (round_index + 1) * args.steps))
    results = {system: timer.summary() for system, timer in timers.items()}
    base = results.get("baseline", {})
    print(f"\ntraining throughput, {args.threads} threads, {args.steps * args.rounds} timed steps per system "
          f"(load average now {os.getloadavg()[0]:.1f}: on a shared machine trust the CPU-time columns)")
    print(f"{'system':<12} {'params':>9} {'ms/step':>9} {'frames/s':>10} {'vs base':>8} "
          f"{'cpu ms/step':>12} {'frames/cpu-s':>13} {'vs base':>8}")
    for system, r in results.items():
        ratio = f"{r['seconds_per_step'] / base['seconds_per_step']:.3f}x" if base else "-"
        cpu_ratio = f"{r['cpu_seconds_per_step'] / base['cpu_seconds_per_step']:.3f}x" if base else "-"
        print(f"{system:<12} {sum(r['parameters'].values()):>9} {1000 * r['seconds_per_step']:>9.1f} "
              f"{r['frames_per_second']:>10.0f} {ratio:>8} {1000 * r['cpu_seconds_per_step']:>12.1f} "
              f"{r['frames_per_cpu_second']:>13.0f} {cpu_ratio:>8}")
    if args.full:
        print("\nfull training runs (steps.train_am, seed 1)")
        for system in args.systems:
            exp = work / f"am_{system}_s1"
            command = [sys.executable, "-m", "steps.train_am", "--config", str(conf / f"am_{system}.yaml"),
                       "--cuts", str(paths["train"]), "--dev-cuts", str(paths["dev"]),
                       "--exp-dir", str(exp), "--seed", "1", "--force",
                       "--senone-counts", str(paths["senone_counts"]), "--lm-dir", str(paths["lm_dir"]),
                       "--num-threads", str(args.threads), "--data-cache", str(work / "am_data_cache")]
            for o in args.override:
                command += ["--override", o]
            started = time.time()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stats = json.loads((exp / "train_stats.json").read_text())
            print(f"{system:<12} wall {time.time() - started:7.1f} s, training {stats['train_seconds']:7.1f} s, "
                  f"dev senone frame acc {stats['final_dev'].get('acc_main', float('nan')):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
