"""The decoding graph: HCLG accepts exactly G's word strings with the predicted costs, the
context transducer follows steps.hmm.context's rule (SIL transparent, edges 0, SPN a context),
self-loops and disambiguation symbols, and the mkgraph program's outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import kaldifst
import numpy as np
import pytest

from steps.graph.context_fst import HmmInventory, context_fst
from steps.graph.fst_arrays import ArcFst, kaldifst_from_text, project_output
from steps.graph.hmm_fst import add_self_loops
from steps.graph.lexicon_fst import disambiguated_lexicon, phone_symbols
from steps.hmm.context import phone_contexts
from steps.toy.decode_graphs import TOY_UNIGRAM_ARPA, ToyTree, senone_path, toy_graph, write_toy_lang
from steps.toy.tree_data import toy_topology

LOG2 = math.log(2.0)


def word_strings(fst: ArcFst, max_words: int) -> dict[tuple[int, ...], float]:
    """Every output string of at most max_words words with its lowest cost (project to the
    outputs, remove epsilons, determinize in the tropical semiring, walk the paths)."""
    acceptor = project_output(fst).to_kaldifst()
    kaldifst.rmepsilon(acceptor)
    det = ArcFst.from_kaldifst(kaldifst.determinize(acceptor))
    starts = det.arc_starts()
    found: dict[tuple[int, ...], float] = {}
    frontier = [(det.start, (), 0.0)]
    for depth in range(max_words + 1):
        following = []
        for state, words, cost in frontier:
            if np.isfinite(det.final[state]):
                found[words] = cost + float(det.final[state])
            if depth < max_words:
                for arc in range(starts[state], starts[state + 1]):
                    following.append((int(det.dst[arc]), words + (int(det.olabel[arc]),),
                                      cost + float(det.weight[arc])))
        frontier = following
    return found


def units_of(graph_dir: Path) -> dict[tuple[int, int, int], int]:
    """(phone id, state, senone) -> unit id, from units.txt."""
    phones = {p: i for i, p in enumerate(line.split()[0] for line in
                                         (graph_dir.parent / "lang" / "phones.txt").read_text().splitlines())}
    units = {}
    for line in (graph_dir / "units.txt").read_text().splitlines():
        unit, phone, state, senone = line.split()
        units[(phones[phone], int(state), int(senone))] = int(unit)
    return units


def accepted_words(hclg: ArcFst, labels: list[int]) -> list[int] | None:
    """Words of the best HCLG path whose input (without self-loop repeats) is `labels`."""
    linear = kaldifst.make_linear_acceptor(labels)
    graph = hclg.to_kaldifst()
    kaldifst.arcsort(graph, "ilabel")
    composed = kaldifst.compose(linear, graph)
    if composed.num_states == 0:
        return None
    ok, _, words, _ = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(composed))
    assert ok
    return list(words)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    work = tmp_path_factory.mktemp("graph")
    graph_dir, lang, tree = toy_graph(work)
    return graph_dir, lang, tree, ArcFst.read(graph_dir / "HCLG.fst")


def test_word_strings_and_costs_are_those_of_g(toy):
    graph_dir, lang, tree, hclg = toy
    g = ArcFst.from_kaldifst(kaldifst_from_text((graph_dir.parent / "lm" / "G.fst.txt").read_text()))
    # G's back-off symbol #0 is on the input side only, so G's outputs are its word strings.
    g_strings = word_strings(g, 3)
    hclg_strings = word_strings(hclg, 3)
    assert len(g_strings) == 9 ** 0 + 8 + 8 ** 2 + 8 ** 3  # 8 words (7 + <UNK>), back-off everywhere
    assert set(hclg_strings) == set(g_strings)
    # Cheapest path: no silence (a SIL costs as much as skipping it, plus its HMM state),
    # -log(1 - 0.5) at each of the n + 1 word boundaries, 0.1 * log 2 per HMM state left.
    topology = toy_topology(lang)
    for words, cost in g_strings.items():
        states = sum(topology.num_states[lang.phone_id[p]] for w in words for p in lang.prons(lang.words[w])[0])
        expected = cost + (len(words) + 1) * LOG2 + states * 0.1 * LOG2
        assert hclg_strings[words] == pytest.approx(expected, abs=2e-3), [lang.words[w] for w in words]


def test_a_unigram_g_gives_its_word_strings_and_costs(tmp_path):
    """An LM strength of order 1: G is one state with a loop per word (no back-off arc),
    which HCLG's determinisation takes like any other G."""
    graph_dir, lang, _ = toy_graph(tmp_path, arpa=TOY_UNIGRAM_ARPA)
    g = ArcFst.from_kaldifst(kaldifst_from_text((tmp_path / "lm" / "G.fst.txt").read_text()))
    assert g.num_states == 1 and g.num_arcs == 8
    hclg = ArcFst.read(graph_dir / "HCLG.fst")
    g_strings, hclg_strings = word_strings(g, 2), word_strings(hclg, 2)
    assert set(hclg_strings) == set(g_strings) and len(g_strings) == 1 + 8 + 8 ** 2
    topology = toy_topology(lang)
    for words, cost in g_strings.items():
        states = sum(topology.num_states[lang.phone_id[p]] for w in words for p in lang.prons(lang.words[w])[0])
        expected = cost + (len(words) + 1) * LOG2 + states * 0.1 * LOG2
        assert hclg_strings[words] == pytest.approx(expected, abs=2e-3), [lang.words[w] for w in words]


def test_labels_are_units_and_words_only(toy):
    graph_dir, lang, tree, hclg = toy
    num_units = len(units_of(graph_dir))
    assert hclg.ilabel.min() >= 0 and hclg.ilabel.max() <= num_units
    words = set(hclg.olabel[hclg.olabel > 0].tolist())
    assert words <= {lang.word_id[w] for w in lang.lexicon}  # no #0, no <s>/</s>
    info = json.loads((graph_dir / "graph.json").read_text())
    assert info["num_senones"] == tree.num_senones and info["arcs"] == hclg.num_arcs


def test_self_loops_on_every_entered_state(toy):
    """Each arc that enters an HMM state (input unit u) leads to a state that loops on u
    and on nothing else."""
    _, _, _, hclg = toy
    loops: dict[int, set[int]] = {}
    for s, d, i in zip(hclg.src, hclg.dst, hclg.ilabel):
        if s == d:
            loops.setdefault(int(s), set()).add(int(i))
    assert all(len(v) == 1 for v in loops.values())
    for s, d, i in zip(hclg.src, hclg.dst, hclg.ilabel):
        if i > 0 and s != d:
            assert loops.get(int(d)) == {int(i)}
    assert hclg.start not in loops  # nothing has been consumed at the start


@pytest.mark.parametrize("words, silences, edges", [
    (["BA", "AT"], {0}, False),        # "A SIL B": AT's left context is BA's AE, not SIL
    (["BA", "AT"], set(), False),
    (["CAT", "BA", "TAB"], {0, 1}, True),  # silences at the edges and between words
    (["TAB"], set(), True),
])
def test_graph_follows_the_context_rule(toy, words, silences, edges):
    graph_dir, lang, tree, hclg = toy
    topology = toy_topology(lang)
    units = units_of(graph_dir)
    phones, senones = senone_path(words, lang, topology, tree, silences, edges)
    states = [(p, s) for p in phones for s in range(topology.num_states[p])]
    labels = [units[(p, s, sen)] for (p, s), sen in zip(states, senones)]
    assert accepted_words(hclg, labels) == [lang.word_id[w] for w in words]
    # Kaldi's rule (silence is a context) gives other senones here: not in the graph.
    sil = lang.phone_id["SIL"]
    if silences:
        kaldi = [tree.senone(phones[i - 1] if i else 0, p, phones[i + 1] if i + 1 < len(phones) else 0, s)
                 for i, p in enumerate(phones) for s in range(topology.num_states[p])]
        assert kaldi != senones
        labels = [units.get((p, s, sen)) for (p, s), sen in zip(states, kaldi)]
        assert None in labels or accepted_words(hclg, labels) is None
    # A wrong edge context (right context of the last phone = a vowel) is not accepted either.
    last = max(i for i, p in enumerate(phones) if p != sil)
    wrong = list(senones)
    index = sum(topology.num_states[p] for p in phones[:last]) + topology.num_states[phones[last]] - 1
    wrong[index] = tree.senone(0, phones[last], lang.phone_id["AE"], topology.num_states[phones[last]] - 1)
    assert wrong != senones
    labels = [units[(p, s, sen)] for (p, s), sen in zip(states, wrong)]
    assert accepted_words(hclg, labels) is None


@pytest.mark.parametrize("phones", [
    "B AE T", "SIL B AE SIL AE T SIL", "B AE SIL SIL AE T", "SPN SIL AE T", "T SPN AE", "SIL", "SIL SIL",
])
def test_context_transducer_gives_the_rule(tmp_path, phones):
    """C composed with a phone string writes the tied HMMs of steps.hmm.context's contexts."""
    lang = write_toy_lang(tmp_path / "lang")
    tree, topology = ToyTree(lang), toy_topology(lang)
    entries = disambiguated_lexicon(lang, tmp_path / "lang")
    symbols = phone_symbols(lang, entries)
    inventory = HmmInventory(topology, tree, symbols.silence)
    context_phones = [p for p in lang.real_phone_ids if p != symbols.silence]
    c, disambig = context_fst(context_phones, symbols.silence, symbols.disambig_ids, symbols.subsequential,
                              inventory)
    ids = [lang.phone_id[p] for p in phones.split()]
    # a disambiguation symbol in the middle passes through (as C's own label for it)
    with_disambig = ids[:1] + [symbols.disambig["#1"]] + ids[1:]
    string = kaldifst.make_linear_acceptor(with_disambig + [symbols.subsequential])
    fst = c.to_kaldifst()
    kaldifst.arcsort(fst, "olabel")
    composed = kaldifst.compose(fst, string)
    ok, labels, _, _ = kaldifst.get_linear_symbol_sequence(composed)
    assert ok
    assert disambig[symbols.disambig["#1"]] in labels
    labels = [x for x in labels if x <= inventory.num_hmms]
    got = [inventory.unit_keys[u][2] for hmm in labels for u in inventory.hmm_units[hmm]]
    expected = [tree.senone(left, p, right, s) for p, (left, right) in zip(ids, phone_contexts(ids, symbols.silence))
                for s in range(topology.num_states[p])]
    assert got == expected


def test_three_silences_in_a_row_have_no_path(tmp_path):
    lang = write_toy_lang(tmp_path / "lang")
    symbols = phone_symbols(lang, disambiguated_lexicon(lang, tmp_path / "lang"))
    inventory = HmmInventory(toy_topology(lang), ToyTree(lang), symbols.silence)
    c, _ = context_fst([p for p in lang.real_phone_ids if p != 1], 1, symbols.disambig_ids,
                       symbols.subsequential, inventory, max_pending_sil=2)
    fst = c.to_kaldifst()
    kaldifst.arcsort(fst, "olabel")
    b, ae = lang.phone_id["B"], lang.phone_id["AE"]
    for silences, expect in ((2, True), (3, False)):
        string = kaldifst.make_linear_acceptor([b] + [1] * silences + [ae, symbols.subsequential])
        assert (kaldifst.compose(fst, string).num_states > 0) == expect


def test_add_self_loops_splits_states_entered_by_several_units():
    # 0 -u1-> 2, 1 -u2-> 2 (state 2 entered by two units), 0 -eps-> 1, 2 final
    fst = ArcFst.from_arcs(3, 0, [(0, 2, 1, 5, 0.0), (1, 2, 2, 0, 0.0), (0, 1, 0, 0, 0.0)], {2: 0.0})
    out = add_self_loops(fst, self_loop_prob=0.75, self_loop_scale=1.0)
    loops = {(int(s), int(i)) for s, d, i in zip(out.src, out.dst, out.ilabel) if s == d}
    assert len(loops) == 2 and {i for _, i in loops} == {1, 2}
    # each unit's arcs now enter their own new state, which loops and goes on to 2 by epsilon
    for s, d, i, w in zip(out.src, out.dst, out.ilabel, out.weight):
        if i > 0 and s != d:
            assert (int(d), int(i)) in loops and int(d) >= 3
            assert w == pytest.approx(-math.log(0.25))
        if s == d:
            assert w == pytest.approx(-math.log(0.75))
    eps = [(int(s), int(d)) for s, d, i in zip(out.src, out.dst, out.ilabel) if i == 0 and s != 0]
    assert sorted(d for _, d in eps) == [2, 2]


def test_fst_arrays_round_trip():
    fst = ArcFst.from_arcs(4, 2, [(0, 1, 3, 4, 0.5), (2, 0, 1, 0, 1.25), (2, 3, 0, 7, -0.5), (1, 1, 2, 2, 0.0)],
                           {1: 0.25, 3: 0.0})
    back = ArcFst.from_kaldifst(fst.to_kaldifst())
    for name in ("src", "dst", "ilabel", "olabel", "weight", "final"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fst, name))
    assert back.start == 2
    text = fst.to_kaldifst().to_str()
    assert text.splitlines()[0].split()[:4] == ["2", "0", "1", "0"]  # the start state comes first


def test_mkgraph_program_writes_outputs_and_skips_when_up_to_date(tmp_path, monkeypatch):
    from steps import mkgraph
    from steps.graph import make as graph_make
    from steps.toy.decode_graphs import write_toy_arpa_g
    lang = write_toy_lang(tmp_path / "lang")
    write_toy_arpa_g(tmp_path / "lm", tmp_path / "lang")
    (tmp_path / "topology.json").write_text(json.dumps(toy_topology(lang).to_dict()))
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "tree.txt").write_text("stand-in\n")
    monkeypatch.setattr(graph_make, "load_tree", lambda path: ToyTree(lang))
    argv = ["--lang-dir", str(tmp_path / "lang"), "--lm-dir", str(tmp_path / "lm"), "--tree", str(tmp_path / "tree"),
            "--topology", str(tmp_path / "topology.json"), "--out-dir", str(tmp_path / "graph"),
            "--self-loop-prob", "0.75", "--sil-prob", "0.3"]
    mkgraph.main(argv)
    out = tmp_path / "graph"
    for name in ("HCLG.fst", "units.txt", "words.txt", "graph.json", "stats.txt", ".done"):
        assert (out / name).is_file(), name
    stats = dict(line.split() for line in (out / "stats.txt").read_text().splitlines() if not line.startswith("#")
                 and len(line.split()) == 2)
    assert int(stats["HCLG_bytes"]) == (out / "HCLG.fst").stat().st_size
    info = json.loads((out / "graph.json").read_text())
    assert info["options"]["self_loop_prob"] == 0.75 and info["options"]["sil_prob"] == 0.3
    hclg = ArcFst.read(out / "HCLG.fst")
    assert np.isclose(hclg.weight[hclg.src == hclg.dst], -0.1 * math.log(0.75)).all()
    mtime = (out / "HCLG.fst").stat().st_mtime_ns
    mkgraph.main(argv)
    assert (out / "HCLG.fst").stat().st_mtime_ns == mtime
    assert "up to date" in (out / "log" / "mkgraph.log").read_text()
