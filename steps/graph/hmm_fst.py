"""The HMM transducer H (HMM-state units -> tied HMMs) and the self-loops added at the end.

H is built without self-loops, as in Kaldi: one path per tied HMM from a single start
(and final) state, one arc per HMM state, the tied HMM's label on the first arc; the
disambiguation symbols of C's input pass through as loops on the start state (with their
own unit-level ids, removed after determinization). Determinizing H o CLG without
self-loops keeps it small; the loops are added afterwards by `add_self_loops`.

Transition model: every HMM state loops with probability `self_loop_prob` (the same for
all states; default 0.5) and otherwise moves on; the topology is strictly left to right,
so "moves on" has one destination. Scales as in Kaldi's add-self-loops: the self-loop
arcs cost -self_loop_scale*log(p) and each visit of a state pays -self_loop_scale*log(1-p)
once for leaving it; transition_scale multiplies the log-probability of the choice among
non-loop transitions, which is log(1) = 0 for this topology, so it has no effect here
(kept for the command line Kaldi users expect). With p = 0.5 every frame costs the same,
so the transition model then changes no decision (as in steps.hmm.training_graph).
"""

from __future__ import annotations

import math

import numpy as np

from steps.graph.context_fst import HmmInventory
from steps.graph.fst_arrays import ArcFst


def hmm_fst(inventory: HmmInventory, num_disambig: int) -> ArcFst:
    """H without self-loops. Input: units 1..U, then U+1+i for disambig i; output: tied
    HMMs 1..K, then K+1+i (C's disambig labels)."""
    num_units, num_hmms = inventory.num_units, inventory.num_hmms
    arcs: list[tuple[int, int, int, int, float]] = []
    num_states = 1
    for hmm in range(1, num_hmms + 1):
        units = inventory.hmm_units[hmm]
        state = 0
        for i, unit in enumerate(units):
            last = i == len(units) - 1
            target = 0 if last else num_states
            if not last:
                num_states += 1
            arcs.append((state, target, unit, hmm if i == 0 else 0, 0.0))
            state = target
    for i in range(num_disambig):
        arcs.append((0, 0, num_units + 1 + i, num_hmms + 1 + i, 0.0))
    return ArcFst.from_arcs(num_states, 0, arcs, {0: 0.0})


def add_self_loops(fst: ArcFst, self_loop_prob: float = 0.5, self_loop_scale: float = 0.1,
                   transition_scale: float = 1.0) -> ArcFst:
    """Adds the HMM self-loops to an HCLG whose non-epsilon input labels are units.

    An arc with unit u enters an HMM state (its first frame); the state's further frames
    loop on u at the arc's destination. A destination entered by arcs of more than one unit
    (or by epsilon arcs, or the start state, which is entered before any frame) is split:
    each unit's arcs are redirected to a new state that loops on that unit and goes on to
    the old one by an epsilon arc (Kaldi's MakePrecedingInputSymbolsSame, grouped by unit).
    """
    if not 0.0 < self_loop_prob < 1.0:
        raise ValueError(f"self_loop_prob must be in (0, 1), got {self_loop_prob}")
    loop_cost = np.float32(-self_loop_scale * math.log(self_loop_prob))
    leave_cost = np.float32(-self_loop_scale * math.log(1.0 - self_loop_prob))
    del transition_scale  # log P(forward | not self-loop) = 0 for a strict left-to-right HMM

    num_states = fst.num_states
    width = np.int64(fst.ilabel.max(initial=0)) + 1
    # Distinct (destination, class) pairs, class 0 = epsilon; the start state counts as
    # entered by epsilon (nothing has been consumed when the search starts there).
    keys = np.unique(np.concatenate([fst.dst.astype(np.int64) * width + fst.ilabel,
                                     [np.int64(fst.start) * width]]))
    key_state, key_class = keys // width, keys % width
    classes_per_state = np.bincount(key_state, minlength=num_states)
    split_pair = (classes_per_state[key_state] > 1) & (key_class > 0)
    loop_pair = (classes_per_state[key_state] == 1) & (key_class > 0)

    # New states for the split pairs, in key order.
    split_keys = keys[split_pair]
    new_ids = num_states + np.arange(len(split_keys), dtype=np.int64)
    arc_keys = fst.dst.astype(np.int64) * width + fst.ilabel
    position = np.searchsorted(split_keys, arc_keys)
    position = np.minimum(position, max(len(split_keys) - 1, 0))
    redirected = (len(split_keys) > 0) & (fst.ilabel > 0)
    if len(split_keys):
        redirected &= split_keys[position] == arc_keys
    dst = fst.dst.astype(np.int64).copy()
    dst[redirected] = new_ids[position[redirected]]
    weight = fst.weight + np.where(fst.ilabel > 0, leave_cost, np.float32(0.0)).astype(np.float32)

    loop_states = np.concatenate([key_state[loop_pair], new_ids])
    loop_units = np.concatenate([key_class[loop_pair], key_class[split_pair]])
    eps_src, eps_dst = new_ids, key_state[split_pair]
    src = np.concatenate([fst.src, loop_states, eps_src])
    dst = np.concatenate([dst, loop_states, eps_dst])
    ilabel = np.concatenate([fst.ilabel, loop_units, np.zeros(len(eps_src), np.int64)])
    olabel = np.concatenate([fst.olabel, np.zeros(len(loop_states) + len(eps_src), np.int64)])
    weight = np.concatenate([weight, np.full(len(loop_states), loop_cost, np.float32),
                             np.zeros(len(eps_src), np.float32)])
    final = np.concatenate([fst.final, np.full(len(new_ids), np.inf, np.float32)])
    return ArcFst.build(fst.start, final, src, dst, ilabel, olabel, weight)
