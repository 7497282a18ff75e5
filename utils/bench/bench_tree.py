"""Benchmark of decision-tree building (steps.tree.building) at a realistic size, and the
toy world that tests/test_tree.py, test_units.py and test_convert_ali.py build on.

Prints, for statistics synthesised like those of ~900k frames of 80-dim fbank over ~40
phones x 3 states and every triphone context the phone sequences produce: the number of
events, the time and peak memory (tracemalloc: numpy buffers included) of the phone
clustering (questions) and of the greedy splitting + post-merging, and the leaves made;
also the accumulation time of 900k frames of features (steps.tree.building.accumulate in
the 100k-frame chunks of steps.acc_tree_stats).

The statistics are exact for Gaussian frames: an event with n frames of N(mu, sigma^2)
gets sum = n mu + sqrt(n) sigma z and a chi-square spread, where mu depends on the centre
phone and state plus the classes of the left and right phones (stronger at the state
next to that side), so the tree has real structure to find. Phone sequences come from a
sparse random bigram (20 successors per phone), which gives a realistic number of
distinct triphones rather than all P^3.

    utils/bench/bench_tree.py [--frames 900000] [--phones 40] [--dim 80] [--leaves 2000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import json
import resource
import time
import tracemalloc

import numpy as np

from steps.toy.tree_data import synthetic_stats
from steps.tree.building import (
    BuildOptions,
    accumulate,
    build,
    cluster_phones,
    merge_stats,
    state_question_sets,
)
from steps.tree.decision_tree import EDGE, Question
from steps.tree.questions import make_roots

# ------------------------------------------------------------------ the toy world (tests)


# ------------------------------------------------------------------ realistic statistics


# ------------------------------------------------------------------ benchmark


def _measure(fn):
    """(result, wall seconds, CPU seconds, peak traced MiB). CPU time is the figure to
    compare on a shared machine."""
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, cpu, peak / 2**20


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=900_000)
    parser.add_argument("--phones", type=int, default=40)
    parser.add_argument("--dim", type=int, default=80)
    parser.add_argument("--leaves", type=int, default=2000)
    parser.add_argument("--thresh", type=float, default=300.0)
    parser.add_argument("--skip-acc", action="store_true", help="leave out the accumulation timing")
    args = parser.parse_args()

    start = time.perf_counter()
    stats, symbols, topology, sil = synthetic_stats(args.phones, args.frames, args.dim)
    print(f"synthesised stats in {time.perf_counter() - start:.1f} s: {stats.num_events} events "
          f"({len(np.unique(stats.events[:, :3], axis=0))} triphones incl. CI), {stats.num_frames:.0f} frames, "
          f"{args.dim}-dim, {len(topology.phone_ids)} phones")

    # questions from the middle states, as steps.build_tree does
    real = [p for p in topology.phone_ids if p != sil]
    keep = (stats.events[:, 3] == 1) & np.isin(stats.events[:, 1], real)
    phones = np.unique(stats.events[keep, 1])
    index = np.searchsorted(phones, stats.events[keep, 1])
    counts = np.bincount(index, weights=stats.counts[keep])
    sums = np.zeros((len(phones), args.dim))
    sumsq = np.zeros((len(phones), args.dim))
    np.add.at(sums, index, stats.sums[keep])
    np.add.at(sumsq, index, stats.sumsq[keep])
    nodes, seconds, cpu, peak = _measure(lambda: cluster_phones(counts, sums, sumsq))
    questions = [Question("EDGE", "phone", (EDGE,))]
    questions += [Question(f"c{i}", "phone", tuple(int(phones[m]) for m in members))
                  for i, members in enumerate(nodes[1:], 1)]
    questions += [Question("s" + "_".join(map(str, v)), "state", v) for v in state_question_sets(3)]
    print(f"phone clustering: {len(questions)} questions in {seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB")

    roots = make_roots(topology, [sil, 2], shared_states=True)
    options = BuildOptions(thresh=args.thresh, max_leaves=args.leaves)
    (tree, occs, report), seconds, cpu, peak = _measure(lambda: build(stats, roots, questions, symbols, sil,
                                                                      options))
    print(f"tree building (split + merge): {seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB (stats themselves "
          f"{(stats.sums.nbytes + stats.sumsq.nbytes) / 2**20:.0f} MiB); {stats.num_events} events -> "
          f"{report.leaves_after_split} leaves ({report.stop_reason}) -> {tree.num_senones} senones after "
          f"{report.merges} merges; objf gain {(report.objf_split - report.objf_initial) / report.num_frames:.3f}"
          f"/frame; min occupancy {occs.min():.0f}")

    # lookups: every triphone state, vectorised
    grid = np.stack(np.meshgrid(np.arange(len(symbols)), real, np.arange(len(symbols)), [0, 1, 2],
                                indexing="ij"), -1).reshape(-1, 4)
    grid = grid[grid[:, 3] < np.array([topology.num_states[p] for p in grid[:, 1]])]
    _, seconds, _, _ = _measure(lambda: tree.lookup(grid[:, 0], grid[:, 1], grid[:, 2], grid[:, 3]))
    print(f"lookup of all {len(grid)} triphone states: {seconds:.2f} s; tree.txt "
          f"{len(tree.to_text()) / 1024:.0f} KiB")

    if not args.skip_acc:
        rng = np.random.default_rng(1)
        chunk = 100_000
        events = stats.events[rng.integers(0, stats.num_events, chunk)]
        feats = rng.normal(size=(chunk, args.dim)).astype(np.float32)

        def run():
            total = None
            for _ in range(args.frames // chunk):
                part = accumulate(events, feats)
                total = part if total is None else merge_stats([total, part])
            return total

        _, seconds, cpu, peak = _measure(run)
        print(f"accumulation of {args.frames // chunk * chunk} frames ({args.dim}-dim, {chunk}-frame chunks): "
              f"{seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB")
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(json.dumps({"events": stats.num_events, "leaves": report.leaves_after_split,
                      "senones": tree.num_senones}))


if __name__ == "__main__":
    main()
