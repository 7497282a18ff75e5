"""Monophone topology FSAs, numerator graphs, forced alignment, flat-start training."""

import json

import numpy as np
import pytest
import torch
from lhotse import CutSet, Features, MonoCut, NumpyHdf5Writer, Recording, SupervisionSegment
from lhotse.audio import AudioSource

from steps.hmm.forced_align import align, numerator_loss
from steps.hmm.topology import Topology
from steps.hmm.training_graph import TrainingGraphCompiler, phone_hmm_fsa
from steps.lang.lexicon import Lang

PHONES = ["<eps>", "SIL", "SPN", "AA", "B", "K", "T", "#0", "#1"]
WORDS = ["<eps>", "!SIL", "<UNK>", "BAT", "CAT", "TAB", "#0", "<s>", "</s>"]
LEXICON = "!SIL SIL\n<UNK> SPN\nBAT B AA T\nCAT K AA T\nCAT K AA\nTAB T AA B\n"


@pytest.fixture
def lang(tmp_path):
    d = tmp_path / "lang"
    d.mkdir()
    (d / "phones.txt").write_text("".join(f"{p} {i}\n" for i, p in enumerate(PHONES)))
    (d / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(WORDS)))
    (d / "lexicon.txt").write_text(LEXICON)
    return Lang.load(d)


@pytest.fixture
def topo(lang):
    # SIL and SPN with one state, the rest with three
    return Topology.build(lang.real_phone_ids, 3, {1: 1, 2: 1})


def arcs_of(fsa):
    return [tuple(row) for row in fsa.arcs.values()[:, :3].tolist()]


def test_phone_hmm_fsa_arcs_self_loops_and_final(topo):
    # AA is phone 3: HMM states 2, 3, 4 -> labels 3, 4, 5
    fsa = phone_hmm_fsa(topo, 3)
    assert arcs_of(fsa) == [(0, 1, 3), (1, 1, 3), (1, 2, 4), (2, 2, 4), (2, 3, 5), (3, 3, 5), (3, 4, -1)]
    assert fsa.scores.tolist() == [0.0] * 7
    # one-state silence: entry, self-loop, final
    assert arcs_of(phone_hmm_fsa(topo, 1)) == [(0, 1, 1), (1, 1, 1), (1, 2, -1)]


def test_numerator_graph_structure(lang, topo):
    compiler = TrainingGraphCompiler(lang, topo, sil_prob=0.2, edge_sil_prob=0.5)
    graph = compiler.compile(["BAT", "CAT"])
    # instances: SIL, B AA T, SIL, K AA T, K AA, SIL(end)
    assert [lang.phones[p] for p in graph.instance_phone] == ["SIL", "B", "AA", "T", "SIL", "K", "AA", "T",
                                                              "K", "AA", "SIL"]
    assert graph.instance_word.tolist() == [-1, 0, 0, 0, -1, 1, 1, 1, 1, 1, -1]
    assert graph.min_frames == 9 + 6  # BAT (3 phones) + the shorter CAT (2 phones)
    arcs = graph.fsa.arcs.values()
    scores = graph.fsa.scores
    start = arcs[:, 0] == 0
    # from the start: into the edge silence (log 0.5) or straight into B (log 0.5)
    assert sorted(arcs[start, 2].tolist()) == [1, 6]  # SIL's state, B's first state
    assert scores[start].tolist() == pytest.approx([np.log(0.5)] * 2)
    between = (arcs[:, 2] == 1) & (arcs[:, 0] != arcs[:, 1]) & ~start
    # entering the inter-word silence costs log 0.2, entering the final one log 0.5
    assert sorted(scores[between].tolist()) == pytest.approx(sorted([np.log(0.2), np.log(0.5), np.log(0.5)]))
    final_arcs = arcs[:, 2] == -1
    assert int(final_arcs.sum()) == 3  # from SIL, from CAT's two pronunciations
    assert "EpsilonFree" in graph.fsa.properties_str


def peaked(path, num_states, floor=-8.0):
    log_probs = torch.full((1, len(path), num_states), floor)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    return log_probs.log_softmax(-1)


def test_alignment_recovers_a_known_path(lang, topo):
    compiler = TrainingGraphCompiler(lang, topo, sil_prob=0.5)
    graph = compiler.compile(["TAB", "CAT"])
    s = topo.state_id
    # SIL x2, T A B (CAT's second pronunciation "K AA"), SIL x1
    path = ([s(1, 0)] * 2 + [s(6, 0), s(6, 1), s(6, 1), s(6, 2)] + [s(3, 0), s(3, 1), s(3, 2), s(3, 2)]
            + [s(4, 0), s(4, 1), s(4, 2)] + [s(5, 0), s(5, 0), s(5, 1), s(5, 2)]
            + [s(3, 0), s(3, 1), s(3, 2)] + [s(1, 0)])
    result = align(peaked(path, topo.num_hmm_states), torch.tensor([len(path)]), [graph])[0]
    assert result.states.tolist() == path
    assert [(lang.phones[p], a, b) for p, a, b in result.phones] == [
        ("SIL", 0, 2), ("T", 2, 6), ("AA", 6, 10), ("B", 10, 13), ("K", 13, 17), ("AA", 17, 20), ("SIL", 20, 21)]
    assert result.words == [("TAB", 2, 13), ("CAT", 13, 20)]


def test_impossible_utterances_are_reported_not_crashed_on(lang, topo):
    compiler = TrainingGraphCompiler(lang, topo)
    graph = compiler.compile(["BAT", "TAB"])
    short = align(peaked([0] * 5, topo.num_hmm_states), torch.tensor([5]), [graph])
    assert short == ["too short: 5 frames, the transcript needs at least 18"]
    # enough frames but every frame forbids every state: no path
    blocked = torch.full((1, 30, topo.num_hmm_states), float("-inf"))
    assert align(blocked, torch.tensor([30]), [graph]) == ["no path through the graph within the beam"]
    loss, failed = numerator_loss(blocked, torch.tensor([30]), [graph])
    assert failed == 1 and float(loss) == 0.0


def test_oov_words_take_the_unk_pronunciation(lang, topo):
    graph = TrainingGraphCompiler(lang, topo, sil_prob=0.0, edge_sil_prob=0.0).compile(["ZZZ"])
    assert [lang.phones[p] for p in graph.instance_phone] == ["SPN"]


# --- flat-start training on synthetic "speech": each HMM state emits its own Gaussian ---

def synthetic_cuts(tmp_path, lang, topo, num_utts, rng):
    """Cuts whose features come from known state sequences; returns the cuts and the
    true word start frames."""
    means = rng.normal(0, 3, size=(topo.num_hmm_states, 12)).astype(np.float32)
    words = ["BAT", "CAT", "TAB"]
    cuts, truth = [], {}
    writer = NumpyHdf5Writer(tmp_path / "feats.h5", mode="w")
    for n in range(num_utts):
        transcript = [words[i] for i in rng.integers(0, 3, size=rng.integers(2, 5))]
        states, starts = [], []
        states += [topo.state_id(1, 0)] * int(rng.integers(3, 8))
        for w in transcript:
            starts.append(len(states))
            for p in lang.prons(w)[0]:
                for k in range(3):
                    states += [topo.state_id(lang.phone_id[p], k)] * int(rng.integers(2, 5))
        states += [topo.state_id(1, 0)] * int(rng.integers(3, 8))
        feats = means[states] + rng.normal(0, 1, size=(len(states), 12)).astype(np.float32)
        cut_id = f"utt{n}"
        key = writer.write(cut_id, feats)
        duration = len(states) * 0.01
        recording = Recording(id=cut_id, sources=[AudioSource(type="file", channels=[0], source="/dev/null")],
                              sampling_rate=16000, num_samples=int(duration * 16000), duration=duration)
        features = Features(type="synthetic", num_frames=len(states), num_features=12, frame_shift=0.01,
                            sampling_rate=16000, start=0, duration=duration, storage_type="numpy_hdf5",
                            storage_path=str(tmp_path / "feats.h5"), storage_key=key, recording_id=cut_id,
                            channels=0)
        supervision = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0, duration=duration,
                                         text=" ".join(transcript))
        cuts.append(MonoCut(id=cut_id, start=0, duration=duration, channel=0, recording=recording,
                            features=features, supervisions=[supervision]))
        truth[cut_id] = starts
    writer.close()
    path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path, truth


def test_flat_start_learns_the_segmentation(tmp_path, lang, topo, monkeypatch):
    from steps import align as align_program
    from steps import train_mono

    rng = np.random.default_rng(0)
    cuts_path, truth = synthetic_cuts(tmp_path, lang, topo, 60, rng)
    config = tmp_path / "mono.yaml"
    config.write_text("topology:\n  silence_states: 1\nmodel:\n  hidden_dim: 64\n  dropout: 0.0\n"
                      "training:\n  equal_align_epochs: 0\n  flat_start_epochs: 3\n  viterbi_rounds: 3\n  epochs_per_round: 1\n"
                      "  max_frames_per_batch: 600\n  learning_rate: 0.005\n")
    exp = tmp_path / "exp"
    train_mono.main(["--config", str(config), "--cuts", str(cuts_path), "--lang-dir", str(tmp_path / "lang"),
                     "--exp-dir", str(exp)])
    history = json.loads((exp / "train_stats.json").read_text())["epochs"]
    flat = [e["loss_per_frame"] for e in history if e["phase"] == "flat_start"]
    assert flat[-1] < flat[0] - 0.5
    assert (exp / ".done").exists()

    # The topology next to the model; the alignment folder gets copies of both (align_si.sh).
    align_program.main(["--model", str(exp / "final.pt"),
                        "--cuts", str(cuts_path), "--lang-dir", str(tmp_path / "lang"), "--part", "train",
                        "--out-dir", str(tmp_path / "ali")])
    for name in ("topology.json", "final.pt"):
        assert (tmp_path / "ali" / name).read_bytes() == (exp / name).read_bytes()
    aligned = CutSet.from_file(tmp_path / "ali" / "cuts_train.jsonl.gz")
    errors = []
    for cut in aligned:
        states = cut.load_custom("mono_ali")
        assert states.dtype == np.int32 and len(states) == cut.num_frames
        words = cut.supervisions[0].alignment["ali_word"]
        assert [w.symbol for w in words] == cut.supervisions[0].text.split()
        errors += [abs(round(w.start / 0.01) - t) for w, t in zip(words, truth[cut.id])]
    # word starts within one frame of the truth for nearly every word
    assert np.mean(np.array(errors) <= 1) > 0.95

    # A part aligned 7 cuts at a time (memory flat in its size): the same cuts in the same
    # order, the same paths (up to the batches' float rounding, which may break a tie)
    from steps.hmm import cut_alignment
    monkeypatch.setattr(cut_alignment, "CHUNK_CUTS", 7)
    align_program.main(["--model", str(exp / "final.pt"), "--cuts", str(cuts_path), "--lang-dir",
                        str(tmp_path / "lang"), "--part", "train", "--out-dir", str(tmp_path / "ali_chunks")])
    chunked = CutSet.from_file(tmp_path / "ali_chunks" / "cuts_train.jsonl.gz")
    assert [c.id for c in chunked] == [c.id for c in aligned]
    same = [np.mean(a.load_custom("mono_ali") == b.load_custom("mono_ali")) for a, b in zip(aligned, chunked)]
    assert np.mean(same) > 0.99


def test_shortest_subset_keeps_the_shortest_in_their_order():
    from steps.data.utterances import Utterance
    from steps.hmm.mono_training import shortest_subset

    lengths = [50, 10, 30, 10, 40]
    utterances = [Utterance(f"u{i}", np.zeros((n, 2), dtype=np.float32), ["BAT"]) for i, n in enumerate(lengths)]
    assert shortest_subset(utterances, 3) == [1, 2, 3]
    assert shortest_subset(utterances, 1) == [1]  # tie 10/10: the earlier one
    assert shortest_subset(utterances, None) == [0, 1, 2, 3, 4]
    assert shortest_subset(utterances, 9) == [0, 1, 2, 3, 4]


def test_a_narrow_alignment_beam_keeps_the_best_path(lang, topo):
    """The Viterbi rounds align with a narrow beam (align_beam): the best path's states
    have the best forward + backward score, so pruning never removes them."""
    compiler = TrainingGraphCompiler(lang, topo, sil_prob=0.5, edge_sil_prob=0.5)
    rng = np.random.default_rng(3)
    graphs = [compiler.compile(w) for w in (["CAT", "BAT", "TAB"], ["TAB", "CAT"], ["BAT"])]
    lengths = torch.tensor([60, 40, 25])  # longest first, as k2 wants
    log_probs = torch.from_numpy(rng.normal(0, 2, (3, 60, topo.num_hmm_states))).float().log_softmax(-1)
    wide = align(log_probs, lengths, graphs, output_beam=30.0)
    narrow = align(log_probs, lengths, graphs, output_beam=2.0)
    for a, b in zip(wide, narrow):
        assert a.states.tolist() == b.states.tolist()
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_flat_start_on_the_shortest_utterances(tmp_path, lang, topo):
    from steps import train_mono

    rng = np.random.default_rng(0)
    cuts_path, truth = synthetic_cuts(tmp_path, lang, topo, 60, rng)
    config = tmp_path / "mono.yaml"
    config.write_text("topology:\n  silence_states: 1\nmodel:\n  hidden_dim: 64\n  dropout: 0.0\n"
                      "training:\n  flat_start_epochs: 4\n  flat_start_utterances: 30\n  viterbi_rounds: 3\n"
                      "  epochs_per_round: 1\n  max_frames_per_batch: 600\n  learning_rate: 0.005\n")
    exp = tmp_path / "exp"
    train_mono.main(["--config", str(config), "--cuts", str(cuts_path), "--lang-dir", str(tmp_path / "lang"),
                     "--exp-dir", str(exp)])
    log = (exp / "log" / "train_mono.log").read_text()
    assert "Flat start on the 30 shortest utterances" in log
    history = json.loads((exp / "train_stats.json").read_text())["epochs"]
    flat = [e["loss_per_frame"] for e in history if e["phase"] == "flat_start"]
    assert flat[-1] < flat[0] - 0.5
    # the Viterbi rounds, on all 60, end with a model that knows the states
    assert history[-1]["phase"].startswith("viterbi") and history[-1]["frame_accuracy"] > 0.8
