"""A toy lang, utterances with known monophone alignments and features, and synthetic tree statistics: the inputs of the tree and alignment tests and of utils/bench/bench_tree.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lhotse import CutSet, Features, MonoCut, NumpyHdf5Writer, SupervisionSegment
from lhotse.supervision import AlignmentItem

from steps.data.ali_times import FRAME_SHIFT
from steps.hmm.context import phone_contexts
from steps.hmm.topology import Topology
from steps.hmm.units import frame_events
from steps.lang.lexicon import SILENCE, SPOKEN_NOISE, UNK, Lang, write_lexicon, write_symbol_table
from steps.tree.building import TreeStats, reduce_events

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


def synthetic_stats(num_phones: int = 40, num_frames: int = 900_000, dim: int = 80, num_classes: int = 6,
                    successors: int = 20, seed: int = 0):
    """(TreeStats, phone symbols, topology, silence id) like those of num_frames frames."""

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
