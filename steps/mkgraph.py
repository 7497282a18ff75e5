"""Make the hybrid decoding graph HCLG (Kaldi's utils/mkgraph.sh).

H: HMMs from the topology, their states tied into senones by the tree; C: cross-word
triphone context with this toolkit's rule (SIL transparent, edges 0; steps.graph.context_fst);
L: lexicon with optional silence and all pronunciations (steps.graph.lexicon_fst); G: the word
n-gram. Composition, determinization and minimization in OpenFst through kaldifst, the
rest in numpy; see steps.graph.hclg for the recipe and why.

Transition model: one self-loop probability for every HMM state (--self-loop-prob,
default 0.5, with which the transition model changes no decision), scaled as in Kaldi
(--self-loop-scale 0.1, --transition-scale 1.0, which has nothing to scale for strictly
left-to-right HMMs); see steps.graph.hmm_fst.

Reads:  <lang-dir>/{phones,words,lexicon,lexicon_disambig}.txt, <lm-dir>/G.fst.txt
        (OpenFst text over words.txt ids, #0 on back-off arcs: kaldilm's arpa2fst),
        <tree>/tree.txt, --topology (JSON of steps.hmm.topology.Topology.to_dict; default:
        topology.json next to the tree, as steps.build_tree and steps.convert_ali leave it)
Writes: <out-dir>/HCLG.fst     OpenFst binary ConstFst (as Kaldi's); input labels: units
                               (units.txt, from 1), output labels: words.txt ids
        <out-dir>/units.txt    `unit phone state senone`: what each input label means
        <out-dir>/words.txt    copy of the lang's
        <out-dir>/graph.json   options, sizes and the inputs
        <out-dir>/stats.txt    states, arcs and seconds of every stage, size on disk
        <out-dir>/HCLG.k2.pt   the graph for k2's search, epsilons removed (steps.decoding.k2_graph;
                               made here once so that parallel decoding jobs only read it)
        <out-dir>/.done        written last, with the fingerprint of the inputs and options:
                               a second run with the same ones is skipped (--force rebuilds)

Example:
  python -m steps.mkgraph --lang-dir data/lang --lm-dir data/lang_test --tree exp/tree \\
      --out-dir exp/graph --self-loop-scale 0.1
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import time
from pathlib import Path

from steps.core import atomic
from steps.decoding.k2_graph import load_k2_graph
from steps.graph.hclg import GraphOptions, build_hclg
from steps.lang.lexicon import Lang
from steps.core.log import setup_logging
from steps.hmm.topology import Topology

log = logging.getLogger(__name__)


def input_files(lang_dir: Path, lm_dir: Path, tree: Path, topology: Path) -> list[Path]:
    tree_file = tree / "tree.txt" if tree.is_dir() else tree
    files = [lang_dir / n for n in ("phones.txt", "words.txt", "lexicon.txt", "lexicon_disambig.txt")]
    return [f for f in files if f.exists()] + [lm_dir / "G.fst.txt", tree_file, topology]


def fingerprint(paths: list[Path], options: dict) -> dict:
    return atomic.inputs_fingerprint(paths, **options)


def load_tree(path: Path):
    from steps.tree.decision_tree import Tree

    return Tree.load(path)


def load_topology(path: Path) -> Topology:
    return Topology.from_dict(json.loads(path.read_text()))


def load_g(path: Path):
    from steps.graph.fst_arrays import kaldifst_from_text

    return kaldifst_from_text(path.read_text())


def stats_text(stats: list[tuple[str, int, int, float]], total_seconds: float, size_bytes: int,
               peak_rss_mb: float) -> str:
    lines = ["# stage states arcs seconds"]
    lines += [f"{name} {states} {arcs} {seconds:.2f}" for name, states, arcs, seconds in stats]
    hclg = stats[-1]
    lines += [f"HCLG_states {hclg[1]}", f"HCLG_arcs {hclg[2]}", f"HCLG_bytes {size_bytes}",
              f"HCLG_MiB {size_bytes / 2**20:.1f}", f"build_seconds {total_seconds:.1f}",
              f"peak_rss_MiB {peak_rss_mb:.0f}"]
    return "\n".join(lines) + "\n"


def make_graph(lang_dir: Path, lm_dir: Path, tree_path: Path, topology_path: Path, out_dir: Path,
               options: GraphOptions, force: bool = False, tree=None) -> dict:
    """Builds and writes the graph dir; skipped when its .done records the same inputs and
    options. `tree`: a tree object to use instead of loading tree_path (tests, benchmark)."""
    options_dict = dict(vars(options))
    inputs = input_files(lang_dir, lm_dir, tree_path, topology_path)
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"missing input {path}")
    digest = fingerprint(inputs, options_dict)
    if atomic.up_to_date(out_dir, digest, force, [out_dir / "HCLG.fst", out_dir / "graph.json"],
                         what=f"{out_dir} graph"):
        return json.loads((out_dir / "graph.json").read_text())
    atomic.clear_done(out_dir)
    atomic.remove(out_dir / "HCLG.fst")  # nothing may decode with the old graph while this one is built
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    lang = Lang.load(lang_dir)
    tree = load_tree(tree_path) if tree is None else tree
    topology = load_topology(topology_path)
    g_fst = load_g(lm_dir / "G.fst.txt")
    build = build_hclg(lang, lang_dir, g_fst, topology, tree, options)
    del g_fst
    with atomic.atomic_path(out_dir / "HCLG.fst") as tmp:
        build.hclg.write(tmp, "const")  # read-only and compact, as Kaldi's mkgraph.sh leaves it
    seconds = time.perf_counter() - t0
    size = (out_dir / "HCLG.fst").stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    atomic.write_text(out_dir / "units.txt", build.inventory.unit_table(lang.phones))
    with atomic.atomic_path(out_dir / "words.txt") as tmp:
        shutil.copyfile(lang_dir / "words.txt", tmp)
    atomic.write_text(out_dir / "stats.txt", stats_text(build.stats, seconds, size, peak_mb))
    info = {
        "options": options_dict,
        "num_senones": int(tree.num_senones),
        "num_units": build.inventory.num_units,
        "num_tied_hmms": build.inventory.num_hmms,
        "states": build.hclg.num_states,
        "arcs": build.hclg.num_arcs,
        "bytes": size,
        "build_seconds": round(seconds, 2),
        "inputs": [str(p) for p in inputs],
    }
    atomic.write_text(out_dir / "graph.json", json.dumps(info, indent=2) + "\n")
    load_k2_graph(out_dir)
    atomic.mark_done(out_dir, fingerprint=digest)
    log.info("HCLG: %d states, %d arcs, %.1f MiB, built in %.1f s (peak RSS %.0f MiB) -> %s",
             build.hclg.num_states, build.hclg.num_arcs, size / 2**20, seconds, peak_mb, out_dir)
    return info


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang-dir", type=Path, required=True)
    parser.add_argument("--lm-dir", type=Path, required=True, help="directory with G.fst.txt")
    parser.add_argument("--tree", type=Path, required=True, help="tree directory (or tree.txt)")
    parser.add_argument("--topology", type=Path, default=None, help="default: topology.json next to the tree")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--sil-prob", type=float, default=0.5,
                        help="probability of optional silence before/between/after words")
    parser.add_argument("--self-loop-prob", type=float, default=0.5,
                        help="HMM self-loop probability, the same for every state")
    parser.add_argument("--self-loop-scale", type=float, default=0.1)
    parser.add_argument("--transition-scale", type=float, default=1.0)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    if args.topology is None:
        args.topology = (args.tree.parent if args.tree.is_file() else args.tree) / "topology.json"
    setup_logging(args.verbose, args.out_dir / "log" / "mkgraph.log")
    options = GraphOptions(sil_prob=args.sil_prob, self_loop_prob=args.self_loop_prob,
                           self_loop_scale=args.self_loop_scale, transition_scale=args.transition_scale)
    make_graph(args.lang_dir, args.lm_dir, args.tree, args.topology, args.out_dir, options, args.force)


if __name__ == "__main__":
    main()
