"""Hybrid decoding: scores peaked on a known senone path decode to its words (both
decoders); speech outside G gives the closest sentence of G; the LM weight is chosen on dev
only and carried to test; bad cuts are reported and counted; parallel jobs merge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from steps import decode
from steps.decoding.cut_decoding import decode_cuts
from steps.decoding.decoder import K2Decoder
from steps.decoding.hybrid_graph import HybridGraph, SearchOptions
from steps.decoding.k2_search import DEFAULT_BEAM, DEFAULT_LATTICE_BEAM, LatticeOptions
from steps.scoring.wer import read_wer
from steps.toy.decode_graphs import peaked_scores, senone_path, toy_graph
from steps.toy.tree_data import toy_topology

GRAMMAR = [("CAT AT", 0.5), ("BAT", 1.0), ("BAD", 2.0), ("TAB BA", 1.5), ("KAT AT", 3.0)]
WEIGHTS = [1.0, 10.0, 100.0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("decode")
    graph_dir, lang, tree = toy_graph(work, grammar=GRAMMAR)
    return work, graph_dir, lang, tree, HybridGraph.load(graph_dir)


def scores_for(words, lang, tree, silences=frozenset(), edges=True):
    _, senones = senone_path(words.split(), lang, toy_topology(lang), tree, set(silences), edges)
    return peaked_scores(senones, tree.num_senones)


def bat_or_bad(lang, tree, favour_d: float = 0.5) -> np.ndarray:
    """Scores of "BAT" whose last phone fits D better than T by favour_d per frame, so that
    the acoustics prefer BAD and the grammar (BAT 1.0 < BAD 2.0) prefers BAT: LM weight 1
    gives BAD, 10 and 100 give BAT (9 frames x 0.5 = 4.5 against 1.0 x weight)."""
    topology = toy_topology(lang)
    _, t_path = senone_path(["BAT"], lang, topology, tree, set(), True)
    _, d_path = senone_path(["BAD"], lang, topology, tree, set(), True)
    scores = peaked_scores(t_path, tree.num_senones)
    frames = np.repeat(np.array(d_path), 3)
    differs = np.repeat(np.array(t_path) != np.array(d_path), 3)
    scores[differs] -= favour_d
    scores[np.flatnonzero(differs), frames[differs]] = 0.0
    return scores


@pytest.mark.parametrize("decoder", ["kaldi"])
@pytest.mark.parametrize("words, silences", [("CAT AT", ()), ("CAT AT", (0,)), ("TAB BA", (0,)), ("BAT", ()),
                                             ("BAD", ())])
def test_peaked_scores_give_their_words(world, decoder, words, silences):
    _, _, lang, tree, graph = world
    result = graph.decode(scores_for(words, lang, tree, silences), WEIGHTS, SearchOptions(decoder=decoder))
    assert result.reached_final
    for weight in WEIGHTS:
        assert [graph.words[i] for i in result.words[weight]] == words.split()


@pytest.mark.parametrize("decoder", ["kaldi"])
def test_lm_weight_trades_acoustics_against_the_grammar(world, decoder):
    _, _, lang, tree, graph = world
    result = graph.decode(bat_or_bad(lang, tree), WEIGHTS, SearchOptions(decoder=decoder))
    assert [[graph.words[i] for i in result.words[w]] for w in WEIGHTS] == [["BAD"], ["BAT"], ["BAT"]]


# Speech outside the grammar decodes to the grammar sentence whose senone path covers most
# of its frames: "AT CAT" (AE T K AE T) to "CAT AT" (K AE T AE T, the same phones), "CAT AT
# BAT" to its prefix "CAT AT", "AT" to "BAT" (B AE T, one extra phone), "BA TAB" (B AA T AE
# B) to "CAT AT", whose middle T AE it shares; the homophone KAT never wins (cost 3.0 > 0.5).
OUTSIDE = {"AT CAT": "CAT AT", "CAT AT BAT": "CAT AT", "AT": "BAT", "BA TAB": "CAT AT"}


@pytest.mark.parametrize("decoder", ["kaldi"])
def test_speech_outside_the_grammar_gives_the_closest_sentence(world, decoder):
    _, _, lang, tree, graph = world
    for words, expected in OUTSIDE.items():
        # every path of G scores far below such speech: the default beam loses "BA TAB"'s closest
        result = graph.decode(scores_for(words, lang, tree), WEIGHTS, SearchOptions(decoder=decoder, beam=13.0))
        assert [" ".join(graph.words[i] for i in result.words[w]) for w in WEIGHTS] == [expected] * 3, words


def test_homophones_are_told_apart_by_the_grammar(world):
    _, _, lang, tree, graph = world
    result = graph.decode(scores_for("KAT AT", lang, tree), WEIGHTS, SearchOptions())
    assert [graph.words[i] for i in result.words[10.0]] == ["CAT", "AT"]  # same sounds, CAT AT is likelier


# ------------------------------------------------------------------ the program


def write_cuts(path: Path, utterances: list[tuple[str, str, np.ndarray | None]]) -> None:
    """Cuts whose features are the given arrays (None: a cut without features)."""
    from lhotse import CutSet, MonoCut, NumpyFilesWriter, SupervisionSegment
    from lhotse.features import Features

    cuts = []
    with NumpyFilesWriter(path.parent / "feats") as writer:
        for utt, text, feats in utterances:
            duration = 0.01 * (len(feats) if feats is not None else 100)
            supervision = SupervisionSegment(utt, utt, 0.0, duration, text=text)
            features = None
            if feats is not None:
                key = writer.write(utt, feats)
                features = Features(type="fbank", num_frames=len(feats), num_features=feats.shape[1],
                                    frame_shift=0.01, sampling_rate=16000, start=0.0, duration=duration,
                                    storage_type=writer.name, storage_path=str(writer.storage_path),
                                    storage_key=key, recording_id=utt)
            cuts.append(MonoCut(utt, 0.0, duration, 0, supervisions=[supervision], features=features))
    CutSet.from_cuts(cuts).to_file(path)


class ScoresAreFeatures:
    """A FrameScorer whose 'features' already are the log-posteriors (priors uniform)."""

    def __init__(self, num_outputs: int):
        self.num_outputs = num_outputs
        self.log_priors = torch.zeros(num_outputs)

    def log_posteriors(self, feats):
        return torch.as_tensor(feats)


def run_decode(monkeypatch, world, cuts: Path, out: Path, *extra: str):
    _, graph_dir, lang, tree, _ = world
    monkeypatch.setattr(decode, "load_scorer", lambda path, device="cpu", scorers=None: ScoresAreFeatures(tree.num_senones))
    decode.main(["--model", "unused.pt", "--graph", str(graph_dir), "--cuts", str(cuts),
                 "--lang-dir", str(graph_dir.parent / "lang"), "--out-dir", str(out), *extra])


def read_kaldi_text(path: Path) -> dict[str, str]:
    return {line.split(" ", 1)[0]: (line.split(" ", 1) + [""])[1] for line in path.read_text().splitlines()}


@pytest.mark.parametrize("decoder", ["k2", "kaldi", "lattice"])
def test_weight_is_chosen_on_dev_and_applied_to_test(world, tmp_path, monkeypatch, decoder):
    work, _, lang, tree, _ = world
    dev = tmp_path / "dev" / "cuts.jsonl.gz"
    dev.parent.mkdir()
    write_cuts(dev, [("dev1", "BAT", bat_or_bad(lang, tree)),
                     ("dev2", "CAT AT", scores_for("CAT AT", lang, tree, (0,))),
                     ("dev3", "TAB BA", None)])  # no features: reported, empty hypothesis
    run_decode(monkeypatch, world, dev, tmp_path / "decode_dev", "--lm-weights", "1 10 100", "--decoder", decoder)
    out = tmp_path / "decode_dev"
    # weight 1 gets dev1 wrong (BAD); 10 and 100 get it right: the smallest of the best wins
    assert (out / "best_lm_weight").read_text().strip() == "10"
    assert read_kaldi_text(out / "hyp.txt") == {"dev1": "BAT", "dev2": "CAT AT", "dev3": ""}
    assert read_kaldi_text(out / "hyp_1.txt")["dev1"] == "BAD"
    assert (out / "wer_1").read_text().startswith("%WER 60.00 [ 3 / 5, 0 ins, 2 del, 1 sub ]")
    assert (out / "wer_10").read_text().startswith("%WER 40.00 [ 2 / 5, 0 ins, 2 del, 0 sub ]")
    assert (out / "bad_utts.txt").read_text() == "dev3 no features\n"
    info = json.loads((out / "decode_info.json").read_text())
    assert info["cuts"] == 3 and info["bad"] == 1 and info["lm_weight"] == 10
    assert (out / ".done").is_file()
    run_decode(monkeypatch, world, dev, tmp_path / "decode_dev", "--lm-weights", "1 10 100", "--decoder", decoder)
    assert "up to date" in (out / "log" / "decode.log").read_text()

    # test: the same acoustics, but the truth is BAD; weight 1 would be right here, yet the
    # weight comes from dev and nothing is chosen on test
    test = tmp_path / "test" / "cuts.jsonl.gz"
    test.parent.mkdir()
    write_cuts(test, [("test1", "BAD", bat_or_bad(lang, tree))])
    run_decode(monkeypatch, world, test, tmp_path / "decode_test", "--lm-weight-from", str(out),
               "--decoder", decoder)
    out_test = tmp_path / "decode_test"
    assert (out_test / "lm_weight").read_text().strip() == "10"
    assert read_kaldi_text(out_test / "hyp.txt") == {"test1": "BAT"}
    assert not (out_test / "best_lm_weight").exists()
    assert not list(out_test.glob("wer_*")) and not list(out_test.glob("hyp_*"))  # no sweep
    # the one figure of test: hyp.txt scored against the references (BAT for BAD)
    assert read_wer(out_test / "wer").wer == pytest.approx(100.0)
    assert read_wer(out_test / "wer").subs == 1


def test_weight_from_a_dir_without_a_sweep_is_an_error(world, tmp_path, monkeypatch):
    cuts = tmp_path / "cuts.jsonl.gz"
    write_cuts(cuts, [("u1", "BAT", None)])
    with pytest.raises(FileNotFoundError, match="best_lm_weight"):
        run_decode(monkeypatch, world, cuts, tmp_path / "out", "--lm-weight-from", str(tmp_path / "nowhere"))


def test_empty_output_is_reported(world, tmp_path, monkeypatch):
    _, _, lang, tree, _ = world
    cuts = tmp_path / "cuts.jsonl.gz"
    short = scores_for("CAT AT", lang, tree)[:2]  # 2 frames: no path through the graph is that short
    write_cuts(cuts, [("short", "CAT AT", short), ("ok", "BAT", scores_for("BAT", lang, tree))])
    run_decode(monkeypatch, world, cuts, tmp_path / "out", "--lm-weights", "10")
    out = tmp_path / "out"
    bad = (out / "bad_utts.txt").read_text().splitlines()
    assert len(bad) == 1 and bad[0].startswith("short ")
    hyps = read_kaldi_text(out / "hyp.txt")
    assert hyps["ok"] == "BAT" and set(hyps) == {"short", "ok"}
    assert not (out / "best_lm_weight").exists()  # one weight: nothing to choose


def test_parallel_jobs_with_a_real_model_checkpoint(world, tmp_path):
    """--nj 2 through the job runner with an (untrained) steps.am.model checkpoint: every cut
    gets a line, the jobs' outputs merge, the bad cut is counted."""
    import subprocess
    import sys

    from steps.am.model import AcousticModel, ModelConfig, checkpoint_dict
    from steps.core import checkpoint

    _, graph_dir, lang, tree, _ = world
    config = ModelConfig(num_layers=1, hidden_dim=16, bottleneck_dim=8, prefinal_dim=16, subsampling=1,
                         input_context=1, dropout=0.0)
    model = AcousticModel(80, tree.num_senones, config, {})
    checkpoint.save(checkpoint_dict(model, {}, torch.full((tree.num_senones,), -np.log(tree.num_senones)),
                                    torch.ones(tree.num_senones)), tmp_path / "am.pt")
    rng = np.random.default_rng(0)
    cuts = tmp_path / "cuts.jsonl.gz"
    write_cuts(cuts, [(f"u{i}", "CAT AT", rng.normal(size=(60, 80)).astype(np.float32)) for i in range(3)]
               + [("nofeats", "BAT", None)])
    out = tmp_path / "decode"
    command = [sys.executable, "-m", "steps.decode", "--model", str(tmp_path / "am.pt"), "--graph", str(graph_dir),
               "--cuts", str(cuts), "--lang-dir", str(graph_dir.parent / "lang"), "--out-dir", str(out),
               "--nj", "2", "--lm-weights", "10"]
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parent.parent)
    assert sorted((out / "split2").glob("decode.*.jsonl")) == [out / "split2" / "decode.1.jsonl",
                                                              out / "split2" / "decode.2.jsonl"]
    hyps = read_kaldi_text(out / "hyp.txt")
    assert set(hyps) == {"u0", "u1", "u2", "nofeats"}
    assert all(tuple(h.split()) in {tuple(t.split()) for t, _ in GRAMMAR} for u, h in hyps.items() if u != "nofeats")
    info = json.loads((out / "decode_info.json").read_text())
    assert info["cuts"] == 4 and info["bad"] == 1 and info["nj"] == 2
    assert (out / "log" / "decode.1.log").is_file()


def test_one_default_beam_for_every_decoder_and_the_program():
    args = decode.get_parser().parse_args(["--model", "m", "--graph", "g", "--cuts", "c", "--lang-dir", "l",
                                           "--out-dir", "o"])
    assert LatticeOptions().beam == SearchOptions().beam == args.beam == DEFAULT_BEAM == 10.0
    assert LatticeOptions().lattice_beam == SearchOptions().lattice_beam == args.lattice_beam == DEFAULT_LATTICE_BEAM
    assert decode.search_options(args).beam == decode.lattice_options(args).beam == DEFAULT_BEAM


def test_k2_decoding_takes_no_search_options_it_would_not_read(world):
    """The k2 decoder searches with its own LatticeOptions; lattice-decoder options next to it
    (a beam nobody reads) are an error, as is neither."""
    _, graph_dir, _, tree, graph = world
    scorer = ScoresAreFeatures(tree.num_senones)
    k2_decoder = K2Decoder.load(graph_dir, graph.unit_senones, LatticeOptions(beam=7.0))
    with pytest.raises(ValueError, match=r"beam 3\) given with a k2 decoder, .* LatticeOptions \(beam 7\)"):
        list(decode_cuts([], scorer, graph, SearchOptions(beam=3.0), [10.0], k2_decoder))
    with pytest.raises(ValueError, match="needs SearchOptions"):
        list(decode_cuts([], scorer, graph, None, [10.0]))


def test_a_decode_of_which_no_cut_was_decoded_stops_instead_of_scoring_nothing(world, tmp_path, monkeypatch):
    cuts = tmp_path / "cuts.jsonl.gz"
    write_cuts(cuts, [("u1", "BAT", None), ("u2", "CAT AT", None)])  # no features (e.g. a path from elsewhere)
    with pytest.raises(SystemExit, match="none of the 2 cuts was decoded .the first: u1: no features"):
        run_decode(monkeypatch, world, cuts, tmp_path / "out", "--lm-weights", "10")
    out = tmp_path / "out"
    assert (out / "bad_utts.txt").read_text() == "u1 no features\nu2 no features\n"
    assert not (out / ".done").exists() and not (out / "wer").exists()
