"""Benchmark of the hybrid decoding graph (steps.mkgraph) and decoder (steps.decoding.hybrid_graph,
as steps.decode uses it) at a realistic size; also the toy world the tests build on.

World: an LM text, either --text (e.g. the recipe's data/text/lm_text.txt; its words that
CMUdict knows make the vocabulary) or a synthetic one: --sentences sentences over --words
CMUdict words from a class-based random generator (60 word classes, each followed by a few
others, Zipfian choice inside a class, 4-14 words; about 6x more distinct trigrams than the
synth recipe's grammar text, so a worst case). 2 pronunciations at most, stress removed.
A trigram (interpolated modified Kneser-Ney, steps.lm.ngram, optional --prune) goes through
kaldilm into G; the topology is steps.hmm.topology's (3 states, 1 for SIL/SPN); the tree is a
synthetic one of ~1200 senones asking about the classes of the left (state 0), both
(state 1) and right (state 2) neighbours (a few thousand distinct tied triphone HMMs).

Prints: the LM's size, every graph stage (states, arcs, seconds), HCLG's size on disk,
build time, process CPU time and peak memory; then the decoders compared at equal beams
(--beam, --lattice-beam, --max-active): k2 (steps.decoding: intersect_dense_pruned, one
search, the 1-best of 11 LM weights from the lattice), kaldi-decoder's lattice decoder (no
active-state limit; one search, 11 weights):
WER, search RTF (the lattice search), sweep RTF (the 11 weights' 1-best from the lattice),
lattice arcs per frame, process RSS before and at its peak.

Two kinds of figures, kept apart:
- PLANTED-PATH SELF-CHECK OF THE GRAPH (always): the scores are built from each reference's
  own senone path (synthetic_loglikes: the true senone near log-posterior -0.7, a few
  confusable ones near -4, the rest near -14, minus uniform log-priors), so the search works
  about as hard as with a trained model; its WER is a check that the graph and the search
  keep the path they must have, not a recognition result. The AM forward time is that of a
  randomly initialised steps.am.model of conf/am_baseline.yaml's shape, whose output is
  thrown away.
- A TRAINED MODEL ON HELD-OUT UTTERANCES (--recipe DIR, when DIR/exp has am_baseline_s1/final.pt
  and exp/graph): the recipe's --part (dev) decoded with every --configs decoder from the
  same scores: WER at LM weight 10 and at the best weight of 7..17, search and sweep RTF (AM apart),
  lattice size, utterances without a final state, search errors (k2: best path worse than
  the reference's forced path at the best weight), memory.
Wall times on a shared machine are inflated; the process CPU time is printed too.

    utils/bench/bench_decode.py [--text data/text/lm_text.txt] [--work-dir /tmp/bench_decode]
        [--words 2500 --sentences 150000] [--prune 0] [--utts 40] [--threads 1] [--beam 13]
    utils/bench/bench_decode.py --recipe egs/synth/s5 --recipe-only \
        --configs "k2:8:5:7000 kaldi:8:5 k2:10:6:7000 k2:13:8:7000"

Length: a benchmark with three parts (graph build, synthetic search, a trained model's
held-out decode) that share their set-up and their report.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import json
import logging
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import kaldialign
import kaldilm
import numpy as np
import torch
from lhotse import CutSet

from steps.am.config import load_am_config
from steps.am.model import AcousticModel, AcousticModelScorer
from steps.am.scorer import load_scorer
from steps.compress.student import SCORERS
from steps.data.ali_times import FRAME_SHIFT
from steps.decoding.decoder import K2Decoder
from steps.decoding.forced import ReferenceScorer
from steps.decoding.hybrid_graph import HybridGraph, SearchOptions, lattice_best_words
from steps.decoding.k2_search import LatticeOptions, dense_scores
from steps.graph.hclg import GraphOptions
from steps.graph.k2_graph import load_k2_graph
from steps.graph.make import make_graph
from steps.hmm.topology import Topology
from steps.lang.lexicon import SILENCE, SPOKEN_NOISE, Lang
from steps.lm.kneser_ney import estimate_kneser_ney
from steps.lm.ngram import lm_vocabulary
from steps.toy.decode_graphs import (
    SyntheticTree,
    cmudict_vocabulary,
    save_tree_stub,
    synthetic_loglikes,
    synthetic_sentences,
    write_lang,
)

# ------------------------------------------------------------------ the synthetic world


# ------------------------------------------------------------------ the toy world (tests)


# ------------------------------------------------------------------ the benchmark


def build_world(work: Path, num_words: int, num_sentences: int, prune: float, order: int,
                text: Path | None = None):

    lang_dir, lm_dir = work / "lang", work / "lang_test"
    t0 = time.perf_counter()
    if text is not None:
        lines = [line for line in text.read_text().splitlines() if line.strip()]
        lexicon = cmudict_vocabulary(0, words={w for line in lines for w in line.split()})
        print(f"text {text}: {len(lexicon)} of its words in CMUdict")
    else:
        lexicon = cmudict_vocabulary(num_words)
        lines = synthetic_sentences(sorted(lexicon), num_sentences)
    lang = write_lang(lang_dir, lexicon)
    t1 = time.perf_counter()
    lm, stats = estimate_kneser_ney(lines, lm_vocabulary(lang.words), order=order, prune_threshold=prune)
    lm_dir.mkdir(parents=True, exist_ok=True)
    lm.write_arpa(lm_dir / "lm.arpa")
    t2 = time.perf_counter()
    text = kaldilm.arpa2fst(str(lm_dir / "lm.arpa"), "", disambig_symbol="#0",
                            read_symbol_table=str(lang_dir / "words.txt"))
    (lm_dir / "G.fst.txt").write_text(text)
    t3 = time.perf_counter()
    arpa_head = (lm_dir / "lm.arpa").read_text().split("\n\n")[0]
    counts = " ".join(line.split()[1] for line in arpa_head.splitlines() if line.startswith("ngram"))
    print(f"text: {len(lines)} sentences, {sum(len(x.split()) for x in lines)} words "
          f"({t1 - t0:.1f} s); LM order {order} prune {prune}: n-grams {counts} "
          f"(estimate {t2 - t1:.1f} s, arpa2fst {t3 - t2:.1f} s)")
    phone_ids = [lang.phone_id[p] for p in lang.real_phones if p not in (SILENCE, SPOKEN_NOISE)]
    ci = [lang.phone_id[SILENCE], lang.phone_id[SPOKEN_NOISE]]
    tree = SyntheticTree(phone_ids, ci)
    topology = Topology.build(lang.real_phone_ids, 3, {p: 1 for p in ci})
    return lang, lang_dir, lm_dir, tree, topology, lines


def bench_graph(lang, lang_dir, lm_dir, tree, topology, graph_dir: Path):
    graph_dir.mkdir(parents=True, exist_ok=True)
    (graph_dir / "topology.json").write_text(json.dumps(topology.to_dict()))
    stub = graph_dir / "tree_stub.txt"  # stands for the synthetic tree in the fingerprint
    save_tree_stub(tree, stub)
    info = make_graph(lang_dir, lm_dir, stub, graph_dir / "topology.json", graph_dir,
                              GraphOptions(), force=True, tree=tree)
    print((graph_dir / "stats.txt").read_text().rstrip())
    print(f"graph: {info['num_tied_hmms']} tied HMMs, {info['num_units']} units, "
          f"{tree.num_senones} senones; HCLG {info['states']} states {info['arcs']} arcs "
          f"{info['bytes'] / 2**20:.1f} MiB, build {info['build_seconds']:.1f} s")
    return info


def reset_peak_rss() -> float:
    """Resets the process' peak-RSS counter (Linux /proc/self/clear_refs) and returns the
    current RSS in MiB, so that a following peak_rss_mib() is the peak of what ran between."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    return _status_mib("VmHWM")


def _status_mib(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass
class DecoderRun:
    """What one decoder configuration did on a set of utterances."""

    name: str
    hyps: dict[float, list[list[int] | None]]  # per LM weight, per utterance
    search_seconds: float  # the lattice search (wall)
    sweep_seconds: float = 0.0  # every LM weight's 1-best from the lattice (wall)
    cpu_seconds: float = 0.0  # process CPU time of both (wall time on a loaded machine inflates)
    lattice_arcs: int = 0
    no_final: int = 0
    peak_mib: float = float("nan")  # process peak RSS while it ran
    rss_mib: float = float("nan")  # process RSS before it ran
    best: list[dict] = field(default_factory=list)  # k2: per utterance {weight: PathScores}
    references: list = field(default_factory=list)  # k2: per utterance forced reference PathScores


def run_decoder(kind: str, graph, k2_graph, scores: list[np.ndarray], weights: list[float],
                beam: float, lattice_beam: float, max_active: int, min_active: int = 200,
                references: list[list[int]] | None = None) -> DecoderRun:
    """Searches every utterance's scores with one decoder at these beams: `k2`
    (steps.decoding, intersect_dense_pruned), `kaldi` (kaldi-decoder's LatticeSimpleDecoder,
    no active-state limit). The times cover the search and every LM weight's 1-best; forced
    reference paths are scored after, untimed."""

    label = f"{kind} beam {beam:g} lattice-beam {lattice_beam:g}" + (f" max-active {max_active}" if kind == "k2" else "")
    run = DecoderRun(label, {w: [] for w in weights}, 0.0)
    run.rss_mib = reset_peak_rss()
    cpu0 = time.process_time()
    if kind == "k2":
        decoder = K2Decoder(k2_graph, graph.unit_senones, LatticeOptions(beam=beam, lattice_beam=lattice_beam,
                                                                         max_active=max_active, min_active=min_active))
        for x in scores:
            out = decoder.decode(x, weights)
            run.search_seconds += out.seconds["search"]
            run.sweep_seconds += out.seconds["sweep"]
            run.lattice_arcs += out.lattice_arcs
            run.no_final += not out.reached_final
            run.best.append(out.best)
            for w in weights:
                run.hyps[w].append(out.best[w].words if out.reached_final else None)
        run.cpu_seconds = time.process_time() - cpu0
        run.peak_mib = peak_rss_mib()
        if references is not None:
            scorer = ReferenceScorer(k2_graph)
            run.references = [scorer.score(ref, dense_scores(x, graph.unit_senones, 0.1), 0.1)
                              for x, ref in zip(scores, references)]
        return run
    options = SearchOptions(decoder="kaldi", beam=beam, lattice_beam=lattice_beam)
    for x in scores:
        t0 = time.perf_counter()
        result = graph.search(x, options)
        t1 = time.perf_counter()
        for w in weights:
            run.hyps[w].append(lattice_best_words(result.lattice, w, options.acoustic_scale))
        run.search_seconds += t1 - t0
        run.sweep_seconds += time.perf_counter() - t1
        run.lattice_arcs += _kaldi_lattice_arcs(result.lattice)
        run.no_final += not result.reached_final
    run.cpu_seconds = time.process_time() - cpu0
    run.peak_mib = peak_rss_mib()
    return run


def _kaldi_lattice_arcs(lattice) -> int:
    if lattice is None:
        return 0
    return sum(lattice.num_arcs(state) for state in range(lattice.num_states))


def word_errors(refs: list[list[str]], hyps: list[list[int] | None], words: list[str]) -> tuple[int, int]:

    errors = total = 0
    for ref, ids in zip(refs, hyps):
        hyp = [words[i] for i in (ids or [])]
        errors += sum(1 for r, h in kaldialign.align(ref, hyp, "*") if r != h)
        total += len(ref)
    return errors, total


def search_error_count(run: DecoderRun, weight: float) -> str:
    """Utterances whose forced reference path outscores the found best path (k2 runs)."""
    if not run.references:
        return "n/a"
    scored = errors = 0
    for best, ref in zip(run.best, run.references):
        if ref is None:
            continue
        scored += 1
        errors += weight not in best or ref.total(weight) > best[weight].total(weight) + 1e-2
    return f"{errors}/{scored}"


def print_runs(runs: list[DecoderRun], refs: list[list[str]], words: list[str], seconds: float, frames: int,
               weights: list[float], with_sweep: bool) -> None:
    print(f"  {'decoder':<48} {'WER@10':>15} {'best WER (w)':>18} {'search RTF':>10} {'sweep RTF':>9} {'CPU RTF':>7} {'lat arcs/fr':>11} "
          f"{'no final':>8} {'search err':>10} {'RSS MiB':>15}")
    for run in runs:
        e10, total = word_errors(refs, run.hyps[10.0], words)
        per_weight = {w: word_errors(refs, run.hyps[w], words)[0] for w in weights}
        best_w = min(per_weight, key=lambda w: (per_weight[w], w))
        best = f"{100 * per_weight[best_w] / total:.2f}% ({best_w:g})" if with_sweep else "-"
        arcs = f"{run.lattice_arcs / frames:.0f}" if run.lattice_arcs else "-"
        memory = f"{run.rss_mib:.0f} -> {run.peak_mib:.0f}"
        print(f"  {run.name:<48} {100 * e10 / total:6.2f}% ({e10}/{total}) {best:>18} "
              f"{run.search_seconds / seconds:10.4f} {run.sweep_seconds / seconds:9.4f} {run.cpu_seconds / seconds:7.4f} {arcs:>11} {run.no_final:>8} "
              f"{search_error_count(run, best_w):>10} {memory:>15}")


def bench_decode(graph_dir: Path, lang: Lang, topology: Topology, tree, lines: list[str], num_utts: int,
                 threads: int, beam: float, lattice_beam: float, max_active: int):

    torch.set_num_threads(threads)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    graph = HybridGraph.load(graph_dir)
    t1 = time.perf_counter()
    k2_graph = load_k2_graph(graph_dir)
    print(f"graph load {t1 - t0:.1f} s; k2 graph (converted once, then read from {graph_dir}/HCLG.k2.pt) "
          f"{time.perf_counter() - t1:.1f} s, {k2_graph.num_arcs} arcs")
    sentences = [lines[i].split() for i in rng.choice(len(lines), size=num_utts, replace=False)]
    scores = [synthetic_loglikes(rng, lang, topology, tree, words) for words in sentences]
    frames = sum(len(x) for x in scores)
    seconds = frames * FRAME_SHIFT
    scorer, scorer_name = make_scorer(tree.num_senones)
    t0 = time.perf_counter()
    for x in scores:
        scorer.log_posteriors(torch.randn(len(x), 80))
    t_am = time.perf_counter() - t0
    print(f"decoding {num_utts} utterances, {seconds:.0f} s of audio, {threads} threads")
    print(f"  AM forward RTF {t_am / seconds:.4f}  ({scorer_name}; its output is not used below)")
    print("  PLANTED-PATH SELF-CHECK OF THE GRAPH: the scores are built from each reference's own senone "
          "path (synthetic_loglikes), not from a model; a WER above 0 means the graph or the search "
          "loses a path it must have. Speeds are of searching such scores.")
    weights = [float(w) for w in range(7, 18)]
    runs = [run_decoder("k2", graph, k2_graph, scores, weights, beam, lattice_beam, max_active),
            run_decoder("kaldi", graph, k2_graph, scores, weights, beam, lattice_beam, max_active)]
    print_runs(runs, sentences, graph.words, seconds, frames, weights, with_sweep=False)
    print("  (search RTF: the lattice search; sweep RTF: the 1-best of 11 LM weights from the lattice; CPU RTF: process CPU time of both)")


def bench_real_model(recipe: Path, model: Path | None, part: str, threads: int, configs: list[str],
                     max_utts: int, weights: list[float]) -> None:
    """WER and speed of a trained model on a recipe's held-out utterances: every decoder
    configuration of `configs` ("k2:BEAM:LATTICE_BEAM:MAX_ACTIVE", "kaldi:BEAM:LATTICE_BEAM")
    on the same scores (the AM runs once; its time is apart)."""

    recipe = recipe.resolve()
    model = (model or recipe / "exp" / "am_baseline_s1" / "final.pt").resolve()
    graph_dir = recipe / "exp" / "graph"
    cuts_path = recipe / "data" / "fbank" / f"synth_cuts_{part}.jsonl.gz"
    missing = [str(p) for p in (model, graph_dir / "HCLG.fst", cuts_path) if not p.exists()]
    if missing:
        print(f"real-model decoding not run: {', '.join(missing)} missing (train a recipe to stage 9 first)")
        return
    os.chdir(recipe)  # feature paths in the cuts are relative to the recipe
    torch.set_num_threads(threads)
    graph = HybridGraph.load(graph_dir)
    k2_graph = load_k2_graph(graph_dir)
    scorer = load_scorer(model, scorers=SCORERS)
    if scorer.num_outputs != graph.num_senones:
        raise SystemExit(f"{model} has {scorer.num_outputs} outputs; {graph_dir} was built for "
                         f"{graph.num_senones} senones (another tree?)")
    cuts = CutSet.from_file(cuts_path)
    cuts = cuts.subset(first=max_utts) if max_utts else cuts
    word_id = {w: i for i, w in enumerate(graph.words) if w}
    refs, scores, t_am = [], [], 0.0
    priors = scorer.log_priors.numpy() if scorer.log_priors is not None else 0.0
    for cut in cuts:
        refs.append(" ".join(s.text or "" for s in cut.supervisions).split())
        t0 = time.perf_counter()
        scores.append(scorer.log_posteriors(torch.from_numpy(cut.load_features())).numpy() - priors)
        t_am += time.perf_counter() - t0
    frames = sum(len(x) for x in scores)
    seconds = frames * FRAME_SHIFT
    references = [[word_id.get(w, word_id.get("<UNK>")) for w in ref] for ref in refs]
    print(f"trained model {model} on {part} ({len(scores)} held-out utterances, {seconds:.0f} s), "
          f"{threads} thread(s); AM forward RTF {t_am / seconds:.4f} (not in the search RTF)")
    runs = []
    for config in configs:
        kind, *values = config.split(":")
        if kind == "k2":
            beam, lattice_beam, max_active = float(values[0]), float(values[1]), int(values[2])
        elif kind in ("kaldi", "lattice"):  # lattice: its old name
            kind, beam, lattice_beam, max_active = "kaldi", float(values[0]), float(values[1]), 0
        else:
            raise SystemExit(f"--configs: unknown decoder {kind!r} in {config!r}")
        run = run_decoder(kind, graph, k2_graph, scores, weights, beam, lattice_beam, max_active,
                          references=references)
        runs.append(run)
        print_runs([run], refs, graph.words, seconds, frames, weights, with_sweep=True)


def make_scorer(num_senones: int):
    """A randomly initialised AcousticModel of am_baseline.yaml's shape (steps.am.model)."""
    conf = Path(__file__).resolve().parents[2] / "egs" / "synth" / "s5" / "conf" / "am_baseline.yaml"
    config = load_am_config(conf).model
    model = AcousticModel(80, num_senones, config, {})
    name = (f"AcousticModel {config.encoder} {config.num_layers}x{config.hidden_dim}, "
            f"subsampling {config.subsampling}, random init")
    return AcousticModelScorer(model, None, torch.device("cpu")), name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_decode"))
    parser.add_argument("--text", type=Path, default=None,
                        help="an LM text (e.g. the recipe's data/text/lm_text.txt) instead of the synthetic one")
    parser.add_argument("--words", type=int, default=2500)
    parser.add_argument("--sentences", type=int, default=150000)
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--prune", type=float, default=0.0, help="relative-entropy pruning threshold")
    parser.add_argument("--utts", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (steps.decode gives each of --nj jobs cores / nj)")
    parser.add_argument("--beam", type=float, default=13.0)
    parser.add_argument("--lattice-beam", type=float, default=8.0)
    parser.add_argument("--max-active", type=int, default=7000)
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--recipe", type=Path, default=Path(__file__).resolve().parents[2] / "egs" / "synth" / "s5",
                        help="a recipe dir; when it has a trained model (exp/am_baseline_s1/final.pt) and "
                             "exp/graph, its held-out --part is decoded with --configs (default: egs/synth/s5)")
    parser.add_argument("--model", type=Path, default=None, help="with --recipe: this checkpoint instead")
    parser.add_argument("--part", default="dev")
    parser.add_argument("--max-utts", type=int, default=60, help="with --recipe: the first N cuts (0: all)")
    parser.add_argument("--configs", default="k2:8:5:7000 kaldi:8:5 k2:10:6:7000 k2:13:8:7000",
                        help="with --recipe: decoders to run, k2:BEAM:LATTICE_BEAM:MAX_ACTIVE, "
                             "kaldi:BEAM:LATTICE_BEAM")
    parser.add_argument("--recipe-only", action="store_true", help="skip the synthetic graph")
    parser.add_argument("--reuse-graph", action="store_true",
                        help="decode with the graph already in --work-dir/graph")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.work_dir = args.work_dir.resolve()  # the real-model part changes into the recipe
    if args.text is not None:
        args.text = args.text.resolve()
    if args.recipe is not None:
        weights = [float(w) for w in range(7, 18)]
        bench_real_model(args.recipe, args.model, args.part, args.threads, args.configs.split(), args.max_utts,
                         weights)
        if args.recipe_only:
            return
    lang, lang_dir, lm_dir, tree, topology, lines = build_world(args.work_dir, args.words, args.sentences,
                                                                args.prune, args.order, args.text)
    if not (args.reuse_graph and (args.work_dir / "graph" / "HCLG.fst").is_file()):
        bench_graph(lang, lang_dir, lm_dir, tree, topology, args.work_dir / "graph")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"process CPU time so far {usage.ru_utime + usage.ru_stime:.0f} s, "
              f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    if not args.skip_decode:
        bench_decode(args.work_dir / "graph", lang, topology, tree, lines, args.utts, args.threads,
                     args.beam, args.lattice_beam, args.max_active)


if __name__ == "__main__":
    main()
