"""Train the multi-head hybrid acoustic model (steps.am.model) with one of the objectives
of steps.am.losses (baseline, li, aux, hier) on cuts with senone alignments and cached
teacher soft labels (steps.am.data); the loop is steps.am.training.

Reads:  --cuts   training cuts (features, senone_ali, kd_<level>_* soft labels)
        --dev-cuts  dev cuts (features, senone_ali; soft labels used where present)
        --config YAML (sections model, loss, data, train; see steps.am.config; a `base:`
                 file under it) and any number of --override YAML files merged on top
                 (mappings merged key by key, lists replaced): e.g. conf/am_tiny.yaml makes
                 any system tiny
        --senone-counts  `senone_id count` per line (default exp/senone_ali/senone_counts.txt;
                 computed from the training alignments if the file is absent)
        <lm-dir>/lm_<level>/tokens.txt  the vocabulary size of each auxiliary head (unless
                 the head's num_units is set)
        --data-cache  validated cut arrays kept on disk by the first run on a cuts file
                 (default <exp-dir>/../am_data_cache, see steps.am.cut_store.CutStore.load_or_build)
Writes to --exp-dir:
        epoch-<n>.pt   the model after epoch n (kind acoustic_model, a FrameScorer checkpoint)
        state.pt       the latest training state: model, optimizer, scheduler, sampler
                       (epoch and position), RNG states of every process, step, counters,
                       history, and the fingerprint of the inputs; --resume continues from
                       it (when the fingerprint is the same; with --force training starts
                       from scratch) to the same result as a run that was never interrupted
        final.pt       the average of train.average_last epochs ending at the chosen one
                       (FrameScorer): the last, or with train.schedule newbob (steps.train.schedule:
                       training stops when the dev loss stops improving) the epoch of the
                       best dev loss; train_stats.json records it (chosen_epoch, epochs_run)
        priors.txt     `senone_id count log_prior` (priors floored at train.prior_floor)
        train_stats.json  per-epoch loss terms, dev frame accuracy per head, time, frames/s
        run_env.json   torch threads, CPU and its SIMD, library versions (steps.core.run_env)
        skipped_{train,dev}.txt  `cut_id reason` for every cut left out
        tensorboard/   every loss term, lr, gradient norm; dev accuracies and loss
        log/train_am.log
        .done          written last, with the fingerprint of the inputs (cuts, dev cuts,
                       senone counts, config, seed): a second run with the same ones is
                       skipped (--force retrains)

Several processes: the same command under torchrun uses DDP (gloo on CPU, nccl on CUDA),
one DynamicBucketingSampler shard per process; every loss term is divided by its frame
count over ALL processes, so the update is the single-process one on the global batch.

    python -m steps.train_am --config conf/am_hier.yaml \\
        --cuts data/kd/synth_cuts_train.jsonl.gz --dev-cuts exp/senone_ali/cuts_dev.jsonl.gz \\
        --exp-dir exp/am_hier_s1 --seed 1 [--resume] [--device cpu]
    torchrun --nproc-per-node 2 -m steps.train_am ...   (same arguments)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch

from steps.am import training
from steps.am.config import AmConfig, load_am_config, settings_for_fingerprint
from steps.am.distributed import barrier, close_world, init_world
from steps.core import atomic, run_env
from steps.core.config import ConfigError
from steps.core.log import setup_logging

log = logging.getLogger(__name__)


def fingerprint(args, config: AmConfig) -> dict:
    """What a run's models are made from: the cuts, the senone counts, the teachers'
    vocabularies (aux heads' sizes), the merged config and the seed."""
    lm_dir = Path(args.lm_dir)
    vocabularies = [lm_dir / f"lm_{h.level}" / "tokens.txt" for h in config.model.aux_heads
                    if h.num_units is None]
    return atomic.inputs_fingerprint([args.cuts, args.dev_cuts, args.senone_counts, *vocabularies],
                                     config=settings_for_fingerprint(config), seed=args.seed)


def train(args) -> int:
    world, device = init_world(args.device)
    exp_dir = Path(args.exp_dir)
    config = load_am_config(args.config, args.override or [])
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    print_ = fingerprint(args, config)
    if atomic.redo_reason(exp_dir, print_, args.force, [exp_dir / "final.pt"]) is None:
        if world.main:
            log.info("%s already trained with the same data, config and seed, nothing to do "
                     "(--force retrains)", exp_dir)
        return 0
    if world.main:
        log.info("%s: training: %s", exp_dir, atomic.redo_reason(exp_dir, print_, args.force,
                                                                  [exp_dir / "final.pt"]))
    barrier(world)
    if world.main:
        atomic.clear_done(exp_dir)
        # The old model goes first: nothing may decode with it while this one trains.
        atomic.remove(exp_dir / "final.pt")
        # threads, CPU and versions: what the floats depend on (a resumed run keeps the earlier record)
        run_env.write(exp_dir, device, resumed=args.resume and (exp_dir / "state.pt").is_file())
    cache_dir = None
    if config.data.cache_in_memory and args.data_cache != "none":
        cache_dir = exp_dir.parent / "am_data_cache" if args.data_cache == "auto" else Path(args.data_cache)
    data = training.load_data(config, args.cuts, args.dev_cuts, cache_dir,
                              Path(args.senone_counts) if args.senone_counts else None,
                              Path(args.lm_dir), exp_dir, world)
    return training.train(config, data, exp_dir, args.seed, print_, world, device, resume=args.resume,
                          force=args.force, stop_after_steps=args.stop_after_steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML: sections model, loss, data, train")
    parser.add_argument("--override", action="append", default=[],
                        help="YAML merged on top of --config (repeatable), e.g. conf/am_tiny.yaml")
    parser.add_argument("--cuts", required=True, help="training cuts with soft labels")
    parser.add_argument("--dev-cuts", default=None, help="dev cuts for frame accuracy")
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="continue from exp-dir/state.pt")
    parser.add_argument("--force", action="store_true", help="retrain even if finished")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--senone-counts", default="exp/senone_ali/senone_counts.txt",
                        help="`senone_id count` per line; from the training cuts if absent")
    parser.add_argument("--lm-dir", default="exp",
                        help="where lm_<level>/tokens.txt give the auxiliary heads' sizes")
    parser.add_argument("--data-cache", default="auto",
                        help="directory for the validated cut arrays shared by runs on the same cuts "
                             "(auto: <exp-dir>/../am_data_cache; none: no disk cache)")
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--stop-after-steps", type=int, default=0,
                        help="save the state and stop after this many steps (to test --resume)")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    log_name = "train_am.log" if rank == 0 else f"train_am.rank{rank}.log"
    setup_logging(log_file=Path(args.exp_dir) / "log" / log_name)
    try:
        return train(args)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    finally:
        close_world()


if __name__ == "__main__":
    sys.exit(main())
