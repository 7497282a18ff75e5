"""Train one unit level's teacher LM (steps.lm.model) on its token corpus.

Reads --data-dir/{tokens.txt,train.txt,valid.txt} (written by steps.lm_tokens) and a YAML
config (sections `model`: steps.lm.model.ModelConfig, `train`: TrainConfig below). Writes to
--exp-dir:

    final.pt          the teacher: {"kind": "teacher_lm", "level", "config", "num_units",
                      "state_dict", "ppl"} (steps.core.checkpoint; loaded by steps.dump_soft_labels)
    checkpoint.pt     the latest training state (model, optimizer, step, RNG) and the
                      fingerprint of the data and config; --resume continues from it when
                      the fingerprint is the same (else, and with --force, training starts
                      from scratch)
    run_env.json      torch threads, CPU and its SIMD, library versions (steps.core.run_env)
    ppl               held-out perplexity of the teacher and of the count-based bigram anchor
                      (steps.lm.bigram, interpolated Kneser-Ney, trained on train.txt) on the
                      same held-out sentences
    tensorboard/      training loss, learning rate, held-out perplexity
    log/train_lm.log  the log
    .done             written last, with the fingerprint of the inputs (tokens, train and
                      valid files, config): a second run with the same ones is skipped
                      (--force retrains)

Perplexity: causal teachers predict every unit and the final </s>, exactly the events the
bigram predicts. A masked teacher's figure is the PSEUDO-perplexity, exp(-mean ln p(u_i |
u_!=i)) with position i masked, over the units only; the bigram is then scored on the units
only (no </s>) so the two count the same events, but the pseudo-perplexity sees both sides
of each token, so it is not a like-for-like comparison. If the teacher does not beat the
bigram, the program says so loudly and exits with status 3 (unless --allow-worse-than-bigram
or train.fail_if_worse_than_bigram: false, as in the tiny configs).

Training runs for train.max_steps steps (or train.max_epochs epochs if that comes first) on
length-bucketed batches of about train.batch_tokens padded positions; sentences longer than
the context are seen as random crops of max_context positions.

    python -m steps.train_lm --level phone --config conf/lm_phone.yaml \\
        --data-dir exp/lm_phone --exp-dir exp/lm_phone [--resume] [--device cuda]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from steps.core import atomic, run_env
from steps.core.config import load_config, to_dict
from steps.core.log import setup_logging
from steps.lm.tokens import LEVELS
from steps.lm.training import EXIT_WORSE_THAN_BIGRAM, LmConfig, train

log = logging.getLogger(__name__)


def fingerprint(level: str, data_dir: Path, config: LmConfig) -> dict:
    """What a teacher is made from: its token files and its configuration."""
    return atomic.inputs_fingerprint([data_dir / n for n in ("tokens.txt", "train.txt", "valid.txt")],
                                     level=level, config=to_dict(config))


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--level", choices=LEVELS, required=True)
    parser.add_argument("--config", required=True, help="YAML: sections model, train")
    parser.add_argument("--data-dir", required=True, help="output of steps.lm_tokens")
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--resume", action="store_true",
                        help="continue from exp-dir/checkpoint.pt if it exists")
    parser.add_argument("--force", action="store_true", help="retrain even if finished")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--allow-worse-than-bigram", action="store_true",
                        help="exit 0 even if the teacher does not beat the bigram")
    args = parser.parse_args(argv)
    exp_dir, data_dir, config_path = Path(args.exp_dir), Path(args.data_dir), Path(args.config)
    exp_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(log_file=exp_dir / "log" / "train_lm.log")
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    config = load_config(config_path, LmConfig)
    print_ = fingerprint(args.level, data_dir, config)
    if atomic.up_to_date(exp_dir, print_, args.force, [exp_dir / "final.pt", exp_dir / "ppl"],
                         what=f"{exp_dir} {args.level} teacher"):
        return 0
    atomic.clear_done(exp_dir)
    # The old teacher goes first: no soft labels may be dumped with it while this one trains.
    atomic.remove(exp_dir / "final.pt", exp_dir / "ppl")
    # threads, CPU and versions: what the floats depend on (a resumed run keeps the earlier record)
    run_env.write(exp_dir, args.device, resumed=args.resume and not args.force
                  and (exp_dir / "checkpoint.pt").is_file())
    # --force starts from scratch; otherwise --resume continues a state of the same inputs.
    report = train(args.level, config, data_dir, exp_dir, args.resume and not args.force,
                   torch.device(args.device), config_path, print_)
    log.info("%s teacher: held-out %s %.3f vs the bigram's %.3f (%d events, %d sentences)",
             args.level, report["measure"], report["teacher_ppl"], report["bigram_ppl"],
             report["events"], report["valid_sentences"])
    if not report["teacher_beats_bigram"]:
        log.warning("THE %s TEACHER DOES NOT BEAT THE BIGRAM ANCHOR (%.3f >= %.3f): train longer "
                    "or larger (%s)", args.level.upper(), report["teacher_ppl"],
                    report["bigram_ppl"], config_path)
        if config.train.fail_if_worse_than_bigram and not args.allow_worse_than_bigram:
            return EXIT_WORSE_THAN_BIGRAM
    atomic.mark_done(exp_dir, {"ppl": report}, print_)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
