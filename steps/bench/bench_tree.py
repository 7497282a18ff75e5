"""Benchmark of decision-tree building (steps.tree.building) at a realistic size, and the
toy world that tests/test_tree.py, test_units.py and test_convert_ali.py build on.

Prints, for statistics synthesised like those of ~900k frames of 80-dim fbank over ~40
phones x 3 states and every triphone context the phone sequences produce: the number of
events, the time and peak memory (tracemalloc: numpy buffers included) of the phone
clustering (questions) and of the greedy splitting + post-merging, and the leaves made;
also the accumulation time of 900k frames of features (steps.tree_building.accumulate in
the 100k-frame chunks of steps.acc_tree_stats).

The statistics are exact for Gaussian frames: an event with n frames of N(mu, sigma^2)
gets sum = n mu + sqrt(n) sigma z and a chi-square spread, where mu depends on the centre
phone and state plus the classes of the left and right phones (stronger at the state
next to that side), so the tree has real structure to find. Phone sequences come from a
sparse random bigram (20 successors per phone), which gives a realistic number of
distinct triphones rather than all P^3.

    python -m steps.bench.bench_tree [--frames 900000] [--phones 40] [--dim 80] [--leaves 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steps.hmm.context import phone_contexts
from steps.lang.lexicon import SILENCE, SPOKEN_NOISE, UNK, Lang, write_lexicon, write_symbol_table
from steps.hmm.topology import Topology

FRAME_SHIFT = 0.01

# ------------------------------------------------------------------ the toy world (tests)

TOY_CLASSES = {
    "vowel": ("AA", "AE", "IY", "UW"),
    "stop": ("B", "D", "K", "P", "T"),
    "fricative": ("F", "S"),
    "nasal": ("M", "N"),
}


def write_toy_lang(lang_dir: Path, num_words: int = 30, seed: int = 0) -> Lang:
    """A lang dir in the conventions' layout: 13 non-silence phones, CV-like words
    (some with two pronunciations), extra_questions.txt with the phone classes."""
    rng = np.random.default_rng(seed)
    lang_dir.mkdir(parents=True, exist_ok=True)
    phones = sorted(p for members in TOY_CLASSES.values() for p in members)
    consonants = [p for p in phones if p not in TOY_CLASSES["vowel"]]
    vowels = list(TOY_CLASSES["vowel"])
    lexicon: dict[str, list[tuple[str, ...]]] = {}
    while len(lexicon) < num_words:
        syllables = int(rng.integers(1, 3))
        pron = []
        for _ in range(syllables):
            pron += [consonants[rng.integers(len(consonants))], vowels[rng.integers(len(vowels))]]
        if rng.random() < 0.4:
            pron.append(consonants[rng.integers(len(consonants))])
        word = "".join(chr(65 + int(rng.integers(26))) for _ in range(5))
        prons = [tuple(pron)]
        if rng.random() < 0.2:
            alt = list(pron)
            alt[1] = vowels[(vowels.index(alt[1]) + 1) % len(vowels)]
            prons.append(tuple(alt))
        lexicon.setdefault(word, prons)
    write_symbol_table(lang_dir / "phones.txt", ["<eps>", SILENCE, SPOKEN_NOISE, *phones, "#0", "#1"])
    words = sorted(lexicon)
    write_symbol_table(lang_dir / "words.txt", ["<eps>", "!SIL", UNK, *words, "#0", "<s>", "</s>"])
    write_lexicon(lang_dir / "lexicon.txt", [("!SIL", (SILENCE,)), (UNK, (SPOKEN_NOISE,))]
                  + [(w, p) for w in words for p in lexicon[w]])
    (lang_dir / "extra_questions.txt").write_text("".join(" ".join(m) + "\n" for m in TOY_CLASSES.values()))
    return Lang.load(lang_dir)


def toy_topology(lang: Lang, silence_states: int = 1) -> Topology:
    sil, spn = lang.phone_id[SILENCE], lang.phone_id[SPOKEN_NOISE]
    return Topology.build(lang.real_phone_ids, 3, {sil: silence_states, spn: 1})


@dataclass
class ToyUtterance:
    words: list[str]
    mono_ali: np.ndarray  # [T] int32 HMM-state ids
    phones: list[tuple[int, int, int]]  # (phone id, start, end), SIL included
    word_spans: list[tuple[str, int, int]]


def toy_utterance(rng: np.random.Generator, lang: Lang, topology: Topology, num_words: int,
                  sil_prob: float = 0.3, oov_prob: float = 0.0) -> ToyUtterance:
    """Random words, a random pronunciation each, optional silence between words (always at
    the edges), 1-4 frames per HMM state."""
    vocabulary = [w for w in lang.lexicon if w not in ("!SIL", UNK)]
    sil = lang.phone_id[SILENCE]
    words = []
    for _ in range(num_words):
        words.append("ZZOOV" if rng.random() < oov_prob else vocabulary[rng.integers(len(vocabulary))])
    ali: list[int] = []
    phones: list[tuple[int, int, int]] = []
    spans = []

    def add_phone(phone: int) -> None:
        start = len(ali)
        for state in range(topology.num_states[phone]):
            ali.extend([topology.state_id(phone, state)] * int(rng.integers(1, 5)))
        phones.append((phone, start, len(ali)))

    add_phone(sil)
    for i, word in enumerate(words):
        prons = lang.prons(word)
        pron = prons[rng.integers(len(prons))]
        start = len(ali)
        for symbol in pron:
            add_phone(lang.phone_id[symbol])
        spans.append((word if word in lang.lexicon else UNK, start, len(ali)))
        if i + 1 < len(words) and rng.random() < sil_prob:
            add_phone(sil)
    add_phone(sil)
    return ToyUtterance(words, np.array(ali, dtype=np.int32), phones, spans)


def toy_features(rng: np.random.Generator, lang: Lang, topology: Topology, mono_ali: np.ndarray,
                 dim: int = 8, effect: float = 4.0) -> np.ndarray:
    """Frames [T, dim] float32 with planted context effects: mean by (centre, state), plus
    `effect` in the first half of the dims on state 0 of a vowel after a stop, and on the
    last half on state 2 of a vowel before a nasal; unit noise."""
    from steps.hmm.units import frame_events

    sil = lang.phone_id[SILENCE]
    table = np.random.default_rng(1234).normal(0, 2.0, (len(lang.phones), 3, dim))
    events = frame_events(mono_ali, topology, sil, sorted(lang.silence_phone_ids))
    mean = table[events[:, 1], events[:, 3]]
    stops = [lang.phone_id[p] for p in TOY_CLASSES["stop"]]
    nasals = [lang.phone_id[p] for p in TOY_CLASSES["nasal"]]
    vowels = [lang.phone_id[p] for p in TOY_CLASSES["vowel"]]
    vowel = np.isin(events[:, 1], vowels)
    after_stop = vowel & (events[:, 3] == 0) & np.isin(events[:, 0], stops)
    before_nasal = vowel & (events[:, 3] == 2) & np.isin(events[:, 2], nasals)
    mean[after_stop, : dim // 2] += effect
    mean[before_nasal, dim // 2:] += effect
    return (mean + rng.normal(0, 1.0, mean.shape)).astype(np.float32)


def toy_cut(cut_id: str, utterance: ToyUtterance, feats: np.ndarray | None, lang: Lang, array_writer,
            feature_writer=None, feature_path: str | None = None):
    """A lhotse MonoCut like exp/mono_ali's: custom field mono_ali, supervision alignments
    ali_phone and ali_word, and (when given) features stored with feature_writer."""
    from lhotse import Features, MonoCut, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    num_frames = len(utterance.mono_ali)
    duration = round(num_frames * FRAME_SHIFT, 4)

    def items(segments, name):
        return [AlignmentItem(symbol=name(s), start=round(a * FRAME_SHIFT, 4), duration=round((b - a) * FRAME_SHIFT, 4))
                for s, a, b in segments]

    supervision = SupervisionSegment(
        id=cut_id, recording_id=cut_id, start=0.0, duration=duration, text=" ".join(utterance.words),
        alignment={"ali_phone": items(utterance.phones, lambda p: lang.phones[p]),
                   "ali_word": items(utterance.word_spans, lambda w: w)})
    features = None
    if feats is not None:
        key = feature_writer.write(cut_id, feats)
        features = Features(type="fbank", num_frames=num_frames, num_features=feats.shape[1],
                            frame_shift=FRAME_SHIFT, sampling_rate=16000, start=0.0, duration=duration,
                            storage_type=feature_writer.name, storage_path=feature_path, storage_key=key)
    custom = {"mono_ali": array_writer.store_array(cut_id, utterance.mono_ali, frame_shift=FRAME_SHIFT,
                                                   temporal_dim=0)}
    return MonoCut(id=cut_id, start=0.0, duration=duration, channel=0, supervisions=[supervision],
                   features=features, custom=custom)


def write_toy_cuts(directory: Path, lang: Lang, topology: Topology, num_cuts: int, seed: int = 0,
                   dim: int = 8, min_words: int = 3, max_words: int = 8) -> tuple[Path, list[ToyUtterance]]:
    """cuts_train.jsonl.gz with features and mono_ali (arrays in HDF5 files next to it)."""
    from lhotse import CutSet, NumpyHdf5Writer

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    cuts, utterances = [], []
    with NumpyHdf5Writer(directory / "mono_ali.h5", mode="w") as arrays, \
            NumpyHdf5Writer(directory / "feats.h5", mode="w") as features:
        for i in range(num_cuts):
            utterance = toy_utterance(rng, lang, topology, int(rng.integers(min_words, max_words + 1)))
            feats = toy_features(rng, lang, topology, utterance.mono_ali, dim)
            cuts.append(toy_cut(f"utt{i:04d}", utterance, feats, lang, arrays, features,
                                str(directory / "feats.h5")))
            utterances.append(utterance)
    path = directory / "cuts_train.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path, utterances


# ------------------------------------------------------------------ realistic statistics


def synthetic_stats(num_phones: int = 40, num_frames: int = 900_000, dim: int = 80, num_classes: int = 6,
                    successors: int = 20, seed: int = 0):
    """(TreeStats, phone symbols, topology, silence id) like those of num_frames frames."""
    from steps.tree.building import TreeStats, reduce_events

    rng = np.random.default_rng(seed)
    symbols = ["<eps>", SILENCE, SPOKEN_NOISE] + [f"P{i:02d}" for i in range(num_phones)]
    sil, spn = 1, 2
    real = list(range(3, 3 + num_phones))
    topology = Topology.build([sil, spn, *real], 3, {sil: 1, spn: 1})
    # sparse bigram over the non-silence phones
    nxt = np.array([rng.choice(real, successors, replace=False) for _ in range(len(symbols))])
    zipf = 1.0 / np.arange(1, successors + 1)
    zipf /= zipf.sum()
    lefts, centres, rights, durations, states = [], [], [], [], []
    frames = 0
    while frames < num_frames:
        length = int(rng.integers(15, 45))
        seq = [sil]
        phone = int(rng.choice(real))
        for _ in range(length):
            seq.append(phone)
            if rng.random() < 0.08:
                seq.append(sil)
            elif rng.random() < 0.01:
                seq.append(spn)
            phone = int(nxt[phone, rng.choice(successors, p=zipf)])
        seq.append(sil)
        contexts = phone_contexts(seq, sil)
        for p, (left, right) in zip(seq, contexts):
            if p in (sil, spn):
                left = right = 0
            for s in range(topology.num_states[p]):
                d = 1 + int(rng.geometric(0.35))
                lefts.append(left), centres.append(p), rights.append(right), states.append(s), durations.append(d)
                frames += d
    events = np.stack([lefts, centres, rights, states], axis=1).astype(np.int64)
    counts = np.array(durations, dtype=np.float64)
    merged = reduce_events(events, counts, np.zeros((len(counts), 1)), np.zeros((len(counts), 1)))
    events, n = merged.events, merged.counts
    # means: centre/state + classes of the neighbours, stronger on the adjacent state
    cls = rng.integers(0, num_classes, len(symbols))
    base = rng.normal(0, 3.0, (len(symbols), 3, dim))
    class_effect = rng.normal(0, 1.5, (num_classes + 1, dim))
    cls_l = np.where(events[:, 0] > 0, cls[events[:, 0]], num_classes)
    cls_r = np.where(events[:, 2] > 0, cls[events[:, 2]], num_classes)
    w_left = np.array([1.0, 0.4, 0.1])[events[:, 3]][:, None]
    w_right = np.array([0.1, 0.4, 1.0])[events[:, 3]][:, None]
    ci = np.isin(events[:, 1], [sil, spn])[:, None]
    mu = base[events[:, 1], events[:, 3]] + np.where(ci, 0.0, w_left * class_effect[cls_l]
                                                      + w_right * class_effect[cls_r])
    mu += rng.normal(0, 0.3, mu.shape)  # idiosyncratic triphone effects
    sigma = rng.uniform(0.7, 1.5, (len(symbols), 3, dim))[events[:, 1], events[:, 3]]
    sums = n[:, None] * mu + np.sqrt(n)[:, None] * sigma * rng.normal(size=mu.shape)
    spread = sigma ** 2 * rng.chisquare(np.maximum(n - 1, 1e-9)[:, None], size=mu.shape)
    spread[n <= 1] = 0.0
    sumsq = spread + sums ** 2 / n[:, None]
    return TreeStats(events.astype(np.int32), n, sums, sumsq), symbols, topology, sil


# ------------------------------------------------------------------ benchmark


def _measure(fn):
    """(result, wall seconds, CPU seconds, peak traced MiB). CPU time is the figure to
    compare on a shared machine."""
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, cpu, peak / 2**20


def main() -> None:
    from steps.build_tree import make_roots
    from steps.tree.decision_tree import EDGE, Question
    from steps.tree.building import (BuildOptions, accumulate, build, cluster_phones, merge_stats,
                                     state_question_sets)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=900_000)
    parser.add_argument("--phones", type=int, default=40)
    parser.add_argument("--dim", type=int, default=80)
    parser.add_argument("--leaves", type=int, default=2000)
    parser.add_argument("--thresh", type=float, default=300.0)
    parser.add_argument("--skip-acc", action="store_true", help="leave out the accumulation timing")
    args = parser.parse_args()

    start = time.perf_counter()
    stats, symbols, topology, sil = synthetic_stats(args.phones, args.frames, args.dim)
    print(f"synthesised stats in {time.perf_counter() - start:.1f} s: {stats.num_events} events "
          f"({len(np.unique(stats.events[:, :3], axis=0))} triphones incl. CI), {stats.num_frames:.0f} frames, "
          f"{args.dim}-dim, {len(topology.phone_ids)} phones")

    # questions from the middle states, as steps.build_tree does
    real = [p for p in topology.phone_ids if p != sil]
    keep = (stats.events[:, 3] == 1) & np.isin(stats.events[:, 1], real)
    phones = np.unique(stats.events[keep, 1])
    index = np.searchsorted(phones, stats.events[keep, 1])
    counts = np.bincount(index, weights=stats.counts[keep])
    sums = np.zeros((len(phones), args.dim))
    sumsq = np.zeros((len(phones), args.dim))
    np.add.at(sums, index, stats.sums[keep])
    np.add.at(sumsq, index, stats.sumsq[keep])
    nodes, seconds, cpu, peak = _measure(lambda: cluster_phones(counts, sums, sumsq))
    questions = [Question("EDGE", "phone", (EDGE,))]
    questions += [Question(f"c{i}", "phone", tuple(int(phones[m]) for m in members))
                  for i, members in enumerate(nodes[1:], 1)]
    questions += [Question("s" + "_".join(map(str, v)), "state", v) for v in state_question_sets(3)]
    print(f"phone clustering: {len(questions)} questions in {seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB")

    roots = make_roots(topology, [sil, 2], shared_states=True)
    options = BuildOptions(thresh=args.thresh, max_leaves=args.leaves)
    (tree, occs, report), seconds, cpu, peak = _measure(lambda: build(stats, roots, questions, symbols, sil,
                                                                      options))
    print(f"tree building (split + merge): {seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB (stats themselves "
          f"{(stats.sums.nbytes + stats.sumsq.nbytes) / 2**20:.0f} MiB); {stats.num_events} events -> "
          f"{report.leaves_after_split} leaves ({report.stop_reason}) -> {tree.num_senones} senones after "
          f"{report.merges} merges; objf gain {(report.objf_split - report.objf_initial) / report.num_frames:.3f}"
          f"/frame; min occupancy {occs.min():.0f}")

    # lookups: every triphone state, vectorised
    grid = np.stack(np.meshgrid(np.arange(len(symbols)), real, np.arange(len(symbols)), [0, 1, 2],
                                indexing="ij"), -1).reshape(-1, 4)
    grid = grid[grid[:, 3] < np.array([topology.num_states[p] for p in grid[:, 1]])]
    _, seconds, _, _ = _measure(lambda: tree.lookup(grid[:, 0], grid[:, 1], grid[:, 2], grid[:, 3]))
    print(f"lookup of all {len(grid)} triphone states: {seconds:.2f} s; tree.txt "
          f"{len(tree.to_text()) / 1024:.0f} KiB")

    if not args.skip_acc:
        rng = np.random.default_rng(1)
        chunk = 100_000
        events = stats.events[rng.integers(0, stats.num_events, chunk)]
        feats = rng.normal(size=(chunk, args.dim)).astype(np.float32)

        def run():
            total = None
            for _ in range(args.frames // chunk):
                part = accumulate(events, feats)
                total = part if total is None else merge_stats([total, part])
            return total

        _, seconds, cpu, peak = _measure(run)
        print(f"accumulation of {args.frames // chunk * chunk} frames ({args.dim}-dim, {chunk}-frame chunks): "
              f"{seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB")
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(json.dumps({"events": stats.num_events, "leaves": report.leaves_after_split,
                      "senones": tree.num_senones}))


if __name__ == "__main__":
    main()
