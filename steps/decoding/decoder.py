"""One utterance through the k2 decoder: lattice search, the 1-best of every LM weight,
the reference's forced score (search errors) and N-best rescoring, with their sizes.

    decoder = K2Decoder.load("exp/graph", unit_senones, LatticeOptions())  # DEFAULT_BEAM
    out = decoder.decode(loglikes, [9, 10, 11], reference=[12, 40, 7])
    out.best[10].words, out.reference, out.lattice_arcs

Rescoring and the reference's score come after the first pass and never undo it: when one
fails (a word the rescoring LM lacks, k2 out of memory), `failed` says why, the first pass
stands, and a failed rescoring's `rescored` is the first pass's best path at each weight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steps.decoding.forced import ReferenceScorer
from steps.graph.k2_graph import load_k2_graph
from steps.decoding.k2_search import LatticeOptions, PathScores, ScoredLattice, dense_scores, search
from steps.decoding.rescore import NbestRescorer


@dataclass
class Decoded:
    best: dict[float, PathScores]  # per LM weight; empty when nothing reached a final state
    reached_final: bool
    search_best: PathScores | None = None  # with a reference: the best path at weight 1 / acoustic scale
    lattice_states: int = 0
    lattice_arcs: int = 0
    reference: PathScores | None = None  # the reference's best path through the graph
    rescored: dict[float, PathScores] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # search, sweep (every weight's 1-best), rescore, reference
    failed: dict[str, str] = field(default_factory=dict)  # "rescore", "reference": why it failed


class K2Decoder:
    def __init__(self, graph, unit_senones: np.ndarray, options: LatticeOptions):
        self.graph = graph
        self.unit_senones = unit_senones
        self.options = options
        self._reference_scorer: ReferenceScorer | None = None
        self.rescorer: NbestRescorer | None = None
        self.nbest = 100

    @classmethod
    def load(cls, graph_dir: str | Path, unit_senones: np.ndarray, options: LatticeOptions) -> "K2Decoder":
        return cls(load_k2_graph(graph_dir), unit_senones, options)

    def decode(self, loglikes: np.ndarray, lm_weights: list[float], reference: list[int] | None = None,
               rescore_weights: list[float] | None = None) -> Decoded:
        scale = self.options.acoustic_scale
        t0 = time.perf_counter()
        dense = dense_scores(loglikes, self.unit_senones, scale)
        lattice = search(self.graph, dense, self.options)
        t_search = time.perf_counter()
        out = Decoded({}, lattice is not None)
        if lattice is not None:
            out.lattice_states, out.lattice_arcs = int(lattice.shape[0]), int(lattice.num_arcs)
            scored = ScoredLattice(lattice, scale)
            out.best = {w: scored.best(w) for w in lm_weights}
            if reference is not None:  # the weight of Kaldi's search-error test
                out.search_best = out.best.get(1.0 / scale) or scored.best(1.0 / scale)
        t1 = time.perf_counter()
        if lattice is not None and self.rescorer is not None and rescore_weights:
            first = {w: out.best[w] if w in out.best else scored.best(w) for w in rescore_weights}
            try:
                paths = scored.nbest(self.nbest, 1.0 / scale, best=out.best.get(1.0 / scale)) + list(first.values())
                out.rescored = {w: self.rescorer.best(paths, w) for w in rescore_weights}
            # a word the rescoring LM lacks (KeyError) must not cost the first pass; a bug still raises
            except (KeyError, ValueError) as error:
                out.rescored, out.failed["rescore"] = first, f"{type(error).__name__}: {error}"
        t2 = time.perf_counter()
        if reference is not None:
            try:
                if self._reference_scorer is None:
                    self._reference_scorer = ReferenceScorer(self.graph)
                out.reference = self._reference_scorer.score(reference, dense, scale)
            # as above (k2 reports its failures as RuntimeError): only the search-error count loses this cut
            except (RuntimeError, KeyError, ValueError) as error:
                out.failed["reference"] = f"{type(error).__name__}: {error}"
        out.seconds = {"search": t_search - t0, "sweep": t1 - t_search, "rescore": t2 - t1,
                       "reference": time.perf_counter() - t2}
        return out
