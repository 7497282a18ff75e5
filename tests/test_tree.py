"""Decision-tree building (steps.tree.building) and the Tree object (steps.tree.decision_tree)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from steps.toy.tree_data import synthetic_stats
from steps.build_tree import make_roots
from steps.tree.decision_tree import EDGE, Question, Tree
from steps.tree.building import (BuildOptions, RootSpec, TreeStats, accumulate, build, cluster_phones,
                                 format_report, gauss_objf, merge_leaves, merge_stats, state_question_sets,
                                 _Leaf)

PHONES = ["<eps>", "SIL", "SPN", "AA", "B", "D", "K", "M", "N"]


def direct_loglik(x: np.ndarray) -> float:
    """Sum of log N(x_t; mean, diag var) with the ML mean and variance of x itself."""
    mean, var = x.mean(axis=0), x.var(axis=0)
    return float(np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (x - mean) ** 2 / var))


def stats_of(events: list[tuple[int, int, int, int]], frames: list[np.ndarray]) -> TreeStats:
    all_events = np.concatenate([np.tile(e, (len(f), 1)) for e, f in zip(events, frames)])
    return accumulate(all_events, np.concatenate(frames))


def test_gauss_objf_equals_direct_loglik():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (200, 5))
    objf = gauss_objf(len(x), x.sum(0), (x * x).sum(0), var_floor=0.01)
    assert objf == pytest.approx(direct_loglik(x), rel=1e-10)
    # the floor: constant data gets the floored variance
    constant = np.ones((10, 3))
    floored = gauss_objf(10, constant.sum(0), constant.sum(0), var_floor=0.5)
    assert floored == pytest.approx(-0.5 * 10 * 3 * (1 + np.log(2 * np.pi) + np.log(0.5)))
    assert gauss_objf(0.0, np.zeros(3), np.zeros(3), 0.01) == 0.0


def test_split_gain_equals_direct_computation():
    rng = np.random.default_rng(1)
    lefts = [4, 5, 6, 7]  # B D K M
    frames = [rng.normal(mu, 1.0, (80, 3)) for mu in (0.0, 0.3, 2.0, 2.5)]
    stats = stats_of([(l, 3, EDGE, 0) for l in lefts], frames)
    questions = [Question("BD", "phone", (4, 5)), Question("B", "phone", (4,))]
    tree, _, report = build(stats, [RootSpec((3,), (0,))], questions, PHONES, 1,
                            BuildOptions(thresh=0, max_leaves=2, cluster_thresh=0, min_count=1))
    assert tree.num_senones == 2 and len(report.splits) == 1
    yes, no = np.concatenate(frames[:2]), np.concatenate(frames[2:])
    expected = direct_loglik(yes) + direct_loglik(no) - direct_loglik(np.concatenate(frames))
    assert report.splits[0]["question"] == "BD" and report.splits[0]["key"] == "L"
    assert report.splits[0]["gain"] == pytest.approx(expected, abs=2e-3)
    assert (report.objf_split - report.objf_initial) == pytest.approx(expected, rel=1e-9)


def test_planted_context_class_is_the_first_split():
    """Phone AA after a stop (B, D, K) differs strongly; the first split asks exactly that,
    among decoy questions and right-context questions."""
    rng = np.random.default_rng(2)
    events, frames = [], []
    for left, right in itertools.product([0, 4, 5, 6, 7, 8], [0, 4, 5, 6, 7, 8]):
        shift = 3.0 if left in (4, 5, 6) else 0.0
        events.append((left, 3, right, 0))
        frames.append(rng.normal(shift + 0.2 * (right == 8), 1.0, (40, 4)))
    stats = stats_of(events, frames)
    questions = [Question("EDGE", "phone", (EDGE,)), Question("BM", "phone", (4, 7)),
                 Question("stops", "phone", (4, 5, 6)), Question("DKN", "phone", (5, 6, 8)),
                 Question("nasal", "phone", (7, 8))]
    tree, _, report = build(stats, [RootSpec((3,), (0,))], questions, PHONES, 1,
                            BuildOptions(thresh=50, cluster_thresh=0))
    first = report.splits[0]
    assert (first["key"], first["question"]) == ("L", "stops")
    assert tree.senone(4, 3, 0, 0) == tree.senone(6, 3, 8, 0) != tree.senone(7, 3, 0, 0)


@pytest.fixture(scope="module")
def realistic():
    stats, symbols, topology, sil = synthetic_stats(num_phones=10, num_frames=40_000, dim=6, successors=6)
    real = [p for p in topology.phone_ids if p != sil]
    questions = [Question("EDGE", "phone", (EDGE,))]
    questions += [Question(f"q{i}_{m}", "phone", tuple(real[j] for j in range(len(real)) if j % m == i % m))
                  for i, m in itertools.product(range(3), (2, 3, 4))]
    questions += [Question(f"s{i}", "state", v) for i, v in enumerate(state_question_sets(3))]
    roots = make_roots(topology, [sil, 2], shared_states=True)
    return stats, symbols, topology, sil, questions, roots


def test_leaf_budget_is_respected(realistic):
    stats, symbols, topology, sil, questions, roots = realistic
    for budget in (20, 45):
        tree, occs, report = build(stats, roots, questions, symbols, sil,
                                   BuildOptions(thresh=0, max_leaves=budget, cluster_thresh=0, min_count=5))
        assert tree.num_senones == budget == report.leaves_after_split
        assert report.stop_reason == f"reached max-leaves {budget}"
        assert occs.sum() == pytest.approx(stats.num_frames)
        # each leaf's occupancy is the frames of exactly the events the tree sends to it
        leaf_of = np.array([tree.senone(*e) for e in stats.events.tolist()])
        assert np.allclose(occs, np.bincount(leaf_of, weights=stats.counts, minlength=tree.num_senones))
        assert occs.min() > 0  # min_count=5: no empty leaf


def test_threshold_is_respected(realistic):
    stats, symbols, topology, sil, questions, roots = realistic
    tree, occs, report = build(stats, roots, questions, symbols, sil,
                               BuildOptions(thresh=400, cluster_thresh=0, min_count=5))
    gains = [s["gain"] for s in report.splits]
    assert gains and min(gains) >= 400
    assert report.stop_reason.startswith("best gain") and "below thresh 400" in report.stop_reason
    # a threshold above every gain leaves the roots as they are
    none, _, report = build(stats, roots, questions, symbols, sil, BuildOptions(thresh=1e12, cluster_thresh=0))
    assert none.num_senones == len(roots) and not report.splits
    # min count: every leaf has at least that many frames
    tree, occs, report = build(stats, roots, questions, symbols, sil,
                               BuildOptions(thresh=1, min_count=200, cluster_thresh=0))
    split = [s for p in topology.phone_ids if p not in (sil, 2) for st in range(3) for s in tree.senones_of(p, st)]
    assert len(report.splits) > 10 and occs[split].min() >= 200


def test_post_merging_uses_the_smallest_split(realistic):
    stats, symbols, topology, sil, questions, roots = realistic
    options = BuildOptions(thresh=0, max_leaves=60, cluster_thresh=-1, min_count=5)
    tree, occs, report = build(stats, roots, questions, symbols, sil, options)
    assert report.cluster_thresh == pytest.approx(min(s["gain"] for s in report.splits), abs=1e-3)
    assert tree.num_senones == report.leaves_after_split - report.merges < 60
    assert occs.sum() == pytest.approx(stats.num_frames)
    assert report.objf_final <= report.objf_split
    # merged senones stay within one root: every senone belongs to one phone
    owners = {}
    for p in topology.phone_ids:
        for s in range(topology.num_states[p]):
            for senone in tree.senones_of(p, s):
                owners.setdefault(senone, set()).add(p)
    assert all(len(o) == 1 for o in owners.values())


def test_merge_leaves_stops_at_the_threshold():
    rng = np.random.default_rng(3)
    means = [0.0, 0.05, 5.0, 5.05]
    leaves = []
    for m in means:
        x = rng.normal(m, 1.0, (100, 2))
        leaves.append(_Leaf(0, 0, np.zeros(0, int), 100.0, x.sum(0), (x * x).sum(0)))
    merges = merge_leaves(leaves, thresh=20.0, var_floor=0.01)
    assert sorted(merges) == [(1, 0), (3, 2)]  # the close pairs, never across
    assert len(merge_leaves(leaves, thresh=1e9, var_floor=0.01)) == 3


def test_cluster_phones_finds_planted_groups():
    rng = np.random.default_rng(4)
    group = np.array([0, 1, 0, 1, 0, 1, 1])
    x = [rng.normal(4.0 * g, 1.0, (100, 3)) for g in group]
    counts = np.array([len(v) for v in x], float)
    nodes = cluster_phones(counts, np.stack([v.sum(0) for v in x]), np.stack([(v * v).sum(0) for v in x]))
    assert nodes[0] == list(range(7))
    assert sorted([nodes[1], nodes[2]]) == [[0, 2, 4], [1, 3, 5, 6]]
    assert sum(len(n) == 1 for n in nodes) == 7 and len(nodes) == 13  # a full binary tree


def test_state_questions():
    assert state_question_sets(1) == []
    assert state_question_sets(3) == [(0,), (0, 1), (0, 2)]
    assert len(state_question_sets(5)) == 15


def test_accumulate_matches_a_loop():
    rng = np.random.default_rng(5)
    events = rng.integers(0, 3, (500, 4))
    feats = rng.normal(size=(500, 3)).astype(np.float32)
    stats = merge_stats([accumulate(events[:200], feats[:200]), accumulate(events[200:], feats[200:])])
    for row, event in enumerate(stats.events):
        mine = (events == event).all(axis=1)
        assert stats.counts[row] == mine.sum()
        np.testing.assert_allclose(stats.sums[row], feats[mine].astype(np.float64).sum(0), rtol=1e-6)
        np.testing.assert_allclose(stats.sumsq[row], (feats[mine].astype(np.float64) ** 2).sum(0), rtol=1e-5)
    assert stats.num_events == len({tuple(e) for e in events})


def _grid(tree: Tree, topology) -> np.ndarray:
    rows = [(l, c, r, s) for c in topology.phone_ids for s in range(topology.num_states[c])
            for l in range(len(tree.phones)) for r in range(len(tree.phones))]
    return np.array(rows)


def test_every_triphone_has_a_senone_seen_or_not(realistic):
    stats, symbols, topology, sil, questions, roots = realistic
    tree, _, _ = build(stats, roots, questions, symbols, sil, BuildOptions(thresh=0, max_leaves=50, min_count=5))
    grid = _grid(tree, topology)
    seen = {tuple(e) for e in stats.events}
    unseen = [tuple(g) for g in grid if tuple(g) not in seen]
    assert len(unseen) > len(grid) // 2  # most of the grid never occurs in the statistics
    looked_up = tree.lookup(grid[:, 0], grid[:, 1], grid[:, 2], grid[:, 3])
    assert ((looked_up >= 0) & (looked_up < tree.num_senones)).all()
    assert [tree.senone(*g) for g in grid[::37]] == looked_up[::37].tolist()
    # silence and spoken noise ignore their contexts
    for phone in (sil, 2):
        assert len({tree.senone(l, phone, r, 0) for l in range(len(symbols)) for r in range(len(symbols))}) == 1
    with pytest.raises(KeyError):
        tree.senone(0, sil, 0, 2)  # SIL has one state
    with pytest.raises(ValueError):
        tree.lookup([0], [99], [0], [0])


def test_save_load_round_trip(realistic, tmp_path):
    stats, symbols, topology, sil, questions, roots = realistic
    tree, _, _ = build(stats, roots, questions, symbols, sil, BuildOptions(thresh=0, max_leaves=70, min_count=5))
    path = tree.save(tmp_path)
    loaded = Tree.load(tmp_path)
    assert loaded.to_text() == tree.to_text() == path.read_text()
    assert loaded.num_senones == tree.num_senones and loaded.silence == sil
    grid = _grid(tree, topology)
    np.testing.assert_array_equal(loaded.lookup(*grid.T), tree.lookup(*grid.T))
    assert loaded.describe_senones() == tree.describe_senones()
    assert Tree.load(tmp_path / "tree.txt").to_text() == tree.to_text()


def test_text_form_is_checked():
    text = "\n".join(["lm2am-tree 1", "num-senones 2", "silence SIL", "phone 0 <eps>", "phone 1 SIL",
                      "phone 2 AA", "question q phone AA", "root SIL states 0 node 0", "node 0 leaf 0",
                      "root AA states 0 node 1", "node 1 L q yes 2 no 3", "  node 2 leaf 1", "  node 3 leaf 1"])
    tree = Tree.from_text(text)
    assert tree.senone(2, 2, 0, 0) == 1 and tree.senone(0, 1, 0, 0) == 0
    with pytest.raises(ValueError, match="unknown question"):
        Tree.from_text(text.replace("L q yes", "L zz yes"))
    with pytest.raises(ValueError, match="parents"):
        Tree.from_text(text.replace("yes 2 no 3", "yes 2 no 2").replace("  node 3 leaf 1", "node 3 leaf 1"))
    with pytest.raises(ValueError, match="senone 5"):
        Tree.from_text(text.replace("node 3 leaf 1", "node 3 leaf 5"))


def test_senone_descriptions_name_the_contexts():
    rng = np.random.default_rng(6)
    events, frames = [], []
    for left in (0, 4, 5, 6, 7, 8):
        events.append((left, 3, 0, 0))
        frames.append(rng.normal(3.0 if left in (7, 8) else 0.0, 1.0, (50, 2)))
    questions = [Question("nasal", "phone", (7, 8))]
    tree, _, _ = build(stats_of(events, frames), [RootSpec((3,), (0,)), RootSpec((1,), (0,), split=False)],
                       questions, PHONES, 1, BuildOptions(thresh=10, cluster_thresh=0))
    descriptions = tree.describe_senones()
    assert "AA.s0.{L:{M,N}}" in descriptions and "SIL.s0" in descriptions
    assert any(d.startswith("AA.s0.{L:!{M,N}") or d.startswith("AA.s0.{L:{<eps>") for d in descriptions)


def test_shared_root_splits_on_the_centre_phone(tmp_path):
    """A root shared by two phones (Kaldi roots file `shared split AA B`) asks about the
    centre phone when the phones differ."""
    from steps.build_tree import read_roots
    from steps.lang.lexicon import write_symbol_table, Lang
    from steps.hmm.topology import Topology

    lang_dir = tmp_path / "lang"
    lang_dir.mkdir()
    write_symbol_table(lang_dir / "phones.txt", PHONES + ["#0"])
    write_symbol_table(lang_dir / "words.txt", ["<eps>", "!SIL", "<UNK>", "BA", "#0", "<s>", "</s>"])
    (lang_dir / "lexicon.txt").write_text("!SIL SIL\n<UNK> SPN\nBA B AA\n")
    lang = Lang.load(lang_dir)
    topology = Topology.build(lang.real_phone_ids, 1)
    (tmp_path / "roots.txt").write_text("not-shared not-split SIL SPN\nshared split AA B\n"
                                        "shared split D K M N\n")
    roots = read_roots(tmp_path / "roots.txt", lang, topology)
    assert [(r.phones, r.split) for r in roots] == [((1, 2), False), ((3, 4), True), ((5, 6, 7, 8), True)]
    rng = np.random.default_rng(7)
    events = [(l, c, 0, 0) for c in (3, 4) for l in (0, 5, 7)]
    frames = [rng.normal(4.0 * (c == 4) + 0.5 * (l == 5), 1.0, (60, 3)) for l, c, _, _ in events]
    questions = [Question("EDGE", "phone", (EDGE,)), Question("D", "phone", (5,)), Question("AA", "phone", (3,))]
    tree, _, report = build(stats_of(events, frames), roots, questions, PHONES, 1,
                            BuildOptions(thresh=100, cluster_thresh=0))
    assert (report.splits[0]["key"], report.splits[0]["question"]) == ("C", "AA")
    assert tree.senone(0, 3, 0, 0) != tree.senone(0, 4, 0, 0)
    assert tree.senone(0, 1, 0, 0) == tree.senone(5, 2, 7, 0)  # SIL and SPN share their leaf
    assert Tree.from_text(tree.to_text()).lookup([0, 0], [3, 4], [0, 0], [0, 0]).tolist() == \
        [tree.senone(0, 3, 0, 0), tree.senone(0, 4, 0, 0)]


def test_the_log_says_what_stopped_the_tree_short_of_its_budget(realistic):
    """A small corpus stops the tree short of --num-leaves: the log says so and why."""
    stats, symbols, topology, sil, questions, roots = realistic
    tree, _, report = build(stats, roots, questions, symbols, sil,
                            BuildOptions(thresh=400, max_leaves=1000, cluster_thresh=0, min_count=5))
    assert 0 < len(report.splits) and tree.num_senones < 1000
    text = format_report(report, 1000)
    assert (f"senone budget --num-leaves 1000: built {tree.num_senones} senones ({tree.num_senones} leaves, "
            f"0 merged), short of the budget: best gain") in text and "below thresh 400" in text
    # too few frames for any split at --min-count: no split, and the log names the option
    tree, _, report = build(stats, roots, questions, symbols, sil,
                            BuildOptions(thresh=1, max_leaves=1000, cluster_thresh=0, min_count=1e9))
    assert not report.splits and tree.num_senones == len(roots)
    assert ("short of the budget: no split possible (every leaf too small or too uniform for --min-count "
            "1e+09 frames on each side)") in format_report(report, 1000)
    # the budget reached
    tree, _, report = build(stats, roots, questions, symbols, sil,
                            BuildOptions(thresh=0, max_leaves=45, cluster_thresh=0, min_count=5))
    assert (f"senone budget --num-leaves 45: built 45 senones (45 leaves, 0 merged); the budget stopped "
            "the splitting") in format_report(report, 45)
    assert "no senone budget (--num-leaves 0)" in format_report(report)
