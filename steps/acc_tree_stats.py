"""Accumulate the statistics for tree building from a monophone alignment (Kaldi's
acc-tree-stats + sum-tree-stats).

For every frame of every cut: its event (left context, centre phone, right context, HMM
state index) and its feature vector. The phone instances come from the HMM-state sequence
(`mono_ali`; a new instance starts where the left-to-right order is left), refined by the
supervision's `ali_phone` segments when they label the frames consistently; contexts by
steps.hmm.context.phone_contexts (SIL transparent, utterance edges 0). The context-independent
phones (--ci-phones, default the lang's silence phones SIL and SPN) get contexts 0. Per
event: count, sum x, sum x^2 (diagonal Gaussian, float64), accumulated with numpy
(group sums over event ids), never per frame in Python.

Cuts that cannot be used (no alignment, no features, frame counts that differ, an
alignment that is not a sequence of whole phone HMMs) are left out and listed with the
reason in acc_skipped.txt.

Reads:  --cuts (exp/mono_ali/cuts_train.jsonl.gz: features + custom field mono_ali),
        --lang-dir (phones.txt), --topology (default: topology.json next to the cuts, which
        steps.align leaves there)
Writes: <out-dir>/stats.npz        events [E,4], counts [E], sums [E,D], sumsq [E,D], info
        <out-dir>/stats_info.json  frames, cuts, events, feature dim, ci phones
        <out-dir>/acc_skipped.txt  `cut_id reason` per cut left out
        <out-dir>/topology.json    a copy, for steps.build_tree and the steps after it
        <out-dir>/log/acc_tree_stats.log (and .JOB.log of each job)
        <out-dir>/.stats/.done     written last, with the fingerprint of the inputs (cuts,
                                   lang, topology) and options: a second run with the same
                                   ones is skipped (--force redoes it)

Example:
  python -m steps.acc_tree_stats --cuts exp/mono_ali/cuts_train.jsonl.gz \\
      --lang-dir data/lang --out-dir exp/tree --nj 2
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
from lhotse import CutSet

from steps.core import atomic
from steps.core.jobs import JobsFailed, add_job_arguments, job_argv, run_jobs
from steps.core.log import progress, setup_logging
from steps.data.hdf5_readers import close_now_and_then
from steps.hmm.topology import Topology
from steps.hmm.units import consistent_starts, frame_events, segments_from_items
from steps.lang.lexicon import Lang
from steps.tree.building import TreeStats, accumulate, load_stats, merge_stats, save_stats

log = logging.getLogger(__name__)


class SkipCut(Exception):
    pass


def cut_events(cut, lang: Lang, topology: Topology, silence: int, ci_phones: list[int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """(events [T, 4], features [T, D]) of one cut; SkipCut says why a cut is unusable."""
    if not cut.has_custom("mono_ali"):
        raise SkipCut("no mono_ali")
    if not cut.has_features:
        raise SkipCut("no features")
    try:
        ali = np.asarray(cut.load_custom("mono_ali")).reshape(-1)
        feats = cut.load_features()
    except Exception as e:  # a missing or broken archive is reported, not fatal
        raise SkipCut(f"cannot load: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if len(feats) != len(ali):
        raise SkipCut(f"{len(feats)} feature frames but {len(ali)} alignment frames")
    if len(ali) == 0:
        raise SkipCut("empty alignment")
    starts: list[int] = []
    alignment = cut.supervisions[0].alignment if cut.supervisions else None
    if alignment and "ali_phone" in alignment:
        try:
            segments = segments_from_items(alignment["ali_phone"], lang, len(ali), cut.start)
            starts = consistent_starts(segments, ali, topology) or []
        except ValueError:
            starts = []  # the state sequence alone still gives the instances
    try:
        events = frame_events(ali, topology, silence, ci_phones, starts)
    except ValueError as e:
        raise SkipCut(f"bad alignment: {e}") from None
    if not np.isfinite(feats).all():
        raise SkipCut("non-finite feature values")
    return events, feats


def accumulate_cuts(cuts, lang: Lang, topology: Topology, silence: int, ci_phones: list[int],
                    chunk_frames: int = 100_000, desc: str = "acc-tree-stats"
                    ) -> tuple[TreeStats | None, list[tuple[str, str]], int]:
    """(statistics, skipped (cut id, reason), number of cuts used)."""
    total: TreeStats | None = None
    pending_events, pending_feats, pending = [], [], 0
    skipped, used = [], 0

    def flush():
        nonlocal total, pending_events, pending_feats, pending
        if pending:
            chunk = accumulate(np.concatenate(pending_events), np.concatenate(pending_feats))
            total = chunk if total is None else merge_stats([total, chunk])
        pending_events, pending_feats, pending = [], [], 0

    for read, cut in enumerate(progress(cuts, desc=desc, mininterval=1 if sys.stderr.isatty() else 30), start=1):
        close_now_and_then(read)
        try:
            events, feats = cut_events(cut, lang, topology, silence, ci_phones)
        except SkipCut as e:
            skipped.append((cut.id, str(e)))
            continue
        pending_events.append(events)
        pending_feats.append(feats)
        pending += len(events)
        used += 1
        if pending >= chunk_frames:
            flush()
    flush()
    return total, skipped, used


def _skipped_text(skipped: list[tuple[str, str]]) -> str:
    return "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped)


def _read_skipped(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines() if line]


def run_part(cuts, args, out_dir: Path, suffix: str) -> tuple[Path, list[tuple[str, str]], int]:
    lang = Lang.load(args.lang_dir)
    topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
    silence = lang.phone_id[lang.optional_silence]
    ci_phones = ci_phone_ids(args.ci_phones, lang)
    stats, skipped, used = accumulate_cuts(cuts, lang, topology, silence, ci_phones, args.chunk_frames)
    if stats is None:
        stats = TreeStats.empty(0)
    path = out_dir / "acc" / f"stats{suffix}.npz"
    save_stats(path, stats, {"num_cuts": used})
    atomic.write_text(out_dir / "acc" / f"skipped{suffix}.txt", _skipped_text(skipped))
    log.info("accumulated %d cuts, %d frames, %d events; %d cuts skipped", used, int(stats.num_frames),
             stats.num_events, len(skipped))
    return path, skipped, used


def ci_phone_ids(symbols: list[str] | None, lang: Lang) -> list[int]:
    symbols = list(lang.silence_phones) if symbols is None else symbols
    unknown = [s for s in symbols if s not in lang.phone_id]
    if unknown:
        raise SystemExit(f"acc_tree_stats: --ci-phones: not in phones.txt: {' '.join(unknown)}")
    return sorted(lang.phone_id[s] for s in symbols)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, help="aligned cuts with features (exp/mono_ali/cuts_train.jsonl.gz)")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--topology", default=None,
                        help="default: topology.json in the directory of --cuts (exp/mono_ali)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--ci-phones", nargs="*", default=None,
                        help="context-independent phones (default: the lang's silence phones)")
    parser.add_argument("--chunk-frames", type=int, default=100_000,
                        help="frames gathered before they are reduced to events (memory vs speed)")
    parser.add_argument("--force", action="store_true", help="accumulate again even if done with the same inputs")
    add_job_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    # Length: the program's stages in order (jobs or their merge, outputs)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_parser().parse_args(argv)
    if args.topology is None:
        args.topology = str(Path(args.cuts).parent / "topology.json")
    out_dir = Path(args.out_dir)
    setup_logging(log_file=None if args.job is not None else out_dir / "log" / "acc_tree_stats.log")

    if args.job is not None:
        run_part(CutSet.from_file(args.cuts).split(args.nj)[args.job - 1], args, out_dir, f".{args.job}")
        return

    marker_dir = out_dir / ".stats"
    fingerprint = atomic.inputs_fingerprint([args.cuts, args.lang_dir, args.topology], ci_phones=args.ci_phones,
                                            chunk_frames=args.chunk_frames)
    if atomic.up_to_date(marker_dir, fingerprint, args.force, [out_dir / "stats.npz", out_dir / "topology.json"],
                         what=f"{out_dir} statistics"):
        return
    atomic.clear_done(marker_dir)
    atomic.clear_done(out_dir)  # the tree built from older statistics is stale
    # From clean: no statistics of another run, no job files of an interrupted one.
    atomic.remove(out_dir / "stats.npz", out_dir / "stats_info.json")
    shutil.rmtree(out_dir / "acc", ignore_errors=True)
    cuts = CutSet.from_file(args.cuts)
    lang = Lang.load(args.lang_dir)
    nj = max(1, min(args.nj, len(cuts)))
    if nj > 1:
        try:
            run_jobs(args.cmd, nj, out_dir / "log" / "acc_tree_stats.JOB.log", "steps.acc_tree_stats",
                     job_argv(argv))
        except JobsFailed as e:
            log.error("%s", e)
            sys.exit(1)
        paths = [out_dir / "acc" / f"stats.{j}.npz" for j in range(1, nj + 1)]
        missing = [str(p) for j in range(1, nj + 1)
                   for p in (paths[j - 1], out_dir / "acc" / f"skipped.{j}.txt") if not p.is_file()]
        if missing:
            log.error("job outputs missing (a job did not finish): %s", ", ".join(missing))
            sys.exit(1)
        skipped = [s for j in range(1, nj + 1) for s in _read_skipped(out_dir / "acc" / f"skipped.{j}.txt")]
    else:
        path, skipped, _ = run_part(cuts, args, out_dir, ".1")
        paths = [path]
    parts = [load_stats(p) for p in paths]
    non_empty = [s for s, _ in parts if s.num_events]
    if not non_empty:
        log.error("no usable cuts in %s (%d skipped, see %s)", args.cuts, len(skipped), out_dir / "acc_skipped.txt")
        atomic.write_text(out_dir / "acc_skipped.txt", _skipped_text(skipped))
        sys.exit(1)
    stats = merge_stats(non_empty)
    num_cuts = sum(info["num_cuts"] for _, info in parts)
    topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
    ci = ci_phone_ids(args.ci_phones, lang)
    info = {
        "cuts": args.cuts, "num_cuts": num_cuts, "num_skipped": len(skipped),
        "num_frames": int(round(stats.num_frames)), "num_events": stats.num_events, "dim": stats.dim,
        "ci_phones": ci, "ci_phone_symbols": [lang.phones[p] for p in ci],
        "silence": lang.phone_id[lang.optional_silence], "topology": topology.to_dict(), "num_jobs": nj,
    }
    save_stats(out_dir / "stats.npz", stats, info)
    atomic.write_text(out_dir / "acc_skipped.txt", _skipped_text(skipped))
    atomic.write_text(out_dir / "stats_info.json", json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out_dir / "acc", ignore_errors=True)  # the per-job files, now merged
    atomic.copy_file(args.topology, out_dir / "topology.json")
    atomic.mark_done(marker_dir, {"num_cuts": num_cuts, "num_events": stats.num_events}, fingerprint)
    if skipped:
        log.warning("%d cuts left out, see %s", len(skipped), out_dir / "acc_skipped.txt")
    log.info("%d cuts, %d frames -> %d events (%d-dim); wrote %s", num_cuts, info["num_frames"],
             stats.num_events, stats.dim, out_dir / "stats.npz")


if __name__ == "__main__":
    main()
