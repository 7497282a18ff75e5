"""Benchmark of the soft-label cache (steps.dump_soft_labels) at realistic sizes.

Prints:
1. dump throughput: tokens per second through the three teachers (top-k, writing the
   HDF5 arrays), all levels together;
2. disk bytes per training frame, the three levels together (the .h5 files), against
   dense float32 per-frame distributions over the full vocabularies (target <= 1%) and
   against a per-frame top-k store, the real alternative (the same k ids and
   probabilities with the same dtypes, written for every frame a token covers);
3. the time for one training batch to get its soft-label targets the way training does
   (steps.am.cut_store, steps.am.targets: the per-token arrays held in memory by CutStore,
   expanded to the
   output frames by expand_soft_labels at the AM's subsampling), against reading them
   from the HDF5 files per cut (lhotse `cut.load_custom`) and against computing them with
   the teachers on the fly (target: training's path >= 5x faster than the teachers).

Everything is made here, nothing is read from a recipe: a lexicon of CMUdict words, a
sentence generator, a steps.tree.decision_tree.Tree with random context questions (~940 senones),
random alignments, ~40 phones, a 500-piece sentencepiece model and untrained teachers of
the sizes in egs/synth/s5/conf/lm_<level>.yaml (throughput does not depend on the weights).
The toy world (`ToyWorld`) also serves tests/test_soft_labels.py and tests/test_lm.py.

    utils/bench/bench_soft_labels.py [--cuts 200] [--batch 32] [--nj 2]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the repository, for `steps`

import argparse
import tempfile
import time
from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.features.io import close_cached_file_handles

from steps.am.targets import expand_soft_labels
from steps.core import checkpoint as ckpt_io
from steps.core.config import load_config, to_dict
from steps.kd import alignment_tokens
from steps.kd import dump as kd_dump
from steps.kd import soft_labels as sl
from steps.kd.teachers import Teacher
from steps.lm.model import KIND, build_model
from steps.lm.tokens import load_sentencepiece, phone_units
from steps.lm.training import LmConfig
from steps.toy.alignments import ToyWorld

# ------------------------------------------------------------------ a decision tree


# ------------------------------------------------------------------ the toy world


# ------------------------------------------------------------------ the benchmark


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32, help="cuts per training batch")
    parser.add_argument("--nj", type=int, default=2, help="dump jobs (one thread each)")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--conf-dir", default=str(Path(__file__).resolve().parents[2] / "egs" / "synth" / "s5" / "conf"),
                        help="where lm_<level>.yaml give the teachers' sizes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work_dir or tmp)
        world = ToyWorld.build(root, num_words=2000, num_sentences=args.cuts + 500, tree_depth=3,
                               bpe_vocab=500, max_prons=1)
        sp = load_sentencepiece(world.bpe_model)
        sizes = {"senone": world.tree.num_senones, "phone": len(phone_units(world.lang)),
                 "subword": sp.get_piece_size()}
        print(f"vocabularies: senone {sizes['senone']}, phone {sizes['phone']}, "
              f"subword {sizes['subword']}; top-k {args.top_k}")
        teachers = {}
        for level, size in sizes.items():
            torch.manual_seed(0)
            config = load_config(Path(args.conf_dir) / f"lm_{level}.yaml", LmConfig)
            model = build_model(size, config.model).eval()
            path = root / f"lm_{level}" / "final.pt"
            ckpt_io.save({"kind": KIND, "level": level, "config": to_dict(config), "num_units": size,
                          "state_dict": model.state_dict()}, path)
            teachers[level] = Teacher(level, model, path)
            print(f"   {level} teacher (untrained): d_model {config.model.d_model}, "
                  f"{config.model.num_layers} layers, context {config.model.max_context}, "
                  f"{config.model.objective}")
        world.cuts(world.sentences[:args.cuts], root / "ali.h5").to_file(root / "cuts.jsonl.gz")
        cuts = CutSet.from_file(root / "cuts.jsonl.gz")
        units = alignment_tokens.UnitMaps(world.lang, sp, phone_units(world.lang))

        # 1. throughput: one job in this process (compute only), then the program with --nj
        start = time.perf_counter()
        stats = kd_dump.dump_cuts(cuts, teachers, units, root / "kd1", "bench", job=1, top_k=args.top_k,
                               temperature=1.0, batch_cuts=32)
        one_job = time.perf_counter() - start
        tokens = sum(stats["tokens"].values())
        frames = stats["frames"]
        start = time.perf_counter()
        # the program as a recipe runs it, in a process of its own
        subprocess.run([sys.executable, "-m", "steps.dump_soft_labels", "--cuts", str(root / "cuts.jsonl.gz"), "--lang-dir", str(world.root / "lang"),
                   "--tree", str(world.root / "tree"), "--topology", str(world.root / "topology.json"),
                   "--bpe-model", str(world.bpe_model), "--teachers",
                   *[str(root / f"lm_{level}") for level in sizes], "--top-k", str(args.top_k),
                   "--out-dir", str(root / "kd"), "--corpus", "bench", "--nj", str(args.nj)],
                       check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        program = time.perf_counter() - start
        print(f"1. dump: {len(cuts)} cuts, {frames} frames, {tokens} tokens "
              f"({', '.join(f'{k} {v}' for k, v in stats['tokens'].items())})\n"
              f"   one job, one thread, in-process: {one_job:.1f} s = {tokens / one_job:.0f} tokens/s\n"
              f"   steps.dump_soft_labels --nj {args.nj} (process start-up, alignment check and "
              f"merge included): {program:.1f} s = {tokens / program:.0f} tokens/s")

        # 2. disk
        out = root / "kd"
        h5_bytes = sum(p.stat().st_size for p in out.glob("*.h5"))
        dense = frames * 4 * sum(sizes.values())
        kd_cuts = list(CutSet.from_file(out / "bench_cuts_train.jsonl.gz"))
        payload = sum(sum(a.nbytes for a in sl.load_soft_labels(cut, level).arrays().values())
                      for cut in kd_cuts for level in sizes)
        per_level = {level: sum(p.stat().st_size for p in out.glob(f"*_{level}.*.h5")) / frames
                     for level in sizes}
        per_frame = 0  # a per-frame top-k store: k ids and probs for every covered frame
        for cut in kd_cuts:
            for level in sizes:
                labels = sl.load_soft_labels(cut, level)
                covered = int((labels.spans[:, 1] - labels.spans[:, 0]).sum())
                per_frame += covered * labels.top_k * (labels.ids.itemsize + labels.probs.itemsize)
        print(f"2. disk: {h5_bytes / frames:.1f} bytes per frame for the three levels "
              f"({', '.join(f'{k} {v:.1f}' for k, v in per_level.items())}; "
              f"{payload / frames:.1f} of it array data, the rest HDF5 overhead)\n"
              f"   dense float32 over the full vocabularies: {dense / frames:.0f} bytes per frame; "
              f"the cache is {100 * h5_bytes / dense:.2f}% of dense (target <= 1%)\n"
              f"   per-frame top-{args.top_k} store (same dtypes, array data only): "
              f"{per_frame / frames:.1f} bytes per frame; the per-token cache's array data is "
              f"{payload / per_frame:.2f}x its size, the files {h5_bytes / per_frame:.2f}x")

        # 3. a training batch: training's in-memory path vs HDF5 reads vs the teachers
        batch = kd_cuts[:args.batch]
        lengths = [len(c.load_custom("senone_ali")) for c in batch]  # known from the manifest
        # CutStore (cache_in_memory) reads each cut's per-token arrays once and holds them
        start = time.perf_counter()
        held = [{level: sl.load_soft_labels(cut, level) for level in sizes} for cut in batch]
        read_seconds = time.perf_counter() - start
        subsampling = 3  # the AM's (conf/am_*.yaml)

        def training_path():
            for level in sizes:
                expand_soft_labels([h[level] for h in held], lengths, subsampling)

        def from_disk():
            for cut, num_frames in zip(batch, lengths):
                for level in sizes:
                    sl.expand_to_frames(sl.load_soft_labels(cut, level), num_frames)

        def on_the_fly():
            tokens_by_level = {level: [] for level in sizes}
            rows = []
            for cut in batch:
                result = alignment_tokens.cut_tokens(cut, units, sizes)
                rows.append(result)
                for level in sizes:
                    tokens_by_level[level].append(result[level].teacher_tokens)
            for level, teacher in teachers.items():
                top = teacher.top_k(tokens_by_level[level], args.top_k, 1.0)
                for result, num_frames, (ids, probs) in zip(rows, lengths, top):
                    labels = kd_dump.soft_labels_for(result[level], ids, probs)
                    sl.expand_to_frames(labels, num_frames)

        close_cached_file_handles()
        t_train = _timed(training_path)
        t_disk = _timed(from_disk)
        t_fly = _timed(on_the_fly)
        print(f"3. one batch of {len(batch)} cuts ({sum(lengths)} frames), one thread:\n"
              f"   training's path (in-memory arrays, expand_soft_labels at subsampling {subsampling}): "
              f"{1000 * t_train:.1f} ms\n"
              f"   HDF5 reads per cut (load_custom, expand_to_frames): {1000 * t_disk:.1f} ms "
              f"({t_disk / t_train:.1f}x training's path, which reads them once per run: "
              f"{1000 * read_seconds:.0f} ms for these cuts)\n"
              f"   teachers on the fly: {1000 * t_fly:.1f} ms: training's path is "
              f"{t_fly / t_train:.1f}x faster (target >= 5x: {'met' if t_fly >= 5 * t_train else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
