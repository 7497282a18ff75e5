"""HCLG.fst as a k2 decoding graph, converted once and cached on disk next to HCLG.fst.

k2's intersect_dense_pruned reads every arc label as a frame-consuming symbol (0 is an
ordinary column of the scores, CTC's blank), so HCLG's input epsilons (back-off arcs,
word-boundary arcs with their disambiguation symbols removed) are removed
(steps.graph.epsilon: tropical, the best path kept per pair of states and words written;
k2.remove_epsilon kept one per pair of states and so lost homophones). On the synth graphs
this adds ~15% arcs. Arc labels are HCLG's units (units.txt, from 1); aux_labels the words
(ragged after epsilon removal: an arc may carry several words). `graph_scores` holds the
graph's own log-probabilities (-cost), carried through the search into lattices to split
a path's score into graph and acoustic parts.

    fsa = load_k2_graph("exp/graph")       # builds exp/graph/HCLG.k2.pt on first use
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from steps.core import atomic
from steps.graph.epsilon import remove_input_epsilons
from steps.graph.fst_arrays import ArcFst

log = logging.getLogger(__name__)

CACHE_NAME = "HCLG.k2.pt"
# The conversion's version: a cache (and a graph dir, steps.graph.make) made by an older one is
# remade. 2: epsilon removal that keeps every word (steps.graph.epsilon).
FORMAT = 2


def arcfst_to_k2(fst: ArcFst, remove_epsilon: bool = True):
    """An OpenFst transducer (ArcFst; costs, finals per state) -> k2 Fsa with scores = -cost,
    a super-final state reached by label -1 arcs, aux_labels = output labels. Start state
    must be 0 (k2's convention; steps.mkgraph's graphs have it)."""
    import k2  # k2 on first use: --decoder kaldi runs without it

    if fst.start != 0:
        raise ValueError(f"k2 graphs start at state 0; this one starts at {fst.start}")
    num_states = fst.num_states
    finals = np.flatnonzero(np.isfinite(fst.final))
    if len(finals) == 0:
        raise ValueError("the graph has no final state")
    src = np.concatenate([fst.src, finals])
    dst = np.concatenate([fst.dst, np.full(len(finals), num_states)])
    ilabel = np.concatenate([fst.ilabel, np.full(len(finals), -1)])
    olabel = np.concatenate([fst.olabel, np.full(len(finals), -1)])
    score = np.concatenate([-fst.weight, -fst.final[finals]]).astype(np.float32)
    if remove_epsilon:
        free = remove_input_epsilons(num_states + 1, src, dst, ilabel, olabel, score)
        fsa = _fsa(free.src, free.dst, free.ilabel, free.score)
        shape = k2.ragged.create_ragged_shape2(torch.from_numpy(free.row_splits.astype(np.int32)), None,
                                               len(free.values))
        fsa.aux_labels = k2.RaggedTensor(shape, torch.from_numpy(free.values.astype(np.int32)))
        fsa = k2.connect(fsa)
    else:
        order = np.argsort(src, kind="stable")
        fsa = _fsa(src[order], dst[order], ilabel[order], score[order])
        fsa.aux_labels = torch.from_numpy(np.ascontiguousarray(olabel[order], dtype=np.int32))
    fsa = k2.arc_sort(fsa)
    fsa.graph_scores = fsa.scores.clone()
    return fsa


def _fsa(src, dst, ilabel, score):
    """A k2 Fsa of arcs sorted by source state (scores: log-probabilities, float32)."""
    import k2  # k2 on first use: --decoder kaldi runs without it

    arcs = np.stack([src, dst, ilabel, np.asarray(score, dtype=np.float32).view(np.int32)], axis=1)
    return k2.Fsa(torch.from_numpy(np.ascontiguousarray(arcs, dtype=np.int32)))


def load_k2_graph(graph_dir: str | Path):
    """The k2 form of <graph_dir>/HCLG.fst, from the cache when it was made from this
    HCLG.fst (size and time stamp in HCLG.k2.json), else converted and cached."""
    import k2  # k2 on first use: --decoder kaldi runs without it

    graph_dir = Path(graph_dir)
    hclg, cache, meta = graph_dir / "HCLG.fst", graph_dir / CACHE_NAME, graph_dir / "HCLG.k2.json"
    if not hclg.is_file():
        raise FileNotFoundError(f"{hclg} not found: build the graph first (steps.mkgraph)")
    stamp = atomic.path_stamp(hclg)
    if cache.is_file() and meta.is_file():
        try:
            cached = json.loads(meta.read_text())
            if cached.get("source") == stamp and cached.get("format") == FORMAT:
                return k2.Fsa.from_dict(torch.load(cache))
        except (ValueError, RuntimeError, OSError) as error:  # a damaged cache is rebuilt
            log.warning("%s unreadable (%s); converting again", cache, error)
    t0 = time.perf_counter()
    fst = ArcFst.read(hclg)
    fsa = arcfst_to_k2(fst)
    with atomic.atomic_path(cache) as tmp:
        torch.save(fsa.as_dict(), tmp)
    info = {"source": stamp, "format": FORMAT, "hclg_arcs": int(fst.num_arcs), "k2_arcs": int(fsa.num_arcs),
            "seconds": round(time.perf_counter() - t0, 2)}
    atomic.write_text(meta, json.dumps(info) + "\n")
    log.info("HCLG -> k2 (epsilons removed): %d -> %d arcs in %.1f s, cached in %s",
             fst.num_arcs, fsa.num_arcs, info["seconds"], cache)
    return fsa
