"""Acoustic-model training speed per system on synthetic data shaped like the real thing.

Makes (once, under --work-dir) cuts like data/kd/<corpus>_cuts_train.jsonl.gz: fbank-like
features (LilcomChunkyWriter), `senone_ali`, and soft labels at the three levels
(NumpyHdf5Writer, steps.kd.soft_labels), plus dev cuts and exp/lm_<level>/tokens.txt. The
features carry the senones (a mean per senone plus noise), so the models do learn.

Then, for every system config (conf/am_{baseline,li,aux_senone,aux_phone,aux_subword,hier}.yaml),
times train_step on the same batches (after warm-up steps; the systems take turns, and
per-step medians are reported, so that other jobs on a shared machine hit them alike) and
prints the training throughput in input frames per second of wall and of CPU time, and the
step time relative to the baseline; with --full it also runs the whole steps.train_am
program per system and prints its wall time.

    python -m steps.bench.bench_am --work-dir /tmp/bench_am --hours 2.5 [--full] [--threads 2]

make_synthetic_am_data() is also what the tests use for their tiny data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from steps.kd.soft_labels import SoftLabels, store_soft_labels

SYSTEMS = ("baseline", "li", "aux_senone", "aux_phone", "aux_subword", "hier")
CONF_DIR = Path(__file__).resolve().parents[2] / "egs" / "synth" / "s5" / "conf"


# ------------------------------------------------------------------ synthetic data


def _teacher(rng: np.random.Generator, truth: np.ndarray, vocab: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k soft labels around the true units: the truth with probability 0.3..0.9
    (usually, not always, ranked first), the rest spread over random other units."""
    n = len(truth)
    ids = np.zeros((n, k), dtype=np.int32)
    probs = np.zeros((n, k), dtype=np.float32)
    for i, u in enumerate(truth):
        others = rng.choice(vocab - 1, size=k - 1, replace=False)
        others = others + (others >= u)
        p = np.concatenate([[rng.uniform(0.3, 0.9)], rng.dirichlet(np.ones(k - 1)) * 0.5])
        p /= p.sum()
        order = np.argsort(-p, kind="stable")
        ids[i] = np.concatenate([[u], others])[order]
        probs[i] = p[order]
    return ids, probs


def synthetic_utterance(rng: np.random.Generator, num_phones: int, num_senones: int, num_subwords: int,
                        mean_words: float):
    """(per-frame senone ids, phone segments [(phone, start, end)], word spans, silence mask).
    Phone 0 is silence (senones 0..2); every other (left phone, phone, state) maps to a
    senone as a tree would: each (phone, state) owns its senones, split by the left phone
    into as many contexts as the senone budget allows (with fewer senones than 3 per phone,
    phones share them)."""
    contexts = max(1, (num_senones - 3) // (3 * num_phones))
    words = max(1, int(rng.poisson(mean_words)))
    segments, frames, t = [], [], 0

    def add(phone, left):
        nonlocal t
        start = t
        for state in range(3):
            if phone == 0:
                senone = state
            else:
                senone = 3 + ((phone - 1) * 3 + state + 3 * num_phones * (left % contexts)) % (num_senones - 3)
            length = int(rng.integers(2, 6 if phone else 12))
            frames.extend([senone] * length)
            t += length
        segments.append((phone, start, t))

    add(0, 0)
    word_spans, left = [], 0
    for _ in range(words):
        start = t
        for _ in range(int(rng.integers(2, 6))):
            phone = int(rng.integers(1, num_phones + 1))
            add(phone, left)
            left = phone
        word_spans.append((start, t))
        if rng.random() < 0.2:
            add(0, 0)
    add(0, 0)
    return np.array(frames, dtype=np.int32), segments, word_spans


def make_synthetic_am_data(out_dir: str | Path, num_cuts: int = 300, num_dev: int = 30, seed: int = 0,
                           num_phones: int = 40, num_senones: int = 200, num_subwords: int = 100,
                           top_k: int = 4, mean_words: float = 6.0, feature_dim: int = 80,
                           dev_soft_labels: bool = False) -> dict:
    """Writes train/dev cuts with features, senone_ali and soft labels at the three levels
    (dev cuts: soft labels only if dev_soft_labels), tokens.txt per level and senone_counts.txt.
    Returns the paths. Phone-level units are the phones 1..num_phones as ids 0..P-1."""
    from lhotse import CutSet, Features, LilcomChunkyWriter, MonoCut, NumpyHdf5Writer, SupervisionSegment

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"train": out / "cuts_train.jsonl.gz", "dev": out / "cuts_dev.jsonl.gz",
             "lm_dir": out / "exp", "senone_counts": out / "senone_counts.txt"}
    marker = out / "made.json"
    wanted = dict(num_cuts=num_cuts, num_dev=num_dev, seed=seed, num_phones=num_phones,
                  num_senones=num_senones, num_subwords=num_subwords, top_k=top_k,
                  mean_words=mean_words, feature_dim=feature_dim, dev_soft_labels=dev_soft_labels)
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return paths
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, (num_senones, feature_dim)).astype(np.float32)
    counts = np.zeros(num_senones, dtype=np.int64)
    for part, n in (("train", num_cuts), ("dev", num_dev)):
        cuts = []
        with LilcomChunkyWriter(out / f"feats_{part}") as fw, NumpyHdf5Writer(out / f"arrays_{part}") as aw:
            for i in range(n):
                senones, segments, word_spans = synthetic_utterance(rng, num_phones, num_senones,
                                                                    num_subwords, mean_words)
                T = len(senones)
                feats = means[senones] + rng.normal(0.0, 1.5, (T, feature_dim)).astype(np.float32)
                feats = feats * 2.0 + 5.0  # not normalised, like log-mel fbank
                cut_id = f"{part}_{i:05d}"
                key = fw.write(cut_id, feats)
                features = Features(type="synthetic", num_frames=T, num_features=feature_dim,
                                    frame_shift=0.01, sampling_rate=16000, start=0.0,
                                    duration=T * 0.01, storage_type=fw.name,
                                    storage_path=str(fw.storage_path), storage_key=key)
                sup = SupervisionSegment(cut_id, cut_id, 0.0, T * 0.01, text="SYNTHETIC")
                cut = MonoCut(cut_id, 0.0, T * 0.01, 0, features=features, supervisions=[sup])
                cut.senone_ali = aw.store_array(f"{cut_id}_ali", senones, frame_shift=0.01,
                                                temporal_dim=0)
                if part == "train":
                    counts += np.bincount(senones, minlength=num_senones)
                if part == "train" or dev_soft_labels:
                    for level, labels in _soft_labels(rng, senones, segments, word_spans, num_phones,
                                                      num_senones, num_subwords, top_k).items():
                        cut = store_soft_labels(cut, level, labels, aw)
                cuts.append(cut)
        CutSet.from_cuts(cuts).to_file(paths[part])
    for level, size in (("senone", num_senones), ("phone", num_phones), ("subword", num_subwords)):
        d = paths["lm_dir"] / f"lm_{level}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokens.txt").write_text("".join(f"u{i} {i}\n" for i in range(size)))
    paths["senone_counts"].write_text("".join(f"{i} {c}\n" for i, c in enumerate(counts)))
    marker.write_text(json.dumps(wanted))
    return paths


def _soft_labels(rng, senones, segments, word_spans, num_phones, num_senones, num_subwords, k):
    out = {}
    speech = [(p, s, e) for p, s, e in segments if p != 0]
    # senone level: runs of equal senones over non-silence frames
    rows = []
    for _, s, e in speech:
        seg = senones[s:e]
        change = np.flatnonzero(np.diff(seg)) + 1
        for a, b in zip(np.r_[0, change], np.r_[change, len(seg)]):
            rows.append((int(seg[a]), s + a, s + b))
    truth = np.array([r[0] for r in rows], dtype=np.int32)
    out["senone"] = SoftLabels(truth, [(a, b) for _, a, b in rows], *_teacher(rng, truth, num_senones, k))
    truth = np.array([p - 1 for p, _, _ in speech], dtype=np.int32)
    out["phone"] = SoftLabels(truth, [(s, e) for _, s, e in speech], *_teacher(rng, truth, num_phones, k))
    rows = []
    for s, e in word_spans:
        pieces = 1 + (e - s) // 25
        cuts = np.linspace(s, e, pieces + 1).astype(int)
        for j in range(pieces):
            unit = int((s * 31 + j * 17 + (e - s) * 13) % num_subwords)
            rows.append((unit, int(cuts[j]), int(cuts[j + 1])))
    truth = np.array([r[0] for r in rows], dtype=np.int32)
    out["subword"] = SoftLabels(truth, [(a, b) for _, a, b in rows], *_teacher(rng, truth, num_subwords, k))
    return out


# ------------------------------------------------------------------ timing


class SystemTimer:
    """One system's model and optimizer on a fixed list of batches, timed step by step."""

    def __init__(self, config_path: Path, store, overrides: list[Path], lm_dir: Path, num_batches: int,
                 seed: int = 1):
        from steps.am.data import AmDataset, make_sampler
        from steps.am.losses import required_levels
        from steps.am.model import AcousticModel, parameter_summary
        from steps.am.config import load_am_config
        from steps.am.optim import build_optimizer
        from steps.am.sizes import resolve_sizes

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
        from steps.am.distributed import World
        from steps.am.training import train_step

        self.model.train()
        for i in indices:
            batch = self.batches[i % len(self.batches)]
            wall, cpu = time.perf_counter(), time.process_time()
            train_step(self.model, self.model, self.optimizer, batch, self.config, World())
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


def main(argv: list[str] | None = None) -> int:
    from steps.am.cut_store import CutStore

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="/tmp/lm2am_bench_am")
    parser.add_argument("--hours", type=float, default=2.5, help="synthetic training speech")
    parser.add_argument("--num-senones", type=int, default=1500)
    parser.add_argument("--num-subwords", type=int, default=500)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--conf-dir", default=str(CONF_DIR))
    parser.add_argument("--override", action="append", default=[], help="e.g. conf/am_tiny.yaml")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--steps", type=int, default=3, help="steps per system and round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of turns among the systems")
    parser.add_argument("--batches", type=int, default=12, help="distinct batches per system")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also run steps.train_am per system")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    # about 2.7 s per synthetic utterance
    num_cuts = max(10, int(args.hours * 3600 / 2.7))
    started = time.time()
    paths = make_synthetic_am_data(work / "data", num_cuts=num_cuts, num_dev=max(5, num_cuts // 20),
                                   num_senones=args.num_senones, num_subwords=args.num_subwords,
                                   top_k=args.top_k)
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
