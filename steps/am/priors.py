"""Senone priors from the model's own posteriors, as Kaldi's nnet3-am-adjust-priors does:
the main head's posteriors averaged over (a spread subset of) the training frames.

A hybrid model divides its posteriors by the priors to get scaled likelihoods. Counting the
priors from the alignments (train.priors: counts, the default) is right for a model trained
toward those alignments' one-hot targets; a model trained toward other targets, such as
LI's mix of the alignment and the teacher's soft label, learns other marginals, and the
counted priors then misjudge it. train.priors: posteriors replaces them, in final.pt and
priors.txt, with the averaged posteriors of final.pt (floored at train.prior_floor like the
counts).

    expected = averaged_posteriors(model, store, max_duration=80, device, max_cuts=1000)
    log_priors = log_priors_from_counts(torch.from_numpy(expected), floor)
"""

from __future__ import annotations

import numpy as np
import torch
from lhotse import CutSet

from steps.am.cut_store import CutStore
from steps.am.data import AmDataset, sequential_batches


def spread_subset(cuts: list, max_cuts: int) -> list:
    """At most max_cuts of the cuts, evenly spaced over their order (all when fewer)."""
    if max_cuts <= 0 or len(cuts) <= max_cuts:
        return list(cuts)
    picks = np.linspace(0, len(cuts) - 1, max_cuts).round().astype(int)
    return [cuts[i] for i in np.unique(picks)]


@torch.no_grad()
def averaged_posteriors(model, store: CutStore, max_duration: float, device: torch.device,
                        max_cuts: int = 0) -> np.ndarray:
    """float64 [S]: expected senone counts, the sum of the main head's posteriors over the
    valid output frames of (a spread subset of max_cuts of) the store's cuts."""
    was_training = model.training
    model.eval()
    dataset = AmDataset(store, model.subsampling, ())
    cuts = spread_subset(list(store.cuts), max_cuts)
    total = torch.zeros(model.num_senones, dtype=torch.float64, device=device)
    for batch_cuts in sequential_batches(CutSet.from_cuts(cuts), max_duration):
        batch = dataset[CutSet.from_cuts(batch_cuts)].to(device)
        out = model(batch.feats, batch.feat_lens, with_aux=False)
        total += out.main.double().exp().sum(dim=0)
    model.train(was_training)
    return total.cpu().numpy()
