"""Flat-start monophone alignment model trained with k2: Kaldi's train_mono.sh with a
small neural network (steps.hmm.align_model) in the place of the GMMs.

1. Flat start: the network's per-frame log-posteriors over HMM states are scored against
   each utterance's numerator graph (steps.hmm.training_graph: all pronunciations, optional
   silence) with k2.intersect_dense; the loss is minus the total log-probability of the
   graph (the forward score), per frame. Nothing but the transcripts is needed to start.
2. Viterbi rounds: align every utterance with the current model (k2.shortest_path), train
   with frame cross-entropy on those alignments, realign. These rounds train a new model
   that sees one frame only (`realign_model`, a per-frame MLP by default) from the
   flat-start alignment: a model that sees even one frame each side can emit a state a
   frame or more before its acoustics and stay consistent with its own alignments, and
   full-sum training does not penalise that shift; a model that sees only the frame
   itself cannot shift, so realigning with it pulls the boundaries onto the acoustics,
   as a GMM's single-frame likelihoods do.

Reads:  fbank cuts of the training part, data/lang, a YAML config (conf/mono.yaml)
Writes: <exp-dir>/final.pt        the model (a FrameScorer checkpoint, kind align_model)
        <exp-dir>/topology.json   the HMM topology (and topology.txt, readable)
        <exp-dir>/skipped.txt     utterances left out, with the reason
        <exp-dir>/train_stats.json per-epoch losses and accuracies
        <exp-dir>/.done            written last, with the fingerprint of the inputs (cuts,
                                   lang, config): a second run with the same ones is
                                   skipped (--force retrains); an interrupted run is redone

Example:
  python -m steps.train_mono --config conf/mono.yaml \\
      --cuts data/fbank/synth_cuts_train.jsonl.gz --lang-dir data/lang --exp-dir exp/mono
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from steps.core import atomic, checkpoint
from steps.hmm.align_model import AlignModel, AlignModelConfig, checkpoint_dict
from steps.core.config import load_config, require, to_dict
from steps.hmm.forced_align import Alignment, align, numerator_loss, too_short
from steps.lang.lexicon import Lang
from steps.core.log import progress, setup_logging
from steps.hmm.topology import Topology
from steps.hmm.training_graph import TrainingGraphCompiler, UtteranceGraph
from steps.data.utterances import Utterance, feature_stats, length_batches, load_utterances, pad_features

log = logging.getLogger(__name__)


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


def _learning_rate(config: MonoTrainingConfig, epoch: int) -> float:
    return config.learning_rate * config.lr_decay_per_epoch**epoch


def train_flat_start_epoch(model, optimizer, utterances, graphs, config: MonoTrainingConfig,
                           rng, device, log_priors: torch.Tensor) -> dict:
    """One full-sum epoch; log_priors (the running posterior average) is updated in place."""
    model.train()
    total, frames, failed = 0.0, 0, 0
    for batch in progress(_batches_of(utterances, config.max_frames_per_batch, rng), desc="flat start",
                      leave=False):
        feats, lengths = pad_features([utterances[i] for i in batch])
        log_probs = model(feats.to(device), lengths).cpu()
        valid = torch.arange(log_probs.shape[1])[None, :] < lengths[:, None]
        with torch.no_grad():
            batch_prior = log_probs[valid].exp().mean(dim=0)
            log_priors.copy_(torch.logaddexp(log_priors + math.log(config.prior_momentum),
                                             batch_prior.log() + math.log(1 - config.prior_momentum)))
        loss, num_failed = numerator_loss(log_probs - config.prior_scale * log_priors, lengths,
                                          [graphs[i] for i in batch], config.output_beam)
        num_frames = int(lengths.sum())
        optimizer.zero_grad()
        (loss / num_frames).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        total += float(loss)
        frames += num_frames
        failed += num_failed
    return {"loss_per_frame": total / frames, "no_path": failed}


def train_viterbi_epoch(model, optimizer, utterances, targets: list[np.ndarray],
                        config: MonoTrainingConfig, rng, device) -> dict:
    model.train()
    total, correct, frames = 0.0, 0, 0
    for batch in progress(_batches_of(utterances, config.max_frames_per_batch, rng), desc="viterbi",
                      leave=False):
        feats, lengths = pad_features([utterances[i] for i in batch])
        target = torch.full(feats.shape[:2], -100, dtype=torch.long)
        for row, i in enumerate(batch):
            target[row, : len(targets[i])] = torch.from_numpy(targets[i]).long()
        log_probs = model(feats.to(device), lengths)
        loss = torch.nn.functional.nll_loss(log_probs.transpose(1, 2), target.to(device),
                                            ignore_index=-100, reduction="sum")
        num_frames = int(lengths.sum())
        optimizer.zero_grad()
        (loss / num_frames).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        total += float(loss)
        frames += num_frames
        correct += int((log_probs.argmax(-1).cpu() == target).sum())
    return {"loss_per_frame": total / frames, "frame_accuracy": correct / frames}


def log_priors_from(alignments: list[np.ndarray], num_outputs: int) -> torch.Tensor:
    counts = np.ones(num_outputs)  # add-one: an unseen unit still gets a finite prior
    for states in alignments:
        counts += np.bincount(states, minlength=num_outputs)
    return torch.from_numpy(np.log(counts / counts.sum())).float()


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    atomic.write_text(path, "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (MonoConfig)")
    parser.add_argument("--cuts", required=True, help="fbank cuts of the training part")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--force", action="store_true", help="retrain even if done with the same inputs")
    args = parser.parse_args(argv)
    exp_dir = Path(args.exp_dir)
    setup_logging(log_file=exp_dir / "log" / "train_mono.log")
    config = load_config(args.config, MonoConfig)
    fingerprint = atomic.inputs_fingerprint([args.cuts, args.lang_dir], config=to_dict(config))
    if atomic.up_to_date(exp_dir, fingerprint, args.force, [exp_dir / "final.pt", exp_dir / "topology.json"]):
        return
    atomic.clear_done(exp_dir)
    # The old model goes first: nothing downstream may align with it while this one trains.
    atomic.remove(exp_dir / "final.pt")
    train = config.training
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    device = torch.device(args.device)

    lang = Lang.load(args.lang_dir)
    topology = config.topology.build(lang)
    atomic.write_text(exp_dir / "topology.json", json.dumps(topology.to_dict(), indent=1) + "\n")
    atomic.write_text(exp_dir / "topology.txt", topology.to_text(lang.phones))

    utterances, skipped = load_utterances(CutSet.from_file(args.cuts))
    compiler = TrainingGraphCompiler(lang, topology, config.sil_prob, config.edge_sil_prob)
    graphs = [compiler.compile(u.words) for u in utterances]
    reasons = too_short(graphs, torch.tensor([u.num_frames for u in utterances]))
    keep = [i for i, r in enumerate(reasons) if r is None]
    skipped += [(utterances[i].cut_id, reasons[i]) for i in range(len(utterances)) if reasons[i]]
    utterances = [utterances[i] for i in keep]
    graphs = [graphs[i] for i in keep]
    oov = sum(1 for u in utterances if lang.oov(u.words))
    log.info("Training on %d utterances (%d frames); %d left out (see %s); %d contain words "
             "not in the lexicon (aligned as <UNK>)", len(utterances),
             sum(u.num_frames for u in utterances), len(skipped), exp_dir / "skipped.txt", oov)
    write_skipped(exp_dir / "skipped.txt", skipped)
    if not utterances:
        raise SystemExit("no utterance left to train on")

    feature_dim = utterances[0].feats.shape[1]
    model = AlignModel(feature_dim, topology.num_hmm_states, config.model).to(device)
    model.set_normalisation(*feature_stats(utterances, config.model.utterance_mean_norm))
    optimizer = torch.optim.Adam(model.parameters(), lr=train.learning_rate)
    log.info("Model: %d parameters, context +-%d frames, %d HMM states",
             sum(p.numel() for p in model.parameters()), config.model.context, topology.num_hmm_states)

    history = []
    epoch = 0
    start = time.time()
    equal = [equal_alignment(u.words, u.num_frames, lang, topology) for u in utterances]
    equal_ids = [i for i, e in enumerate(equal) if e is not None]
    for _ in range(train.equal_align_epochs):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(train, epoch)
        stats = train_viterbi_epoch(model, optimizer, [utterances[i] for i in equal_ids],
                                    [equal[i] for i in equal_ids], train, rng, device)
        history.append({"epoch": epoch, "phase": "equal_align", **stats})
        log.info("Equal-alignment epoch %d: loss/frame %.4f, frame accuracy %.3f", epoch,
                 stats["loss_per_frame"], stats["frame_accuracy"])
        epoch += 1
    running_log_priors = torch.full((topology.num_hmm_states,), -math.log(topology.num_hmm_states))
    subset = shortest_subset(utterances, train.flat_start_utterances)
    if train.flat_start_epochs and len(subset) < len(utterances):
        log.info("Flat start on the %d shortest utterances (%d frames); the Viterbi rounds use all %d",
                 len(subset), sum(utterances[i].num_frames for i in subset), len(utterances))
    for _ in range(train.flat_start_epochs):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(train, epoch)
        stats = train_flat_start_epoch(model, optimizer, [utterances[i] for i in subset],
                                       [graphs[i] for i in subset], train, rng, device,
                                       running_log_priors)
        history.append({"epoch": epoch, "phase": "flat_start", **stats})
        log.info("Flat start epoch %d: loss/frame %.4f (no path: %d)", epoch, stats["loss_per_frame"],
                 stats["no_path"])
        epoch += 1

    previous = None
    log_priors = running_log_priors if train.flat_start_epochs else None
    if config.realign_model is not None and train.viterbi_rounds > 0:
        realign_model = AlignModel(feature_dim, topology.num_hmm_states, config.realign_model).to(device)
        realign_model.set_normalisation(*feature_stats(utterances, config.realign_model.utterance_mean_norm))
        log.info("Viterbi rounds train a new model: %d parameters, context +-%d frames",
                 sum(p.numel() for p in realign_model.parameters()), config.realign_model.context)
    else:
        realign_model = model
    for round_index in range(train.viterbi_rounds + 1):
        results = align_utterances(model, utterances, graphs, train.max_frames_per_batch,
                                   train.align_beam, device, f"aligning (round {round_index})",
                                   log_priors, train.prior_scale)
        failed = [(utterances[i].cut_id, r) for i, r in enumerate(results) if isinstance(r, str)]
        targets = [r.states if isinstance(r, Alignment) else None for r in results]
        if previous is not None:
            changed = sum(int((a != b).sum()) for a, b in zip(previous, targets) if a is not None and b is not None)
            log.info("Round %d: %.2f%% of frames changed state since the last alignment", round_index,
                     100.0 * changed / sum(len(t) for t in targets if t is not None))
        if failed:
            log.warning("Round %d: %d utterances could not be aligned", round_index, len(failed))
        previous = targets
        log_priors = log_priors_from([t for t in targets if t is not None], topology.num_hmm_states)
        if round_index == train.viterbi_rounds:
            break
        aligned = [i for i, t in enumerate(targets) if t is not None]
        if model is not realign_model:
            model = realign_model
            optimizer = torch.optim.Adam(model.parameters(), lr=train.learning_rate)
        for _ in range(train.epochs_per_round):
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(train, epoch)
            stats = train_viterbi_epoch(model, optimizer, [utterances[i] for i in aligned],
                                        [targets[i] for i in aligned], train, rng, device)
            history.append({"epoch": epoch, "phase": f"viterbi_{round_index}", **stats})
            log.info("Viterbi round %d epoch %d: loss/frame %.4f, frame accuracy %.3f", round_index,
                     epoch, stats["loss_per_frame"], stats["frame_accuracy"])
            epoch += 1

    elapsed = time.time() - start
    checkpoint.save(checkpoint_dict(model.cpu(), feature_dim, log_priors,
                                    {"topology": topology.to_dict(), "train_config": to_dict(config)}),
                    exp_dir / "final.pt")
    atomic.write_text(exp_dir / "train_stats.json",
                      json.dumps({"epochs": history, "train_seconds": elapsed}, indent=1) + "\n")
    atomic.mark_done(exp_dir, {"utterances": len(utterances), "skipped": len(skipped),
                               "train_seconds": round(elapsed, 1)}, fingerprint)
    log.info("Trained in %.1f s; wrote %s", elapsed, exp_dir / "final.pt")


if __name__ == "__main__":
    main()
