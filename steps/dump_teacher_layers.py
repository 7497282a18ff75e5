"""Cache the chosen hidden layers of a teacher for every cut (steps.compress.layer_cache).

The teacher runs once; students (steps.train_student) read the cache. Teacher: an acoustic
model of steps.train_am or a local HuBERT / WavLM directory (steps.compress.teacher).

Reads:  --config  teacher YAML (steps.compress.config.TeacherConfig: kind, path, layers,
                  storage float16 | lilcom)
        --cuts    cuts with features (am) or recordings (hubert / wavlm); usually the
                  training cuts with senone_ali, which the students also need
Writes to --out-dir:
        cuts_<part>.jsonl.gz, layers_<part>.h5 (float16) or layers_<part>.lca (lilcom),
        bad_cuts_<part>.txt, teacher.json (the teacher's fingerprint, layers, dim, frame
        rate, and per part: cuts, hours, bytes, MB per hour of speech, storage error),
        log/dump_teacher_layers.log, .done (fingerprint of teacher, cuts and config: a rerun
        with the same ones is skipped; an interrupted one is redone from the start)

Example:
  python -m steps.dump_teacher_layers --config conf/compress/teacher_am.yaml \\
      --cuts data/kd/synth_cuts_train.jsonl.gz --part train --out-dir data/compress/am
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from lhotse import CutSet

from steps.core import atomic
from steps.compress.config import TeacherConfig
from steps.compress.layer_cache import dump_layers, teacher_record
from steps.compress.teacher import TeacherError, load_teacher, teacher_fingerprint, teacher_files
from steps.core.config import ConfigError, load_config, to_dict
from steps.core.log import setup_logging

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="teacher YAML")
    parser.add_argument("--cuts", type=Path, required=True)
    parser.add_argument("--part", default="train")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose, args.out_dir / "log" / "dump_teacher_layers.log")
    torch.set_num_threads(args.num_threads)
    try:
        config = load_config(args.config, TeacherConfig)
        files = teacher_files(config)
    except (ConfigError, TeacherError) as e:
        raise SystemExit(f"error: {e}") from None
    digest = atomic.inputs_fingerprint([args.cuts, *files], config=to_dict(config), part=args.part)
    if atomic.up_to_date(args.out_dir, digest, args.force, [args.out_dir / "teacher.json"],
                         what=f"{args.out_dir} teacher layers"):
        return
    atomic.clear_done(args.out_dir)
    try:
        teacher = load_teacher(config, args.device)
    except TeacherError as e:
        raise SystemExit(f"error: {e}") from None
    log.info("teacher %s %s: layers %s of dim %d, one frame per %d x 10 ms, %d parameters",
             config.kind, config.path, config.layers, teacher.dim, teacher.frame_subsampling,
             teacher.num_parameters)
    record = teacher_record(config, teacher, teacher_fingerprint(config))
    figures = dump_layers(CutSet.from_file(args.cuts), teacher, config, args.out_dir, args.part)
    if figures["cuts"] == 0:
        raise SystemExit(f"error: no cut could be dumped; see {args.out_dir}/bad_cuts_{args.part}.txt")
    record["parts"] = {args.part: figures}
    atomic.write_text(args.out_dir / "teacher.json", json.dumps(record, indent=2) + "\n")
    atomic.mark_done(args.out_dir, fingerprint=digest)


if __name__ == "__main__":
    main()
