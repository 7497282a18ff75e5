"""Batches for acoustic-model training: fbank features, senone alignments and the teachers'
soft labels, at the model's output frame rate (steps.am.targets), from the cuts' arrays held
by a CutStore (steps.am.cut_store).

    store, skipped = CutStore.build(cuts, levels=("phone",), cache=True)
    sampler = make_sampler(store.cuts, config, seed=1)          # DynamicBucketingSampler
    dataset = AmDataset(store, subsampling=3, levels=("phone",))
    for cuts in sampler:
        batch = dataset[cuts]                                     # AmBatch

Batches are built in the training process (no DataLoader workers): on a 2-core machine
the cached arrays make loading cheap, and the sampler's position then is exactly the
number of batches trained, which is what resuming needs.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler

from steps.am.cut_store import CutArrays, CutStore
from steps.am.spec_augment import SpecAugmentConfig
from steps.am.targets import LevelTargets, expand_soft_labels, senone_targets
from steps.core.config import require
from steps.data.output_frames import output_lengths


@dataclass
class DataConfig:
    max_duration: float = 200.0  # seconds of speech per batch and process
    num_buckets: int = 10
    shuffle: bool = True
    cache_in_memory: bool = True
    soft_targets: Literal["centre", "span"] = "centre"  # steps.am.targets: an output's soft
    #                                                     label from its centre frame, or mixed over its span
    spec_augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)

    def __post_init__(self):
        require(self.max_duration > 0, "max_duration", "must be positive")
        require(self.num_buckets >= 1, "num_buckets", "must be at least 1")


@dataclass
class AmBatch:
    cut_ids: list[str]
    feats: torch.Tensor  # float32 [B, T, F] raw fbank, zero padded
    feat_lens: torch.Tensor  # int64 [B]
    senone: torch.Tensor  # int64 [B, N]; -1 = no label
    out_lens: torch.Tensor  # int64 [B]
    levels: dict[str, LevelTargets]

    def to(self, device) -> "AmBatch":
        return AmBatch(self.cut_ids, self.feats.to(device), self.feat_lens.to(device),
                       self.senone.to(device), self.out_lens.to(device),
                       {k: v.to(device) for k, v in self.levels.items()})

    @property
    def num_frames(self) -> int:
        return int(self.feat_lens.sum())


def collate(cut_ids: Sequence[str], items: Sequence[CutArrays], levels: Sequence[str],
            subsampling: int, soft_targets: str = "centre") -> AmBatch:
    lengths = np.array([a.num_frames for a in items], dtype=np.int64)
    feats = np.zeros((len(items), int(lengths.max()), items[0].feats.shape[1]), dtype=np.float32)
    for b, a in enumerate(items):
        feats[b, : a.num_frames] = a.feats
    targets = {level: expand_soft_labels([a.levels.get(level) for a in items], lengths, subsampling,
                                         span=soft_targets == "span")
               for level in levels}
    return AmBatch(list(cut_ids), torch.from_numpy(feats), torch.from_numpy(lengths),
                   senone_targets([a.senone for a in items], lengths, subsampling),
                   torch.from_numpy(output_lengths(lengths, subsampling)), targets)


class AmDataset(torch.utils.data.Dataset):
    """Map-style dataset in lhotse's manner: indexed by a CutSet (a sampler's batch)."""

    def __init__(self, store: CutStore, subsampling: int, levels: Sequence[str] | None = None,
                 soft_targets: str = "centre"):
        self.store = store
        self.subsampling = subsampling
        self.levels = tuple(store.levels if levels is None else levels)
        self.soft_targets = soft_targets

    def __getitem__(self, cuts: CutSet) -> AmBatch:
        cuts = list(cuts)
        return collate([c.id for c in cuts], [self.store.arrays(c) for c in cuts], self.levels,
                       self.subsampling, self.soft_targets)

    def __len__(self) -> int:  # batches are defined by the sampler
        raise TypeError("AmDataset is indexed by CutSets from a sampler")


def _torch_sampler_compat() -> None:
    """lhotse's samplers call torch's Sampler.__init__() without `data_source`, which
    torch < 2 requires; give it the default that newer torch has."""

    init = torch.utils.data.Sampler.__init__
    parameter = inspect.signature(init).parameters.get("data_source")
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        def compatible_init(self, data_source=None):
            return None

        torch.utils.data.Sampler.__init__ = compatible_init


def make_sampler(cuts: CutSet, config: DataConfig, seed: int, world_size: int = 1, rank: int = 0,
                 shuffle: bool | None = None):

    _torch_sampler_compat()
    num_buckets = max(1, min(config.num_buckets, len(cuts) // 2))
    with warnings.catch_warnings():  # the cuts are in memory on purpose (see the store)
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        return DynamicBucketingSampler(cuts, max_duration=config.max_duration,
                                       shuffle=config.shuffle if shuffle is None else shuffle,
                                       num_buckets=num_buckets, seed=seed, world_size=world_size,
                                       rank=rank, drop_last=False)


def sequential_batches(cuts: CutSet, max_duration: float) -> Iterable[list]:
    """Cuts in order, in batches of at most max_duration seconds (for evaluation)."""
    batch, total = [], 0.0
    for cut in sorted(cuts, key=lambda c: c.duration):
        if batch and total + cut.duration > max_duration:
            yield batch
            batch, total = [], 0.0
        batch.append(cut)
        total += cut.duration
    if batch:
        yield batch
