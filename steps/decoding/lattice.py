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
    beam: float = 13.0  # search_beam
    lattice_beam: float = 8.0  # output_beam
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
    import k2

    scores = np.asarray(loglikes, dtype=np.float32)[:, unit_senones] * np.float32(acoustic_scale)
    columns = np.concatenate([np.full((len(scores), 1), -1e4, dtype=np.float32), scores], axis=1)
    log_probs = torch.from_numpy(np.ascontiguousarray(columns))[None]
    segments = torch.tensor([[0, 0, len(scores)]], dtype=torch.int32)
    return k2.DenseFsaVec(log_probs, segments)


def search(graph, dense, options: LatticeOptions):
    """The lattice (k2 Fsa) of one utterance, or None when no path reached a final state."""
    import k2

    lattice = k2.intersect_dense_pruned(graph, dense, search_beam=options.beam, output_beam=options.lattice_beam,
                                        min_active_states=options.min_active,
                                        max_active_states=options.max_active)
    lattice = lattice[0] if len(lattice.shape) == 3 else lattice
    if lattice.num_arcs == 0:
        return None
    return lattice


def _arc_words(fsa) -> "k2.RaggedTensor":
    """Each arc's words, ragged [arc][word], zeros and -1 dropped."""
    import k2

    aux = fsa.aux_labels
    if isinstance(aux, torch.Tensor):
        aux = k2.RaggedTensor(aux.unsqueeze(1).tolist()) if aux.numel() else k2.RaggedTensor([[]])
    return aux.remove_values_leq(0)


def path_scores(lattice, arc_index: torch.Tensor, arc_words: list[list[int]], acoustic_scale: float) -> PathScores:
    """Scores and words of the path made of these arcs of the lattice."""
    graph = lattice.graph_scores[arc_index].double().sum().item()
    scaled_ac = (lattice.scores[arc_index].double() - lattice.graph_scores[arc_index].double()).sum().item()
    words = [w for a in arc_index.tolist() for w in arc_words[a]]
    return PathScores(words, graph, scaled_ac / acoustic_scale)


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
    """The best path of the lattice for every LM weight: one Viterbi pass per weight on a
    bare copy of the lattice (arcs and scores only; words looked up for the best arcs)."""
    import k2

    graph = lattice.graph_scores
    acoustic = lattice.scores - graph
    bare = k2.Fsa(lattice.arcs.values().clone())  # k2.Fsa(lattice.arcs) would share (and overwrite) its scores
    bare.arc_index = torch.arange(lattice.num_arcs, dtype=torch.int32)
    aux = lattice.aux_labels
    result = {}
    for weight in lm_weights:
        bare.scores = graph + acoustic / (weight * acoustic_scale)
        arcs = k2.shortest_path(k2.create_fsa_vec([bare]), use_double_scores=True).arc_index.long()
        if isinstance(aux, k2.RaggedTensor):
            words = aux.index(arcs.to(torch.int32), axis=0)[0].values.tolist() if len(arcs) else []
        else:
            words = aux[arcs].tolist()
        result[weight] = PathScores([w for w in words if w > 0], graph[arcs].double().sum().item(),
                                    acoustic[arcs].double().sum().item() / acoustic_scale)
    return result


def nbest(lattice, num_paths: int, lm_weight: float, acoustic_scale: float, seed: int = 0) -> list[PathScores]:
    """The best path and up to num_paths distinct others sampled from the lattice scored
    at this LM weight (k2.random_paths, as icefall's N-best), best first."""
    import k2

    arc_words = _arc_words(lattice).tolist()
    torch.manual_seed(seed)
    paths = k2.random_paths(k2.create_fsa_vec([weighted(lattice, lm_weight, acoustic_scale)]),
                            use_double_scores=True, num_paths=num_paths).tolist()[0]
    result = [best_path(lattice, lm_weight, acoustic_scale)]
    seen = set()
    for arcs in paths:
        if tuple(arcs) in seen:
            continue
        seen.add(tuple(arcs))
        result.append(path_scores(lattice, torch.tensor(arcs, dtype=torch.long), arc_words, acoustic_scale))
    return result


def lattice_size(lattice, num_frames: int) -> dict:
    return {"states": int(lattice.shape[0]), "arcs": int(lattice.num_arcs),
            "arcs_per_frame": round(lattice.num_arcs / max(num_frames, 1), 2)}
