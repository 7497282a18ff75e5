"""Decode cuts with a hybrid acoustic model on an HCLG graph; LM-weight sweep on dev.

For each cut: raw fbank -> the AM's senone log-posteriors (steps.am.scorer.load_scorer) minus
its log-priors -> search of HCLG -> the best word sequence for each LM weight w in
--lm-weights (maximising w * graph score + acoustic score, Kaldi's scoring with LMWT = w).
--decoder k2 (default): k2's pruned lattice search (steps.decoding: intersect_dense_pruned
on HCLG.k2.pt, --beam, --lattice-beam, --max-active, --min-active at --acoustic-scale),
every weight's 1-best from that one lattice. --decoder kaldi: kaldi-decoder's
LatticeSimpleDecoder (no active-state limit; less memory, smaller lattices). The AM runs once
per cut either way.

Search errors (k2): on a set decoded with a sweep (dev), for every cut with a reference, the
reference's best path through the same graph on the same scores (not on test, to save time).
At the weight the search ran at (1 / --acoustic-scale), a cut whose found best path scores
worse than that is a search error (Kaldi's test; search_errors); at the chosen weight, a
cut whose reference beats the lattice's best path though the search's own best beat it
fell outside the lattice beam (lattice_beam_losses); a cut whose search reached no final
state is counted apart. --no-search-errors skips the reference's path: stage 9's LM-strength
decodes use it, as it cost 15% and 27% of a dev decode's time at orders 1 and 2 (34% at the
main 3-gram; default-size synth, one thread), where it found 0 and 3 search errors in 280
utterances. Rescoring (k2, --rescore-lm): each lattice's N-best (--nbest sampled
paths and every weight's best) rescored with a bigger ARPA LM, the graph's own LM
(--graph-lm) taken out (Kaldi's lmrescore rule); the sweep and choice again, in
<out-dir>/rescore/. A cut whose rescoring fails (e.g. a word the new LM lacks, and it has no
<unk>) keeps its first-pass hypothesis there, so both WERs cover the same utterances; it is
listed in rescore/bad_utts.txt and counted (decode_info.json: rescore.failed). A failed
reference score leaves the cut out of the search-error count (search_errors.reference_failed).
Neither touches the first pass.

Choosing the LM weight (never on test):
  dev:   --lm-weights "7 8 9 10 11 12 13 14 15 16 17" (the default). With references (the
         cuts' supervision texts) each weight is scored (steps.score: wer_<w>, recogs_<w>,
         errs_<w>), the best is written to <out-dir>/best_lm_weight and its hypotheses to
         hyp.txt.
  test:  --lm-weight-from <dev decode dir>: reads that dir's best_lm_weight and decodes with
         that weight only; nothing is chosen on this set. (--lm-weights 12 also works: one
         weight, no choice.)

Reads:  --model (checkpoint with a FrameScorer), --graph (steps.mkgraph's dir), --cuts
        (cuts with fbank features), --lang-dir (words.txt, for a check against the graph)
Writes: <out-dir>/hyp.txt            `utt-id WORDS` at the chosen weight (every cut; an
                                     utterance that could not be decoded has no words)
        <out-dir>/hyp_<w>.txt        per weight of a sweep (more than one weight)
        <out-dir>/wer_<w>, recogs_<w>, errs_<w>   per weight of a sweep with references
        <out-dir>/best_lm_weight     the weight chosen on this set (sweep only)
        <out-dir>/lm_weight          the weight of hyp.txt
        <out-dir>/wer, recogs, errs  the scoring of hyp.txt (when the cuts have references)
        <out-dir>/text               the references (supervision texts)
        <out-dir>/bad_utts.txt       `utt-id reason` for every cut not decoded normally
        <out-dir>/decode_info.json   counts, seconds of audio, AM and search times, RTFs,
                                     lattice arcs per frame, no_final_state, search_errors,
                                     lattice_beam_losses
        <out-dir>/rescore/           with --rescore-lm: hyp.txt, wer, best_lm_weight ... as above;
                                     bad_utts.txt: `utt-id reason` of each failed rescoring
        <out-dir>/split<nj>/         per-job outputs; <out-dir>/log/decode.JOB.log
        <out-dir>/.done              with the inputs' fingerprint: a second run with the same
                                     model, graph, cuts and options is skipped (--force redoes it)

Example:
  python -m steps.decode --model exp/am_baseline/final.pt --graph exp/graph \\
      --cuts data/fbank/synth_cuts_dev.jsonl.gz --lang-dir data/lang \\
      --out-dir exp/am_baseline/decode_dev --nj 2
  python -m steps.decode --model exp/am_baseline/final.pt --graph exp/graph \\
      --cuts data/fbank/synth_cuts_test.jsonl.gz --lang-dir data/lang \\
      --out-dir exp/am_baseline/decode_test --lm-weight-from exp/am_baseline/decode_dev --nj 2
  (rescoring: add --rescore-lm data/lang_rescore/lm_4gram.arpa --graph-lm data/lang_test/lm_3gram.arpa)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import torch
from lhotse import CutSet

from steps.am.scorer import load_scorer
from steps.compress.student import SCORERS
from steps.core import atomic, jobs
from steps.core.log import progress, setup_logging
from steps.data.ali_times import FRAME_SHIFT
from steps.decoding.cut_decoding import decode_cuts
from steps.decoding.decoder import K2Decoder
from steps.decoding.hybrid_graph import HybridGraph, SearchOptions
from steps.decoding.k2_search import DEFAULT_BEAM, DEFAULT_LATTICE_BEAM, LatticeOptions
from steps.decoding.lm_weights import (
    format_weight,
    kaldi_text,
    lattice_beam_losses,
    parse_weights,
    search_errors,
    weight_from_dir,
    write_hyps,
)
from steps.decoding.rescore import NbestRescorer
from steps.lang.lexicon import read_symbol_table

log = logging.getLogger(__name__)

DEFAULT_LM_WEIGHTS = "7 8 9 10 11 12 13 14 15 16 17"
DECODERS = ("k2", "kaldi")
OLD_DECODER_NAMES = {"lattice": "kaldi"}  # still read: the name it had
FAILED_STEPS = {"rescore": "rescoring", "reference": "the reference's score"}


# ----------------------------------------------------------------------------- one job


def run_job(args, job: int, nj: int, weights: list[float], rescore_weights: list[float] | None = None) -> Path:
    """Decodes this job's share of the cuts; writes <out-dir>/split<nj>/decode.<job>.jsonl."""

    torch.set_num_threads(args.num_threads or max(1, (os.cpu_count() or 1) // nj))
    cuts = CutSet.from_file(args.cuts)
    if nj > 1:
        parts = cuts.split(nj)
        cuts = parts[job - 1] if job <= len(parts) else CutSet.from_cuts([])
    graph = HybridGraph.load(args.graph, with_fst=args.decoder != "k2")
    check_words(graph, args.lang_dir)
    scorer = load_scorer(args.model, args.device, SCORERS)
    if scorer.num_outputs != graph.num_senones:
        raise SystemExit(f"{args.model} has {scorer.num_outputs} outputs; {args.graph} was built for "
                         f"{graph.num_senones} senones (another tree?)")
    options = search_options(args) if args.decoder == "kaldi" else None  # k2: lattice_options
    k2_decoder = None
    if args.decoder == "k2":
        k2_decoder = K2Decoder.load(args.graph, graph.unit_senones, lattice_options(args))
        if args.rescore_lm is not None:
            k2_decoder.rescorer = NbestRescorer(args.graph_lm, args.rescore_lm, graph.words)
            k2_decoder.nbest = args.nbest
    out = args.out_dir / f"split{nj}" / f"decode.{job}.jsonl"

    with atomic.atomic_path(out) as tmp, open(tmp, "w") as f:
        for record in progress(decode_cuts(cuts, scorer, graph, options, weights, k2_decoder,
                                           rescore_weights, forced_references=search_error_check(args)),
                               total=len(cuts),
                           desc=f"decode job {job}", disable=None):
            if record["problem"]:
                log.warning("%s: %s", record["id"], record["problem"])
            for step, reason in record.get("failed", {}).items():
                log.warning("%s: %s failed, the first pass kept: %s", record["id"], FAILED_STEPS[step], reason)
            f.write(json.dumps(record) + "\n")
    return out


def search_error_check(args) -> bool:
    """Whether the reference's forced path is scored: on a set with a sweep (dev), unless
    --no-search-errors."""
    return args.lm_weight_from is None and not args.no_search_errors


def lattice_options(args) -> LatticeOptions:
    return LatticeOptions(acoustic_scale=args.acoustic_scale, beam=args.beam, lattice_beam=args.lattice_beam,
                          max_active=args.max_active, min_active=args.min_active)


def search_options(args) -> SearchOptions:
    return SearchOptions(decoder="kaldi", acoustic_scale=args.acoustic_scale, beam=args.beam,
                         lattice_beam=args.lattice_beam)


def check_words(graph: HybridGraph, lang_dir: Path) -> None:

    table = read_symbol_table(Path(lang_dir) / "words.txt")
    if any(graph.words[i] != w for w, i in table.items() if i < len(graph.words)) or len(table) != len(graph.words):
        raise SystemExit(f"{lang_dir}/words.txt differs from the graph's words.txt")


# ----------------------------------------------------------------------------- merge


def merge(args, nj: int, weights: list[float], choose: bool, rescore_weights: list[float] | None = None) -> dict:
    # Length: the jobs' records merged, then every result file written from them, in order
    records = []
    for job in range(1, nj + 1):
        path = args.out_dir / f"split{nj}" / f"decode.{job}.jsonl"
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    out = args.out_dir
    bad = [(r["id"], r["problem"]) for r in records if r["problem"]]
    atomic.write_text(out / "bad_utts.txt", "".join(f"{u} {reason}\n" for u, reason in bad))
    if bad and len(bad) == len(records):  # a WER of nothing decoded would read as a result
        raise SystemExit(f"{out}: none of the {len(records)} cuts was decoded (the first: {bad[0][0]}: "
                         f"{bad[0][1].splitlines()[0]}); every reason is in {out / 'bad_utts.txt'}")
    refs = {r["id"]: r["ref"] for r in records}
    atomic.write_text(out / "text", kaldi_text(refs))
    hyps = {w: {r["id"]: r["hyps"].get(format_weight(w)) or [] for r in records} for w in weights}
    chosen, summary = write_hyps(out, refs, hyps, choose, str(out))
    if rescore_weights:
        rescored = {w: {r["id"]: r.get("rescored", {}).get(format_weight(w)) or [] for r in records}
                    for w in rescore_weights}
        (out / "rescore").mkdir(exist_ok=True)
        r_chosen, r_summary = write_hyps(out / "rescore", refs, rescored, len(rescore_weights) > 1,
                                         f"{out} rescored with {args.rescore_lm}")
        # the cut's rescored hyps are its first-pass ones (steps.decoding.decoder)
        failed = [(r["id"], r["failed"]["rescore"]) for r in records if "rescore" in r.get("failed", {})]
        atomic.write_text(out / "rescore" / "bad_utts.txt",
                          "".join(f"{u} rescoring failed: {reason}\n" for u, reason in failed))
        if failed and len(failed) == len(records):
            raise SystemExit(f"{out}: rescoring failed for every one of the {len(records)} cuts (the first: "
                             f"{failed[0][0]}: {failed[0][1]}); check --rescore-lm {args.rescore_lm}. The "
                             f"first pass is in {out}")
        if failed:
            log.warning("rescoring failed for %d of %d cuts; they keep their first-pass hypotheses in %s "
                        "(reasons in %s)", len(failed), len(records), out / "rescore",
                        out / "rescore" / "bad_utts.txt")
        summary["rescore"] = {"lm": str(args.rescore_lm), "nbest": args.nbest, "lm_weight": r_chosen,
                              "failed": len(failed), **r_summary}

    audio = sum(r["frames"] for r in records) * FRAME_SHIFT
    am = sum(r["am_seconds"] for r in records)
    search = sum(r["search_seconds"] for r in records)
    extra = {k: round(sum(r.get(f"{k}_seconds", 0.0) for r in records), 2) for k in ("sweep", "reference", "rescore")}
    reasons: dict[str, int] = {}
    for _, reason in bad:
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    no_final = sum(1 for _, reason in bad if reason.startswith(("no final state", "no path survived")))
    search_weight = 1.0 / args.acoustic_scale
    errors = search_errors(records, search_weight)
    losses = lattice_beam_losses(records, chosen, search_weight)
    lattice_arcs = sum(r["lattice"][1] for r in records if "lattice" in r)
    summary.update({
        "cuts": len(records), "bad": len(bad), "bad_reasons": reasons, "lm_weight": chosen,
        "no_final_state": no_final, "search_errors": errors, "lattice_beam_losses": losses,
        "audio_seconds": round(audio, 2), "am_seconds": round(am, 2), "search_seconds": round(search, 2),
        "rtf_am": round(am / audio, 4) if audio else None,
        "rtf_search": round(search / audio, 4) if audio else None,
        "sweep_seconds": extra["sweep"], "rtf_sweep": round(extra["sweep"] / audio, 4) if audio else None,
        "reference_seconds": extra["reference"], "rescore_seconds": extra["rescore"],
        "lattice_arcs_per_frame": round(lattice_arcs / (audio / FRAME_SHIFT), 1) if audio and lattice_arcs else None,
        "nj": nj, "decoder": args.decoder, "acoustic_scale": args.acoustic_scale, "beam": args.beam,
        "lattice_beam": args.lattice_beam, "max_active": args.max_active, "min_active": args.min_active,
    })
    if errors is not None:
        log.info("search errors at the search's LM weight %s: %d of %d utterances (%.1f%%) score worse than "
                 "their reference's path through the graph; %d references have no path; %d without a final "
                 "state; at LM weight %s %d more references beat the lattice's best but fell outside the "
                 "lattice beam", format_weight(search_weight), errors["errors"], errors["scored"],
                 100 * (errors["share"] or 0), errors["reference_without_path"], no_final, format_weight(chosen),
                 losses["errors"])
        if errors["reference_failed"]:
            log.warning("the reference's score failed for %d cuts (left out of the search-error count): %s",
                        errors["reference_failed"], "; ".join(f"{u}: {reason}" for u, reason
                                                               in errors["reference_failures"].items()))
    atomic.write_text(out / "decode_info.json", json.dumps(summary, indent=2) + "\n")
    log.info("%d cuts decoded, %d reported in %s (%s); %.0f s of audio, RTF AM %.3f, search %.3f "
             "(per job, %d jobs)", len(records), len(bad), out / "bad_utts.txt",
             ", ".join(f"{k}: {v}" for k, v in reasons.items()) or "none", audio,
             am / audio if audio else 0.0, search / audio if audio else 0.0, nj)
    return summary


# ----------------------------------------------------------------------------- main


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint: an acoustic, alignment or compressed model")
    parser.add_argument("--graph", type=Path, required=True, help="steps.mkgraph output dir")
    parser.add_argument("--cuts", required=True, help="cuts with fbank features")
    parser.add_argument("--lang-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--decoder", choices=DECODERS + tuple(OLD_DECODER_NAMES), default="k2",
                        help="k2: pruned lattice search (k2.intersect_dense_pruned, --max-active), one "
                             "search for all LM weights; kaldi (old name: lattice): kaldi-decoder's "
                             "LatticeSimpleDecoder (no active-state limit)")
    parser.add_argument("--acoustic-scale", type=float, default=0.1,
                        help="scale of the acoustic scores in the lattice search (k2, lattice)")
    parser.add_argument("--beam", type=float, default=DEFAULT_BEAM, help="search beam (k2, lattice decoders)")
    parser.add_argument("--lattice-beam", type=float, default=DEFAULT_LATTICE_BEAM, help="k2, lattice decoders")
    parser.add_argument("--max-active", type=int, default=7000, help="k2: most active states a frame")
    parser.add_argument("--min-active", type=int, default=200, help="k2: fewest active states a frame")
    parser.add_argument("--rescore-lm", type=Path, default=None,
                        help="k2: ARPA LM to rescore each lattice's N-best with (e.g. a 4-gram); results "
                             "in <out-dir>/rescore/")
    parser.add_argument("--graph-lm", type=Path, default=None,
                        help="the ARPA LM the graph was built from (its scores are taken out when rescoring)")
    parser.add_argument("--nbest", type=int, default=100, help="paths sampled from each lattice for rescoring")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--lm-weights", default=None,
                       help=f"LM weights to try (best chosen on this set); default \"{DEFAULT_LM_WEIGHTS}\"")
    group.add_argument("--lm-weight-from", type=Path, default=None,
                       help="decode dir whose best_lm_weight to use (e.g. decode_dev for test)")
    parser.add_argument("--no-search-errors", action="store_true",
                        help="no forced reference paths, so no search-error count (it is on for a sweep)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads per job (0: cores / nj)")
    parser.add_argument("--force", action="store_true", help="decode again even if up to date")
    jobs.add_job_arguments(parser)
    parser.add_argument("--verbose", action="store_true")
    return parser


def fingerprint(args, weights: list) -> dict:
    """Of the inputs (model, graph, cuts; steps.core.atomic.inputs_fingerprint) and every option
    that changes the output, the LM weights included."""
    options = {k: str(v) for k, v in vars(args).items()
               if k not in ("nj", "job", "cmd", "force", "verbose", "num_threads", "model", "graph", "cuts")}
    return atomic.inputs_fingerprint([args.model, args.graph, args.cuts, args.rescore_lm, args.graph_lm],
                                     weights=weights, **options)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = get_parser()
    args = parser.parse_args(argv)
    args.decoder = OLD_DECODER_NAMES.get(args.decoder, args.decoder)
    if args.rescore_lm is not None:
        if args.decoder != "k2":
            parser.error("--rescore-lm needs --decoder k2")
        if args.graph_lm is None:
            parser.error("--rescore-lm needs --graph-lm (the ARPA LM of the graph)")
        for path in (args.rescore_lm, args.graph_lm):
            if not path.is_file():
                parser.error(f"{path} not found")
    rescore_weights = None
    if args.lm_weight_from is not None:
        weights, choose = [weight_from_dir(args.lm_weight_from)], False
        if args.rescore_lm is not None:
            rescore_weights = [weight_from_dir(args.lm_weight_from / "rescore")]
    else:
        weights = parse_weights(args.lm_weights or DEFAULT_LM_WEIGHTS)
        choose = len(weights) > 1
        if args.rescore_lm is not None:
            rescore_weights = weights
    if args.job is not None:
        setup_logging(args.verbose)
        run_job(args, args.job, args.nj, weights, rescore_weights)
        return
    setup_logging(args.verbose, args.out_dir / "log" / "decode.log")
    digest = fingerprint(args, [weights, rescore_weights])
    if atomic.up_to_date(args.out_dir, digest, args.force, [args.out_dir / "hyp.txt"],
                         what=f"{args.out_dir} decoding"):
        return
    atomic.clear_done(args.out_dir)
    # From clean: no figures of an older decoding next to an unfinished one, no job files of
    # an interrupted run.
    atomic.remove(*[args.out_dir / n for n in ("wer", "hyp.txt", "lm_weight", "best_lm_weight")])
    shutil.rmtree(args.out_dir / "rescore", ignore_errors=True)
    shutil.rmtree(args.out_dir / f"split{args.nj}", ignore_errors=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.lm_weight_from is not None:
        log.info("LM weight %s from %s", format_weight(weights[0]), args.lm_weight_from)
    if args.nj > 1:
        jobs.run_jobs(args.cmd, args.nj, args.out_dir / "log" / "decode.JOB.log", "steps.decode",
                      jobs.job_argv(argv))
    else:
        run_job(args, 1, 1, weights, rescore_weights)
    merge(args, args.nj, weights, choose, rescore_weights)
    atomic.mark_done(args.out_dir, fingerprint=digest)


if __name__ == "__main__":
    main()
