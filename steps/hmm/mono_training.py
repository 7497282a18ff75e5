"""Training the alignment model: the flat start (k2's full-sum numerator loss with a running prior) and Viterbi epochs on fixed targets, batched alignment, priors from alignments."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from steps.core import atomic
from steps.core.config import require
from steps.core.log import progress
from steps.data.utterances import Utterance, length_batches, pad_features
from steps.hmm.align_model import AlignModel, AlignModelConfig
from steps.hmm.forced_align import Alignment, align, numerator_loss
from steps.hmm.topology import Topology
from steps.hmm.training_graph import UtteranceGraph
from steps.lang.lexicon import Lang
from steps.train.loop import Loop, Step, Sums, Task
from steps.train.schedule import EpochDecay


@dataclass
class TopologyConfig:
    states_per_phone: int = 3
    silence_states: int = 3  # for SIL and SPN; 1 is allowed

    def __post_init__(self):
        require(self.states_per_phone >= 1, "states_per_phone", "must be at least 1")
        require(self.silence_states >= 1, "silence_states", "must be at least 1")

    def build(self, lang: Lang) -> Topology:
        special = {p: self.silence_states for p in lang.silence_phone_ids}
        return Topology.build(lang.real_phone_ids, self.states_per_phone, special)


@dataclass
class MonoTrainingConfig:
    # Kaldi's align-equal-compiled: first train on frames shared out equally among the
    # states of each transcript's first pronunciation, so that the first full-sum
    # epochs start from a model that already knows roughly where phones are.
    equal_align_epochs: int = 0
    flat_start_epochs: int = 4
    # Kaldi's train_mono.sh starts on a subset of the shortest utterances
    # (subset_data_dir.sh --shortest): short ones have few paths to share their frames
    # among, so the full-sum epochs learn faster per frame, and the Viterbi rounds then
    # use every utterance. null: flat-start on all of them.
    flat_start_utterances: int | None = None
    viterbi_rounds: int = 2
    epochs_per_round: int = 2
    learning_rate: float = 2e-3
    lr_decay_per_epoch: float = 0.85
    max_frames_per_batch: int = 20000
    grad_clip: float = 5.0
    output_beam: float = 20.0
    # Pruning beam of the Viterbi alignments: the best path always survives any beam (its
    # states' forward + backward scores are the best), so a narrow one changes no
    # alignment and spares k2 the rest of the lattice.
    align_beam: float = 8.0
    # Paths are scored with log p(state | x) - prior_scale * log p(state), the hybrid
    # pseudo-likelihood, in the full-sum epochs (prior: a running average of the
    # posteriors) and in Viterbi alignment (prior: the last alignment's state counts).
    # Without it a discriminative model can make silence a garbage class that swallows
    # speech while phones shrink to one frame per state.
    prior_scale: float = 1.0
    prior_momentum: float = 0.9
    seed: int = 1

    def __post_init__(self):
        require(self.equal_align_epochs >= 0, "equal_align_epochs", "must be >= 0")
        require(self.flat_start_epochs >= 0, "flat_start_epochs", "must be >= 0")
        require(self.flat_start_utterances is None or self.flat_start_utterances >= 1,
                "flat_start_utterances", "must be at least 1 (or null: all)")
        require(0.0 <= self.prior_scale <= 1.0, "prior_scale", "must be in [0, 1]")
        require(0.0 <= self.prior_momentum < 1.0, "prior_momentum", "must be in [0, 1)")
        require(self.viterbi_rounds >= 0, "viterbi_rounds", "must be >= 0")
        require(self.epochs_per_round >= 1, "epochs_per_round", "must be at least 1")
        require(self.learning_rate > 0, "learning_rate", "must be positive")
        require(0 < self.lr_decay_per_epoch <= 1, "lr_decay_per_epoch", "must be in (0, 1]")
        require(self.max_frames_per_batch > 0, "max_frames_per_batch", "must be positive")
        require(self.output_beam > 0, "output_beam", "must be positive")
        require(self.align_beam > 0, "align_beam", "must be positive")


@dataclass
class MonoConfig:
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    sil_prob: float = 0.5  # optional silence between words
    edge_sil_prob: float = 0.5  # optional silence before the first and after the last word
    model: AlignModelConfig = field(default_factory=AlignModelConfig)
    # the model of the Viterbi rounds (null: keep training the flat-start model)
    realign_model: AlignModelConfig | None = field(
        default_factory=lambda: AlignModelConfig(layers=[[3, 1], [1, 1], [1, 1], [1, 1]]))
    training: MonoTrainingConfig = field(default_factory=MonoTrainingConfig)

    def __post_init__(self):
        require(0.0 <= self.sil_prob < 1.0, "sil_prob", "must be in [0, 1)")
        require(0.0 <= self.edge_sil_prob < 1.0, "edge_sil_prob", "must be in [0, 1)")


def _batches_of(utterances: list[Utterance], max_frames: int, rng=None) -> list[list[int]]:
    return length_batches([u.num_frames for u in utterances], max_frames, rng)


def shortest_subset(utterances: list[Utterance], count: int | None) -> list[int]:
    """Indices of the `count` shortest utterances (all when count is None), in their
    original order; ties broken by position, so the subset is reproducible."""
    if count is None or count >= len(utterances):
        return list(range(len(utterances)))
    by_length = sorted(range(len(utterances)), key=lambda i: (utterances[i].num_frames, i))
    return sorted(by_length[:count])


def equal_alignment(words: list[str], num_frames: int, lang: Lang, topology: Topology) -> np.ndarray | None:
    """HMM-state ids with the frames shared out equally among the states of SIL, the
    words' first pronunciations, SIL; None if there are fewer frames than states."""
    phones = [lang.phone_id[lang.optional_silence]]
    for word in words:
        phones += [lang.phone_id[p] for p in lang.prons(word)[0]]
    phones.append(phones[0])
    states = np.array([s for p in phones for s in topology.states_of(p)], dtype=np.int32)
    if num_frames < len(states):
        return None
    return states[(np.arange(num_frames) * len(states)) // num_frames]


@torch.no_grad()
def align_utterances(model: AlignModel, utterances: list[Utterance], graphs: list[UtteranceGraph],
                     max_frames: int, output_beam: float, device: torch.device,
                     description: str = "aligning", log_priors: torch.Tensor | None = None,
                     prior_scale: float = 0.0) -> list[Alignment | str]:
    """Best path of each utterance under the model (scores: log-posteriors minus
    prior_scale x log-priors), or why there is none."""
    model.eval()
    results: list[Alignment | str | None] = [None] * len(utterances)
    for batch in progress(_batches_of(utterances, max_frames), desc=description, leave=False):
        feats, lengths = pad_features([utterances[i] for i in batch])
        log_probs = model(feats.to(device), lengths).cpu()
        if log_priors is not None and prior_scale > 0:
            log_probs = log_probs - prior_scale * log_priors
        for i, result in zip(batch, align(log_probs, lengths, [graphs[i] for i in batch], output_beam)):
            results[i] = result
    return results  # type: ignore[return-value]


def epoch_loop(model, config) -> Loop:
    """Adam at learning_rate * lr_decay_per_epoch**epoch (steps.train.loop)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    return Loop(optimizer, EpochDecay(config.learning_rate, config.lr_decay_per_epoch), model.parameters(),
                config.grad_clip)


class FrameTask(Task):
    """One epoch over utterances in length batches (shuffled with rng); batch_loss(batch,
    feats, lengths) gives the batch's summed loss and a count to add up; the update is on
    the loss per frame."""

    def __init__(self, model, utterances, config, rng, batch_loss):
        self.model, self.utterances, self.config, self.rng, self.batch_loss = (
            model, utterances, config, rng, batch_loss)
        self.current: list[list[int]] = []
        self.sums = Sums()

    def start_epoch(self, loop: Loop) -> None:
        self.model.train()
        self.current = _batches_of(self.utterances, self.config.max_frames_per_batch, self.rng)

    def epoch_length(self, loop: Loop) -> int:
        return len(self.current)

    def batches(self, loop: Loop) -> list[list[int]]:
        return self.current

    def step(self, batch) -> Step:
        feats, lengths = pad_features([self.utterances[i] for i in batch])
        loss, count = self.batch_loss(batch, feats, lengths)
        num_frames = int(lengths.sum())
        return Step(loss / num_frames, {"loss": (float(loss), num_frames), "count": (count, num_frames)})

    def end_epoch(self, loop: Loop) -> bool:
        self.sums = loop.sums  # the epoch's figures, which the loop starts afresh next
        return False


def _run_epoch(loop: Loop, task: FrameTask) -> tuple[float, int, int]:
    """(loss, frames, count) summed over the epoch."""
    loop.run_epoch(task)
    (total, frames), (count, _) = task.sums["loss"], task.sums["count"]
    return total, int(frames), int(count)


def train_flat_start_epoch(loop: Loop, model, utterances, graphs, config: MonoTrainingConfig,
                           rng, device, log_priors: torch.Tensor) -> dict:
    """One full-sum epoch; log_priors (the running posterior average) is updated in place."""

    def batch_loss(batch, feats, lengths):
        log_probs = model(feats.to(device), lengths).cpu()
        valid = torch.arange(log_probs.shape[1])[None, :] < lengths[:, None]
        with torch.no_grad():
            batch_prior = log_probs[valid].exp().mean(dim=0)
            log_priors.copy_(torch.logaddexp(log_priors + math.log(config.prior_momentum),
                                             batch_prior.log() + math.log(1 - config.prior_momentum)))
        return numerator_loss(log_probs - config.prior_scale * log_priors, lengths,
                              [graphs[i] for i in batch], config.output_beam)

    total, frames, failed = _run_epoch(loop, FrameTask(model, utterances, config, rng, batch_loss))
    return {"loss_per_frame": total / frames, "no_path": failed}


def train_viterbi_epoch(loop: Loop, model, utterances, targets: list[np.ndarray],
                        config: MonoTrainingConfig, rng, device) -> dict:
    """One frame-level cross-entropy epoch on fixed alignments (Viterbi training)."""

    def batch_loss(batch, feats, lengths):
        target = torch.full(feats.shape[:2], -100, dtype=torch.long)
        for row, i in enumerate(batch):
            target[row, : len(targets[i])] = torch.from_numpy(targets[i]).long()
        log_probs = model(feats.to(device), lengths)
        loss = torch.nn.functional.nll_loss(log_probs.transpose(1, 2), target.to(device),
                                            ignore_index=-100, reduction="sum")
        return loss, int((log_probs.argmax(-1).cpu() == target).sum())

    total, frames, correct = _run_epoch(loop, FrameTask(model, utterances, config, rng, batch_loss))
    return {"loss_per_frame": total / frames, "frame_accuracy": correct / frames}


def log_priors_from(alignments: list[np.ndarray], num_outputs: int) -> torch.Tensor:
    counts = np.ones(num_outputs)  # add-one: an unseen unit still gets a finite prior
    for states in alignments:
        counts += np.bincount(states, minlength=num_outputs)
    return torch.from_numpy(np.log(counts / counts.sum())).float()


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    atomic.write_text(path, "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped))
