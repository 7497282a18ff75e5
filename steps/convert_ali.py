"""Convert monophone alignments to senone alignments through the tree (Kaldi's
convert-ali), with the senone counts for the priors and a sanity check.

For each cut: the phone instances of `mono_ali` (as steps.acc_tree_stats finds them),
their contexts (steps.hmm.context), and per frame tree.lookup(left, centre, right, state).
The result is stored like mono_ali (int32 TemporalArray, NumpyHdf5Writer, frame_shift
0.01, temporal_dim 0) as the custom field `senone_ali`; everything else on the cut is
kept. Agreement check: the de-duplicated senone sequence over the non-silence frames must
equal steps.hmm.units.phones_to_senones of the aligned phones (`ali_phone`, SIL removed); the
rate is logged and the cuts that disagree are listed (they are kept: their frames are
converted exactly either way). Cuts without a usable mono_ali are left out and listed.

Reads:  --cuts (exp/mono_ali/cuts_<part>.jsonl.gz), --tree (exp/tree), --lang-dir, --topology
        (default: topology.json next to the tree)
Writes: <out-dir>/cuts_<part>.jsonl.gz           the cuts with senone_ali
        <out-dir>/ali_<part>/senone_ali[.JOB].h5  the arrays
        <out-dir>/senone_counts_<part>.txt        `senone_id frames` for every senone
        <out-dir>/pron_counts_<part>.txt          `WORD COUNT PHONES...` (from ali_word/ali_phone)
        <out-dir>/skipped_<part>.txt              `cut_id reason` per cut left out
        <out-dir>/disagree_<part>.txt             cut ids failing the agreement check
        <out-dir>/log/convert_ali_<part>.log       (and .JOB.log of each job)
        for --part train also senone_counts.txt and pron_counts.txt (the priors and the
        pronunciations that steps.lm_tokens reads)
        <out-dir>/tree.txt, <out-dir>/topology.json  copies: the alignments' folder carries
                                          what gives their ids a meaning
        <out-dir>/.<part>/.done   written last, with the fingerprint of the inputs (cuts,
                                  tree, lang, topology): a second run with the same ones is
                                  skipped (--force redoes it)

Example:
  python -m steps.convert_ali --cuts exp/mono_ali/cuts_train.jsonl.gz --tree exp/tree \\
      --lang-dir data/lang --out-dir exp/senone_ali --nj 2
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from lhotse import CutSet, NumpyHdf5Writer

from steps.core import atomic
from steps.core.jobs import JobsFailed, add_job_arguments, job_argv, run_jobs
from steps.core.log import setup_logging
from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang
from steps.tree.convert import check_tree_covers, convert_cuts
from steps.tree.decision_tree import Tree

log = logging.getLogger(__name__)


def _lines(pairs) -> str:
    return "".join(f"{a} {b}\n" for a, b in pairs)


def _prons_text(prons: Counter) -> str:
    return "".join(f"{w} {c} {' '.join(p)}\n" for (w, p), c in sorted(prons.items()))


def run_part(cuts, args, out_dir: Path, part: str, suffix: str) -> dict:
    """Converts cuts; writes the job's (or the part's) files; returns a summary."""
    lang = Lang.load(args.lang_dir)
    topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
    tree = Tree.load(args.tree)
    check_tree_covers(tree, topology)
    array_dir = out_dir / f"ali_{part}"
    array_dir.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out_dir / f"cuts_{part}{suffix}.jsonl.gz") as tmp, \
            NumpyHdf5Writer(array_dir / f"senone_ali{suffix}.h5", mode="w") as writer, CutSet.open_writer(tmp) as out:
        num_done, skipped, disagree, counts, prons = convert_cuts(cuts, lang, topology, tree, writer,
                                                                  f"convert-ali {part}{suffix}", out.write)
    atomic.write_text(out_dir / f"skipped_{part}{suffix}.txt", _lines(skipped))
    atomic.write_text(out_dir / f"disagree_{part}{suffix}.txt", "".join(f"{c}\n" for c in disagree))
    atomic.write_text(out_dir / f"senone_counts_{part}{suffix}.txt", _lines(enumerate(counts.tolist())))
    atomic.write_text(out_dir / f"pron_counts_{part}{suffix}.txt", _prons_text(prons))
    return {"converted": num_done, "skipped": len(skipped), "disagree": len(disagree)}


JOB_FILES = ("cuts_{}.{}.jsonl.gz", "skipped_{}.{}.txt", "disagree_{}.{}.txt", "senone_counts_{}.{}.txt",
             "pron_counts_{}.{}.txt")


def job_files(out_dir: Path, part: str, job: int) -> list[Path]:
    return [out_dir / name.format(part, job) for name in JOB_FILES]


def merge_jobs(out_dir: Path, part: str, nj: int, num_senones: int) -> dict:
    """Concatenates the per-job outputs (every job must have written all of its files)."""
    missing = [str(f) for j in range(1, nj + 1) for f in job_files(out_dir, part, j) if not f.is_file()]
    if missing:
        raise SystemExit(f"convert_ali: {part}: job outputs missing (a job did not finish): "
                         f"{', '.join(missing)}")
    cuts, counts, prons = [], np.zeros(num_senones, dtype=np.int64), Counter()
    skipped, disagree = "", ""
    for j in range(1, nj + 1):
        cuts += list(CutSet.from_file(out_dir / f"cuts_{part}.{j}.jsonl.gz") or [])
        skipped += (out_dir / f"skipped_{part}.{j}.txt").read_text()
        disagree += (out_dir / f"disagree_{part}.{j}.txt").read_text()
        for line in (out_dir / f"senone_counts_{part}.{j}.txt").read_text().splitlines():
            senone, count = line.split()
            counts[int(senone)] += int(count)
        for line in (out_dir / f"pron_counts_{part}.{j}.txt").read_text().splitlines():
            word, count, *phones = line.split()
            prons[(word, tuple(phones))] += int(count)
    with atomic.atomic_path(out_dir / f"cuts_{part}.jsonl.gz") as tmp:
        CutSet.from_cuts(cuts).to_file(tmp)
    atomic.write_text(out_dir / f"skipped_{part}.txt", skipped)
    atomic.write_text(out_dir / f"disagree_{part}.txt", disagree)
    atomic.write_text(out_dir / f"senone_counts_{part}.txt", _lines(enumerate(counts.tolist())))
    atomic.write_text(out_dir / f"pron_counts_{part}.txt", _prons_text(prons))
    for j in range(1, nj + 1):
        atomic.remove(*job_files(out_dir, part, j))
    return {"converted": len(cuts), "skipped": len(skipped.splitlines()), "disagree": len(disagree.splitlines())}


def part_name(cuts_path: str) -> str:
    """cuts_<part>.jsonl.gz -> <part> (or the file name without its suffixes)."""
    name = Path(cuts_path).name.split(".")[0]
    return name[len("cuts_"):] if name.startswith("cuts_") else name


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, help="exp/mono_ali/cuts_<part>.jsonl.gz")
    parser.add_argument("--tree", required=True, help="tree directory (exp/tree) or tree.txt")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--topology", default=None, help="default: topology.json next to the tree")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--part", default=None, help="name in the output files (default: from --cuts)")
    parser.add_argument("--force", action="store_true", help="convert again even if done with the same inputs")
    add_job_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_parser().parse_args(argv)
    tree_file = Path(args.tree) / "tree.txt" if Path(args.tree).is_dir() else Path(args.tree)
    if args.topology is None:
        args.topology = str(tree_file.parent / "topology.json")
    out_dir = Path(args.out_dir)
    part = args.part or part_name(args.cuts)
    setup_logging(log_file=None if args.job is not None else out_dir / "log" / f"convert_ali_{part}.log")

    if args.job is not None:
        run_part(CutSet.from_file(args.cuts).split(args.nj)[args.job - 1], args, out_dir, part, f".{args.job}")
        return

    marker_dir = out_dir / f".{part}"
    final = out_dir / f"cuts_{part}.jsonl.gz"
    fingerprint = atomic.inputs_fingerprint([args.cuts, args.tree, args.lang_dir, args.topology], part=part)
    carried = [out_dir / "tree.txt", out_dir / "topology.json"]
    if atomic.up_to_date(marker_dir, fingerprint, args.force, [final, *carried], what=f"{out_dir} {part}"):
        return
    # From clean: the part's old cuts point at the arrays about to be rewritten, and job
    # files of an interrupted run must not be merged.
    atomic.clear_done(marker_dir)
    summaries = [f"{name}_{part}.txt" for name in ("skipped", "disagree", "senone_counts", "pron_counts")]
    atomic.remove(final, *[out_dir / name for name in summaries],
                  *[f for j in range(1, max(args.nj, 1) + 1) for f in job_files(out_dir, part, j)])
    if part == "train":
        atomic.remove(out_dir / "senone_counts.txt", out_dir / "pron_counts.txt")
    shutil.rmtree(out_dir / f"ali_{part}", ignore_errors=True)
    cuts = CutSet.from_file(args.cuts)
    nj = max(1, min(args.nj, len(cuts)))
    if nj > 1:
        try:
            run_jobs(args.cmd, nj, out_dir / "log" / f"convert_ali_{part}.JOB.log", "steps.convert_ali",
                     [*job_argv(argv), "--part", part])
        except JobsFailed as e:
            log.error("%s", e)
            sys.exit(1)
        summary = merge_jobs(out_dir, part, nj, Tree.load(args.tree).num_senones)
    else:
        summary = run_part(cuts, args, out_dir, part, "")
    if part == "train":
        for name in ("senone_counts", "pron_counts"):
            atomic.write_text(out_dir / f"{name}.txt", (out_dir / f"{name}_{part}.txt").read_text())
    counts = np.array([int(line.split()[1]) for line in
                       (out_dir / f"senone_counts_{part}.txt").read_text().splitlines()])
    converted = summary["converted"]
    rate = (converted - summary["disagree"]) / converted if converted else 0.0
    atomic.copy_file(tree_file, carried[0])
    atomic.copy_file(args.topology, carried[1])
    atomic.mark_done(marker_dir, {**summary, "num_jobs": nj, "agreement": round(rate, 6)}, fingerprint)
    log.info("%s: converted %d cuts (%d skipped, see %s); %d of %d senones seen, %d frames", part, converted,
             summary["skipped"], out_dir / f"skipped_{part}.txt", int((counts > 0).sum()), len(counts),
             int(counts.sum()))
    level = logging.INFO if summary["disagree"] == 0 else logging.WARNING
    log.log(level, "%s: agreement of senone runs with phones_to_senones(ali_phone): %.2f%% (%d cuts disagree, "
            "see %s)", part, 100 * rate, summary["disagree"], out_dir / f"disagree_{part}.txt")
    if converted == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
