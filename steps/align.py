"""Forced alignment of a part with a trained alignment model (Kaldi's align_si.sh).

For each cut: the numerator graph of its transcript (all pronunciations, optional
silence), the model's log-posteriors, the best path by k2.intersect_dense +
k2.shortest_path. The per-frame HMM-state ids are stored losslessly (NumpyHdf5Writer,
frame_shift 0.01, temporal_dim 0) as the cut's custom field `mono_ali`; the phone and
word segments of the path go into the supervision's alignment under `ali_phone` and
`ali_word` (lhotse AlignmentItems on the recording's timeline, as lhotse keeps them:
steps.data.ali_times). Utterances that cannot be aligned (too short for their
transcript, no path) are left out and listed with their reason in unaligned_<part>.txt.
Word pronunciation counts (which pronunciation the aligner chose) go to
pron_counts_<part>.txt as `WORD COUNT PHONES...`.

Reads:  --cuts (fbank cuts), --model (exp/mono/final.pt), --lang-dir, --topology (default:
        topology.json next to the model)
Writes: <out-dir>/cuts_<part>.jsonl.gz, <out-dir>/ali_<part>/*.h5,
        <out-dir>/unaligned_<part>.txt, <out-dir>/pron_counts_<part>.txt, <out-dir>/log/
        <out-dir>/topology.json, <out-dir>/final.pt  copies of the model's, as Kaldi's
                                  align_si.sh copies final.mdl: the folder is all a later
                                  step needs
        <out-dir>/.<part>/.done   written last, with the fingerprint of the inputs (model,
                                  topology, cuts, lang) and options: a second run with the
                                  same ones is skipped (--force redoes it)

Example:
  python -m steps.align --model exp/mono/final.pt \\
      --cuts data/fbank/synth_cuts_dev.jsonl.gz --lang-dir data/lang --part dev \\
      --out-dir exp/mono_ali --nj 2
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections import Counter
from pathlib import Path

import torch
from lhotse import CutSet

from steps.core import atomic, checkpoint
from steps.core.jobs import JobsFailed, add_job_arguments, job_argv, run_jobs
from steps.core.log import setup_logging
from steps.hmm.cut_alignment import align_part
from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang

log = logging.getLogger(__name__)


def job_files(out_dir: Path, part: str, job: int) -> list[Path]:
    return [out_dir / f"cuts_{part}.{job}.jsonl.gz", out_dir / f"unaligned_{part}.{job}.txt",
            out_dir / f"pron_counts_{part}.{job}.txt"]


def merge_jobs(out_dir: Path, part: str, nj: int) -> tuple[int, int]:
    """Concatenates the per-job outputs into the part's files (every job must have
    written all of its files)."""
    missing = [str(f) for j in range(1, nj + 1) for f in job_files(out_dir, part, j) if not f.is_file()]
    if missing:
        raise SystemExit(f"align: {part}: job outputs missing (a job did not finish): {', '.join(missing)}")
    cuts = [cut for j in range(1, nj + 1) for cut in CutSet.from_file(out_dir / f"cuts_{part}.{j}.jsonl.gz")]
    with atomic.atomic_path(out_dir / f"cuts_{part}.jsonl.gz") as tmp:
        CutSet.from_cuts(cuts).to_file(tmp)
    unaligned = "".join((out_dir / f"unaligned_{part}.{j}.txt").read_text() for j in range(1, nj + 1))
    atomic.write_text(out_dir / f"unaligned_{part}.txt", unaligned)
    counts = Counter()
    for j in range(1, nj + 1):
        for line in (out_dir / f"pron_counts_{part}.{j}.txt").read_text().splitlines():
            word, count, *phones = line.split()
            counts[(word, tuple(phones))] += int(count)
    atomic.write_text(out_dir / f"pron_counts_{part}.txt",
                      "".join(f"{w} {c} {' '.join(p)}\n" for (w, p), c in sorted(counts.items())))
    for j in range(1, nj + 1):
        atomic.remove(*job_files(out_dir, part, j))
    return len(cuts), len(unaligned.splitlines())


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--topology", default=None, help="default: topology.json next to --model")
    parser.add_argument("--cuts", required=True)
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--part", required=True, help="name used in the output files")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--sil-prob", type=float, default=None,
                        help="optional silence probability (default: the model's training config)")
    parser.add_argument("--edge-sil-prob", type=float, default=None,
                        help="optional silence probability at the utterance ends (default: as trained)")
    parser.add_argument("--output-beam", type=float, default=20.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--force", action="store_true", help="realign even if done with the same inputs")
    add_job_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    out_dir = Path(args.out_dir)
    setup_logging()
    if args.job is not None:
        torch.set_num_threads(1)  # the jobs share the cores

    topology_path = args.topology or str(Path(args.model).parent / "topology.json")
    marker_dir = out_dir / f".{args.part}"
    final = out_dir / f"cuts_{args.part}.jsonl.gz"
    carried = [out_dir / "topology.json", out_dir / "final.pt"]
    fingerprint = atomic.inputs_fingerprint(
        [args.model, topology_path, args.cuts, args.lang_dir], part=args.part, sil_prob=args.sil_prob,
        edge_sil_prob=args.edge_sil_prob, output_beam=args.output_beam)
    if args.job is None and atomic.up_to_date(marker_dir, fingerprint, args.force, [final, *carried],
                                              what=f"{out_dir} {args.part}"):
        return

    lang = Lang.load(args.lang_dir)
    topology = Topology.from_dict(json.loads(Path(topology_path).read_text()))
    train_config = checkpoint.load(args.model).get("train_config", {})
    sil_prob = train_config.get("sil_prob", 0.5) if args.sil_prob is None else args.sil_prob
    edge_sil_prob = train_config.get("edge_sil_prob", sil_prob) if args.edge_sil_prob is None else args.edge_sil_prob
    cuts = CutSet.from_file(args.cuts)

    if args.job is not None:  # one job of several
        part_cuts = cuts.split(args.nj)[args.job - 1]
        align_part(part_cuts, Path(args.model), lang, topology, (sil_prob, edge_sil_prob), args.output_beam,
                   out_dir, args.part, f".{args.job}", torch.device(args.device))
        return

    # From clean: the part's old cuts point at the arrays about to be rewritten, and job
    # files of an interrupted run must not be merged.
    atomic.clear_done(marker_dir)
    atomic.remove(final, out_dir / f"unaligned_{args.part}.txt", out_dir / f"pron_counts_{args.part}.txt",
                  *[f for j in range(1, max(args.nj, 1) + 1) for f in job_files(out_dir, args.part, j)])
    shutil.rmtree(out_dir / f"ali_{args.part}", ignore_errors=True)
    if args.nj > 1:
        try:
            run_jobs(args.cmd, args.nj, out_dir / "log" / f"align_{args.part}.JOB.log", "steps.align",
                     job_argv(argv if argv is not None else sys.argv[1:]))
        except JobsFailed as e:
            log.error("%s", e)
            sys.exit(1)
        num_aligned, num_unaligned = merge_jobs(out_dir, args.part, args.nj)
    else:
        num_aligned, skipped = align_part(cuts, Path(args.model), lang, topology, (sil_prob, edge_sil_prob), args.output_beam,
                                          out_dir, args.part, "", torch.device(args.device))
        num_unaligned = len(skipped)
    atomic.copy_file(topology_path, carried[0])
    atomic.copy_file(args.model, carried[1])
    atomic.mark_done(marker_dir, {"aligned": num_aligned, "unaligned": num_unaligned, "num_jobs": args.nj},
                     fingerprint)
    log.info("%s: aligned %d cuts, %d left out (see %s); wrote %s", args.part, num_aligned, num_unaligned,
             out_dir / f"unaligned_{args.part}.txt", out_dir / f"cuts_{args.part}.jsonl.gz")


if __name__ == "__main__":
    main()
