"""Pruned lattice search of the k2 HCLG (steps.decoding.k2_graph) with hybrid scores.

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


@dataclass
class LatticeOptions:
    acoustic_scale: float = 0.1
    beam: float = 10.0  # search_beam; WER converged from 10 / 6 on (BENCHMARKS.md)
    lattice_beam: float = 6.0  # output_beam
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
    import k2  # k2 on first use: --decoder lattice runs without it

    scores = np.asarray(loglikes, dtype=np.float32)[:, unit_senones] * np.float32(acoustic_scale)
    columns = np.concatenate([np.full((len(scores), 1), -1e4, dtype=np.float32), scores], axis=1)
    log_probs = torch.from_numpy(np.ascontiguousarray(columns))[None]
    segments = torch.tensor([[0, 0, len(scores)]], dtype=torch.int32)
    return k2.DenseFsaVec(log_probs, segments)


def search(graph, dense, options: LatticeOptions):
    """The lattice (k2 Fsa) of one utterance, or None when no path reached a final state."""
    import k2  # k2 on first use: --decoder lattice runs without it

    lattice = k2.intersect_dense_pruned(graph, dense, search_beam=options.beam, output_beam=options.lattice_beam,
                                        min_active_states=options.min_active,
                                        max_active_states=options.max_active)
    lattice = lattice[0] if len(lattice.shape) == 3 else lattice
    if lattice.num_arcs == 0:
        return None
    return lattice


def path_scores(lattice, arc_index: torch.Tensor, acoustic_scale: float) -> PathScores:
    """Scores and words of the path made of these arcs of the lattice."""
    import k2  # k2 on first use: --decoder lattice runs without it

    graph = lattice.graph_scores[arc_index].double()
    scaled_ac = lattice.scores[arc_index].double() - graph
    aux = lattice.aux_labels
    if isinstance(aux, k2.RaggedTensor):
        words = aux.index(arc_index.to(torch.int32), axis=0)[0].values.tolist() if len(arc_index) else []
    else:
        words = aux[arc_index].tolist()
    return PathScores([w for w in words if w > 0], graph.sum().item(), scaled_ac.sum().item() / acoustic_scale)


def weighted(lattice, lm_weight: float, acoustic_scale: float):
    """A copy of the lattice scored for LM weight w (graph + acoustic / w, the LMWT-w
    objective divided by w); `acoustic_scores` keeps each arc's scaled acoustic score."""
    scored = lattice.clone()
    graph = lattice.graph_scores
    scored.acoustic_scores = lattice.scores - graph
    scored.scores = graph + scored.acoustic_scores / (lm_weight * acoustic_scale)
    return scored


def best_path(lattice, lm_weight: float, acoustic_scale: float) -> PathScores:
    """The best path of the lattice for this LM weight."""
    return best_paths(lattice, [lm_weight], acoustic_scale)[lm_weight]


def best_paths(lattice, lm_weights: list[float], acoustic_scale: float) -> dict[float, PathScores]:
    """The best path of the lattice for every LM weight, all weights in one Viterbi pass.

    A lattice of k2.intersect_dense_pruned consumes one frame per arc and numbers its states
    frame by frame, so the pass goes frame by frame over [arcs of the frame, weights] in
    numpy (float64), arcs grouped by their destination once. Ties go to one of the equals."""
    import k2  # k2 on first use: --decoder lattice runs without it

    values = lattice.arcs.values().numpy()
    row_splits = lattice.arcs.shape().row_splits(1).numpy().astype(np.int64)
    src, dst = values[:, 0].astype(np.int64), values[:, 1].astype(np.int64)
    graph = lattice.graph_scores.double().numpy()
    acoustic = lattice.scores.double().numpy() - graph  # scaled by acoustic_scale
    weights = np.asarray(lm_weights, dtype=np.float64)
    inverse = 1.0 / (weights * acoustic_scale)
    num_states = len(row_splits) - 1
    # Arcs in destination order: each frame's arcs are then one contiguous run per state,
    # and a state's best incoming arc is a maximum over a segment (np.maximum.reduceat).
    order = np.argsort(dst, kind="stable")
    dst_sorted = dst[order]
    state_begin = np.searchsorted(dst_sorted, np.arange(num_states + 1))
    score = np.full((num_states, len(weights)), -np.inf)
    back = np.full((num_states, len(weights)), -1, dtype=np.int64)
    score[0] = 0.0
    first, last = 0, 1  # the states of the current frame: [first, last)
    while last <= num_states and row_splits[first] < row_splits[last]:
        targets = dst[row_splits[first]:row_splits[last]]
        low, high = int(targets.min()), int(targets.max()) + 1
        if low < last:
            raise ValueError("the lattice is not frame-synchronous (an arc stays within a frame)")
        arcs = order[state_begin[low]:state_begin[high]]
        if (src[arcs] < first).any() or (src[arcs] >= last).any():
            raise ValueError("the lattice is not frame-synchronous (arcs into a frame from several)")
        candidate = score[src[arcs]] + graph[arcs, None] + acoustic[arcs, None] * inverse[None, :]
        starts = state_begin[low:high] - state_begin[low]
        entered = starts < state_begin[low + 1:high + 1] - state_begin[low]
        best = np.maximum.reduceat(candidate, starts[entered], axis=0)
        score[low:high][entered] = best
        winner = candidate == np.repeat(best, np.diff(np.append(starts[entered], len(arcs))), axis=0)
        rows, cols = np.nonzero(winner)
        back[dst[arcs[rows]], cols] = arcs[rows]
        first, last = low, high
    final = num_states - 1
    aux = lattice.aux_labels
    result = {}
    for j, weight in enumerate(lm_weights):
        path, state = [], final
        while state != 0:
            arc = int(back[state, j])
            if arc < 0:
                raise ValueError("no path to the final state in the lattice")
            path.append(arc)
            state = int(src[arc])
        path.reverse()
        arcs = torch.tensor(path, dtype=torch.int64)
        if isinstance(aux, k2.RaggedTensor):
            words = aux.index(arcs.to(torch.int32), axis=0)[0].values.tolist() if path else []
        else:
            words = aux[arcs].tolist()
        result[weight] = PathScores([w for w in words if w > 0], float(graph[path].sum()),
                                    float(acoustic[path].sum()) / acoustic_scale)
    return result


def nbest(lattice, num_paths: int, lm_weight: float, acoustic_scale: float, seed: int = 0) -> list[PathScores]:
    """The best path and up to num_paths distinct others sampled from the lattice scored
    at this LM weight (k2.random_paths, as icefall's N-best), best first."""
    import k2  # k2 on first use: --decoder lattice runs without it

    torch.manual_seed(seed)
    paths = k2.random_paths(k2.create_fsa_vec([weighted(lattice, lm_weight, acoustic_scale)]),
                            use_double_scores=True, num_paths=num_paths).tolist()[0]
    result = [best_path(lattice, lm_weight, acoustic_scale)]
    for arcs in sorted({tuple(p) for p in paths}):
        result.append(path_scores(lattice, torch.tensor(arcs, dtype=torch.int64), acoustic_scale))
    return result
