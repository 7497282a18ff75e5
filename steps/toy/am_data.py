"""Synthetic acoustic-model training data (fbank-like features, senone alignments, teacher soft labels at every level) whose senones are owned by (phone, state), for the AM tests and utils/bench/bench_am.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from lhotse import CutSet, Features, LilcomChunkyWriter, MonoCut, NumpyHdf5Writer, SupervisionSegment

from steps.kd.soft_labels import SoftLabels, store_soft_labels


def _teacher(rng: np.random.Generator, truth: np.ndarray, vocab: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k soft labels around the true units: the truth with probability 0.3..0.9
    (usually, not always, ranked first), the rest spread over random other units."""
    n = len(truth)
    ids = np.zeros((n, k), dtype=np.int32)
    probs = np.zeros((n, k), dtype=np.float32)
    for i, u in enumerate(truth):
        others = rng.choice(vocab - 1, size=k - 1, replace=False)
        others = others + (others >= u)
        p = np.concatenate([[rng.uniform(0.3, 0.9)], rng.dirichlet(np.ones(k - 1)) * 0.5])
        p /= p.sum()
        order = np.argsort(-p, kind="stable")
        ids[i] = np.concatenate([[u], others])[order]
        probs[i] = p[order]
    return ids, probs


def synthetic_utterance(rng: np.random.Generator, num_phones: int, num_senones: int, num_subwords: int,
                        mean_words: float):
    """(per-frame senone ids, phone segments [(phone, start, end)], word spans, silence mask).
    Phone 0 is silence (senones 0..2); every other (left phone, phone, state) maps to a
    senone as a tree would: each (phone, state) owns its senones, split by the left phone
    into as many contexts as the senone budget allows (with fewer senones than 3 per phone,
    phones share them)."""
    contexts = max(1, (num_senones - 3) // (3 * num_phones))
    words = max(1, int(rng.poisson(mean_words)))
    segments, frames, t = [], [], 0

    def add(phone, left):
        nonlocal t
        start = t
        for state in range(3):
            if phone == 0:
                senone = state
            else:
                senone = 3 + ((phone - 1) * 3 + state + 3 * num_phones * (left % contexts)) % (num_senones - 3)
            length = int(rng.integers(2, 6 if phone else 12))
            frames.extend([senone] * length)
            t += length
        segments.append((phone, start, t))

    add(0, 0)
    word_spans, left = [], 0
    for _ in range(words):
        start = t
        for _ in range(int(rng.integers(2, 6))):
            phone = int(rng.integers(1, num_phones + 1))
            add(phone, left)
            left = phone
        word_spans.append((start, t))
        if rng.random() < 0.2:
            add(0, 0)
    add(0, 0)
    return np.array(frames, dtype=np.int32), segments, word_spans


def make_synthetic_am_data(out_dir: str | Path, num_cuts: int = 300, num_dev: int = 30, seed: int = 0,
                           num_phones: int = 40, num_senones: int = 200, num_subwords: int = 100,
                           top_k: int = 4, mean_words: float = 6.0, feature_dim: int = 80,
                           dev_soft_labels: bool = False) -> dict:
    """Writes train/dev cuts with features, senone_ali and soft labels at the three levels
    (dev cuts: soft labels only if dev_soft_labels), tokens.txt per level and senone_counts.txt.
    Returns the paths. Phone-level units are the phones 1..num_phones as ids 0..P-1."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"train": out / "cuts_train.jsonl.gz", "dev": out / "cuts_dev.jsonl.gz",
             "lm_dir": out / "exp", "senone_counts": out / "senone_counts.txt"}
    marker = out / "made.json"
    wanted = dict(num_cuts=num_cuts, num_dev=num_dev, seed=seed, num_phones=num_phones,
                  num_senones=num_senones, num_subwords=num_subwords, top_k=top_k,
                  mean_words=mean_words, feature_dim=feature_dim, dev_soft_labels=dev_soft_labels)
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return paths
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, (num_senones, feature_dim)).astype(np.float32)
    counts = np.zeros(num_senones, dtype=np.int64)
    for part, n in (("train", num_cuts), ("dev", num_dev)):
        cuts = []
        with LilcomChunkyWriter(out / f"feats_{part}") as fw, NumpyHdf5Writer(out / f"arrays_{part}") as aw:
            for i in range(n):
                senones, segments, word_spans = synthetic_utterance(rng, num_phones, num_senones,
                                                                    num_subwords, mean_words)
                T = len(senones)
                feats = means[senones] + rng.normal(0.0, 1.5, (T, feature_dim)).astype(np.float32)
                feats = feats * 2.0 + 5.0  # not normalised, like log-mel fbank
                cut_id = f"{part}_{i:05d}"
                key = fw.write(cut_id, feats)
                features = Features(type="synthetic", num_frames=T, num_features=feature_dim,
                                    frame_shift=0.01, sampling_rate=16000, start=0.0,
                                    duration=T * 0.01, storage_type=fw.name,
                                    storage_path=str(fw.storage_path), storage_key=key)
                sup = SupervisionSegment(cut_id, cut_id, 0.0, T * 0.01, text="SYNTHETIC")
                cut = MonoCut(cut_id, 0.0, T * 0.01, 0, features=features, supervisions=[sup])
                cut.senone_ali = aw.store_array(f"{cut_id}_ali", senones, frame_shift=0.01,
                                                temporal_dim=0)
                if part == "train":
                    counts += np.bincount(senones, minlength=num_senones)
                if part == "train" or dev_soft_labels:
                    for level, labels in _soft_labels(rng, senones, segments, word_spans, num_phones,
                                                      num_senones, num_subwords, top_k).items():
                        cut = store_soft_labels(cut, level, labels, aw)
                cuts.append(cut)
        CutSet.from_cuts(cuts).to_file(paths[part])
    for level, size in (("senone", num_senones), ("phone", num_phones), ("subword", num_subwords)):
        d = paths["lm_dir"] / f"lm_{level}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokens.txt").write_text("".join(f"u{i} {i}\n" for i in range(size)))
    paths["senone_counts"].write_text("".join(f"{i} {c}\n" for i, c in enumerate(counts)))
    marker.write_text(json.dumps(wanted))
    return paths


def _soft_labels(rng, senones, segments, word_spans, num_phones, num_senones, num_subwords, k):
    out = {}
    speech = [(p, s, e) for p, s, e in segments if p != 0]
    # senone level: runs of equal senones over non-silence frames
    rows = []
    for _, s, e in speech:
        seg = senones[s:e]
        change = np.flatnonzero(np.diff(seg)) + 1
        for a, b in zip(np.r_[0, change], np.r_[change, len(seg)]):
            rows.append((int(seg[a]), s + a, s + b))
    truth = np.array([r[0] for r in rows], dtype=np.int32)
    out["senone"] = SoftLabels(truth, [(a, b) for _, a, b in rows], *_teacher(rng, truth, num_senones, k))
    truth = np.array([p - 1 for p, _, _ in speech], dtype=np.int32)
    out["phone"] = SoftLabels(truth, [(s, e) for _, s, e in speech], *_teacher(rng, truth, num_phones, k))
    rows = []
    for s, e in word_spans:
        pieces = 1 + (e - s) // 25
        cuts = np.linspace(s, e, pieces + 1).astype(int)
        for j in range(pieces):
            unit = int((s * 31 + j * 17 + (e - s) * 13) % num_subwords)
            rows.append((unit, int(cuts[j]), int(cuts[j + 1])))
    truth = np.array([r[0] for r in rows], dtype=np.int32)
    out["subword"] = SoftLabels(truth, [(a, b) for _, a, b in rows], *_teacher(rng, truth, num_subwords, k))
    return out
