"""acc_tree_stats -> build_tree -> convert_ali end to end on synthetic aligned cuts
(real lhotse cuts, features and mono_ali stored with NumpyHdf5Writer)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from lhotse import CutSet, NumpyHdf5Writer

from steps import acc_tree_stats, build_tree, convert_ali
from steps.hmm.units import frame_events
from steps.lang.lexicon import Lang
from steps.toy.tree_data import toy_cut, toy_topology, toy_utterance, write_toy_cuts, write_toy_lang
from steps.tree.building import load_stats
from steps.tree.decision_tree import Tree


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree_pipeline")
    lang = write_toy_lang(root / "lang")
    topology = toy_topology(lang)
    (root / "topology.json").write_text(json.dumps(topology.to_dict()))
    cuts_path, utterances = write_toy_cuts(root / "mono_ali", lang, topology, num_cuts=120)
    # one cut whose alignment skips a state, one without an alignment
    cuts = list(CutSet.from_file(cuts_path))
    rng = np.random.default_rng(9)
    with NumpyHdf5Writer(root / "mono_ali" / "bad.h5", mode="w") as writer:
        bad = toy_utterance(rng, lang, topology, 3)
        ali = bad.mono_ali.copy()
        aa = [topology.state_id(lang.phone_id["AA"], s) for s in range(3)]
        ali[5:8] = [aa[0], aa[2], aa[2]]
        bad.mono_ali = ali
        feats = np.zeros((len(ali), 8), np.float32)
        with NumpyHdf5Writer(root / "mono_ali" / "bad_feats.h5", mode="w") as fw:
            cuts.append(toy_cut("bad-ali", bad, feats, lang, writer, fw, str(root / "mono_ali" / "bad_feats.h5")))
    no_ali = cuts[0].with_id("no-ali")
    no_ali.custom = {}
    cuts.append(no_ali)
    CutSet.from_cuts(cuts).to_file(cuts_path)

    common = ["--lang-dir", str(root / "lang"), "--topology", str(root / "topology.json")]
    # in-process accumulation (its job fan-out is the same steps.core.jobs path that convert_ali
    # runs below with two jobs; one parallel program keeps this file fast)
    acc_tree_stats.main(["--cuts", str(cuts_path), *common, "--out-dir", str(root / "tree"), "--nj", "1"])
    build_tree.main(["--stats-dir", str(root / "tree"), *common, "--num-leaves", "60", "--thresh", "100",
                     "--out-dir", str(root / "tree")])
    convert_ali.main(["--cuts", str(cuts_path), "--tree", str(root / "tree"), *common,
                      "--out-dir", str(root / "senone_ali"), "--nj", "2"])
    return root, Lang.load(root / "lang"), topology, utterances


def test_statistics_cover_every_good_frame(pipeline):
    root, lang, topology, utterances = pipeline
    stats, info = load_stats(root / "tree" / "stats.npz")
    frames = sum(len(u.mono_ali) for u in utterances)
    assert stats.num_frames == frames == info["num_frames"]
    assert info["num_cuts"] == 120 and info["num_skipped"] == 2 and stats.dim == 8
    skipped = dict(line.split(" ", 1) for line in (root / "tree" / "acc_skipped.txt").read_text().splitlines())
    assert set(skipped) == {"bad-ali", "no-ali"} and skipped["bad-ali"].startswith("bad alignment")
    assert not list((root / "tree" / "acc").glob("stats.*.npz"))  # job files merged and removed
    # silence and spoken noise are context-independent in the statistics
    ci = np.isin(stats.events[:, 1], [lang.phone_id["SIL"], lang.phone_id["SPN"]])
    assert (stats.events[ci][:, [0, 2]] == 0).all()


def test_tree_outputs(pipeline):
    root, lang, topology, utterances = pipeline
    tree = Tree.load(root / "tree")
    info = json.loads((root / "tree" / "build_info.json").read_text())
    assert 15 < tree.num_senones <= 60 and info["num_senones"] == tree.num_senones
    senones = (root / "tree" / "senones.txt").read_text().splitlines()
    occs = [int(line.split()[1]) for line in (root / "tree" / "occs.txt").read_text().splitlines()]
    assert len(senones) == len(occs) == tree.num_senones
    assert sum(occs) == sum(len(u.mono_ali) for u in utterances)
    # the planted effects are what the vowels split on (the extra questions name the classes)
    text = "\n".join(senones)
    assert "AA.s0.{L:{B,D,K,P,T}}" in text and "AA.s2.{R:{M,N}}" in text
    assert (root / "tree" / ".done").is_file() and (root / "tree" / "log" / "build_tree.log").is_file()


def test_senone_alignments(pipeline):
    root, lang, topology, utterances = pipeline
    tree = Tree.load(root / "tree")
    out = root / "senone_ali"
    cuts = CutSet.from_file(out / "cuts_train.jsonl.gz")
    assert sorted(c.id for c in cuts) == [f"utt{i:04d}" for i in range(120)]
    skipped = (out / "skipped_train.txt").read_text()
    assert "bad-ali bad alignment" in skipped and "no-ali no mono_ali" in skipped
    counts = np.zeros(tree.num_senones, dtype=np.int64)
    by_id = {f"utt{i:04d}": u for i, u in enumerate(utterances)}
    for cut in cuts:
        senone_ali = cut.load_custom("senone_ali")
        mono_ali = cut.load_custom("mono_ali")
        assert senone_ali.dtype == np.int32 and cut.custom["senone_ali"].frame_shift == 0.01
        np.testing.assert_array_equal(mono_ali, by_id[cut.id].mono_ali)
        events = frame_events(mono_ali, topology, tree.silence)
        expected = [tree.senone(*e) for e in events]
        assert senone_ali.tolist() == expected
        assert cut.load_features().shape == (len(mono_ali), 8)  # everything else kept
        assert set(cut.supervisions[0].alignment) == {"ali_phone", "ali_word"}
        counts += np.bincount(senone_ali, minlength=tree.num_senones)
    table = [int(line.split()[1]) for line in (out / "senone_counts.txt").read_text().splitlines()]
    assert table == counts.tolist()
    assert (out / "disagree_train.txt").read_text() == ""
    done = json.loads((out / ".train" / ".done").read_text())
    assert done["agreement"] == 1.0 and done["converted"] == 120 and done["num_jobs"] == 2


def test_pronunciation_counts(pipeline):
    root, lang, topology, utterances = pipeline
    expected = Counter()
    for u in utterances:
        for word, start, end in u.word_spans:
            expected[(word, tuple(lang.phones[p] for p, s, e in u.phones if s >= start and e <= end))] += 1
    lines = (root / "senone_ali" / "pron_counts.txt").read_text().splitlines()
    got = Counter()
    for line in lines:
        word, count, *phones = line.split()
        got[(word, tuple(phones))] = int(count)
    assert got == expected


def test_disagreement_is_reported(pipeline, tmp_path):
    """A cut whose ali_phone names other phones than its states is converted but listed."""
    root, lang, topology, utterances = pipeline
    cut = CutSet.from_file(root / "mono_ali" / "cuts_train.jsonl.gz")[0]
    supervision = cut.supervisions[0]
    items = supervision.alignment["ali_phone"]
    speech = next(i for i, item in enumerate(items) if item.symbol not in ("SIL", "SPN"))
    other = "S" if items[speech].symbol != "S" else "F"
    items = [*items[:speech], items[speech]._replace(symbol=other), *items[speech + 1:]]
    cut.supervisions[0] = supervision.with_alignment("ali_phone", items)
    path = tmp_path / "cuts_dev.jsonl.gz"
    CutSet.from_cuts([cut]).to_file(path)
    convert_ali.main(["--cuts", str(path), "--tree", str(root / "tree"), "--lang-dir", str(root / "lang"),
                      "--topology", str(root / "topology.json"), "--out-dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "disagree_dev.txt").read_text().split() == [cut.id]
    assert len(CutSet.from_file(tmp_path / "out" / "cuts_dev.jsonl.gz")) == 1
    assert not (tmp_path / "out" / "senone_counts.txt").exists()  # priors come from train only


def test_senone_graph_labels_follow_the_tree_in_context(pipeline):
    """The realignment graph (steps.realign_senones) labels each HMM state with its senone
    in context: along the silence-free path the senones are the text-derived sequence, and
    every arc keeps its monophone state."""
    from steps.hmm.training_graph import TrainingGraphCompiler
    from steps.hmm.units import phones_to_senones, words_to_phones
    from steps.realign_senones import senone_graph

    root, lang, topology, _ = pipeline
    tree = Tree.load(root / "tree")
    multi = [w for w in lang.words if w and len(lang.prons(w)) > 1]
    words = [lang.words[3], multi[0], lang.words[5], multi[0]]
    prons = [lang.prons(words[0])[0], lang.prons(multi[0])[1], lang.prons(words[2])[0], lang.prons(multi[0])[0]]
    graph = TrainingGraphCompiler(lang, topology, 0.5).compile(words, prons)
    silence = lang.phone_id[lang.optional_silence]
    relabelled = senone_graph(graph, topology, tree, silence)

    labels = relabelled.fsa.labels.numpy()
    mono = relabelled.fsa.mono_state.numpy()
    instances = relabelled.fsa.phone_instance.numpy()
    assert (mono == graph.fsa.labels.numpy()).all()
    self_loops = relabelled.fsa.arcs.values()[:, 0] == relabelled.fsa.arcs.values()[:, 1]
    path = []
    for instance, phone in enumerate(graph.instance_phone):
        if phone == silence:
            continue
        arcs = np.flatnonzero(self_loops.numpy() & (instances == instance))
        path += [int(labels[a]) - 1 for a in sorted(arcs, key=lambda a: mono[a])]
    collapsed = [s for i, s in enumerate(path) if i == 0 or s != path[i - 1]]
    phones = []
    for word, pron in zip(words, prons):
        phones += words_to_phones([word], lang, {word: pron})
    assert collapsed == phones_to_senones(phones, topology, tree)
    # the second pronunciation of the repeated word is really used once, the first once
    assert len(graph.instance_word[graph.instance_word >= 0]) == sum(len(p) for p in prons)
