"""Dump the teachers' soft labels for every training cut, at every unit level, to disk.

Reads the aligned cuts (exp/senone_ali: custom field `senone_ali`, supervision alignments
`ali_phone` and `ali_word`), the lang dir, the sentencepiece model and the teachers
(exp/lm_<level>/final.pt from steps.train_lm; each names its level). Writes to --out-dir:

    <corpus>_cuts_<part>.jsonl.gz     the input cuts plus, per level L, the custom fields
                                      kd_L_{tokens,spans,ids,probs} and `kd_info`
                                      (see steps.kd.soft_labels for the arrays)
    <corpus>_<part>_<level>.<job>.h5  the arrays, one file per level and job
    <corpus>_<part>_bad_items.txt     `cut_id <TAB> level <TAB> reason` for everything left out
    <corpus>_<part>_dump_stats.json   counts (tokens, frames, every kind of problem; per
                                      level the tokens with frames and those of them that
                                      no output frame of an AM at --subsampling reads:
                                      tokens_without_output_frame)
    jobs/                             per-job cuts and stats (a finished job is not redone)
    .<corpus>_<part>/.done            written last, with the fingerprint of the inputs (cuts,
                                      lang, tree, topology, sentencepiece model, teachers)
                                      and options: a second run with the same ones is
                                      skipped (--force redoes every job)

Tokens come from the ALIGNMENT, one reference per cut and level:
- phone: the aligned phone segments (ali_phone) except SIL, with their frame spans.
- senone: the runs of equal senone ids in senone_ali over the non-silence frames, i.e.
  the de-duplicated senone sequence with silence removed. A run that continues across a
  silence (same senone on both sides) is one token for the teacher, as the text-derived
  sequence (steps.hmm.units.phones_to_senones, silence-transparent contexts) has it, and is
  stored as one row per frame segment, all rows with the same soft label. With --tree (and
  the topology next to it) the sequence is checked against phones_to_senones of the aligned phones;
  mismatching cuts are counted and listed (the alignment's sequence is used).
- subword: each aligned word (ali_word) split into its sentencepiece pieces; the word's
  frames are shared among its pieces in proportion to their letters (at least one frame
  each), each inner boundary then snapped to the nearest phone boundary of the alignment
  inside the word (still one frame per piece at least), so that e.g. WALK|ING splits at
  the K|IH boundary. A word with fewer frames than pieces leaves some pieces without
  frames (counted); a word with no frames gives its pieces no rows (counted). Pieces stay
  in the teacher's input either way.
- plm (a pre-trained transformers model, steps.kd.pretrained_teacher; --teachers exp/lm_plm
  from steps.prepare_plm_teacher, or the model directory itself): the aligned words,
  normalised and tokenised by the model's tokenizer as one transcript (steps.kd.plm_text),
  each word's frames shared among its pieces by the subword rule. Words the tokenizer maps
  to nothing are counted (words_without_model_pieces) and listed; pieces that are the
  tokenizer's unknown token are counted (unknown_pieces).
Silence = frames of SIL segments in ali_phone (and frames no phone segment covers, counted):
they get no row at any level, so spans cover exactly the non-silence frames.

Teacher distributions: causal teachers give p(u_i | u_<i), masked ones p(u_i | u_!=i) with
position i masked; logits over the units only, divided by --temperature, top --top-k kept
and renormalised. References longer than a teacher's context are scored with windows
(steps.lm.model) and counted, never truncated. Tokens outside a teacher's vocabulary are
left out of its input and get no row (counted). Cuts without an alignment are left out of
the output (listed with the reason).

    python -m steps.dump_soft_labels --cuts exp/senone_ali/cuts_train.jsonl.gz \\
        --lang-dir data/lang --tree exp/tree \\
        --bpe-model data/lang_bpe_500/bpe.model \\
        --teachers exp/lm_senone exp/lm_phone exp/lm_subword [exp/lm_plm] \\
        --top-k 8 --temperature 1.0 --out-dir data/kd --corpus synth --nj 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from lhotse import CutSet

from steps.core import atomic
from steps.core.atomic import atomic_path, write_text
from steps.core.jobs import JobsFailed, add_job_arguments, job_argv, run_jobs
from steps.core.log import setup_logging
from steps.hmm.topology import Topology
from steps.hmm.units import phones_to_senones
from steps.kd.alignment_tokens import UnitMaps
from steps.kd.dump import dump_cuts, merge_stats
from steps.kd.pretrained_teacher import MASKING, TEACHER_FILE
from steps.kd.teachers import Teacher
from steps.lang.lexicon import Lang
from steps.lm.tokens import load_sentencepiece, phone_units, read_tokens
from steps.tree.decision_tree import Tree

log = logging.getLogger(__name__)


def load_units(args, teachers: dict[str, Teacher]) -> UnitMaps:
    """The unit maps, after checking that each teacher's vocabulary is its level's."""
    lang = Lang.load(args.lang_dir)
    phones = phone_units(lang)
    if "subword" in teachers and not args.bpe_model:
        raise SystemExit("a subword teacher needs --bpe-model")
    sp = load_sentencepiece(args.bpe_model) if "subword" in teachers else None
    expected = {"phone": len(phones)}
    if sp is not None:
        expected["subword"] = sp.get_piece_size()
    check: Callable[[list[int]], list[int]] | None = None
    if args.tree and args.topology:
        tree = Tree.load(args.tree)
        topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
        expected["senone"] = tree.num_senones

        check = partial(phones_to_senones, topology=topology, tree=tree)
    for level, teacher in teachers.items():
        if level in expected and expected[level] != teacher.num_units:
            raise SystemExit(f"{teacher.path}: the {level} teacher has {teacher.num_units} units, "
                             f"the {level} vocabulary here has {expected[level]}")
        if level == "phone":
            tokens_file = teacher.path.parent / "tokens.txt"
            if tokens_file.exists() and read_tokens(tokens_file) != phones:
                raise SystemExit(f"{tokens_file}: not the phone units of {args.lang_dir}")
    return UnitMaps(lang, sp, phones, check, teachers.get("plm"))


def _job_files(args, job: int) -> tuple[Path, Path]:
    jobs_dir = Path(args.out_dir) / "jobs"
    return (jobs_dir / f"{args.corpus}_{args.part}_stats.{job}.json",
            jobs_dir / f"{args.corpus}_cuts_{args.part}.{job}.jsonl.gz")


def _teacher_file(path: Path) -> Path:
    """What stamps a teacher: final.pt, teacher.json (with its model dir) or the model dir."""
    if not path.is_dir():
        return path
    if (path / TEACHER_FILE).is_file():
        return path / TEACHER_FILE
    return path if (path / "config.json").is_file() else path / "final.pt"


def inputs_fingerprint(args) -> dict:
    """What the soft labels are made from: the inputs' stamps and the options."""
    teachers = [_teacher_file(Path(t)) for t in args.teachers]
    return atomic.inputs_fingerprint(
        [args.cuts, args.lang_dir, args.tree, args.topology, args.bpe_model, *teachers],
        top_k=args.top_k, temperature=args.temperature, corpus=args.corpus, part=args.part,
        batch_cuts=args.batch_cuts, batch_tokens=args.batch_tokens, subsampling=args.subsampling,
        plm_masking=MASKING)  # how a masked teacher scores: dumps made another way are redone


def _job_params(args, nj: int) -> dict:
    """What a finished job's outputs depend on; a job with other parameters is redone."""
    return {**inputs_fingerprint(args), "nj": nj}


def job_done(args, job: int, nj: int) -> bool:
    stats_file, cuts_file = _job_files(args, job)
    if not (stats_file.exists() and cuts_file.exists()):
        return False
    return json.loads(stats_file.read_text()).get("params") == _job_params(args, nj)


def run_job(args, job: int, nj: int) -> dict:

    out_dir = Path(args.out_dir)
    stats_file, cuts_file = _job_files(args, job)
    params = _job_params(args, nj)
    if job_done(args, job, nj):
        log.info("job %d of %d already done (%s)", job, nj, cuts_file)
        return json.loads(stats_file.read_text())["stats"]
    # The stats file marks a finished job: it goes before the job's arrays are rewritten.
    atomic.remove(stats_file, cuts_file)
    teachers = {}
    for directory in args.teachers:
        teacher = Teacher.load(directory, args.device)
        teacher.batch_tokens = args.batch_tokens
        if teacher.level in teachers:
            raise SystemExit(f"two teachers for level {teacher.level}: {directory}")
        teachers[teacher.level] = teacher
    units = load_units(args, teachers)
    cuts = CutSet.from_file(args.cuts)
    if nj > 1:
        cuts = cuts.split(nj)[job - 1]
    stats = dump_cuts(cuts, teachers, units, out_dir, args.corpus, job, args.top_k,
                      args.temperature, args.part, args.batch_cuts, args.subsampling)
    write_text(stats_file, json.dumps({"params": params, "stats": stats}, indent=1) + "\n")
    return stats


def merge(args, nj: int) -> dict:
    out_dir = Path(args.out_dir)
    jobs_dir = out_dir / "jobs"
    missing = [str(f) for j in range(1, nj + 1) for f in _job_files(args, j) if not f.is_file()]
    if missing:
        raise SystemExit(f"dump_soft_labels: job outputs missing (a job did not finish): {', '.join(missing)}")
    stats = merge_stats([json.loads((jobs_dir / f"{args.corpus}_{args.part}_stats.{j}.json")
                                    .read_text())["stats"] for j in range(1, nj + 1)])
    write_text(out_dir / f"{args.corpus}_{args.part}_bad_items.txt", "".join(
        (jobs_dir / f"{args.corpus}_{args.part}_bad_items.{j}.txt").read_text()
        for j in range(1, nj + 1)))
    write_text(out_dir / f"{args.corpus}_{args.part}_dump_stats.json",
               json.dumps(stats, indent=1) + "\n")
    # the job manifests are concatenated line by line (no re-serialisation of the cuts)
    with atomic_path(out_dir / f"{args.corpus}_cuts_{args.part}.jsonl.gz") as tmp:
        with gzip.open(tmp, "wt", compresslevel=5) as merged:
            for j in range(1, nj + 1):
                with gzip.open(jobs_dir / f"{args.corpus}_cuts_{args.part}.{j}.jsonl.gz", "rt") as part:
                    shutil.copyfileobj(part, merged)
    return stats


def lost_tokens_summary(stats: dict) -> str:
    """'senone 61234/192730 (31.8%), ...': per level, the tokens with frames that no output
    frame reads, of all tokens with frames."""
    lost, total = stats.get("tokens_without_output_frame", {}), stats.get("tokens_with_frames", {})
    return ", ".join(f"{level} {lost.get(level, 0)}/{n} ({100 * lost.get(level, 0) / max(n, 1):.1f}%)"
                     for level, n in total.items()) or "none"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, help="aligned cuts (exp/senone_ali/cuts_train.jsonl.gz)")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--tree", help="exp/tree: check senone runs against phones_to_senones")
    parser.add_argument("--topology", help="with --tree (default: topology.json next to the tree)")
    parser.add_argument("--bpe-model", help="sentencepiece model (needed for a subword teacher)")
    parser.add_argument("--teachers", nargs="+", required=True, help="exp/lm_<level> dirs")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--part", default="train")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--subsampling", type=int, default=3,
                        help="the AM's frame subsampling, for the count of tokens it never reads")
    parser.add_argument("--batch-cuts", type=int, default=32, help="cuts scored together")
    parser.add_argument("--batch-tokens", type=int, default=8192, help="positions per teacher batch")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch threads per job (0: cores / nj)")
    parser.add_argument("--force", action="store_true", help="redo every job even if done with the same inputs")
    add_job_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:

    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_parser().parse_args(argv)
    if args.tree and args.topology is None:
        tree_file = Path(args.tree) / "tree.txt" if Path(args.tree).is_dir() else Path(args.tree)
        args.topology = str(tree_file.parent / "topology.json")
    out_dir = Path(args.out_dir)
    if args.top_k < 1 or args.temperature <= 0 or args.subsampling < 1:
        parser.error("--top-k and --subsampling must be >= 1 and --temperature > 0")
    if args.job is not None:
        setup_logging()
        torch.set_num_threads(args.num_threads or max(1, (os.cpu_count() or 1) // args.nj))
        run_job(args, args.job, args.nj)
        return 0
    setup_logging(log_file=out_dir / "log" / "dump_soft_labels.log")
    marker_dir = out_dir / f".{args.corpus}_{args.part}"
    final = out_dir / f"{args.corpus}_cuts_{args.part}.jsonl.gz"
    fingerprint = inputs_fingerprint(args)
    if atomic.up_to_date(marker_dir, fingerprint, args.force, [final],
                         what=f"{out_dir} {args.corpus} {args.part} soft labels"):
        return 0
    atomic.clear_done(marker_dir)
    # The merged cuts point at the job arrays, which unfinished jobs are about to rewrite.
    atomic.remove(final)
    if args.force:  # every job is redone
        atomic.remove(*[f for job in range(1, args.nj + 1) for f in _job_files(args, job)])
    if all(job_done(args, job, args.nj) for job in range(1, args.nj + 1)):
        log.info("all %d jobs already done; merging (remove %s/jobs to redo)", args.nj, out_dir)
    elif args.nj > 1:
        try:
            run_jobs(args.cmd, args.nj, out_dir / "log" / "dump.JOB.log", "steps.dump_soft_labels",
                     [a for a in job_argv(argv) if a != "--force"])
        except JobsFailed as e:
            log.error("%s", e)
            return 1
    else:
        if args.num_threads:
            torch.set_num_threads(args.num_threads)
        run_job(args, 1, 1)
    stats = merge(args, args.nj)
    atomic.mark_done(marker_dir, {"cuts_in": stats["cuts_in"], "cuts_out": stats["cuts_out"], "num_jobs": args.nj},
                     fingerprint)
    log.info("%d cuts in, %d out (%s left out: %s); tokens %s; rows %s; %d frames, %d speech; "
             "windowed references %s; problems %s; details in %s", stats["cuts_in"],
             stats["cuts_out"], sum(stats.get("cuts_failed", {}).values()),
             stats.get("cuts_failed", {}), stats.get("tokens"), stats.get("rows"),
             stats["frames"], stats["speech_frames"], stats.get("windowed", {}),
             stats.get("problems"), out_dir / f"{args.corpus}_{args.part}_bad_items.txt")
    log.info("tokens no output frame reads at subsampling %d: %s", args.subsampling,
             lost_tokens_summary(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
