"""Monophone alignments turned into senone alignments through the tree (Kaldi's convert-ali), with the check that the tree's two lookups agree."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Callable

import numpy as np
from lhotse import NumpyHdf5Writer
from lhotse.utils import fastcopy

from steps.core.log import progress
from steps.data.hdf5_readers import close_now_and_then
from steps.data.ali_times import FRAME_SHIFT
from steps.hmm.topology import Topology
from steps.hmm.units import (
    alignment_agrees,
    consistent_starts,
    frame_events,
    item_word_prons,
    phone_instances,
    segments_from_items,
)
from steps.lang.lexicon import Lang
from steps.tree.decision_tree import Tree


def convert_alignment(mono_ali: np.ndarray, topology: Topology, tree: Tree, starts=()) -> np.ndarray:
    """Per-frame senone ids (int32) of an HMM-state alignment."""
    events = frame_events(mono_ali, topology, tree.silence, (), starts)
    return tree.lookup(events[:, 0], events[:, 1], events[:, 2], events[:, 3]).astype(np.int32)


def check_tree_covers(tree: Tree, topology: Topology) -> None:
    """Every HMM state of the topology must have a root in the tree (else the tree was
    built with another topology)."""
    missing = [f"{tree.phones[p] if p < len(tree.phones) else p}.s{s}" for p in topology.phone_ids
               for s in range(topology.num_states[p]) if not tree.has_root(p, s)]
    if missing:
        raise SystemExit(f"convert_ali: the tree has no root for {' '.join(missing[:10])}: "
                         "was it built with this topology?")


def convert_cuts(cuts, lang: Lang, topology: Topology, tree: Tree, writer: NumpyHdf5Writer, desc: str,
                 emit: Callable):
    """Converts the cuts, each handed to emit(cut) as it is done (a cut writer's write: memory
    stays flat); returns (cuts converted, skipped [(id, reason)], disagreeing ids, senone
    counts, pron counts)."""
    num_done, skipped, disagree = 0, [], []
    counts = np.zeros(tree.num_senones, dtype=np.int64)
    prons: Counter = Counter()
    for i, cut in enumerate(progress(cuts, desc=desc, mininterval=1 if sys.stderr.isatty() else 30), start=1):
        close_now_and_then(i)
        if not cut.has_custom("mono_ali"):
            skipped.append((cut.id, "no mono_ali"))
            continue
        try:
            ali = np.asarray(cut.load_custom("mono_ali")).reshape(-1)
        except Exception as e:  # a missing archive is reported, not fatal
            skipped.append((cut.id, f"cannot load mono_ali: {type(e).__name__}: {str(e).splitlines()[0][:200]}"))
            continue
        alignment = (cut.supervisions[0].alignment or {}) if cut.supervisions else {}
        segments, starts, readable = None, [], True
        if "ali_phone" in alignment:
            try:
                segments = segments_from_items(alignment["ali_phone"], lang, len(ali), cut.start)
                starts = consistent_starts(segments, ali, topology) or []
            except ValueError:
                readable = False  # phones not in phones.txt: counted as a disagreement
        try:
            senones = convert_alignment(ali, topology, tree, starts)
        except ValueError as e:
            skipped.append((cut.id, f"bad alignment: {e}"))
            continue
        if segments is not None:
            aligned = [p for p, s, e in segments if e > s]
        else:  # no ali_phone: the check still compares the tree's two lookups
            aligned = phone_instances(ali, topology, starts)[0].tolist()
        if not readable or not alignment_agrees(senones, ali, aligned, topology, tree):
            disagree.append(cut.id)
        array = writer.store_array(cut.id, senones, frame_shift=FRAME_SHIFT, temporal_dim=0, start=cut.start)
        emit(fastcopy(cut, custom=dict(cut.custom or {}, senone_ali=array)))
        num_done += 1
        counts += np.bincount(senones, minlength=tree.num_senones)
        if readable:
            prons.update(item_word_prons(alignment, lang, len(ali), cut.start))
    return num_done, skipped, disagree, counts, prons
