"""Input-epsilon removal that keeps every word sequence (numpy, tropical, scores maximised).

HCLG has arcs that read no unit but write a word: the arcs of homophones such as WAIT and
WEIGHT, whose disambiguation symbols (#1, #2) became epsilon after determinisation, often
leave one state for the same next state. k2.remove_epsilon keeps only the best epsilon path
between two states, so the lower-scoring homophone's path was lost there (a unigram graph,
with one LM state, lost every such word; higher orders lost them after some histories).
Here the best path is kept per (state, state, words written on the way): for each epsilon
path from a state o to a state t with words w, o gets a copy of every non-epsilon arc of t
that writes w before the arc's own word; epsilon paths that write the same words (back-off
chains) keep the best one only, as k2 does.

    arcs = remove_input_epsilons(num_states, src, dst, ilabel, olabel, score)
    arcs.words(i)  # the words of arc i, ragged as values[row_splits[i]:row_splits[i + 1]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_EPSILON_PATH = 100  # arcs; HCLG's are a few long (a word end, back-off arcs)


@dataclass
class EpsilonFreeArcs:
    src: np.ndarray
    dst: np.ndarray
    ilabel: np.ndarray
    score: np.ndarray
    row_splits: np.ndarray  # [num_arcs + 1] into values: the words of each arc
    values: np.ndarray

    def words(self, arc: int) -> list[int]:
        return self.values[self.row_splits[arc]:self.row_splits[arc + 1]].tolist()


def _compact(words: np.ndarray) -> np.ndarray:
    """Each row's nonzero labels first, in order; columns that are zero in every row dropped."""
    if words.shape[1] == 0:
        return words
    order = np.argsort(words <= 0, axis=1, kind="stable")
    words = np.take_along_axis(words, order, axis=1)
    used = np.flatnonzero((words > 0).any(axis=0))
    return words[:, :used[-1] + 1] if len(used) else words[:, :0]


def _pad(words: np.ndarray, width: int) -> np.ndarray:
    return np.pad(words, ((0, 0), (0, width - words.shape[1])))


def _best_rows(keys: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the best-scoring row of each distinct row of keys (the first of equal ones)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(len(keys)), -score, *keys.T[::-1]))
    sorted_keys = keys[order]
    first = np.r_[True, (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)]
    return order[first]


def _expand(starts: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For arcs grouped by source (starts: CSR offsets): (row, arc) for every arc leaving each
    row's state."""
    counts = starts[states + 1] - starts[states]
    rows = np.repeat(np.arange(len(states)), counts)
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, starts[states[rows]] + offsets


def _by_source(num_states: int, src: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(src, kind="stable")
    starts = np.searchsorted(src[order], np.arange(num_states + 1))
    return (starts, src[order], *(c[order] for c in columns))


def epsilon_paths(num_states: int, src, dst, olabel, score):
    """Every epsilon path's (origin, target, words [M, K], best score), one per distinct
    (origin, target, words); src..score are the epsilon arcs."""
    starts, src, dst, olabel, score = _by_source(num_states, src, dst, olabel, score)
    origin, target, words, best = src, dst, _compact(olabel[:, None]), score
    keep = _best_rows(np.column_stack([origin, target, words]), best)
    origin, target, words, best = origin[keep], target[keep], words[keep], best[keep]
    frontier = np.arange(len(origin))
    for _ in range(MAX_EPSILON_PATH):
        rows, arcs = _expand(starts, target[frontier])
        if len(rows) == 0:
            return origin, target, words, best
        rows = frontier[rows]
        new_words = _compact(np.column_stack([words[rows], olabel[arcs]]))
        width = max(words.shape[1], new_words.shape[1])
        all_words = np.vstack([_pad(words, width), _pad(new_words, width)])
        all_origin, all_target = np.r_[origin, origin[rows]], np.r_[target, dst[arcs]]
        all_best = np.r_[best, best[rows] + score[arcs]]
        keep = _best_rows(np.column_stack([all_origin, all_target, all_words]), all_best)
        frontier_mask = keep >= len(origin)  # new paths, or better ones: extended next
        origin, target, words, best = all_origin[keep], all_target[keep], _compact(all_words[keep]), all_best[keep]
        frontier = np.flatnonzero(frontier_mask)
    raise ValueError(f"epsilon paths longer than {MAX_EPSILON_PATH} arcs: an epsilon cycle that writes words")


def remove_input_epsilons(num_states: int, src, dst, ilabel, olabel, score) -> EpsilonFreeArcs:
    """The arcs with ilabel != 0, and for every epsilon path (o -> t, words w, score s) and
    non-epsilon arc of t a copy leaving o: words w + its own, score s + its own. Words are the
    positive output labels (0: none; k2's -1 of the final arcs is dropped too)."""
    eps = ilabel == 0
    origin, target, words, best = epsilon_paths(num_states, src[eps], dst[eps], olabel[eps], score[eps])
    starts, n_src, n_dst, n_ilabel, n_olabel, n_score = _by_source(
        num_states, src[~eps], dst[~eps], ilabel[~eps], olabel[~eps], score[~eps])
    rows, arcs = _expand(starts, target)
    width = words.shape[1] + 1
    all_words = np.vstack([_pad(n_olabel[:, None], width), np.column_stack([words[rows], n_olabel[arcs]])])
    all_src = np.r_[n_src, origin[rows]]
    order = np.argsort(all_src, kind="stable")
    all_words = _compact(all_words[order])
    known = all_words > 0
    row_splits = np.r_[0, np.cumsum(known.sum(axis=1))]
    return EpsilonFreeArcs(all_src[order], np.r_[n_dst, n_dst[arcs]][order], np.r_[n_ilabel, n_ilabel[arcs]][order],
                           np.r_[n_score, best[rows] + n_score[arcs]][order], row_splits, all_words[known])
