"""What the tree is built from: its roots (which phones and states share a tree) and the phonetic questions (top-down clustering of phones, plus extra questions from the lang)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang
from steps.tree.building import RootSpec, TreeStats, cluster_phones, group_sum, state_question_sets
from steps.tree.decision_tree import EDGE, Question


def make_roots(topology: Topology, ci_phones: list[int], shared_states: bool) -> list[RootSpec]:
    """Kaldi's default roots: context-dependent phones `shared split` (or one split root per
    state), context-independent phones `not-shared not-split`."""
    roots = []
    for phone in topology.phone_ids:
        states = tuple(range(topology.num_states[phone]))
        if phone in ci_phones:
            roots += [RootSpec((phone,), (s,), split=False) for s in states]
        elif shared_states:
            roots.append(RootSpec((phone,), states, split=True))
        else:
            roots += [RootSpec((phone,), (s,), split=True) for s in states]
    return roots


def read_roots(path: str | Path, lang: Lang, topology: Topology) -> list[RootSpec]:
    """Kaldi's roots file: `shared|not-shared split|not-split PHONE...` per line."""
    roots = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{number}"
        if len(parts) < 3 or parts[0] not in ("shared", "not-shared") or parts[1] not in ("split", "not-split"):
            raise SystemExit(f"{where}: expected 'shared|not-shared split|not-split PHONES...'")
        unknown = [p for p in parts[2:] if p not in lang.phone_id or lang.phone_id[p] not in topology.num_states]
        if unknown:
            raise SystemExit(f"{where}: phones without an HMM in the topology: {' '.join(unknown)}")
        phones = tuple(lang.phone_id[p] for p in parts[2:])
        states = tuple(range(max(topology.num_states[p] for p in phones)))
        split = parts[1] == "split"
        if parts[0] == "shared":
            roots.append(RootSpec(phones, states, split))
        else:
            roots += [RootSpec(phones, (s,), split) for s in states]
    covered = {(p, s) for r in roots for p in r.phones for s in r.states}
    missing = [lang.phones[p] for p in topology.phone_ids
               if any((p, s) not in covered for s in range(topology.num_states[p]))]
    if missing:
        raise SystemExit(f"{path}: phones in no root: {' '.join(missing)}")
    return roots


def phone_cluster_stats(stats: TreeStats, phones: list[int], topology: Topology, which: str
                        ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Pooled statistics per centre phone (its middle state, or all states), for the
    phones in `phones` that have any; (phones kept, counts, sums, sumsq)."""
    ev = stats.events
    if which == "middle":
        middle = np.array([topology.num_states.get(int(p), 1) // 2 for p in range(ev[:, 1].max() + 1)])
        keep = ev[:, 3] == middle[ev[:, 1]]
    else:
        keep = np.ones(len(ev), dtype=bool)
    keep &= np.isin(ev[:, 1], phones)
    packed = np.concatenate([stats.counts[keep, None], stats.sums[keep], stats.sumsq[keep]], axis=1)
    present, pooled = group_sum(ev[keep, 1].astype(np.int64), packed)
    seen = pooled[:, 0] > 0
    present, pooled = present[seen], pooled[seen]
    d = stats.dim
    return [int(p) for p in present], pooled[:, 0], pooled[:, 1:1 + d], pooled[:, 1 + d:]


def read_extra_questions(path: Path, lang: Lang) -> list[tuple[int, ...]]:
    sets = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        symbols = line.split()
        if not symbols:
            continue
        unknown = [s for s in symbols if s not in lang.phone_id]
        if unknown:
            raise SystemExit(f"{path}:{number}: unknown phones: {' '.join(unknown)}")
        sets.append(tuple(sorted(lang.phone_id[s] for s in symbols)))
    return sets


def make_questions(stats: TreeStats, lang: Lang, topology: Topology, roots: list[RootSpec], silence: int,
                   extra: list[tuple[int, ...]], cluster_states: str, var_floor: float, seed: int
                   ) -> list[Question]:
    """EDGE, the phone-cluster questions, the extra ones, the state questions; no duplicates."""
    candidates = [p for p in topology.phone_ids if p != silence]
    phones, counts, sums, sumsq = phone_cluster_stats(stats, candidates, topology, cluster_states)
    questions = [Question("EDGE", "phone", (EDGE,))]
    seen = {(("phone",), (EDGE,))}

    def add(name: str, kind: str, values: tuple[int, ...]) -> None:
        key = ((kind,), tuple(sorted(set(values))))
        if values and key not in seen:
            seen.add(key)
            questions.append(Question(name, kind, key[1]))

    if len(phones) > 1:
        nodes = cluster_phones(counts, sums, sumsq, var_floor, seed=seed)
        for i, members in enumerate(nodes[1:], 1):  # the root ("any phone") is EDGE's complement
            add(f"c{i}", "phone", tuple(phones[m] for m in members))
    for i, values in enumerate(extra, 1):
        add(f"x{i}", "phone", values)
    max_states = max((len(r.states) for r in roots if r.split), default=1)
    for values in state_question_sets(max_states):
        add("s" + "_".join(map(str, values)), "state", values)
    return questions
