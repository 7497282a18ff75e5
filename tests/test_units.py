"""Text -> phones -> senones (steps.hmm.units), the alignment side, and their agreement."""

from __future__ import annotations

import numpy as np
import pytest

from steps.build_tree import make_questions, make_roots, read_extra_questions
from steps.hmm.context import phone_contexts
from steps.hmm.units import (
    BadAlignment,
    alignment_agrees,
    alignment_senone_runs,
    frame_events,
    phone_instances,
    phones_to_senones,
    words_to_phones,
)
from steps.toy.tree_data import toy_features, toy_topology, toy_utterance, write_toy_lang
from steps.tree.building import BuildOptions, accumulate, build, merge_stats


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Toy lang, topology (SIL and SPN one state), 150 random utterances, a tree built on
    their planted features."""
    lang_dir = tmp_path_factory.mktemp("lang")
    lang = write_toy_lang(lang_dir)
    topology = toy_topology(lang)
    rng = np.random.default_rng(0)
    sil = lang.phone_id["SIL"]
    ci = sorted(lang.silence_phone_ids)
    utterances, parts = [], []
    for _ in range(150):
        u = toy_utterance(rng, lang, topology, int(rng.integers(3, 9)), oov_prob=0.05)
        utterances.append(u)
        parts.append(accumulate(frame_events(u.mono_ali, topology, sil, ci),
                                toy_features(rng, lang, topology, u.mono_ali)))
    stats = merge_stats(parts)
    roots = make_roots(topology, ci, shared_states=True)
    extra = read_extra_questions(lang_dir / "extra_questions.txt", lang)
    questions = make_questions(stats, lang, topology, roots, sil, extra, "middle", 0.01, 0)
    phones = lang.phones[:max(topology.phone_ids) + 1]
    tree, _, _ = build(stats, roots, questions, phones, sil, BuildOptions(thresh=50, max_leaves=80, min_count=10))
    return lang, topology, tree, utterances


def convert(u, topology, tree) -> np.ndarray:
    events = frame_events(u.mono_ali, topology, tree.silence)
    return tree.lookup(*events.T)


def test_words_to_phones(world):
    lang, *_ = world
    word = next(w for w, prons in lang.lexicon.items() if len(prons) == 2)
    first, second = lang.lexicon[word]
    ids = lambda pron: [lang.phone_id[p] for p in pron]  # noqa: E731
    assert words_to_phones([word], lang) == ids(first)
    assert words_to_phones([word, "NOT-A-WORD"], lang) == ids(first) + [lang.phone_id["SPN"]]
    assert words_to_phones([word], lang, {word: second}) == ids(second)
    assert words_to_phones(["!SIL", word, "!SIL"], lang) == ids(first)  # no silence
    assert words_to_phones([], lang) == []


def test_phones_to_senones_follows_the_tree(world):
    lang, topology, tree, _ = world
    p = lambda s: lang.phone_id[s]  # noqa: E731
    phones = [p("B"), p("AA"), p("N"), p("SIL"), p("D"), p("IY")]
    expected = []
    for phone, (left, right) in zip(phones, phone_contexts(phones, p("SIL"))):
        for state in range(topology.num_states[phone]):
            expected.append(tree.senone(left, phone, right, state))
    collapsed = [s for i, s in enumerate(expected) if i == 0 or expected[i - 1] != s]
    assert phones_to_senones(phones, topology, tree) == collapsed
    # silence is transparent: the neighbours' senones do not change without it
    without = phones_to_senones([x for x in phones if x != p("SIL")], topology, tree)
    sil_senone = tree.senone(0, p("SIL"), 0, 0)
    assert [s for s in collapsed if s != sil_senone] == without
    # the planted effect: AA after a stop and AA after a nasal get different state-0 senones
    assert tree.senone(p("B"), p("AA"), p("S"), 0) != tree.senone(p("M"), p("AA"), p("S"), 0)


def test_phone_instances_split_repeats_and_reject_broken_alignments(world):
    lang, topology, _, _ = world
    aa, spn = lang.phone_id["AA"], lang.phone_id["SPN"]
    a = [topology.state_id(aa, s) for s in range(3)]
    ali = np.array([a[0], a[1], a[1], a[2], a[0], a[1], a[2], a[2]])
    phones, starts, ends = phone_instances(ali, topology)
    assert phones.tolist() == [aa, aa] and starts.tolist() == [0, 4] and ends.tolist() == [4, 8]
    with pytest.raises(BadAlignment):
        phone_instances(np.array([a[0], a[2]]), topology)  # skips a state
    with pytest.raises(BadAlignment):
        phone_instances(np.array([a[1], a[2]]), topology)  # starts inside the phone
    with pytest.raises(BadAlignment):
        phone_instances(np.array([a[0], a[1]]), topology)  # stops inside the phone
    # two one-state SPNs in a row are one run, unless a known start separates them
    s = topology.state_id(spn, 0)
    assert phone_instances(np.array([s, s, s]), topology)[0].tolist() == [spn]
    assert phone_instances(np.array([s, s, s]), topology, starts=[2])[1].tolist() == [0, 2]


def test_frame_events_contexts(world):
    lang, topology, _, _ = world
    p = lambda s: lang.phone_id[s]  # noqa: E731
    seq = [p("SIL"), p("B"), p("SIL"), p("AA"), p("SPN"), p("SIL")]
    ali = np.concatenate([[topology.state_id(x, s)] * 2 for x in seq for s in range(topology.num_states[x])])
    events = frame_events(ali, topology, p("SIL"), ci_phones=[p("SIL"), p("SPN")])
    aa = events[events[:, 1] == p("AA")]
    assert (aa[:, 0] == p("B")).all() and (aa[:, 2] == p("SPN")).all()  # SIL transparent, SPN is a context
    b = events[events[:, 1] == p("B")]
    assert (b[:, 0] == 0).all() and (b[:, 2] == p("AA")).all()  # utterance edge = 0
    assert (events[np.isin(events[:, 1], [p("SIL"), p("SPN")])][:, [0, 2]] == 0).all()  # context-independent
    assert aa[:, 3].tolist() == [0, 0, 1, 1, 2, 2]


def test_alignment_agrees_with_text_side(world):
    lang, topology, tree, utterances = world
    sil = lang.phone_id["SIL"]
    from_text = 0
    for u in utterances:
        senone_ali = convert(u, topology, tree)
        aligned = [p for p, _, _ in u.phones]
        assert alignment_agrees(senone_ali, u.mono_ali, aligned, topology, tree)
        # and the text side from the words gives the same sequence when the aligner took
        # the first pronunciations
        if all(lang.prons(w)[0] == tuple(lang.phones[p] for p, s, e in u.phones if u.word_spans[i][1] <= s
                                           and e <= u.word_spans[i][2])
               for i, w in enumerate(u.words)):
            assert alignment_senone_runs(senone_ali, tree_phone_mask(u.mono_ali, topology, sil)) == \
                phones_to_senones(words_to_phones(u.words, lang), topology, tree)
            from_text += 1
    assert from_text > 50
    # tampering is caught: a wrong senone, a missing phone, an extra phone
    u = utterances[0]
    senone_ali = convert(u, topology, tree)
    aligned = [p for p, _, _ in u.phones]
    speech = np.flatnonzero(topology.state_phone[u.mono_ali] != sil)
    broken = senone_ali.copy()
    broken[speech[len(speech) // 2]] = (broken[speech[len(speech) // 2]] + 1) % tree.num_senones
    assert not alignment_agrees(broken, u.mono_ali, aligned, topology, tree)
    speech_phones = [p for p in aligned if p != sil]
    assert not alignment_agrees(senone_ali, u.mono_ali, speech_phones[:-1], topology, tree)
    assert not alignment_agrees(senone_ali, u.mono_ali, speech_phones + [lang.phone_id["AA"]], topology, tree)


def tree_phone_mask(mono_ali, topology, sil):
    return topology.state_phone[mono_ali] != sil
