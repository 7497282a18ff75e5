"""HCLG: the hybrid decoding graph from H (HMMs), C (context), L (lexicon), G (word n-gram).

Kaldi's mkgraph.sh recipe, with OpenFst's algorithms through kaldifst (compose,
Kaldi's determinize_star, minimize_encoded: CPU, C++, and the same algorithms a Kaldi user
knows) and the simple array rewrites in numpy (steps.graph.fst_arrays):

    LG    = minimize_encoded(determinize_star_log(L o G))
    CLG   = C o LG                       C: explicit, this toolkit's context rule
    HCLGa = rm_disambig(determinize_star_log(H o CLG))   (+ minimize_encoded, optional)
    HCLG  = add_self_loops(HCLGa)

The disambiguation symbols (lexicon #1.., G's back-off #0, L's optional-silence symbol)
keep each determinization possible; they pass through C and H as loops and are replaced
by epsilon after the last one. C's outputs are tied HMMs (triphones with identical
state sequences share one label), so H has one short path per distinct tied HMM.
k2 is not used: it has no minimization and wants epsilon-free decoding graphs, which a
back-off LM would blow up.

Input labels of HCLG are units (phone, state index, senone), ids from 1 (units.txt);
the decoder maps each to its senone's column. Output labels are words.txt ids.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import kaldifst
import numpy as np

from steps.graph.context_fst import HmmInventory, TreeLike, context_fst
from steps.graph.fst_arrays import ArcFst, kaldifst_size
from steps.graph.hmm_fst import add_self_loops, hmm_fst
from steps.graph.lexicon_fst import disambiguated_lexicon, lexicon_fst, phone_symbols
from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang

log = logging.getLogger(__name__)


@dataclass
class GraphOptions:
    sil_prob: float = 0.5  # optional silence before/between/after words
    self_loop_prob: float = 0.5  # HMM self-loop probability (all states)
    self_loop_scale: float = 0.1
    transition_scale: float = 1.0
    max_pending_sil: int = 2  # longest run of consecutive silences the graph allows
    # Kaldi minimizes HCLGa too; measured on a 2.5k-word trigram graph it removed 1.5% of
    # the arcs and added ~40% to the build time, so it is off by default.
    minimize_hclg: bool = False


@dataclass
class GraphBuild:
    hclg: ArcFst
    inventory: HmmInventory
    stats: list[tuple[str, int, int, float]] = field(default_factory=list)  # name, states, arcs, seconds


def _timed(name: str, function, *args, **kwargs):
    t0 = time.perf_counter()
    result = function(*args, **kwargs)
    log.info("  %s: %.1f s", name, time.perf_counter() - t0)
    return result


class _Stage:
    def __init__(self, build: GraphBuild, name: str):
        self.build, self.name = build, name

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def done(self, fst) -> None:
        seconds = time.perf_counter() - self.t0
        if isinstance(fst, ArcFst):
            states, arcs = fst.num_states, fst.num_arcs
        else:
            states, arcs = kaldifst_size(fst)
        self.build.stats.append((self.name, states, arcs, seconds))
        log.info("%-6s %10d states %11d arcs %8.1f s", self.name, states, arcs, seconds)

    def __exit__(self, *exc):
        return False


def _vector(fst):

    return fst if isinstance(fst, kaldifst.StdVectorFst) else kaldifst.StdVectorFst(fst)


def build_hclg(lang: Lang, lang_dir: str | Path, g_fst, topology: Topology, tree: TreeLike,
               options: GraphOptions | None = None) -> GraphBuild:
    """g_fst: kaldifst.StdVectorFst over words.txt ids with #0 on back-off arcs."""
    # Length: the composition (L, G, LG, C, CLG, H, HCLG) in order, each stage timed

    options = options or GraphOptions()
    entries = disambiguated_lexicon(lang, lang_dir)
    symbols = phone_symbols(lang, entries)
    missing = [lang.phones[p] for p in {lang.phone_id[x] for _, pr in entries for x in pr
                                        if not x.startswith("#")} if p not in topology.num_states]
    if missing:
        raise ValueError(f"phones of the lexicon without an HMM in the topology: {missing}")
    inventory = HmmInventory(topology, tree, symbols.silence)
    build = GraphBuild(hclg=None, inventory=inventory)  # type: ignore[arg-type]

    with _Stage(build, "L") as stage:
        l_fst = lexicon_fst(lang, entries, symbols, options.sil_prob).to_kaldifst()
        kaldifst.arcsort(l_fst, "olabel")
        stage.done(l_fst)
    with _Stage(build, "G") as stage:
        g_fst = _vector(g_fst)
        kaldifst.arcsort(g_fst, "ilabel")
        stage.done(g_fst)
    with _Stage(build, "LG") as stage:
        lg = _vector(_timed("compose L G", kaldifst.compose, l_fst, g_fst))
        del l_fst
        if _timed("determinize LG", kaldifst.determinize_star, lg, use_log=True):
            raise RuntimeError("determinization of L o G stopped early")
        _timed("minimize LG", kaldifst.minimize_encoded, lg)
        kaldifst.arcsort(lg, "ilabel")
        stage.done(lg)
    with _Stage(build, "C") as stage:
        context_phones = sorted({lang.phone_id[x] for _, pr in entries for x in pr
                                 if not x.startswith("#")} - {symbols.silence})
        c_arrays, _ = context_fst(context_phones, symbols.silence, symbols.disambig_ids,
                                  symbols.subsequential, inventory, options.max_pending_sil)
        c_fst = c_arrays.to_kaldifst()
        kaldifst.arcsort(c_fst, "olabel")  # compose matches on the left operand's outputs
        stage.done(c_arrays)
    with _Stage(build, "CLG") as stage:
        clg = _vector(_timed("compose C LG", kaldifst.compose, c_fst, lg))
        del c_fst, lg
        kaldifst.arcsort(clg, "ilabel")
        stage.done(clg)
    with _Stage(build, "H") as stage:
        h_arrays = hmm_fst(inventory, len(symbols.disambig_ids))
        h_fst = h_arrays.to_kaldifst()
        kaldifst.arcsort(h_fst, "olabel")
        stage.done(h_arrays)
    with _Stage(build, "HCLGa") as stage:
        hclg = _vector(_timed("compose H CLG", kaldifst.compose, h_fst, clg))
        del clg
        if _timed("determinize HCLG", kaldifst.determinize_star, hclg, use_log=True):
            raise RuntimeError("determinization of H o CLG stopped early")
        if options.minimize_hclg:
            _timed("minimize HCLG", kaldifst.minimize_encoded, hclg)
        arrays = _timed("to arrays", ArcFst.from_kaldifst, hclg)
        del hclg
        # Disambiguation symbols (input ids above the units) become epsilon.
        keep = np.arange(arrays.ilabel.max(initial=0) + 1, dtype=np.int32)
        keep[inventory.num_units + 1:] = 0
        arrays = ArcFst(arrays.start, arrays.final, arrays.src, arrays.dst, keep[arrays.ilabel],
                        arrays.olabel, arrays.weight)
        stage.done(arrays)
    with _Stage(build, "HCLG") as stage:
        build.hclg = add_self_loops(arrays, options.self_loop_prob, options.self_loop_scale,
                                    options.transition_scale)
        stage.done(build.hclg)
    log.info("%d tied HMMs over %d units (%d senones)", inventory.num_hmms, inventory.num_units,
             tree.num_senones)
    return build
