"""Decision-tree state tying, the numerical part (Kaldi's acc-tree-stats, cluster-phones,
build-tree): pure numpy functions over single-Gaussian statistics.

Statistics (`TreeStats`): one row per event (left, centre, right, state) with its frame
count, sum of features and sum of squared features (a diagonal Gaussian's sufficient
statistics, in float64).

Objective (Kaldi's GaussClusterable): the log-likelihood of a cluster's frames under its
own maximum-likelihood diagonal Gaussian,

    objf = -0.5 * count * (D * (1 + log 2pi) + sum_d log max(var_d, var_floor)),

and the gain of a split is objf(yes) + objf(no) - objf(parent).

Questions for contexts come from top-down binary clustering of the phones by their pooled
Gaussian statistics (every node of the cluster tree is a question, as cluster-phones does);
state questions are sets of HMM-state indices.

Splitting (`build`): one initial leaf per root (Kaldi's stub map). Greedy over all roots at
once: the leaf whose best question gains most is split, until the best gain is below
`thresh` or there are `max_leaves` leaves (0: no limit); a split must leave at least
`min_count` frames on each side. Keys asked: left and right context (phone questions), the
state index (state questions, roots with several states) and the centre phone (phone
questions, roots shared by several phones). A leaf's statistics are pooled per value of a
key once, then every question of that key is scored at once as a matrix product.

Post-merging: leaves of the same root are merged bottom-up while the cheapest merge costs
less than `cluster_thresh` (negative: the smallest gain among the splits made, as Kaldi;
0: no merging). Merged leaves share one senone id.

Length: the likelihood-gain splitting, its priority queue and the post-merging share
the Gaussian statistics' arithmetic; they are read best side by side.
"""

from __future__ import annotations

import heapq
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from steps.core.atomic import atomic_path
from steps.tree.decision_tree import KEYS, Node, Question, Root, Tree, leaves_in_order

LOG_2PI = math.log(2 * math.pi)
KEY_COLUMN = {"L": 0, "R": 2, "S": 3, "C": 1}  # column of each key in TreeStats.events


# ------------------------------------------------------------------ statistics


@dataclass
class TreeStats:
    events: np.ndarray  # [E, 4] int32: left, centre, right, state (sorted, unique)
    counts: np.ndarray  # [E] float64 frames
    sums: np.ndarray  # [E, D] float64
    sumsq: np.ndarray  # [E, D] float64

    @property
    def dim(self) -> int:
        return self.sums.shape[1]

    @property
    def num_events(self) -> int:
        return len(self.counts)

    @property
    def num_frames(self) -> float:
        return float(self.counts.sum())

    @classmethod
    def empty(cls, dim: int) -> "TreeStats":
        return cls(np.zeros((0, 4), np.int32), np.zeros(0), np.zeros((0, dim)), np.zeros((0, dim)))


def _encode(events: np.ndarray, base: np.ndarray) -> np.ndarray:
    key = np.zeros(len(events), dtype=np.int64)
    for column in range(4):
        key = key * base[column] + events[:, column]
    return key


def _decode(keys: np.ndarray, base: np.ndarray) -> np.ndarray:
    events = np.zeros((len(keys), 4), dtype=np.int32)
    for column in range(3, -1, -1):
        events[:, column] = keys % base[column]
        keys = keys // base[column]
    return events


def group_sum(groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct groups sorted, the sum of `values` rows of each) by a sort and reduceat
    (much faster than np.add.at for [N, D] rows)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_groups[1:] != sorted_groups[:-1]]))
    if len(groups) == 0:
        return sorted_groups, values[:0]
    return sorted_groups[starts], np.add.reduceat(values[order], starts, axis=0)


def _sorted_event_runs(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct events sorted, the stable order that sorts the rows, start of each run of
    equal events in that order): what reduceat needs to sum rows per event."""
    events = np.asarray(events, dtype=np.int64)
    if events.min() < 0:
        raise ValueError("negative phone or state id in events")
    base = events.max(axis=0) + 1
    keys = _encode(events, base)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return _decode(keys[starts], base), order, starts


def reduce_events(events: np.ndarray, counts: np.ndarray, sums: np.ndarray, sumsq: np.ndarray) -> TreeStats:
    """Rows with the same event summed; events sorted."""
    dim = sums.shape[1]
    if len(events) == 0:
        return TreeStats.empty(dim)
    unique, order, starts = _sorted_event_runs(events)
    return TreeStats(unique, np.add.reduceat(counts[order], starts, dtype=np.float64),
                     np.add.reduceat(sums[order], starts, axis=0, dtype=np.float64),
                     np.add.reduceat(sumsq[order], starts, axis=0, dtype=np.float64))


def accumulate(events: np.ndarray, feats: np.ndarray) -> TreeStats:
    """Statistics of frames: events [T, 4] (left, centre, right, state), feats [T, D].
    Frames are sorted by event and summed with reduceat in float64 (no [T, D] float64
    copies of float32 features)."""
    feats = np.asarray(feats)
    dim = feats.shape[1]
    if len(events) == 0:
        return TreeStats.empty(dim)
    unique, order, starts = _sorted_event_runs(events)
    frames = feats[order]
    sums = np.add.reduceat(frames, starts, axis=0, dtype=np.float64)
    np.multiply(frames, frames, out=frames)
    sumsq = np.add.reduceat(frames, starts, axis=0, dtype=np.float64)
    counts = np.diff(np.concatenate([starts, [len(events)]])).astype(np.float64)
    return TreeStats(unique, counts, sums, sumsq)


def merge_stats(parts: Sequence[TreeStats]) -> TreeStats:
    parts = [p for p in parts if p.num_events]
    if not parts:
        raise ValueError("no statistics to merge")
    dims = {p.dim for p in parts}
    if len(dims) != 1:
        raise ValueError(f"statistics of different feature dimensions: {sorted(dims)}")
    return reduce_events(np.concatenate([p.events for p in parts]), np.concatenate([p.counts for p in parts]),
                         np.concatenate([p.sums for p in parts]), np.concatenate([p.sumsq for p in parts]))


def save_stats(path: str | Path, stats: TreeStats, info: dict) -> None:

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, events=stats.events, counts=stats.counts, sums=stats.sums, sumsq=stats.sumsq,
                     info=np.array(json.dumps(info)))


def load_stats(path: str | Path) -> tuple[TreeStats, dict]:
    with np.load(path) as data:
        stats = TreeStats(data["events"], data["counts"], data["sums"], data["sumsq"])
        info = json.loads(str(data["info"]))
    return stats, info


# ------------------------------------------------------------------ objective


def gauss_objf(count, sums, sumsq, var_floor: float) -> np.ndarray:
    """Log-likelihood of the frames under their ML diagonal Gaussian (variances floored),
    over leading dimensions: count [...], sums/sumsq [..., D]. Zero where count <= 0."""
    count = np.asarray(count, dtype=np.float64)
    sums, sumsq = np.asarray(sums, dtype=np.float64), np.asarray(sumsq, dtype=np.float64)
    dim = sums.shape[-1]
    positive = count > 0
    inverse = (1.0 / np.where(positive, count, 1.0))[..., None]
    var = sumsq * inverse
    mean_sq = sums * inverse
    np.multiply(mean_sq, mean_sq, out=mean_sq)
    var -= mean_sq
    np.maximum(var, var_floor, out=var)
    np.log(var, out=var)
    objf = -0.5 * count * (dim * (1 + LOG_2PI) + var.sum(axis=-1))
    return np.where(positive, objf, 0.0)


def merge_cost(count_a, sums_a, sumsq_a, count_b, sums_b, sumsq_b, var_floor: float) -> np.ndarray:
    """objf(a) + objf(b) - objf(a + b) >= 0: the likelihood lost by merging."""
    return (gauss_objf(count_a, sums_a, sumsq_a, var_floor) + gauss_objf(count_b, sums_b, sumsq_b, var_floor)
            - gauss_objf(np.add(count_a, count_b), np.add(sums_a, sums_b), np.add(sumsq_a, sumsq_b), var_floor))


# ------------------------------------------------------------------ questions


def cluster_phones(counts: np.ndarray, sums: np.ndarray, sumsq: np.ndarray, var_floor: float = 0.01,
                   num_tries: int = 4, num_iters: int = 20, seed: int = 0) -> list[list[int]]:
    """Top-down binary clustering of items (phones) by their Gaussian statistics, as
    Kaldi's cluster-phones: each cluster is split in two by k-means on the Gaussian
    objective (best of num_tries random starts), down to single items. Returns every node
    of the cluster tree (index lists, root first, then breadth-first)."""
    rng = np.random.default_rng(seed)
    nodes: list[list[int]] = []
    queue = [list(range(len(counts)))]
    while queue:
        items = queue.pop(0)
        nodes.append(items)
        if len(items) < 2:
            continue
        a, b = _kmeans_split(np.array(items), counts, sums, sumsq, var_floor, num_tries, num_iters, rng)
        queue += [sorted(a), sorted(b)]
    return nodes


def _kmeans_split(items: np.ndarray, counts, sums, sumsq, var_floor, num_tries, num_iters, rng):
    """Two non-empty groups of items with a high total objective: from random halves,
    move single items to the other group while that raises the objective."""
    n = len(items)
    if n == 2:
        return [int(items[0])], [int(items[1])]
    c, s, q = counts[items], sums[items], sumsq[items]
    best, best_objf = None, -np.inf
    for _ in range(num_tries):
        assign = rng.permutation(np.arange(n) % 2)  # both groups non-empty
        total = [[c[assign == g].sum(), s[assign == g].sum(0), q[assign == g].sum(0)] for g in (0, 1)]
        objf = [float(gauss_objf(*total[g], var_floor)) for g in (0, 1)]
        size = [int((assign == g).sum()) for g in (0, 1)]
        for _ in range(num_iters):
            moved = False
            for i in rng.permutation(n):
                here, there = assign[i], 1 - assign[i]
                if size[here] == 1:
                    continue
                left = [total[here][0] - c[i], total[here][1] - s[i], total[here][2] - q[i]]
                joined = [total[there][0] + c[i], total[there][1] + s[i], total[there][2] + q[i]]
                new_here, new_there = float(gauss_objf(*left, var_floor)), float(gauss_objf(*joined, var_floor))
                if new_here + new_there > objf[here] + objf[there] + 1e-9 * max(1.0, abs(objf[here] + objf[there])):
                    assign[i] = there
                    total[here], total[there] = left, joined
                    objf[here], objf[there] = new_here, new_there
                    size[here] -= 1
                    size[there] += 1
                    moved = True
            if not moved:
                break
        if sum(objf) > best_objf:
            best, best_objf = assign.copy(), sum(objf)
    return [int(x) for x in items[best == 0]], [int(x) for x in items[best == 1]]


def state_question_sets(num_states: int) -> list[tuple[int, ...]]:
    """Sets of HMM-state indices to ask about: every split of 0..n-1 into two non-empty
    parts (one set per split) for n <= 5; for longer HMMs the singletons and the prefixes."""
    if num_states < 2:
        return []
    if num_states <= 5:
        sets = []
        for mask in range(1, 2 ** num_states - 1):
            if mask & 1:  # one of each complementary pair: the one holding state 0
                sets.append(tuple(i for i in range(num_states) if mask >> i & 1))
        return sorted(sets, key=lambda t: (len(t), t))
    singles = [(i,) for i in range(num_states)]
    prefixes = [tuple(range(k)) for k in range(2, num_states)]
    return singles + prefixes


# ------------------------------------------------------------------ building


@dataclass
class RootSpec:
    """One stub-map root: the (phone, state) pairs it covers and whether it may be split."""

    phones: tuple[int, ...]
    states: tuple[int, ...]
    split: bool = True


@dataclass
class BuildOptions:
    thresh: float = 300.0  # Kaldi build-tree --thresh
    max_leaves: int = 0  # Kaldi --max-leaves (0: no limit)
    cluster_thresh: float = -1.0  # Kaldi --cluster-thresh (-1: smallest split, 0: none)
    min_count: float = 20.0  # not in Kaldi's build-tree (HTK's RO): frames each side of a split
    var_floor: float = 0.01  # Kaldi acc-tree-stats --var-floor


@dataclass
class BuildReport:
    num_events: int
    num_frames: float
    initial_leaves: int
    objf_initial: float = 0.0
    objf_split: float = 0.0
    objf_final: float = 0.0
    splits: list[dict] = field(default_factory=list)  # in order: gain, root, key, question, leaves
    stop_reason: str = ""
    smallest_split: float | None = None
    cluster_thresh: float = 0.0
    merges: int = 0
    leaves_after_split: int = 0
    num_senones: int = 0
    unseen_roots: list[str] = field(default_factory=list)


@dataclass
class _Leaf:
    node: int
    root: int
    events: np.ndarray  # event indices
    count: float
    sums: np.ndarray
    sumsq: np.ndarray
    best: tuple | None = None  # (gain, key, question index, yes mask over events)


class _Splitter:
    """Finds the best question for a leaf: for each key the leaf's statistics are pooled
    per value of the key, then all questions of that key are scored at once as matrix
    products (questions x values) @ (values x stats)."""

    def __init__(self, stats: TreeStats, questions: list[Question], options: BuildOptions, num_states: int):
        self.stats, self.options = stats, options
        # one row per event: count, sums, sums of squares
        self.packed = np.concatenate([stats.counts[:, None], stats.sums, stats.sumsq], axis=1)
        phone_values = [v for q in questions if q.kind == "phone" for v in q.values]
        width = int(max(stats.events[:, :3].max(initial=0), max(phone_values, default=0))) + 1
        self.keys = {}
        for key in KEYS:
            kind = "state" if key == "S" else "phone"
            ids = [i for i, q in enumerate(questions) if q.kind == kind]
            columns = max(num_states, int(stats.events[:, 3].max(initial=0)) + 1) if key == "S" else width
            matrix = np.zeros((len(ids), columns))
            for row, qi in enumerate(ids):
                matrix[row, [v for v in questions[qi].values if 0 <= v < columns]] = 1.0
            self.keys[key] = (np.array(ids, dtype=np.int64), matrix)

    def totals(self, events: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """(the events' packed rows, total count, sums, sums of squares)."""
        packed = self.packed[events]
        total = packed.sum(axis=0)
        dim = self.stats.dim
        return packed, float(total[0]), total[1:1 + dim], total[1 + dim:]

    def best_split(self, leaf: _Leaf, keys: Sequence[str], packed: np.ndarray) -> tuple | None:
        """(gain, key, question index, yes mask over the leaf's events) or None;
        packed: the leaf's rows of self.packed."""
        opt, dim = self.options, self.stats.dim
        n = len(leaf.events)
        if leaf.count < 2 * opt.min_count or n < 2:
            return None
        parent = gauss_objf(leaf.count, leaf.sums, leaf.sumsq, opt.var_floor)
        total = np.concatenate([[leaf.count], leaf.sums, leaf.sumsq])
        least = max(opt.min_count, 1e-9)
        best = None
        for key in keys:
            ids, matrix = self.keys[key]
            if len(ids) == 0:
                continue
            values = self.stats.events[leaf.events, KEY_COLUMN[key]]
            present, pooled = group_sum(values, packed)  # the leaf's statistics per value of the key
            if len(present) < 2:
                continue  # every event gives the same answer
            yes = matrix[:, present] @ pooled  # [Q, 1 + 2D]
            no = total[None, :] - yes
            valid = (yes[:, 0] >= least) & (no[:, 0] >= least)
            if not valid.any():
                continue
            yes, no = yes[valid], no[valid]
            gain = (gauss_objf(yes[:, 0], yes[:, 1:1 + dim], yes[:, 1 + dim:], opt.var_floor)
                    + gauss_objf(no[:, 0], no[:, 1:1 + dim], no[:, 1 + dim:], opt.var_floor) - parent)
            row = int(np.argmax(gain))
            if best is None or gain[row] > best[0]:
                best = (float(gain[row]), key, int(np.flatnonzero(valid)[row]))
        if best is None:
            return None
        gain, key, row = best
        ids, matrix = self.keys[key]
        mask = matrix[row, self.stats.events[leaf.events, KEY_COLUMN[key]]] > 0
        return gain, key, int(ids[row]), mask


def build(stats: TreeStats, roots: Sequence[RootSpec], questions: Sequence[Question], phones: list[str],
          silence: int, options: BuildOptions) -> tuple[Tree, np.ndarray, BuildReport]:
    """The tree, the occupancy (frames) of each senone, and a report of the build."""
    # Length: the greedy split loop and its bookkeeping (queue, leaves, report) share most locals
    questions = list(questions)
    if options.thresh <= 0 and options.max_leaves <= 0:
        raise ValueError("either thresh or max_leaves must be positive (else the tree splits without end)")
    num_states = max(max(r.states) for r in roots) + 1
    root_of = np.full((len(phones), num_states), -1, dtype=np.int64)
    for index, root in enumerate(roots):
        for phone in root.phones:
            for state in root.states:
                if root_of[phone, state] >= 0:
                    raise ValueError(f"phone {phones[phone]} state {state} is in two roots")
                root_of[phone, state] = index
    ev = stats.events
    if len(ev) and (ev[:, 1].max() >= len(phones) or ev[:, 3].max() >= num_states
                    or (root_of[ev[:, 1], ev[:, 3]] < 0).any()):
        bad = ev[(ev[:, 1] >= len(phones)) | (ev[:, 3] >= num_states)]
        if not len(bad):
            bad = ev[root_of[ev[:, 1], ev[:, 3]] < 0]
        raise ValueError(f"statistics for phone id {bad[0, 1]} state {bad[0, 3]}, which no root covers")
    event_root = root_of[ev[:, 1], ev[:, 3]] if len(ev) else np.zeros(0, np.int64)

    nodes: list[Node] = []
    leaves: dict[int, _Leaf] = {}  # node id -> leaf
    tree_roots = []
    report = BuildReport(stats.num_events, stats.num_frames, len(roots))
    splitter = _Splitter(stats, questions, options, num_states)
    heap: list[tuple[float, int]] = []

    def add_leaf(events: np.ndarray, node: int, root: int) -> None:
        """A new leaf with its totals and, in a split root, its best split queued."""
        packed, count, sums, sumsq = splitter.totals(events)
        leaf = leaves[node] = _Leaf(node, root, events, count, sums, sumsq)
        spec = roots[root]
        if spec.split:
            keys = ["L", "R"] + (["S"] if len(spec.states) > 1 else []) + (["C"] if len(spec.phones) > 1 else [])
            leaf.best = splitter.best_split(leaf, keys, packed)
            if leaf.best is not None:
                heapq.heappush(heap, (-leaf.best[0], node))

    for index, root in enumerate(roots):
        node = len(nodes)
        nodes.append(Node())
        tree_roots.append(Root(tuple(root.phones), tuple(root.states), node))
        events = np.flatnonzero(event_root == index)
        add_leaf(events, node, index)
        if len(events) == 0:
            report.unseen_roots.append("+".join(phones[p] for p in root.phones)
                                       + (f".s{','.join(map(str, root.states))}" if not root.split else ""))
    report.objf_initial = float(sum(gauss_objf(l.count, l.sums, l.sumsq, options.var_floor)
                                    for l in leaves.values()))
    report.stop_reason = (f"no split possible (every leaf too small or too uniform for --min-count "
                          f"{options.min_count:g} frames on each side)")
    smallest = None
    while heap:
        negative_gain, node_id = heap[0]
        gain = -negative_gain
        if options.thresh > 0 and gain < options.thresh:
            report.stop_reason = f"best gain {gain:.1f} below thresh {options.thresh:g}"
            break
        if options.max_leaves > 0 and len(leaves) >= options.max_leaves:
            report.stop_reason = f"reached max-leaves {options.max_leaves}"
            break
        heapq.heappop(heap)
        leaf = leaves.pop(node_id)
        _, key, question, mask = leaf.best
        yes_id, no_id = len(nodes), len(nodes) + 1
        nodes += [Node(), Node()]
        nodes[node_id] = Node(key, question, yes_id, no_id)
        add_leaf(leaf.events[mask], yes_id, leaf.root)
        add_leaf(leaf.events[~mask], no_id, leaf.root)
        smallest = gain if smallest is None else min(smallest, gain)
        report.splits.append({"gain": round(gain, 3), "root": "+".join(phones[p] for p in roots[leaf.root].phones),
                              "key": key, "question": questions[question].name, "leaves": len(leaves)})
    report.leaves_after_split = len(leaves)
    report.smallest_split = smallest
    report.objf_split = float(sum(gauss_objf(l.count, l.sums, l.sumsq, options.var_floor)
                                  for l in leaves.values()))

    # Post-merging within each root (Kaldi's ClusterEventMapRestrictedByMap).
    cluster_thresh = options.cluster_thresh
    if cluster_thresh < 0:
        cluster_thresh = smallest if smallest is not None else 0.0
    report.cluster_thresh = float(cluster_thresh)
    group_of = {node_id: node_id for node_id in leaves}  # leaf node -> representative leaf node
    if cluster_thresh > 0:
        by_root: dict[int, list[int]] = {}
        for node_id, leaf in leaves.items():
            by_root.setdefault(leaf.root, []).append(node_id)
        for members in by_root.values():
            if len(members) < 2:
                continue
            for absorbed, into in merge_leaves([leaves[m] for m in members], cluster_thresh, options.var_floor):
                report.merges += 1
                for node_id, group in group_of.items():
                    if group == members[absorbed]:
                        group_of[node_id] = members[into]

    # Senone ids: root by root, yes-branch first; merged leaves share the id of the first.
    senone_of_group: dict[int, int] = {}
    occs: list[float] = []
    for node_id in leaves_in_order(tree_roots, nodes):
        group = group_of[node_id]
        if group not in senone_of_group:
            senone_of_group[group] = len(occs)
            occs.append(0.0)
        nodes[node_id] = Node(senone=senone_of_group[group])
        occs[senone_of_group[group]] += leaves[node_id].count
    report.num_senones = len(occs)
    group_stats: dict[int, list] = {}
    for node_id, leaf in leaves.items():
        g = group_stats.setdefault(group_of[node_id], [0.0, 0.0, 0.0])
        g[0] += leaf.count
        g[1] = g[1] + leaf.sums
        g[2] = g[2] + leaf.sumsq
    report.objf_final = float(sum(gauss_objf(c, s, q, options.var_floor) if c > 0 else 0.0
                                  for c, s, q in group_stats.values()))
    tree = Tree(list(phones), silence, questions, tree_roots, nodes, len(occs))
    return tree, np.array(occs), report


def merge_leaves(leaves: Sequence[_Leaf], thresh: float, var_floor: float) -> list[tuple[int, int]]:
    """Bottom-up clustering of leaves: repeatedly merge the pair whose merge loses least
    likelihood while that loss is below thresh. Returns the merges as (absorbed, into)
    indices into `leaves`, in order."""
    n = len(leaves)
    count = np.array([l.count for l in leaves], dtype=np.float64)
    sums = np.stack([l.sums for l in leaves])
    sumsq = np.stack([l.sumsq for l in leaves])
    alive = np.ones(n, dtype=bool)
    cost = merge_cost(count[:, None], sums[:, None], sumsq[:, None], count[None, :], sums[None, :],
                      sumsq[None, :], var_floor)
    cost[np.diag_indices(n)] = np.inf
    merges = []
    while alive.sum() > 1:
        flat = int(np.argmin(cost))
        i, j = divmod(flat, n)
        if not cost[i, j] < thresh:
            break
        into, absorbed = min(i, j), max(i, j)
        merges.append((absorbed, into))
        count[into] += count[absorbed]
        sums[into] += sums[absorbed]
        sumsq[into] += sumsq[absorbed]
        alive[absorbed] = False
        cost[absorbed, :] = np.inf
        cost[:, absorbed] = np.inf
        row = merge_cost(count[into], sums[into], sumsq[into], count, sums, sumsq, var_floor)
        row[~alive] = np.inf
        row[into] = np.inf
        cost[into, :] = row
        cost[:, into] = row
    return merges


def budget_line(report: BuildReport, max_leaves: int) -> str:
    """The senones built against the budget, and what stopped the splitting: with little data
    the tree stops short of --num-leaves, which is fine but should be said."""
    built = f"built {report.num_senones} senones ({report.leaves_after_split} leaves, {report.merges} merged)"
    if max_leaves <= 0:
        return f"no senone budget (--num-leaves 0): {built}; stopped: {report.stop_reason}"
    if report.leaves_after_split >= max_leaves:
        return f"senone budget --num-leaves {max_leaves}: {built}; the budget stopped the splitting"
    return (f"senone budget --num-leaves {max_leaves}: {built}, short of the budget: {report.stop_reason} "
            "(the data gives no more splits worth making: --thresh, run.sh's tree_thresh, and --min-count "
            "set what is worth it)")


def format_report(report: BuildReport, max_leaves: int = 0) -> str:
    """Human-readable summary of a build (for the log); max_leaves: the budget it had."""
    out = io.StringIO()
    frames = max(report.num_frames, 1.0)
    out.write(f"{report.num_events} events, {report.num_frames:.0f} frames, {report.initial_leaves} roots\n")
    out.write(f"splitting: {len(report.splits)} splits -> {report.leaves_after_split} leaves; "
              f"stopped: {report.stop_reason}; smallest split "
              f"{'none' if report.smallest_split is None else f'{report.smallest_split:.1f}'}\n")
    out.write(f"objf per frame: initial {report.objf_initial / frames:.4f}, after splitting "
              f"{report.objf_split / frames:.4f} (+{(report.objf_split - report.objf_initial) / frames:.4f}), "
              f"after merging {report.objf_final / frames:.4f}\n")
    out.write(f"merging (cluster-thresh {report.cluster_thresh:.1f}): {report.merges} merges -> "
              f"{report.num_senones} senones\n")
    out.write(budget_line(report, max_leaves) + "\n")
    if report.unseen_roots:
        out.write(f"roots without statistics ({len(report.unseen_roots)}): {' '.join(report.unseen_roots)}\n")
    return out.getvalue()
