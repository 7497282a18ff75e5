"""The k2 lattice decoder (steps.decoding): the graph conversion keeps HCLG's paths and
costs; one lattice gives every LM weight's 1-best; the reference's forced path scores as
the found one when they agree, and better when pruning lost it (a counted search error);
N-best rescoring with the first pass's own LM changes nothing and with a different LM
follows it; the program writes the counts and the rescored results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from steps.toy.decode_graphs import TOY_UNIGRAM_ARPA, peaked_scores, senone_path, toy_graph, toy_graph_and_lms

from steps.toy.tree_data import toy_topology
from steps.decoding.decoder import K2Decoder
from steps.decoding.k2_search import LatticeOptions, best_path, dense_scores, nbest, search
from steps.decoding.hybrid_graph import HybridGraph, SearchOptions
from steps.graph.epsilon import remove_input_epsilons

GRAMMAR = [("CAT AT", 0.5), ("BAT", 1.0), ("BAD", 2.0), ("TAB BA", 1.5), ("KAT AT", 3.0)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("k2decode")
    graph_dir, lang, tree = toy_graph(work, grammar=GRAMMAR)
    graph = HybridGraph.load(graph_dir)
    return work, graph_dir, lang, tree, graph, K2Decoder.load(graph_dir, graph.unit_senones, LatticeOptions())


def scores_for(words, lang, tree, silences=frozenset()):
    _, senones = senone_path(words.split(), lang, toy_topology(lang), tree, set(silences), True)
    return peaked_scores(senones, tree.num_senones)


def garden_path(lang, tree, lure: float = 3.0) -> np.ndarray:
    """Scores of "CAT AT" whose first phone sounds more like B than K by `lure` per frame:
    a search that keeps one state a frame follows B (BAT) and can no longer reach CAT AT,
    whose total is better by far (BAT leaves frames to a poorly scoring silence)."""
    topology = toy_topology(lang)
    _, cat = senone_path(["CAT", "AT"], lang, topology, tree, set(), True)
    _, bat = senone_path(["BAT"], lang, topology, tree, set(), True)
    scores = peaked_scores(cat, tree.num_senones)
    for state in (1, 2, 3):  # SIL is state 0; K's three states follow
        frames = np.arange(3 * state, 3 * state + 3)
        scores[frames, bat[state]] = 0.0
        scores[frames, cat[state]] = -lure
    return scores


def test_k2_graph_keeps_the_paths_and_their_costs(world):
    _, graph_dir, lang, tree, graph, decoder = world
    assert (graph_dir / "HCLG.k2.pt").is_file()  # cached next to HCLG.fst
    for words in ("CAT AT", "BAT", "TAB BA", "BAD"):
        x = scores_for(words, lang, tree)
        out = decoder.decode(x, [10.0])
        assert [graph.words[i] for i in out.best[10.0].words] == words.split()
        # Kaldi's lattice decoder on the OpenFst graph finds the same words
        old = graph.decode(x, [10.0], SearchOptions(decoder="kaldi"))
        assert [graph.words[i] for i in old.words[10.0]] == words.split()
    # the graph cost of BAD (grammar 2.0) exceeds that of BAT (1.0) by 1.0
    bat = decoder.decode(scores_for("BAT", lang, tree), [10.0]).best[10.0]
    bad = decoder.decode(scores_for("BAD", lang, tree), [10.0]).best[10.0]
    assert bat.graph - bad.graph == pytest.approx(1.0, abs=1e-3)
    assert bat.acoustic == pytest.approx(0.0, abs=1e-3) and bad.acoustic == pytest.approx(0.0, abs=1e-3)


def test_epsilon_removal_keeps_every_word_sequence():
    """Two epsilon arcs 1 -> 2 writing W1 and W2 (homophones), then a back-off-like epsilon
    arc 2 -> 3: every word sequence keeps its own best path (k2.remove_epsilon kept only the
    best path from 1 to 2 and to 3, so W2 had none)."""
    #        src dst ilabel olabel score; state 4 is final (label -1)
    arcs = [(0, 1, 5, 0, 0.0), (1, 2, 0, 11, -1.0), (1, 2, 0, 12, -2.0), (2, 3, 0, 0, -0.5),
            (2, 4, 6, 13, -0.25), (3, 4, 7, 0, -3.0), (1, 3, 0, 0, -9.0), (4, 5, -1, -1, 0.0)]
    src, dst, ilabel, olabel = (np.array([a[i] for a in arcs]) for i in range(4))
    score = np.array([a[4] for a in arcs])
    free = remove_input_epsilons(6, src, dst, ilabel, olabel, score)
    assert (free.ilabel != 0).all()
    found = sorted((int(s), int(d), int(i), tuple(free.words(k)), round(float(x), 6))
                   for k, (s, d, i, x) in enumerate(zip(free.src, free.dst, free.ilabel, free.score)))
    assert found == [(0, 1, 5, (), 0.0),
                     (1, 4, 6, (11, 13), -1.25), (1, 4, 6, (12, 13), -2.25),
                     (1, 4, 7, (), -12.0), (1, 4, 7, (11,), -4.5), (1, 4, 7, (12,), -5.5),
                     (2, 4, 6, (13,), -0.25), (2, 4, 7, (), -3.5),
                     (3, 4, 7, (), -3.0), (4, 5, -1, (), 0.0)]


def test_k2_unigram_graph_keeps_every_homophone(tmp_path):
    """A unigram has one LM state, so CAT and KAT (one pronunciation) end in the same HCLG
    state: the k2 graph writes both, and KAT's forced path scores its own unigram cost."""
    graph_dir, lang, tree = toy_graph(tmp_path, arpa=TOY_UNIGRAM_ARPA)
    graph = HybridGraph.load(graph_dir)
    decoder = K2Decoder.load(graph_dir, graph.unit_senones, LatticeOptions())
    written = set(decoder.graph.aux_labels.values.tolist())
    assert {lang.word_id[w] for w in lang.lexicon if w != "!SIL"} <= written
    cat, kat = ([lang.word_id[w]] for w in ("CAT", "KAT"))
    out = decoder.decode(scores_for("CAT", lang, tree), [10.0], reference=kat)
    assert out.best[10.0].words == cat  # the same sounds: the likelier word
    assert out.reference is not None and out.reference.words == kat
    assert out.best[10.0].graph - out.reference.graph == pytest.approx(0.1 * np.log(10), abs=1e-3)


def test_one_lattice_serves_every_lm_weight(world):
    _, _, lang, tree, graph, decoder = world
    from tests.test_decode import bat_or_bad

    out = decoder.decode(bat_or_bad(lang, tree), [1.0, 10.0, 100.0])
    assert [[graph.words[i] for i in out.best[w].words] for w in (1.0, 10.0, 100.0)] == [["BAD"], ["BAT"], ["BAT"]]
    # weight 1 trades 1.0 of grammar cost for 4.5 of acoustic score
    assert out.best[1.0].acoustic - out.best[10.0].acoustic == pytest.approx(4.5, abs=1e-3)


def test_reference_path_equals_the_found_one_when_they_agree(world):
    _, _, lang, tree, graph, decoder = world
    ref = [graph.words.index(w) for w in ("CAT", "AT")]
    out = decoder.decode(scores_for("CAT AT", lang, tree), [10.0], reference=ref)
    assert out.reference.total(10.0) == pytest.approx(out.best[10.0].total(10.0), abs=1e-3)


def test_a_pruned_search_loses_the_reference_and_it_is_counted(world):
    _, _, lang, tree, graph, _ = world
    ref = [graph.words.index(w) for w in ("CAT", "AT")]
    x = garden_path(lang, tree)
    wide = K2Decoder(world[5].graph, graph.unit_senones, LatticeOptions(beam=20.0, lattice_beam=8.0))
    out = wide.decode(x, [10.0], reference=ref)
    assert out.best[10.0].words == ref
    narrow = K2Decoder(world[5].graph, graph.unit_senones,
                       LatticeOptions(beam=1.0, lattice_beam=1.0, max_active=2, min_active=1))
    lost = narrow.decode(x, [10.0], reference=ref)
    assert lost.reached_final and lost.best[10.0].words != ref
    assert lost.reference.total(10.0) > lost.best[10.0].total(10.0) + 1.0
    assert lost.reference.total(10.0) == pytest.approx(out.reference.total(10.0), abs=1e-3)


# ------------------------------------------------------------------ rescoring and the program

NEW_ARPA = """\\data\\
ngram 1=10
ngram 2=5

\\1-grams:
-1.0 </s>
-99 <s> -0.5
-1.2 <UNK> -0.3
-0.8 AT -0.3
-0.8 BA -0.3
-0.1 BAD -0.3
-3.0 BAT -0.3
-0.8 CAT -0.3
-0.9 KAT -0.3
-0.8 TAB -0.3

\\2-grams:
-0.1 <s> CAT
-0.2 CAT AT
-0.2 AT BAT
-0.3 BA TAB
-0.3 TAB </s>

\\end\\
"""


@pytest.fixture(scope="module")
def arpa_world(tmp_path_factory):
    """The toy graph from the toy ARPA bigram, and a second LM that prefers BAD to BAT."""
    work = tmp_path_factory.mktemp("k2rescore")
    graph_dir, lang, tree = toy_graph_and_lms(work, {"new.arpa": NEW_ARPA})
    return work, graph_dir, lang, tree, HybridGraph.load(graph_dir)


def test_rescoring_with_the_first_pass_lm_changes_nothing_and_a_new_lm_decides(arpa_world):
    from steps.decoding.rescore import NbestRescorer
    from tests.test_decode import bat_or_bad

    work, graph_dir, lang, tree, graph = arpa_world
    decoder = K2Decoder.load(graph_dir, graph.unit_senones, LatticeOptions())
    x = bat_or_bad(lang, tree)
    decoder.rescorer = NbestRescorer(work / "old.arpa", work / "old.arpa", graph.words)
    same = decoder.decode(x, [10.0], rescore_weights=[10.0])
    assert [graph.words[i] for i in same.best[10.0].words] == ["BAT"]
    assert same.rescored[10.0] == same.best[10.0]
    decoder.rescorer = NbestRescorer(work / "old.arpa", work / "new.arpa", graph.words)
    new = decoder.decode(x, [10.0], rescore_weights=[10.0])
    assert [graph.words[i] for i in new.best[10.0].words] == ["BAT"]  # the first pass is unchanged
    assert [graph.words[i] for i in new.rescored[10.0].words] == ["BAD"]
    # BAD's new graph score: its old one minus the old LM's log-prob plus the new one's
    old_lp = NbestRescorer.log_prob(decoder.rescorer.old, ["BAD"])
    new_lp = NbestRescorer.log_prob(decoder.rescorer.new, ["BAD"])
    assert new_lp - old_lp == pytest.approx((-0.1 + 0.8) * np.log(10), abs=1e-6)


def test_nbest_holds_distinct_paths_best_first(arpa_world):
    from tests.test_decode import bat_or_bad

    _, graph_dir, lang, tree, graph = arpa_world
    decoder = K2Decoder.load(graph_dir, graph.unit_senones, LatticeOptions())
    dense = dense_scores(bat_or_bad(lang, tree), graph.unit_senones, 0.1)
    lattice = search(decoder.graph, dense, LatticeOptions())
    paths = nbest(lattice, 20, 10.0, 0.1)
    totals = [p.total(10.0) for p in paths]
    assert totals[0] == pytest.approx(max(totals)) and paths[0] == best_path(lattice, 10.0, 0.1)
    assert {tuple(graph.words[i] for i in p.words) for p in paths} >= {("BAT",), ("BAD",)}
    # the sweep leaves the lattice as it was: the same best paths a second time, every
    # sampled path scoring at most the best one
    scores = lattice.scores.clone()
    first = {w: best_path(lattice, w, 0.1) for w in (1.0, 10.0)}
    assert torch.equal(lattice.scores, scores)
    assert {w: best_path(lattice, w, 0.1) for w in (1.0, 10.0)} == first
    assert all(p.total(w) <= first[w].total(w) + 1e-6 for p in nbest(lattice, 20, 10.0, 0.1) for w in (1.0, 10.0))


def test_program_counts_search_errors_and_writes_rescored_results(arpa_world, tmp_path, monkeypatch):
    from tests.test_decode import bat_or_bad, run_decode, write_cuts

    work, graph_dir, lang, tree, graph = arpa_world
    world = (work, graph_dir, lang, tree, graph)
    dev = tmp_path / "dev" / "cuts.jsonl.gz"
    dev.parent.mkdir()
    write_cuts(dev, [("dev1", "BAD", bat_or_bad(lang, tree)),
                     ("dev2", "CAT AT", scores_for("CAT AT", lang, tree)),
                     ("dev3", "CAT AT", scores_for("CAT AT", lang, tree)[:2])])  # 2 frames: silence only
    run_decode(monkeypatch, world, dev, tmp_path / "decode_dev", "--lm-weights", "5 10",
               "--rescore-lm", str(work / "new.arpa"), "--graph-lm", str(work / "old.arpa"))
    out = tmp_path / "decode_dev"
    info = json.loads((out / "decode_info.json").read_text())
    assert info["decoder"] == "k2" and info["no_final_state"] == 0
    errors = info["search_errors"]
    # dev1: the best path (BAT) outscores the reference BAD at weight 5: a model error, not a
    # search error; dev2 is right; CAT AT has no path of 2 frames: no reference score
    assert errors["scored"] == 2 and errors["errors"] == 0 and errors["reference_without_path"] == 1
    assert (out / "rescore" / "wer").is_file() and (out / "rescore" / "best_lm_weight").is_file()
    assert info["rescore"]["wer"] < info["wer"]  # the new LM says BAD: dev1 right after rescoring
    assert "dev1 BAD" in (out / "rescore" / "hyp.txt").read_text()


def test_program_counts_utterances_without_a_final_state(world, tmp_path, monkeypatch):
    from tests.test_decode import run_decode, write_cuts

    work, graph_dir, lang, tree, graph, _ = world
    cuts = tmp_path / "cuts.jsonl.gz"
    write_cuts(cuts, [("short", "CAT AT", scores_for("CAT AT", lang, tree)[:2]),  # the grammar has no 2-frame path
                      ("ok", "BAT", scores_for("BAT", lang, tree))])
    run_decode(monkeypatch, (work, graph_dir, lang, tree, graph), cuts, tmp_path / "out", "--lm-weights", "10")
    info = json.loads((tmp_path / "out" / "decode_info.json").read_text())
    assert info["no_final_state"] == 1 and info["bad_reasons"] == {"no final state reached (empty lattice)": 1}
    assert info["search_errors"]["scored"] == 1 and info["search_errors"]["errors"] == 0
    assert (tmp_path / "out" / "bad_utts.txt").read_text().startswith("short no final state")


def test_program_skips_the_reference_paths_when_asked(world, tmp_path, monkeypatch):
    """--no-search-errors (stage 9's LM strengths): the same sweep and hypotheses, no forced
    reference paths, so no search-error count."""
    from tests.test_decode import run_decode, write_cuts

    work, graph_dir, lang, tree, graph, _ = world
    cuts = tmp_path / "cuts.jsonl.gz"
    write_cuts(cuts, [("a", "CAT AT", scores_for("CAT AT", lang, tree)), ("b", "BAT", scores_for("BAT", lang, tree))])
    for out, extra in (("with", ()), ("without", ("--no-search-errors",))):
        run_decode(monkeypatch, (work, graph_dir, lang, tree, graph), cuts, tmp_path / out, "--lm-weights", "5 10",
                   *extra)
    with_, without = (json.loads((tmp_path / out / "decode_info.json").read_text()) for out in ("with", "without"))
    assert with_["search_errors"]["scored"] == 2
    assert without["search_errors"] is None and without["lattice_beam_losses"] is None
    assert without["reference_seconds"] == 0 and without["weights"] == with_["weights"]
    assert (tmp_path / "without" / "hyp.txt").read_text() == (tmp_path / "with" / "hyp.txt").read_text()


def weighted(lattice, lm_weight: float, acoustic_scale: float):
    """A copy of the lattice scored for LM weight w (graph + acoustic / w), built apart from
    ScoredLattice's shared FsaVec; `acoustic_scores` keeps each arc's scaled acoustic score."""
    scored = lattice.clone()
    scored.acoustic_scores = lattice.scores - lattice.graph_scores
    scored.scores = lattice.graph_scores + scored.acoustic_scores / (lm_weight * acoustic_scale)
    return scored


def test_sweep_pass_equals_k2_shortest_path_per_weight(arpa_world):
    import k2

    from steps.decoding.k2_search import best_paths
    from tests.test_decode import bat_or_bad

    _, graph_dir, lang, tree, graph = arpa_world
    decoder = K2Decoder.load(graph_dir, graph.unit_senones, LatticeOptions())
    weights = [0.5, 1.0, 2.0, 5.0, 10.0, 100.0]
    for x in (bat_or_bad(lang, tree), garden_path(lang, tree, 0.3), scores_for("TAB BA", lang, tree)):
        lattice = search(decoder.graph, dense_scores(x, graph.unit_senones, 0.1), LatticeOptions())
        ours = best_paths(lattice, weights, 0.1)
        for w in weights:
            best = k2.shortest_path(k2.create_fsa_vec([weighted(lattice, w, 0.1)]), use_double_scores=True)
            total = w * best.graph_scores.double().sum().item() + best.acoustic_scores.double().sum().item() / 0.1
            assert ours[w].total(w) == pytest.approx(total, abs=1e-6)
