"""Build the phonetic decision tree that ties triphone states into senones (Kaldi's
cluster-phones + compile-questions + build-tree).

Questions: the phones' pooled Gaussian statistics (by default of each phone's middle HMM
state, as cluster-phones' --pdf-class-list=1 does for 3-state phones) are clustered
top-down by binary k-means; every node of the cluster tree becomes a question about a
context phone, plus `EDGE` (the utterance edge, phone 0), plus the sets of
--extra-questions (default <lang-dir>/extra_questions.txt if it exists: one set of phone
symbols per line), plus questions about the HMM-state index (all two-way splits of the
states for HMMs of up to 5 states).

Roots (Kaldi's roots file): each context-dependent phone gets one root shared by its
states (--shared-states true, Kaldi's `shared split`) or one root per state (false); the
context-independent phones of the statistics (SIL, SPN) get one unsplit root per state
(`not-shared not-split`). --roots FILE reads Kaldi's format instead
(`shared|not-shared split|not-split PHONE...` per line).

Splitting and merging: see steps.tree.building. Kaldi names and defaults are kept:
--thresh 300, --cluster-thresh -1 (the smallest split gain; 0 = no merging),
--max-leaves 0 (no limit; --num-leaves is the same option, the name of Kaldi's scripts'
argument), --var-floor 0.01 (acc-tree-stats' option in Kaldi, applied here at build time).
Differences from Kaldi: --min-count (frames on each side of a split, default 20; Kaldi's
build-tree has no such option, HTK's RO does); no question refinement (compile-questions'
--num-iters-refine); no rounding of the leaf count to a multiple of 8; non-shared roots
may be split. Phones without statistics keep a single leaf (Kaldi warns the same way).
Log-likelihood gains depend on the feature dimension: with 80-dim fbank they are about
twice those of Kaldi's 39-dim MFCC+deltas for the same data, so --thresh 300 stops later.

Reads:  <stats-dir>/stats.npz (steps.acc_tree_stats), --lang-dir, --topology (default:
        <stats-dir>/topology.json, which steps.acc_tree_stats leaves there)
Writes: <out-dir>/tree.txt        the tree (steps.tree.decision_tree.Tree.load reads it)
        <out-dir>/topology.json   the topology it ties (a copy): the tree's folder is all a
                                  later step needs
        <out-dir>/questions.txt   `name kind members` of every question
        <out-dir>/senones.txt     `id description` e.g. `AH.s1.{L:{B,P},R:!{<eps>}}`
        <out-dir>/occs.txt        `id frames` occupancy of each senone
        <out-dir>/build_info.json options and summary (events, leaves, gains, objf)
        <out-dir>/run_env.json    CPU, its SIMD and library versions (steps.core.run_env)
        <out-dir>/log/build_tree.log, <out-dir>/log/splits.txt (every split and its gain)
        <out-dir>/.done           written last, with the fingerprint of the inputs (stats,
                                  lang, topology, question and roots files) and options: a
                                  second run with the same ones is skipped (--force rebuilds)

Example:
  python -m steps.build_tree --stats-dir exp/tree --lang-dir data/lang \\
      --num-leaves 2000 --thresh 300 --out-dir exp/tree
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from steps.core import atomic, run_env
from steps.core.log import setup_logging
from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang
from steps.tree.building import BuildOptions, build, format_report, load_stats
from steps.tree.questions import make_questions, make_roots, read_extra_questions, read_roots

log = logging.getLogger(__name__)


def str2bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stats-dir", required=True, help="directory with stats.npz (steps.acc_tree_stats)")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--topology", default=None, help="default: <stats-dir>/topology.json")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--num-leaves", "--max-leaves", dest="num_leaves", type=int, default=0,
                        help="maximum number of leaves (0: no limit; Kaldi's --max-leaves)")
    parser.add_argument("--thresh", type=float, default=300.0, help="minimum log-likelihood gain of a split")
    parser.add_argument("--cluster-thresh", type=float, default=-1.0,
                        help="merge leaves of a root whose merge costs less (-1: smallest split gain, 0: none)")
    parser.add_argument("--min-count", type=float, default=20.0, help="minimum frames on each side of a split")
    parser.add_argument("--var-floor", type=float, default=0.01, help="variance floor of the Gaussian objective")
    parser.add_argument("--shared-states", type=str2bool, default=True,
                        help="true: one root per phone shared by its states; false: one root per phone state")
    parser.add_argument("--extra-questions", default=None,
                        help="extra phone sets, one per line (default <lang-dir>/extra_questions.txt if present; "
                             "'' for none)")
    parser.add_argument("--roots", default=None, help="Kaldi roots file (default: made from the topology)")
    parser.add_argument("--cluster-states", choices=("middle", "all"), default="middle",
                        help="which HMM states' statistics cluster the phones into questions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the k-means starts of phone clustering")
    parser.add_argument("--force", action="store_true", help="rebuild even if done with the same inputs")
    return parser


def main(argv: list[str] | None = None) -> None:
    # Length: the program's stages in order (inputs, questions, build, outputs)
    args = get_parser().parse_args(argv)
    if args.topology is None:
        args.topology = str(Path(args.stats_dir) / "topology.json")
    out_dir = Path(args.out_dir)
    setup_logging(log_file=out_dir / "log" / "build_tree.log")
    log.info("%s", " ".join(["python -m steps.build_tree", *(sys.argv[1:] if argv is None else argv)]))
    start = time.time()

    extra_path = args.extra_questions
    if extra_path is None and (Path(args.lang_dir) / "extra_questions.txt").is_file():
        extra_path = str(Path(args.lang_dir) / "extra_questions.txt")
    options = {k: v for k, v in vars(args).items() if k not in ("out_dir", "stats_dir", "force")}
    fingerprint = atomic.inputs_fingerprint(
        [Path(args.stats_dir) / "stats.npz", args.lang_dir, args.topology, extra_path or None, args.roots],
        **options)
    if atomic.up_to_date(out_dir, fingerprint, args.force, [out_dir / "tree.txt", out_dir / "topology.json"],
                         what=f"{out_dir} tree"):
        return
    atomic.clear_done(out_dir)
    atomic.remove(out_dir / "tree.txt")  # no later stage may read the old tree while this one is built
    run_env.write(out_dir)  # the statistics' float sums depend on the CPU and library versions
    lang = Lang.load(args.lang_dir)
    topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
    stats, info = load_stats(Path(args.stats_dir) / "stats.npz")
    silence = lang.phone_id[lang.optional_silence]
    ci_phones = list(info.get("ci_phones", sorted(lang.silence_phone_ids)))
    roots = read_roots(args.roots, lang, topology) if args.roots else make_roots(topology, ci_phones,
                                                                                 args.shared_states)
    extra = read_extra_questions(Path(extra_path), lang) if extra_path else []
    questions = make_questions(stats, lang, topology, roots, silence, extra, args.cluster_states,
                               args.var_floor, args.seed)
    log.info("%d events over %d frames (%d-dim); %d roots; %d questions (%d phone, %d state; %d extra sets from %s)",
             stats.num_events, int(stats.num_frames), stats.dim, len(roots), len(questions),
             sum(q.kind == "phone" for q in questions), sum(q.kind == "state" for q in questions), len(extra),
             extra_path or "nowhere")

    options = BuildOptions(thresh=args.thresh, max_leaves=args.num_leaves, cluster_thresh=args.cluster_thresh,
                           min_count=args.min_count, var_floor=args.var_floor)
    phones = lang.phones[:max(topology.phone_ids) + 1]
    try:
        tree, occs, report = build(stats, roots, questions, phones, silence, options)
    except ValueError as e:
        log.error("%s", e)
        sys.exit(1)
    for line in format_report(report, args.num_leaves).splitlines():
        log.info("%s", line)
    if report.unseen_roots:
        log.warning("no statistics for: %s (single leaves with zero occupancy)", " ".join(report.unseen_roots))

    tree.save(out_dir)
    atomic.write_text(out_dir / "questions.txt", "".join(
        f"{q.name} {q.kind} {' '.join(lang.phones[v] if q.kind == 'phone' else str(v) for v in q.values)}\n"
        for q in questions))
    atomic.write_text(out_dir / "senones.txt",
                      "".join(f"{i} {d}\n" for i, d in enumerate(tree.describe_senones())))
    atomic.write_text(out_dir / "occs.txt", "".join(f"{i} {c:.0f}\n" for i, c in enumerate(occs)))
    atomic.write_text(out_dir / "log" / "splits.txt", "# n gain root key question leaves_after\n" + "".join(
        f"{n} {s['gain']:.2f} {s['root']} {s['key']} {s['question']} {s['leaves']}\n"
        for n, s in enumerate(report.splits, 1)))
    summary = {
        "options": vars(args), "num_events": report.num_events, "num_frames": int(round(report.num_frames)),
        "feature_dim": stats.dim, "num_roots": len(roots), "num_questions": len(questions),
        "num_splits": len(report.splits), "stop_reason": report.stop_reason,
        "smallest_split": None if report.smallest_split is None else round(report.smallest_split, 3),
        "leaves_after_split": report.leaves_after_split,
        "cluster_thresh": report.cluster_thresh, "merges": report.merges, "num_senones": tree.num_senones,
        "objf_per_frame": {k: round(v / max(report.num_frames, 1.0), 5) for k, v in
                           (("initial", report.objf_initial), ("after_split", report.objf_split),
                            ("final", report.objf_final))},
        "unseen_roots": report.unseen_roots, "min_occupancy": float(occs.min()) if len(occs) else 0.0,
        "seconds": round(time.time() - start, 2),
    }
    atomic.write_text(out_dir / "build_info.json", json.dumps(summary, indent=2) + "\n")
    atomic.copy_file(args.topology, out_dir / "topology.json")
    atomic.mark_done(out_dir, {"num_senones": tree.num_senones}, fingerprint)
    log.info("%d senones; wrote %s, senones.txt, occs.txt, questions.txt (%.1f s)", tree.num_senones,
             out_dir / "tree.txt", time.time() - start)


if __name__ == "__main__":
    main()
