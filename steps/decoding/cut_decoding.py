"""Decoding a part's cuts: the acoustic model's scaled likelihoods searched in the graph (k2 or the lattice decoder) for every LM weight, with optional N-best rescoring and search-error records.

A record's `problem` is about the first pass (bad_utts.txt); a failed rescoring or reference
score is in its `failed` (step: reason) and leaves the first pass as it was."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from steps.decoding.decoder import K2Decoder
from steps.decoding.hybrid_graph import HybridGraph, SearchOptions
from steps.decoding.lm_weights import format_weight

log = logging.getLogger(__name__)


class _BadCut(Exception):
    """A cut that cannot be decoded; its record says why."""


def decode_cuts(cuts, scorer, graph: HybridGraph, options: SearchOptions | None, weights: list[float],
                k2_decoder: K2Decoder | None = None, rescore_weights: list[float] | None = None,
                forced_references: bool = True):
    """Yields one record per cut: id, reference, hyps {weight: words or None}, problem, times;
    with the k2 decoder also the best paths' scores (at every weight and at the search's),
    the reference's forced score (cuts with a reference), the lattice's size, the rescored
    hyps and `failed`. `options` are the lattice decoder's; the k2 decoder has its own
    (k2_decoder.options), so it takes none."""

    if k2_decoder is not None and options is not None:
        raise ValueError(f"SearchOptions (beam {options.beam:g}) given with a k2 decoder, which searches "
                         f"with its own LatticeOptions (beam {k2_decoder.options.beam:g}): give one of them")
    if k2_decoder is None and options is None:
        raise ValueError("the lattice decoder needs SearchOptions (or give a k2 decoder)")
    return _decode_cuts(cuts, scorer, graph, options, weights, k2_decoder, rescore_weights, forced_references)


def _decode_cuts(cuts, scorer, graph, options, weights, k2_decoder, rescore_weights, forced_references):
    log_priors = None if scorer.log_priors is None else scorer.log_priors.detach().cpu().numpy()
    if log_priors is None:
        log.warning("the model has no log-priors; decoding with posteriors instead of scaled likelihoods")
    word_id = {w: i for i, w in enumerate(graph.words) if w}
    for cut in cuts:
        record = {"id": cut.id, "ref": " ".join(s.text or "" for s in cut.supervisions).split(),
                  "hyps": {}, "problem": None, "frames": 0, "am_seconds": 0.0, "search_seconds": 0.0}
        try:
            if not cut.has_features:
                raise _BadCut("no features")
            feats = cut.load_features()
            if feats is None or len(feats) == 0:
                raise _BadCut("empty features")
            record["frames"] = int(len(feats))
            t0 = time.perf_counter()
            log_post = scorer.log_posteriors(torch.from_numpy(np.asarray(feats, dtype=np.float32)))
            loglikes = log_post.detach().cpu().numpy()
            if log_priors is not None:
                loglikes = loglikes - log_priors
            if not np.isfinite(loglikes).all():
                raise _BadCut("non-finite acoustic scores")
            t1 = time.perf_counter()
            if k2_decoder is not None:
                seconds = _k2_decode(record, k2_decoder, loglikes, weights, word_id, rescore_weights,
                                     forced_references)
            else:
                seconds = _graph_decode(record, graph, loglikes, weights, options)
            record["am_seconds"] = t1 - t0
            record.update({f"{k}_seconds": v for k, v in seconds.items()})
        except _BadCut as error:
            record["problem"] = str(error)
        except Exception as error:  # report and go on: one bad cut must not stop a job
            record["problem"] = f"{type(error).__name__}: {error}"
        for key in ("hyps", "rescored"):
            if key in record:
                record[key] = {w: [graph.words[i] for i in ids] if ids else [] for w, ids in record[key].items()}
        yield record


def _graph_decode(record: dict, graph: HybridGraph, loglikes: np.ndarray, weights: list[float],
                  options: SearchOptions) -> dict[str, float]:
    t0 = time.perf_counter()
    result = graph.decode(loglikes, weights, options)
    record["hyps"] = {format_weight(w): ids for w, ids in result.words.items()}
    if any(h is None for h in result.words.values()):
        record["problem"] = "no path survived the beam (empty output)"
    elif not result.reached_final:
        record["problem"] = "no final state reached (partial hypothesis)"
    return {"search": time.perf_counter() - t0}


def _k2_decode(record: dict, decoder: K2Decoder, loglikes: np.ndarray, weights: list[float],
               word_id: dict[str, int], rescore_weights: list[float] | None,
               forced_references: bool = True) -> dict[str, float]:
    unk = word_id.get("<UNK>")
    reference = None
    if record["ref"] and forced_references:
        reference = [word_id.get(w, unk) for w in record["ref"]]
        if None in reference:
            reference = None  # a word the graph cannot say and no <UNK>: no forced score
    out = decoder.decode(loglikes, weights, reference, rescore_weights)
    record["hyps"] = {format_weight(w): p.words for w, p in out.best.items()} or \
        {format_weight(w): None for w in weights}
    record["scores"] = {format_weight(w): [p.graph, p.acoustic] for w, p in out.best.items()}
    if out.search_best is not None:
        record["search_score"] = [out.search_best.graph, out.search_best.acoustic]
    record["lattice"] = [out.lattice_states, out.lattice_arcs]
    if reference is not None and "reference" not in out.failed:
        record["ref_score"] = None if out.reference is None else [out.reference.graph, out.reference.acoustic]
    if rescore_weights:
        record["rescored"] = {format_weight(w): p.words for w, p in out.rescored.items()}
    if out.failed:
        record["failed"] = dict(out.failed)
    if not out.reached_final:
        record["problem"] = "no final state reached (empty lattice)"
    return out.seconds
