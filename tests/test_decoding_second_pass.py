"""What runs after the k2 first pass: a failed N-best rescoring or reference score keeps the
first pass (and is counted), and a search error (the reference beats the best path at the
weight the search used) is told apart from a reference the lattice beam left out (it beats
the lattice's best only at another weight)."""

from __future__ import annotations

import json

import pytest

from steps.decoding.decoder import K2Decoder
from steps.decoding.forced import ReferenceScorer
from steps.decoding.hybrid_graph import HybridGraph
from steps.decoding.k2_search import LatticeOptions
from steps.decoding.lm_weights import lattice_beam_losses, search_errors
from steps.toy.decode_graphs import toy_graph, toy_graph_and_lms
from tests.test_decode import GRAMMAR, bat_or_bad, read_kaldi_text, run_decode, scores_for, write_cuts
from tests.test_decoding_k2 import garden_path

# A rescoring LM that prefers BAD to BAT (as tests.test_decoding_k2.NEW_ARPA) and lacks TAB
# and <UNK>: an N-best holding TAB cannot be rescored.
NO_TAB_ARPA = """\\data\\
ngram 1=8
ngram 2=3

\\1-grams:
-1.0 </s>
-99 <s> -0.5
-0.8 AT -0.3
-0.8 BA -0.3
-0.1 BAD -0.3
-3.0 BAT -0.3
-0.8 CAT -0.3
-0.9 KAT -0.3

\\2-grams:
-0.1 <s> CAT
-0.2 CAT AT
-0.2 AT BAT

\\end\\
"""


@pytest.fixture(scope="module")
def arpa_world(tmp_path_factory):
    work = tmp_path_factory.mktemp("second_pass_arpa")
    graph_dir, lang, tree = toy_graph_and_lms(work, {"no_tab.arpa": NO_TAB_ARPA})
    return work, graph_dir, lang, tree, HybridGraph.load(graph_dir)


@pytest.fixture(scope="module")
def grammar_world(tmp_path_factory):
    work = tmp_path_factory.mktemp("second_pass_grammar")
    graph_dir, lang, tree = toy_graph(work, grammar=GRAMMAR)
    return work, graph_dir, lang, tree, HybridGraph.load(graph_dir)


def dev_cuts(tmp_path, utterances):
    path = tmp_path / "dev" / "cuts.jsonl.gz"
    path.parent.mkdir()
    write_cuts(path, utterances)
    return path


# ------------------------------------------------------------------ failures after the first pass


def test_failed_rescoring_keeps_the_first_pass_and_is_counted(arpa_world, tmp_path, monkeypatch):
    work, _, lang, tree, _ = arpa_world
    cuts = dev_cuts(tmp_path, [("dev1", "BAD", bat_or_bad(lang, tree)),  # first pass BAT, rescored BAD
                               ("dev2", "TAB BA", scores_for("TAB BA", lang, tree))])  # N-best has TAB: fails
    run_decode(monkeypatch, arpa_world, cuts, tmp_path / "out", "--lm-weights", "5 10",
               "--rescore-lm", str(work / "no_tab.arpa"), "--graph-lm", str(work / "old.arpa"))
    out = tmp_path / "out"
    info = json.loads((out / "decode_info.json").read_text())
    # the first pass is whole: dev2 is not turned into deletions by its failed second pass
    assert read_kaldi_text(out / "hyp.txt") == {"dev1": "BAT", "dev2": "TAB BA"}
    assert info["weights"]["5"]["errors"] == 1 and info["bad"] == 0
    # dev1 is rescored; dev2 keeps its first-pass words, and the rescored output says it failed
    assert read_kaldi_text(out / "rescore" / "hyp.txt") == {"dev1": "BAD", "dev2": "TAB BA"}
    assert info["rescore"]["failed"] == 1 and info["rescore"]["weights"]["5"]["errors"] == 0
    failed = (out / "rescore" / "bad_utts.txt").read_text().splitlines()
    assert len(failed) == 1 and failed[0].startswith("dev2 rescoring failed: KeyError")
    assert "not in the LM" in failed[0]
    assert "rescoring failed for 1 of 2 cuts" in (out / "log" / "decode.log").read_text()


def test_rescoring_that_fails_for_every_cut_stops_the_decode(arpa_world, tmp_path, monkeypatch):
    work, _, lang, tree, _ = arpa_world
    cuts = dev_cuts(tmp_path, [("dev2", "TAB BA", scores_for("TAB BA", lang, tree))])
    with pytest.raises(SystemExit, match="rescoring failed for every one of the 1 cuts"):
        run_decode(monkeypatch, arpa_world, cuts, tmp_path / "out", "--lm-weights", "5 10",
                   "--rescore-lm", str(work / "no_tab.arpa"), "--graph-lm", str(work / "old.arpa"))
    out = tmp_path / "out"
    assert read_kaldi_text(out / "hyp.txt") == {"dev2": "TAB BA"}  # the first pass is kept
    assert not (out / ".done").exists()


def test_failed_reference_score_keeps_the_first_pass_and_is_counted(grammar_world, tmp_path, monkeypatch):
    _, _, lang, tree, _ = grammar_world

    def broken(self, word_ids, dense, acoustic_scale):
        raise RuntimeError("no memory for the reference")

    monkeypatch.setattr(ReferenceScorer, "score", broken)
    cuts = dev_cuts(tmp_path, [("dev1", "BAT", scores_for("BAT", lang, tree)),
                               ("dev2", "CAT AT", scores_for("CAT AT", lang, tree))])
    run_decode(monkeypatch, grammar_world, cuts, tmp_path / "out", "--lm-weights", "1 10")
    out = tmp_path / "out"
    info = json.loads((out / "decode_info.json").read_text())
    assert read_kaldi_text(out / "hyp.txt") == {"dev1": "BAT", "dev2": "CAT AT"}
    assert info["wer"] == 0.0 and info["bad"] == 0 and info["weights"]["10"]["errors"] == 0
    errors = info["search_errors"]
    assert errors["scored"] == 0 and errors["errors"] == 0 and errors["reference_failed"] == 2
    assert errors["reference_failures"]["dev1"] == "RuntimeError: no memory for the reference"


def test_decoder_reports_a_failed_reference_and_keeps_its_best_paths(grammar_world):
    _, graph_dir, lang, tree, graph = grammar_world
    decoder = K2Decoder.load(graph_dir, graph.unit_senones, LatticeOptions())

    class Broken:
        def score(self, *args):
            raise RuntimeError("broken")

    decoder._reference_scorer = Broken()
    out = decoder.decode(scores_for("BAT", lang, tree), [10.0], reference=[graph.words.index("BAT")])
    assert [graph.words[i] for i in out.best[10.0].words] == ["BAT"]
    assert out.reference is None and out.failed == {"reference": "RuntimeError: broken"}


# ------------------------------------------------------------------ search errors and the lattice beam


def record(utt, ref, found, search=None):
    """A decode record: reference and found [graph, acoustic] per weight (found at 10 is the
    search's own best unless `search` says otherwise)."""
    return {"id": utt, "ref_score": ref, "scores": found, "search_score": search or found.get("10")}


def test_search_errors_are_counted_at_the_search_weight_and_beam_losses_apart():
    # a: found BAT (graph -1, acoustic 0); reference BAD (graph -2, acoustic 4.5), left out of
    #    the lattice: at weight 10 BAT wins (-10 > -15.5), at weight 1 BAD would (2.5 > -1)
    # b: the reference beats the search's own best at 10: a search error at every weight
    # c: the reference is the found path
    records = [record("a", [-2.0, 4.5], {"1": [-1.0, 0.0], "10": [-1.0, 0.0]}),
               record("b", [-1.0, 0.0], {"1": [-2.0, 0.0], "10": [-2.0, 0.0]}),
               record("c", [-1.0, 0.0], {"1": [-1.0, 0.0], "10": [-1.0, 0.0]})]
    errors = search_errors(records, 10.0)
    assert (errors["lm_weight"], errors["errors"], errors["scored"], errors["utterances"]) == (10.0, 1, 3, ["b"])
    losses = lattice_beam_losses(records, 1.0, 10.0)
    assert (losses["lm_weight"], losses["errors"], losses["scored"], losses["utterances"]) == (1.0, 1, 3, ["a"])
    assert lattice_beam_losses(records, 10.0, 10.0)["errors"] == 0


def test_program_tells_lattice_beam_losses_from_search_errors(grammar_world, tmp_path, monkeypatch):
    _, _, lang, tree, _ = grammar_world
    # dev1: the acoustics say BAD (the truth), the grammar BAT; at the search's weight 10 BAD
    # is 0.55 (scaled) behind, outside a lattice beam of 0.1. Both weights say BAT, so weight 1
    # is chosen (ties: the smallest), where BAD outscores BAT: lost by the lattice beam, not by
    # the search.
    cuts = dev_cuts(tmp_path, [("dev1", "BAD", bat_or_bad(lang, tree)),
                               ("dev2", "CAT AT", scores_for("CAT AT", lang, tree))])
    run_decode(monkeypatch, grammar_world, cuts, tmp_path / "out", "--lm-weights", "1 10", "--lattice-beam", "0.1")
    info = json.loads((tmp_path / "out" / "decode_info.json").read_text())
    assert info["lm_weight"] == 1 and read_kaldi_text(tmp_path / "out" / "hyp_1.txt")["dev1"] == "BAT"
    errors = info["search_errors"]
    assert (errors["lm_weight"], errors["errors"], errors["scored"]) == (10, 0, 2)
    losses = info["lattice_beam_losses"]
    assert (losses["lm_weight"], losses["errors"], losses["scored"], losses["utterances"]) == (1, 1, 2, ["dev1"])

    # a search that keeps two states a frame loses CAT AT for BAT: a search error proper
    garden = tmp_path / "garden" / "cuts.jsonl.gz"
    garden.parent.mkdir()
    write_cuts(garden, [("g1", "CAT AT", garden_path(lang, tree))])
    run_decode(monkeypatch, grammar_world, garden, tmp_path / "narrow", "--lm-weights", "10", "--beam", "1",
               "--lattice-beam", "1", "--max-active", "2", "--min-active", "1")
    info = json.loads((tmp_path / "narrow" / "decode_info.json").read_text())
    assert read_kaldi_text(tmp_path / "narrow" / "hyp.txt")["g1"] != "CAT AT"
    assert info["search_errors"]["errors"] == 1 and info["search_errors"]["utterances"] == ["g1"]
    assert info["lattice_beam_losses"]["errors"] == 0
