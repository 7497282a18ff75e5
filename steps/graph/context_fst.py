"""The context transducer C of the decoding graph (tied context-dependent HMMs -> phones),
built explicitly for this toolkit's context rule (steps.hmm.context):

- the left (right) context of a phone is the nearest phone before (after) it that is not
  the optional silence SIL; SIL is transparent ("A SIL B" gives B the left context A);
- the utterance edges give context 0;
- SPN is a context for its neighbours like any phone; SIL's and SPN's own HMMs do not
  depend on context (the tree ignores it; SIL is looked up with context 0, 0).

Kaldi's `fstcomposecontext` (kaldifst.compose_context) treats silence as an ordinary
context, so it cannot be used. C reads phones (output side, to meet LG's input) and
writes tied-HMM ids (input side). A phone's label needs its right context, so C lags by
one phone and, because silence is transparent, it also holds back the silences read after
the pending phone. States:

    start                nothing pending, left context 0
    (a, b, k)            left context a (0 or a phone), pending phone b (not SIL),
                         k silences read after b and not yet written (k <= max_pending_sil)
    E(b, c, j)           writing j held-back silences; then (b, c, 0)
    F(j)                 at the end: writing j held-back silences; F(0) is the final state

Arcs (ilabel:olabel):

    start     --SIL:SIL-->           start           (silence before any phone: written at once)
    start     --eps:c-->             (0, c, 0)
    (a,b,k)   --eps:SIL-->           (a, b, k+1)
    (a,b,k)   --HMM(a,b,c):c-->      E(b, c, k)      (= (b, c, 0) when k = 0)
    (a,b,k)   --HMM(a,b,0):$-->      F(k)            ($: L's end-of-string symbol)
    start     --eps:$-->             F(0)
    E(b,c,j)  --HMM(SIL):eps-->      E(b,c,j-1)      F(j) likewise
    start, (a,b,k): --#d:#d-->       itself          (disambiguation symbols pass through)

Longer runs of silence than max_pending_sil have no path (they are acoustically the same
as a shorter run, and every such run in L has a shorter alternative).

Tied HMMs: the label of a triphone is the tuple of its states' units, deduplicated, so
that triphones the tree ties completely share one label and H stays small. A unit is
(phone, HMM-state index, senone) - Kaldi's transition-id without the loop/forward split -
so a unit sequence parses into phones in one way only, which keeps H o CLG determinizable
whatever the tree ties; decoding maps units back to senone columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from steps.hmm.context import BOUNDARY
from steps.graph.fst_arrays import ArcFst
from steps.hmm.topology import Topology


class TreeLike(Protocol):
    num_senones: int

    def senone(self, left: int, centre: int, right: int, state: int) -> int: ...


@dataclass
class HmmInventory:
    """Units (phone, state index, senone) and tied HMMs (tuples of units), ids from 1."""

    topology: Topology
    tree: TreeLike
    silence: int
    units: dict[tuple[int, int, int], int] = field(default_factory=dict)
    unit_keys: list[tuple[int, int, int]] = field(default_factory=lambda: [(-1, -1, -1)])
    hmms: dict[tuple[int, ...], int] = field(default_factory=dict)
    hmm_units: list[tuple[int, ...]] = field(default_factory=lambda: [()])
    _triphones: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def triphone(self, left: int, phone: int, right: int) -> int:
        """Tied-HMM id of `phone` between contexts left and right (0 = edge)."""
        key = (left, phone, right)
        hmm = self._triphones.get(key)
        if hmm is None:
            units = []
            for state in range(self.topology.num_states[phone]):
                senone = int(self.tree.senone(left, phone, right, state))
                if not 0 <= senone < self.tree.num_senones:
                    raise ValueError(f"tree gave senone {senone} for {key} state {state}; "
                                     f"expected 0..{self.tree.num_senones - 1}")
                units.append(self._unit(phone, state, senone))
            hmm = self._triphones[key] = self._hmm(tuple(units))
        return hmm

    def prefill(self, lefts: list[int], phones: list[int], rights: list[int]) -> None:
        """Looks up every (left, phone, right) triphone at once with the tree's vectorised
        `lookup` when it has one (a Python loop over ~10^5 triphones otherwise)."""
        lookup = getattr(self.tree, "lookup", None)
        if lookup is None:
            return
        for phone in phones:
            n = self.topology.num_states[phone]
            grid = np.array([(a, c, s) for a in lefts for c in rights for s in range(n)], dtype=np.int64)
            if not len(grid):
                continue
            senones = np.asarray(lookup(grid[:, 0], np.full(len(grid), phone), grid[:, 1], grid[:, 2]))
            if senones.size and (senones.min() < 0 or senones.max() >= self.tree.num_senones):
                raise ValueError(f"tree gave senones outside 0..{self.tree.num_senones - 1}")
            senones = senones.reshape(len(lefts), len(rights), n)
            for i, a in enumerate(lefts):
                for j, c in enumerate(rights):
                    if (a, phone, c) not in self._triphones:
                        units = tuple(self._unit(phone, s, int(senones[i, j, s])) for s in range(n))
                        self._triphones[(a, phone, c)] = self._hmm(units)

    def _hmm(self, units: tuple[int, ...]) -> int:
        hmm = self.hmms.setdefault(units, len(self.hmms) + 1)
        if hmm == len(self.hmm_units):
            self.hmm_units.append(units)
        return hmm

    def _unit(self, phone: int, state: int, senone: int) -> int:
        key = (phone, state, senone)
        unit = self.units.get(key)
        if unit is None:
            unit = self.units[key] = len(self.unit_keys)
            self.unit_keys.append(key)
        return unit

    @property
    def num_units(self) -> int:
        return len(self.unit_keys) - 1

    @property
    def num_hmms(self) -> int:
        return len(self.hmm_units) - 1

    def unit_senones(self) -> np.ndarray:
        """[num_units + 1] senone of each unit id (index 0: -1)."""
        return np.array([k[2] for k in self.unit_keys], dtype=np.int32)

    def unit_table(self, phones: list[str]) -> str:
        """Readable units.txt: `unit phone state senone`."""
        return "".join(f"{u} {phones[p]} {s} {sen}\n"
                       for u, (p, s, sen) in enumerate(self.unit_keys) if u > 0)


def context_fst(context_phones: list[int], silence: int, disambig_ids: list[int], subsequential: int,
                inventory: HmmInventory, max_pending_sil: int = 2) -> tuple[ArcFst, dict[int, int]]:
    """C for the given phones (those that are contexts: every real phone but SIL).

    Returns C and {phone-level disambig id: C's input label for it}; input labels
    1..inventory.num_hmms are tied HMMs, the disambig labels come after them.
    """
    # Length: one FST construction over shared state tables
    if silence in context_phones:
        raise ValueError("the optional silence is transparent; it cannot be a context phone")
    phones = sorted(context_phones)
    lefts = [BOUNDARY] + phones
    k_max = max_pending_sil
    state_of: dict[tuple, int] = {}

    def state(key: tuple) -> int:
        return state_of.setdefault(key, len(state_of))

    start, end = state(("start",)), state(("F", 0))
    arcs: list[tuple[int, int, int, int, float]] = []
    disambig_marker = {d: -(i + 1) for i, d in enumerate(disambig_ids)}  # relabelled below
    sil_hmm = inventory.triphone(BOUNDARY, silence, BOUNDARY)
    inventory.prefill(lefts, phones, lefts)

    chained: set[int] = set()

    def silence_chain(then: int, j: int, key) -> int:
        """The state that writes j held-back silences and then arrives at `then`."""
        target = then
        for i in range(1, j + 1):
            s = state(key(i))
            if s not in chained:
                arcs.append((s, target, sil_hmm, 0, 0.0))
                chained.add(s)
            target = s
        return target

    for d, marker in disambig_marker.items():
        arcs.append((start, start, marker, d, 0.0))
    arcs.append((start, start, sil_hmm, silence, 0.0))
    arcs.append((start, end, 0, subsequential, 0.0))
    for c in phones:
        arcs.append((start, state((BOUNDARY, c, 0)), 0, c, 0.0))
    for a in lefts:
        for b in phones:
            for k in range(k_max + 1):
                here = state((a, b, k))
                for d, marker in disambig_marker.items():
                    arcs.append((here, here, marker, d, 0.0))
                if k < k_max:
                    arcs.append((here, state((a, b, k + 1)), 0, silence, 0.0))
                for c in phones:
                    target = silence_chain(state((b, c, 0)), k, lambda i, b=b, c=c: ("E", b, c, i))
                    arcs.append((here, target, inventory.triphone(a, b, c), c, 0.0))
                target = silence_chain(end, k, lambda i: ("F", i))
                arcs.append((here, target, inventory.triphone(a, b, BOUNDARY), subsequential, 0.0))
    num_hmms = inventory.num_hmms
    disambig_ilabel = {d: num_hmms + 1 + i for i, d in enumerate(disambig_ids)}
    table = np.array(arcs, dtype=np.float64)
    ilabels = table[:, 2].astype(np.int64)
    negative = ilabels < 0
    ilabels[negative] = num_hmms - ilabels[negative]  # marker -(i+1) -> num_hmms + 1 + i
    final = np.full(len(state_of), np.inf, dtype=np.float32)
    final[end] = 0.0
    fst = ArcFst.build(start, final, table[:, 0], table[:, 1], ilabels, table[:, 3], table[:, 4])
    return fst, disambig_ilabel
