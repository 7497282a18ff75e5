"""Pruned lattice search of the k2 HCLG (steps.graph.k2_graph) with hybrid scores.

One utterance's senone scores (log p(s|x) - log p(s), [T, S]) become a DenseFsaVec whose
column u scores graph label u (its senone's score times the acoustic scale). k2's
intersect_dense_pruned keeps the tokens within `beam` of the best (search_beam), at most
`max_active` and at least `min_active` states per frame, and returns the lattice of every
path within `lattice_beam` of the best (output_beam), as Kaldi's lattice-faster decoder
with --beam, --max-active, --min-active and --lattice-beam at --acoustic-scale.

A lattice arc carries `graph_scores` (the graph's log-probability) and the scaled acoustic
score (scores - graph_scores). The best path for LM weight w maximises
w * graph + acoustic / acoustic_scale, Kaldi's LMWT = w: one search serves every weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


# The one default of both decoders and steps.decode: WER converged from beam 10 / lattice
# beam 6 on (BENCHMARKS.md).
DEFAULT_BEAM = 10.0
DEFAULT_LATTICE_BEAM = 6.0


@dataclass
class LatticeOptions:
    acoustic_scale: float = 0.1
    beam: float = DEFAULT_BEAM  # search_beam
    lattice_beam: float = DEFAULT_LATTICE_BEAM  # output_beam
    max_active: int = 7000
    min_active: int = 200


@dataclass
class PathScores:
    """One path: its word ids and its graph and acoustic log-scores (acoustic unscaled)."""

    words: list[int]
    graph: float
    acoustic: float

    def total(self, lm_weight: float) -> float:
        return lm_weight * self.graph + self.acoustic


def dense_scores(loglikes: np.ndarray, unit_senones: np.ndarray, acoustic_scale: float):
    """[T, S] senone scores -> k2.DenseFsaVec of one sequence: column u (u >= 1) is unit u's
    senone's score times acoustic_scale; column 0 (no HCLG arc has label 0 after epsilon
    removal) is -inf-like."""
    import k2  # k2 on first use: --decoder kaldi runs without it

    scores = np.asarray(loglikes, dtype=np.float32)[:, unit_senones] * np.float32(acoustic_scale)
    columns = np.concatenate([np.full((len(scores), 1), -1e4, dtype=np.float32), scores], axis=1)
    log_probs = torch.from_numpy(np.ascontiguousarray(columns))[None]
    segments = torch.tensor([[0, 0, len(scores)]], dtype=torch.int32)
    return k2.DenseFsaVec(log_probs, segments)


def search(graph, dense, options: LatticeOptions):
    """The lattice (k2 Fsa) of one utterance, or None when no path reached a final state."""
    import k2  # k2 on first use: --decoder kaldi runs without it

    lattice = k2.intersect_dense_pruned(graph, dense, search_beam=options.beam, output_beam=options.lattice_beam,
                                        min_active_states=options.min_active,
                                        max_active_states=options.max_active)
    lattice = lattice[0] if len(lattice.shape) == 3 else lattice
    if lattice.num_arcs == 0:
        return None
    return lattice


class ScoredLattice:
    """One utterance's lattice, scored for any LM weight: the best path of each weight and
    N-best samples.

    One FsaVec serves every weight: only its scores are reassigned, which keeps k2's cached
    topology (state batches, incoming arcs) from one weight to the next and from the sweep to
    the sampling; that cache is most of the cost of one k2.shortest_path. The lattice itself
    is left as it was."""

    def __init__(self, lattice, acoustic_scale: float):
        import k2  # k2 on first use: --decoder kaldi runs without it

        self.acoustic_scale = acoustic_scale
        self.vec = k2.create_fsa_vec([lattice])
        self.graph = lattice.graph_scores
        self.vec.acoustic_scores = lattice.scores - self.graph  # scaled by acoustic_scale
        self._weight: float | None = None

    def _score_for(self, lm_weight: float):
        if self._weight != lm_weight:
            self.vec.scores = self.graph + self.vec.acoustic_scores / (lm_weight * self.acoustic_scale)
            self._weight = lm_weight
        return self.vec

    def best(self, lm_weight: float) -> PathScores:
        """The best path for this LM weight (k2.shortest_path)."""
        import k2  # k2 on first use: --decoder kaldi runs without it

        best = k2.shortest_path(self._score_for(lm_weight), use_double_scores=True)
        if best.num_arcs == 0:
            raise ValueError("no path to the final state in the lattice")
        aux = best.aux_labels
        words = aux.values.tolist() if isinstance(aux, k2.RaggedTensor) else aux.tolist()
        return PathScores([w for w in words if w > 0], best.graph_scores.double().sum().item(),
                          best.acoustic_scores.double().sum().item() / self.acoustic_scale)

    def paths(self, arc_lists: list[list[int]]) -> list[PathScores]:
        """Scores and words of paths given as lists of the lattice's arc indices."""
        import k2  # k2 on first use: --decoder kaldi runs without it

        if not arc_lists:
            return []
        arcs = torch.tensor([a for p in arc_lists for a in p], dtype=torch.int64)
        bounds = np.cumsum([0] + [len(p) for p in arc_lists])
        # per-path sums as differences of running sums (an empty path sums to 0)
        graph = np.concatenate([[0.0], np.cumsum(self.graph[arcs].double().numpy())])
        acoustic = np.concatenate([[0.0], np.cumsum(self.vec.acoustic_scores[arcs].double().numpy())])
        aux = self.vec.aux_labels
        if isinstance(aux, k2.RaggedTensor):  # words of arc i: words[word_bounds[i]:word_bounds[i + 1]]
            picked = aux.index(arcs.to(torch.int32), axis=0)[0]
            words, word_bounds = picked.values.tolist(), picked.shape.row_splits(1).tolist()
        else:
            words, word_bounds = aux[arcs].tolist(), list(range(len(arcs) + 1))
        return [PathScores([w for w in words[word_bounds[b]:word_bounds[e]] if w > 0], float(graph[e] - graph[b]),
                           float(acoustic[e] - acoustic[b]) / self.acoustic_scale)
                for b, e in zip(bounds[:-1], bounds[1:])]

    def nbest(self, num_paths: int, lm_weight: float, seed: int = 0, best: PathScores | None = None) -> list[PathScores]:
        """The best path (`best` when the caller has it already) and up to num_paths distinct
        others sampled from the lattice scored at this LM weight (k2.random_paths, as
        icefall's N-best), best first."""
        import k2  # k2 on first use: --decoder kaldi runs without it

        torch.manual_seed(seed)
        sampled = k2.random_paths(self._score_for(lm_weight), use_double_scores=True,
                                  num_paths=num_paths).tolist()[0]
        first = best if best is not None else self.best(lm_weight)
        return [first] + self.paths([list(p) for p in sorted({tuple(p) for p in sampled})])


def best_path(lattice, lm_weight: float, acoustic_scale: float) -> PathScores:
    """The best path of the lattice for this LM weight."""
    return ScoredLattice(lattice, acoustic_scale).best(lm_weight)


def best_paths(lattice, lm_weights: list[float], acoustic_scale: float) -> dict[float, PathScores]:
    """The best path of the lattice for every LM weight."""
    scored = ScoredLattice(lattice, acoustic_scale)
    return {w: scored.best(w) for w in lm_weights}


def nbest(lattice, num_paths: int, lm_weight: float, acoustic_scale: float, seed: int = 0) -> list[PathScores]:
    """ScoredLattice.nbest of one lattice."""
    return ScoredLattice(lattice, acoustic_scale).nbest(num_paths, lm_weight, seed)
