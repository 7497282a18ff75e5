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
        <exp-dir>/run_env.json    torch threads, CPU and its SIMD, library versions (steps.core.run_env)
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
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from steps.core import atomic, checkpoint, run_env
from steps.core.config import load_config, to_dict
from steps.core.log import setup_logging
from steps.data.utterances import feature_stats, load_utterances
from steps.hmm.align_model import AlignModel, checkpoint_dict
from steps.hmm.forced_align import Alignment, too_short
from steps.hmm.mono_training import (
    MonoConfig,
    align_utterances,
    epoch_loop,
    equal_alignment,
    log_priors_from,
    shortest_subset,
    train_flat_start_epoch,
    train_viterbi_epoch,
    write_skipped,
)
from steps.hmm.training_graph import TrainingGraphCompiler
from steps.lang.lexicon import Lang

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (MonoConfig)")
    parser.add_argument("--cuts", required=True, help="fbank cuts of the training part")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch threads (0: torch's default, the machine's cores; the model differs "
                             "with the thread count)")
    parser.add_argument("--force", action="store_true", help="retrain even if done with the same inputs")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    exp_dir = Path(args.exp_dir)
    setup_logging(log_file=exp_dir / "log" / "train_mono.log")
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    config = load_config(args.config, MonoConfig)
    fingerprint = atomic.inputs_fingerprint([args.cuts, args.lang_dir], config=to_dict(config))
    if atomic.up_to_date(exp_dir, fingerprint, args.force, [exp_dir / "final.pt", exp_dir / "topology.json"]):
        return
    atomic.clear_done(exp_dir)
    # The old model goes first: nothing downstream may align with it while this one trains.
    atomic.remove(exp_dir / "final.pt")
    run_env.write(exp_dir, args.device)  # threads, CPU and versions: what the floats depend on
    train = config.training
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    device = torch.device(args.device)

    lang = Lang.load(args.lang_dir)
    topology = config.topology.build(lang)
    atomic.write_text(exp_dir / "topology.json", json.dumps(topology.to_dict(), indent=1) + "\n")
    atomic.write_text(exp_dir / "topology.txt", topology.to_text(lang.phones))
    utterances, graphs, skipped = training_utterances(args.cuts, config, lang, topology, exp_dir)

    feature_dim = utterances[0].feats.shape[1]
    model = AlignModel(feature_dim, topology.num_hmm_states, config.model).to(device)
    model.set_normalisation(*feature_stats(utterances, config.model.utterance_mean_norm))
    loop = epoch_loop(model, train)
    log.info("Model: %d parameters, context +-%d frames, %d HMM states",
             sum(p.numel() for p in model.parameters()), config.model.context, topology.num_hmm_states)
    history: list[dict] = []
    start = time.time()
    log_priors = flat_start(loop, model, utterances, graphs, lang, topology, train, rng, device, history)
    model, log_priors = viterbi_rounds(loop, model, utterances, graphs, config, topology, rng, device,
                                       log_priors, history)
    elapsed = time.time() - start
    checkpoint.save(checkpoint_dict(model.cpu(), feature_dim, log_priors,
                                    {"topology": topology.to_dict(), "train_config": to_dict(config)}),
                    exp_dir / "final.pt")
    atomic.write_text(exp_dir / "train_stats.json",
                      json.dumps({"epochs": history, "train_seconds": elapsed}, indent=1) + "\n")
    atomic.mark_done(exp_dir, {"utterances": len(utterances), "skipped": len(skipped),
                               "train_seconds": round(elapsed, 1)}, fingerprint)
    log.info("Trained in %.1f s; wrote %s", elapsed, exp_dir / "final.pt")


def training_utterances(cuts: str, config: MonoConfig, lang: Lang, topology, exp_dir: Path
                        ) -> tuple[list, list, list[tuple[str, str]]]:
    """The utterances with enough frames for their numerator graph, their graphs, and those
    left out (skipped.txt)."""
    utterances, skipped = load_utterances(CutSet.from_file(cuts))
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
    return utterances, graphs, skipped


def flat_start(loop, model, utterances, graphs, lang: Lang, topology, train, rng, device,
               history: list[dict]) -> torch.Tensor | None:
    """The equal-alignment epochs, then the full-sum ones; returns the running log-priors
    (None without full-sum epochs)."""
    equal = [equal_alignment(u.words, u.num_frames, lang, topology) for u in utterances]
    equal_ids = [i for i, e in enumerate(equal) if e is not None]
    for _ in range(train.equal_align_epochs):
        epoch = loop.pos.epoch
        stats = train_viterbi_epoch(loop, model, [utterances[i] for i in equal_ids],
                                    [equal[i] for i in equal_ids], train, rng, device)
        history.append({"epoch": epoch, "phase": "equal_align", **stats})
        log.info("Equal-alignment epoch %d: loss/frame %.4f, frame accuracy %.3f", epoch,
                 stats["loss_per_frame"], stats["frame_accuracy"])
    running_log_priors = torch.full((topology.num_hmm_states,), -math.log(topology.num_hmm_states))
    subset = shortest_subset(utterances, train.flat_start_utterances)
    if train.flat_start_epochs and len(subset) < len(utterances):
        log.info("Flat start on the %d shortest utterances (%d frames); the Viterbi rounds use all %d",
                 len(subset), sum(utterances[i].num_frames for i in subset), len(utterances))
    for _ in range(train.flat_start_epochs):
        epoch = loop.pos.epoch
        stats = train_flat_start_epoch(loop, model, [utterances[i] for i in subset],
                                       [graphs[i] for i in subset], train, rng, device,
                                       running_log_priors)
        history.append({"epoch": epoch, "phase": "flat_start", **stats})
        log.info("Flat start epoch %d: loss/frame %.4f (no path: %d)", epoch, stats["loss_per_frame"],
                 stats["no_path"])
    return running_log_priors if train.flat_start_epochs else None


def viterbi_rounds(loop, model, utterances, graphs, config: MonoConfig, topology, rng, device,
                   log_priors, history: list[dict]):
    """Align, train on the alignments (the realign model, from the first round on), realign;
    returns the last model and the log-priors of its last alignment."""
    train = config.training
    feature_dim = utterances[0].feats.shape[1]
    previous = None
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
        if model is not realign_model:  # a new optimiser; the LR decay goes on from this epoch
            model, position = realign_model, loop.pos
            loop = epoch_loop(model, train)
            loop.pos = position
        for _ in range(train.epochs_per_round):
            epoch = loop.pos.epoch
            stats = train_viterbi_epoch(loop, model, [utterances[i] for i in aligned],
                                        [targets[i] for i in aligned], train, rng, device)
            history.append({"epoch": epoch, "phase": f"viterbi_{round_index}", **stats})
            log.info("Viterbi round %d epoch %d: loss/frame %.4f, frame accuracy %.3f", round_index,
                     epoch, stats["loss_per_frame"], stats["frame_accuracy"])
    return model, log_priors


if __name__ == "__main__":
    main()
