"""The reference's best path through the decoding graph: Kaldi's way to tell search errors
from model errors. When the reference path scores better (at the LM weight in use) than
the best path the pruned search found, the search lost it: a search error.

The graph (steps.graph.k2_graph) is restricted to the reference word sequence (k2.intersect
of the word-labelled graph with the linear reference, epsilons matched specially), and the
restriction searched exhaustively (k2.intersect_dense, no pruning that could lose the path:
an output beam only).
"""

from __future__ import annotations

from steps.decoding.k2_search import PathScores


class ReferenceScorer:
    """Holds the word-labelled (inverted) graph; scores references against it."""

    def __init__(self, graph):
        import k2  # k2 on first use: --decoder kaldi runs without it

        self.graph = graph
        inverted = k2.invert(graph.clone())  # labels: words (0: none), aux_labels: units
        self.by_words = k2.arc_sort(inverted)

    def restricted(self, word_ids: list[int]):
        """The graph's paths whose words are word_ids, labels units again (epsilons removed)."""
        import k2  # k2 on first use: --decoder kaldi runs without it

        reference = k2.arc_sort(k2.linear_fsa(word_ids))
        matched = k2.intersect(reference, self.by_words, treat_epsilons_specially=True)
        matched = k2.connect(matched)
        if matched.num_arcs == 0:
            return None
        units = k2.invert(matched)  # labels: units (0 on word-only arcs), aux_labels: words
        units = k2.connect(k2.remove_epsilon(units))
        if units.num_arcs == 0:
            return None
        return k2.arc_sort(units)

    def score(self, word_ids: list[int], dense, acoustic_scale: float) -> PathScores | None:
        """The best path of the reference through the graph on these frames (graph and
        acoustic scores), or None when the graph has no path for it on this many frames."""
        import k2  # k2 on first use: --decoder kaldi runs without it

        graph = self.restricted(word_ids)
        if graph is None:
            return None
        lattice = k2.intersect_dense(k2.create_fsa_vec([graph]), dense, output_beam=1e-3 + 1.0)
        if lattice.num_arcs == 0:
            return None
        lattice.acoustic_scores = lattice.scores - lattice.graph_scores
        best = k2.shortest_path(lattice, use_double_scores=True)
        return PathScores(list(word_ids), best.graph_scores.double().sum().item(),
                          best.acoustic_scores.double().sum().item() / acoustic_scale)
