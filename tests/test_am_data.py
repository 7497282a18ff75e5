"""AM batches: soft labels expanded to frames (vs a slow reference), subsampled labels,
the cut store on real lhotse cuts (bad cuts reported), the sampler, SpecAugment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lhotse import CutSet, NumpyHdf5Writer
from lhotse.utils import fastcopy

from steps.am.cut_store import CutStore
from steps.am.data import AmDataset, DataConfig, make_sampler
from steps.am.spec_augment import SpecAugmentConfig, spec_augment
from steps.am.targets import expand_soft_labels, senone_targets
from steps.data.output_frames import tokens_without_output
from steps.kd.soft_labels import SoftLabels, load_soft_labels
from steps.toy.am_data import make_synthetic_am_data


def slow_expand(labels, num_frames, s):
    """Reference: a loop over output frames and tokens (-1: no id)."""
    n = [(t + s - 1) // s for t in num_frames]
    width, k = max(n), max(lab.top_k for lab in labels if lab is not None)
    ids = np.full((len(labels), width, k), -1, dtype=np.int64)
    probs = np.zeros((len(labels), width, k), dtype=np.float32)
    hard = np.full((len(labels), width), -1)
    mask = np.zeros((len(labels), width), dtype=bool)
    for b, lab in enumerate(labels):
        if lab is None:
            continue
        for j in range(n[b]):
            f = min(j * s + s // 2, num_frames[b] - 1)
            for i in range(len(lab)):
                if lab.spans[i, 0] <= f < lab.spans[i, 1]:
                    ids[b, j, : lab.top_k] = lab.ids[i]
                    probs[b, j, : lab.top_k] = lab.probs[i].astype(np.float32)
                    hard[b, j] = lab.tokens[i]
                    mask[b, j] = True
    return ids, probs, hard, mask


def random_labels(rng, num_frames, k, vocab=50):
    pairs = int(rng.integers(1, min(8, (num_frames + 1) // 2) + 1))  # SoftLabels cannot hold 0 rows
    edges = np.sort(rng.choice(np.arange(num_frames + 1), size=2 * pairs, replace=False))
    spans = edges.reshape(-1, 2)
    n = len(spans)
    probs = np.sort(rng.dirichlet(np.ones(k), size=n), axis=1)[:, ::-1] if n else np.zeros((0, k))
    return SoftLabels(rng.integers(0, vocab, n), spans, rng.integers(0, vocab, (n, k)), probs)


@pytest.mark.parametrize("s", [1, 2, 3])
def test_expand_matches_slow_reference(s):
    rng = np.random.default_rng(s)
    for _ in range(20):
        num_frames = rng.integers(1, 40, size=5)
        labels = [random_labels(rng, int(t), 4) for t in num_frames]
        labels[1] = None  # a cut without this level
        got = expand_soft_labels(labels, num_frames, s)
        ids, probs, hard, mask = slow_expand(labels, list(num_frames), s)
        np.testing.assert_array_equal(got.ids.numpy(), ids)
        np.testing.assert_array_equal(got.probs.numpy(), probs)
        np.testing.assert_array_equal(got.hard.numpy(), hard)
        np.testing.assert_array_equal(got.mask.numpy(), mask)


def test_expand_by_hand():
    lab = SoftLabels([7, 9], [[1, 3], [4, 6]], [[7, 1], [9, 2]], [[0.75, 0.25], [0.5, 0.5]])
    t = expand_soft_labels([lab], [7], 1)
    assert t.mask[0].tolist() == [False, True, True, False, True, True, False]
    assert t.hard[0].tolist() == [-1, 7, 7, -1, 9, 9, -1]
    assert t.ids[0, 2].tolist() == [7, 1] and t.probs[0, 2].tolist() == [0.75, 0.25]
    assert t.ids[0, 0].tolist() == [-1, -1] and t.probs[0, 0].tolist() == [0.0, 0.0]  # no ids
    # subsampling 3: outputs take input frames 1, 4 and min(7, 6) = 6
    t3 = expand_soft_labels([lab], [7], 3)
    assert t3.hard[0].tolist() == [7, 9, -1]
    assert senone_targets([np.arange(7)], [7], 3)[0].tolist() == [1, 4, 6]
    ali = senone_targets([np.arange(7), np.arange(10, 13)], [7, 3], 3)
    assert ali.tolist() == [[1, 4, 6], [11, -1, -1]]


def slow_span_targets(labels, num_frames, s):
    """Reference for span=True: per output frame, a dict id -> mixed probability, the mask and
    the hard label, by loops."""
    out = []
    for b, lab in enumerate(labels):
        T = num_frames[b]
        for j in range((T + s - 1) // s):
            frames = [f for f in range(j * s, min(j * s + s, T))]
            rows = {f: i for f in frames for i in range(len(lab) if lab else 0)
                    if lab.spans[i, 0] <= f < lab.spans[i, 1]}
            mixed = {}
            for f, i in rows.items():
                for u, q in zip(lab.ids[i], lab.probs[i].astype(np.float32)):
                    mixed[int(u)] = mixed.get(int(u), 0.0) + float(q) / len(rows)
            centre = min(j * s + s // 2, T - 1)
            first = centre if centre in rows else (min(rows) if rows else None)
            out.append((b, j, mixed, bool(rows), int(lab.tokens[rows[first]]) if rows else -1))
    return out


@pytest.mark.parametrize("s", [2, 3])
def test_span_targets_match_slow_reference(s):
    rng = np.random.default_rng(10 + s)
    for _ in range(20):
        num_frames = rng.integers(1, 40, size=4)
        labels = [random_labels(rng, int(t), 3, vocab=6) for t in num_frames]  # small vocab: repeats
        labels[2] = None
        got = expand_soft_labels(labels, num_frames, s, span=True)
        assert got.ids.shape[2] == s * 3
        for b, j, mixed, covered, hard in slow_span_targets(labels, list(num_frames), s):
            assert bool(got.mask[b, j]) == covered and int(got.hard[b, j]) == hard
            ids, probs = got.ids[b, j].tolist(), got.probs[b, j].tolist()
            found = {}
            for u, q in zip(ids, probs):
                if u < 0:  # a slot without an id: padding, never a real id 0
                    assert q == 0
                    continue
                assert u not in found  # duplicates summed
                found[u] = q
            assert found.keys() == mixed.keys()
            for u, q in mixed.items():
                assert found[u] == pytest.approx(q, abs=1e-6)


def test_span_targets_by_hand():
    # a token of 1 frame (at input frame 3) that the centre rule misses at s = 3
    lab = SoftLabels([7, 8, 9], [[1, 3], [3, 4], [4, 6]], [[7, 1], [8, 1], [9, 2]],
                     [[0.75, 0.25], [1.0, 0.0], [0.5, 0.5]])
    assert 8 not in expand_soft_labels([lab], [7], 3).hard[0].tolist()
    t = expand_soft_labels([lab], [7], 3, span=True)
    assert t.mask[0].tolist() == [True, True, False] and t.hard[0].tolist() == [7, 9, -1]
    # output 1 spans frames 3, 4, 5: token 8 once, token 9 twice
    row = {u: q for u, q in zip(t.ids[0, 1].tolist(), t.probs[0, 1].tolist()) if q > 0}
    assert row == pytest.approx({8: 1 / 3, 9: 1 / 3, 2: 1 / 3}, abs=1e-6)  # 9 and 2: 2/3 x 0.5
    # output 0 spans frames 0, 1, 2: frame 0 is silence, 1 and 2 token 7 (the centre, frame 1)
    row = {u: q for u, q in zip(t.ids[0, 0].tolist(), t.probs[0, 0].tolist()) if q > 0}
    assert row == pytest.approx({7: 0.75, 1: 0.25}, abs=1e-6)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_synthetic_am_data(tmp_path_factory.mktemp("am_data"), num_cuts=24, num_dev=4,
                                  num_senones=60, num_subwords=30, top_k=3, mean_words=3)


def test_store_reads_checks_and_counts(tiny, tmp_path):
    cuts = CutSet.from_file(tiny["train"]).to_eager()
    good = list(cuts)
    # make bad cuts: alignment of the wrong length; missing phone soft labels
    with NumpyHdf5Writer(tmp_path / "bad") as w:
        short = fastcopy(good[0], id="short_ali", custom=dict(good[0].custom))
        short.senone_ali = w.store_array("short", np.zeros(5, dtype=np.int32), frame_shift=0.01,
                                         temporal_dim=0)
    nophone = fastcopy(good[1], id="no_phone",
                       custom={k: v for k, v in good[1].custom.items() if not k.startswith("kd_phone")})
    store, skipped = CutStore.build(CutSet.from_cuts(good + [short, nophone]),
                                    ("senone", "phone"), cache=True)
    reasons = dict(skipped)
    assert set(reasons) == {"short_ali", "no_phone"}
    assert "senone_ali has 5 frames" in reasons["short_ali"]
    assert reasons["no_phone"] == "no phone soft labels"
    feats = np.concatenate([c.load_features() for c in good])
    mean, std = store.mean_std()
    np.testing.assert_allclose(mean.numpy(), feats.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std.numpy(), feats.std(0), rtol=1e-3)
    ali = np.concatenate([c.load_custom("senone_ali") for c in good])
    np.testing.assert_array_equal(store.senone_counts, np.bincount(ali))
    assert store.num_frames == len(ali)
    # ids beyond the model's units are reported and left out
    bad = store.drop_out_of_range({"ali": int(ali.max())})
    assert bad and all("senone_ali: id" in r for _, r in bad)
    assert len(store.cuts) == len(good) - len(bad)


def test_dataset_batches_match_cuts(tiny):
    store, _ = CutStore.build(CutSet.from_file(tiny["train"]), ("phone",), cache=False)
    dataset = AmDataset(store, subsampling=3)
    cuts = CutSet.from_cuts(list(store.cuts)[:3])
    batch = dataset[cuts]
    for b, cut in enumerate(cuts):
        T = cut.num_frames
        n = (T + 2) // 3
        assert batch.feat_lens[b] == T and batch.out_lens[b] == n
        np.testing.assert_array_equal(batch.feats[b, :T].numpy(), cut.load_features())
        assert (batch.feats[b, T:] == 0).all()
        ali = cut.load_custom("senone_ali")
        pos = np.minimum(np.arange(n) * 3 + 1, T - 1)
        assert batch.senone[b, :n].tolist() == ali[pos].tolist()
        assert (batch.senone[b, n:] == -1).all()
        lab = load_soft_labels(cut, "phone")
        t = batch.levels["phone"]
        assert not t.mask[b, n:].any()
        for j in range(n):
            inside = [i for i in range(len(lab)) if lab.spans[i, 0] <= pos[j] < lab.spans[i, 1]]
            assert bool(t.mask[b, j]) == bool(inside)
            if inside:
                assert t.hard[b, j] == lab.tokens[inside[0]]


def test_sampler_covers_every_cut_once_per_epoch(tiny):
    cuts = CutSet.from_file(tiny["train"]).to_eager()

    sampler = make_sampler(cuts, DataConfig(max_duration=5.0, num_buckets=2), seed=3)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        ids = [c.id for batch in sampler for c in batch]
        assert sorted(ids) == sorted(c.id for c in cuts)


def test_spec_augment_masks_deterministically():
    x = torch.ones(2, 50, 20)
    lengths = torch.tensor([50, 30])
    config = SpecAugmentConfig(enabled=True, num_freq_masks=1, max_freq_width=5, num_time_masks=1,
                               max_time_width=10, max_time_frac=0.2)
    a = spec_augment(x, lengths, config, torch.Generator().manual_seed(0))
    b = spec_augment(x, lengths, config, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    for u in range(2):  # masked values are whole frequency bands and whole time spans
        zero = a[u] == 0
        cols = zero.all(dim=0)
        rows = zero.all(dim=1)
        assert torch.equal(zero, cols[None, :] | rows[:, None])
        assert int(cols.sum()) <= 5 and int(rows.sum()) <= min(10, int(0.2 * lengths[u]))
    off = spec_augment(x, lengths, SpecAugmentConfig(enabled=False), torch.Generator())
    assert off is x


def test_disk_cache_gives_the_same_store(tiny, tmp_path):
    built, skipped = CutStore.load_or_build(tiny["train"], tmp_path / "cache", ("phone", "subword"))
    assert len(list((tmp_path / "cache").iterdir())) == 1
    read, skipped_again = CutStore.load_or_build(tiny["train"], tmp_path / "cache", ("phone", "subword"))
    assert skipped == skipped_again
    direct, _ = CutStore.build(CutSet.from_file(tiny["train"]), ("phone", "subword"), cache=False)
    assert [c.id for c in read.cuts] == [c.id for c in direct.cuts] == [c.id for c in built.cuts]
    for a, b in ((read.mean_std(), direct.mean_std()), ((read.senone_counts,), (direct.senone_counts,))):
        for x, y in zip(a, b):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)
    assert read.max_id == direct.max_id
    cuts = CutSet.from_cuts(list(direct.cuts)[:4])
    one, two = AmDataset(read, 3)[cuts], AmDataset(direct, 3)[cuts]
    assert torch.equal(one.feats, two.feats) and torch.equal(one.senone, two.senone)
    for level in ("phone", "subword"):
        for name in ("ids", "probs", "mask", "hard"):
            assert torch.equal(getattr(one.levels[level], name), getattr(two.levels[level], name))


def test_disk_cache_pads_a_level_of_mixed_top_k_as_the_direct_path(tmp_path):
    """Cuts whose teachers kept 3 and 5 ids: the cache's padded slots are no ids (IGNORE),
    so a batch from the cache equals one read directly."""
    three = make_synthetic_am_data(tmp_path / "k3", num_cuts=4, num_dev=2, num_senones=60, num_subwords=30,
                                   top_k=3, mean_words=3)
    five = make_synthetic_am_data(tmp_path / "k5", num_cuts=4, num_dev=2, num_senones=60, num_subwords=30,
                                  top_k=5, mean_words=3, seed=1)
    mixed = CutSet.from_cuts([*CutSet.from_file(three["train"]),
                              *CutSet.from_file(five["train"]).modify_ids(lambda i: f"k5-{i}")])
    mixed.to_file(tmp_path / "mixed.jsonl.gz")
    read, _ = CutStore.load_or_build(tmp_path / "mixed.jsonl.gz", tmp_path / "cache", ("phone",))
    read, _ = CutStore.load_or_build(tmp_path / "mixed.jsonl.gz", tmp_path / "cache", ("phone",))
    direct, _ = CutStore.build(mixed, ("phone",), cache=False)
    one, two = AmDataset(read, 3)[mixed], AmDataset(direct, 3)[mixed]
    assert one.levels["phone"].ids.shape[-1] == 5 and (one.levels["phone"].ids[:4] == -1).any()
    for name in ("ids", "probs", "mask", "hard"):
        assert torch.equal(getattr(one.levels["phone"], name), getattr(two.levels["phone"], name)), name


def test_tokens_between_output_frames_are_counted():
    # T = 10, s = 3: output frames read input frames 1, 4, 7 and 9 (the last, clipped)
    spans = np.array([[0, 1], [1, 2], [2, 4], [5, 7], [8, 9], [9, 10], [2, 3]])
    positions = np.array([0, 1, 2, 3, 4, 5, 6])
    assert tokens_without_output(spans, positions, 10, 3) == 5  # all but [1,2) and [9,10)
    # a token of two rows is read when either row is: token 1 ([1,2) and [2,3)) is
    assert tokens_without_output(spans, np.array([0, 1, 2, 3, 4, 5, 1]), 10, 3) == 4
    assert tokens_without_output(spans, positions, 10, 1) == 0
    assert tokens_without_output(np.zeros((0, 2)), np.zeros(0), 10, 3) == 0


def test_a_store_keeps_of_each_cut_what_training_reads(tiny, monkeypatch):
    import steps.data.hdf5_readers as hdf5_readers
    monkeypatch.setattr(hdf5_readers, "READS_PER_CLOSE", 2)  # file handles closed and reopened between reads
    original = {c.id: c for c in CutSet.from_file(tiny["train"])}
    store, _ = CutStore.build(CutSet.from_cuts(original.values()), ("phone",), cache=False)
    for cut in store.cuts:
        assert set(cut.custom) == {"senone_ali", *(f"kd_phone_{k}" for k in ("tokens", "spans", "ids", "probs"))}
        assert all(s.alignment is None for s in cut.supervisions)
        assert cut.duration == original[cut.id].duration
    cuts = CutSet.from_cuts(list(store.cuts)[:5])
    again = [original[c.id] for c in cuts]
    batch = AmDataset(store, 3)[cuts]
    for b, cut in enumerate(again):
        np.testing.assert_array_equal(batch.feats[b, :cut.num_frames].numpy(), cut.load_features())
    assert store.reads == 5
