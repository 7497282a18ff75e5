"""HCLG.fst as a k2 decoding graph, converted once and cached on disk next to HCLG.fst.

k2's intersect_dense_pruned reads every arc label as a frame-consuming symbol (0 is an
ordinary column of the scores, CTC's blank), so HCLG's input epsilons (back-off arcs,
word-boundary arcs with their disambiguation symbols removed) are removed with
k2.remove_epsilon (tropical; best-path costs are kept). On the synth graphs this adds
~15% arcs. Arc labels are HCLG's units (units.txt, from 1); aux_labels the words
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
from steps.graph.fst_arrays import ArcFst

log = logging.getLogger(__name__)

CACHE_NAME = "HCLG.k2.pt"


def arcfst_to_k2(fst: ArcFst, remove_epsilon: bool = True):
    """An OpenFst transducer (ArcFst; costs, finals per state) -> k2 Fsa with scores = -cost,
    a super-final state reached by label -1 arcs, aux_labels = output labels. Start state
    must be 0 (k2's convention; steps.mkgraph's graphs have it)."""
    import k2  # k2 on first use: --decoder lattice runs without it

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
    order = np.argsort(src, kind="stable")
    arcs = np.stack([src[order], dst[order], ilabel[order], score[order].view(np.int32)], axis=1)
    fsa = k2.Fsa(torch.from_numpy(np.ascontiguousarray(arcs, dtype=np.int32)))
    fsa.aux_labels = torch.from_numpy(np.ascontiguousarray(olabel[order], dtype=np.int32))
    if remove_epsilon:
        fsa = k2.connect(k2.remove_epsilon(fsa))
    fsa = k2.arc_sort(fsa)
    fsa.graph_scores = fsa.scores.clone()
    return fsa


def load_k2_graph(graph_dir: str | Path):
    """The k2 form of <graph_dir>/HCLG.fst, from the cache when it was made from this
    HCLG.fst (size and time stamp in HCLG.k2.json), else converted and cached."""
    import k2  # k2 on first use: --decoder lattice runs without it

    graph_dir = Path(graph_dir)
    hclg, cache, meta = graph_dir / "HCLG.fst", graph_dir / CACHE_NAME, graph_dir / "HCLG.k2.json"
    if not hclg.is_file():
        raise FileNotFoundError(f"{hclg} not found: build the graph first (steps.mkgraph)")
    stamp = atomic.path_stamp(hclg)
    if cache.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()).get("source") == stamp:
                return k2.Fsa.from_dict(torch.load(cache))
        except (ValueError, RuntimeError, OSError) as error:  # a damaged cache is rebuilt
            log.warning("%s unreadable (%s); converting again", cache, error)
    t0 = time.perf_counter()
    fst = ArcFst.read(hclg)
    fsa = arcfst_to_k2(fst)
    with atomic.atomic_path(cache) as tmp:
        torch.save(fsa.as_dict(), tmp)
    info = {"source": stamp, "hclg_arcs": int(fst.num_arcs), "k2_arcs": int(fsa.num_arcs),
            "seconds": round(time.perf_counter() - t0, 2)}
    atomic.write_text(meta, json.dumps(info) + "\n")
    log.info("HCLG -> k2 (epsilons removed): %d -> %d arcs in %.1f s, cached in %s",
             fst.num_arcs, fsa.num_arcs, info["seconds"], cache)
    return fsa
