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
        <out-dir>/HCLG.k2.pt   the graph for k2's search, epsilons removed (steps.graph.k2_graph;
                               made here once so that parallel decoding jobs only read it)
        <out-dir>/.done        written last, with the fingerprint of the inputs and options:
                               a second run with the same ones is skipped (--force rebuilds)

Example:
  python -m steps.mkgraph --lang-dir data/lang --lm-dir data/lang_test --tree exp/tree \\
      --out-dir exp/graph --self-loop-scale 0.1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steps.core.log import setup_logging
from steps.graph.hclg import GraphOptions
from steps.graph.make import make_graph


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
