"""Train a compressed acoustic model on a teacher-layer cache: GenDistiller (kind
generative), the DistilHuBERT-style baseline (kind parallel), or a student of the same
size from scratch on senones (distill_epochs 0). Phase 1 learns the teacher's layers
(L1 + cosine per layer), phase 2 fine-tunes the senone head with frame CE.

Reads:  --config          student YAML (steps.compress.config.StudentConfig)
        --teacher-config  the teacher YAML the dump must come from (its fingerprint is
                          checked against <dump-dir>/teacher.json)
        --dump-dir        steps.dump_teacher_layers output (cuts_<part>.jsonl.gz with
                          features, senone_ali and teacher_layers)
        --dev-cuts        dev cuts with senone_ali (frame accuracy per fine-tuning epoch)
        --senone-counts   `senone_id count` (exp/senone_ali/senone_counts.txt): the number of
                          senones and the priors
Writes to --exp-dir:
        final.pt          kind compressed_am: decodable by steps.decode like an AM
        state.pt          after every epoch; a rerun with the same inputs resumes from it
        fingerprint.json  the inputs of the run that wrote state.pt
        train_stats.json  per epoch: losses (per layer l1_i, cos_i), dev frame accuracy,
                          seconds; parameters at test time, the teacher's, and the ratio
        skipped_{train,dev}.txt, log/train_student.log, .done (fingerprint of the inputs,
        configs and seed: a rerun with the same ones is skipped; --force retrains)

Example:
  python -m steps.train_student --config conf/compress/student_gen.yaml \\
      --teacher-config conf/compress/teacher_am.yaml --dump-dir data/compress/am \\
      --dev-cuts exp/senone_ali/cuts_dev.jsonl.gz --senone-counts exp/senone_ali/senone_counts.txt \\
      --exp-dir exp/compress_gen_s1 --seed 1
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from steps.core import atomic
from steps.core import checkpoint as ckpt_io
from steps.am.model import log_priors_from_counts
from steps.compress.config import StudentConfig, TeacherConfig
from steps.compress.layer_cache import check_dump
from steps.compress.student import StudentModel, checkpoint_dict, inference_parameters
from steps.compress.teacher import TeacherError
from steps.compress.training import Trainer, feature_stats, load_examples, senone_counts
from steps.core.config import ConfigError, load_config, to_dict
from steps.core.log import setup_logging

log = logging.getLogger(__name__)


def read_num_senones(path: Path) -> int:
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if parts and (len(parts) != 2 or not parts[0].isdigit()):
            raise SystemExit(f"error: {path}:{number}: expected `senone_id count`, got {line!r}")
        if parts:
            ids.append(int(parts[0]))
    if not ids:
        raise SystemExit(f"error: {path} is empty")
    return max(ids) + 1


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="student YAML")
    parser.add_argument("--teacher-config", type=Path, required=True, help="teacher YAML of the dump")
    parser.add_argument("--dump-dir", type=Path, required=True)
    parser.add_argument("--part", default="train")
    parser.add_argument("--dev-cuts", type=Path, default=None)
    parser.add_argument("--senone-counts", type=Path, required=True)
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="train from scratch even if done or begun")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose, args.exp_dir / "log" / "train_student.log")
    torch.set_num_threads(args.num_threads)
    try:
        config = load_config(args.config, StudentConfig)
        teacher_config = load_config(args.teacher_config, TeacherConfig)
        info = check_dump(args.dump_dir, teacher_config)
    except (ConfigError, TeacherError) as e:
        raise SystemExit(f"error: {e}") from None
    if info["frame_subsampling"] != config.model.subsampling:
        raise SystemExit(f"error: {args.config}: model.subsampling is {config.model.subsampling}, but the "
                         f"teacher layers in {args.dump_dir} have one frame per {info['frame_subsampling']} "
                         f"x 10 ms; set model.subsampling: {info['frame_subsampling']}")
    cuts_path = args.dump_dir / f"cuts_{args.part}.jsonl.gz"
    digest = atomic.inputs_fingerprint([cuts_path, args.dev_cuts, args.senone_counts],
                                       config=to_dict(config), teacher=info["fingerprint"], seed=args.seed)
    if atomic.up_to_date(args.exp_dir, digest, args.force, [args.exp_dir / "final.pt"],
                         what=f"{args.exp_dir} student"):
        return
    atomic.clear_done(args.exp_dir)
    # state.pt of an interrupted run is resumed only if that run had the same inputs
    begun = args.exp_dir / "fingerprint.json"
    plain = json.loads(json.dumps(digest, sort_keys=True, default=str))
    if args.force or (begun.is_file() and json.loads(begun.read_text()) != plain):
        atomic.remove(args.exp_dir / "state.pt")
    atomic.write_text(begun, json.dumps(plain) + "\n")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    num_layers = len(info["layers"])
    need_layers = config.train.distill_epochs > 0
    examples, skipped = load_examples(CutSet.from_file(cuts_path), num_layers if need_layers else None,
                                      config.model.subsampling)
    atomic.write_text(args.exp_dir / "skipped_train.txt", "".join(f"{c} {r}\n" for c, r in skipped))
    if not examples:
        raise SystemExit(f"error: no usable training cut in {cuts_path}; see {args.exp_dir}/skipped_train.txt")
    dev = []
    if args.dev_cuts is not None:
        dev, dev_skipped = load_examples(CutSet.from_file(args.dev_cuts), None, config.model.subsampling)
        atomic.write_text(args.exp_dir / "skipped_dev.txt", "".join(f"{c} {r}\n" for c, r in dev_skipped))
    log.info("%d training cuts (%d left out, see %s), %d dev cuts", len(examples), len(skipped),
             args.exp_dir / "skipped_train.txt", len(dev))
    num_senones = read_num_senones(args.senone_counts)
    model = StudentModel(examples[0].feats.shape[1], num_senones, config.model, info["dim"], num_layers)
    model.set_normalisation(*feature_stats(examples))
    params, teacher_params = inference_parameters(model), info.get("teacher_parameters")
    log.info("student %s: %d parameters at test time; teacher %s (ratio %.3f)", config.model.kind, params,
             teacher_params, params / teacher_params if teacher_params else float("nan"))

    history = Trainer(model, config, args.exp_dir, args.seed, args.device).run(examples, dev)
    log_priors = log_priors_from_counts(senone_counts(examples, num_senones), config.train.prior_floor)
    ckpt_io.save(checkpoint_dict(model, config, log_priors, info, {"seed": args.seed}), args.exp_dir / "final.pt")
    stats = {"history": history, "parameters": params, "teacher_parameters": teacher_params,
             "ratio": params / teacher_params if teacher_params else None, "kind": config.model.kind,
             "distill_epochs": config.train.distill_epochs, "teacher": info["fingerprint"]}
    atomic.write_text(args.exp_dir / "train_stats.json", json.dumps(stats, indent=1) + "\n")
    atomic.mark_done(args.exp_dir, fingerprint=digest)
    log.info("wrote %s", args.exp_dir / "final.pt")


if __name__ == "__main__":
    main()
