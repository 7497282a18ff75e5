"""The compression table in RESULTS.md: teacher, DistilHuBERT-style, from scratch and
GenDistiller students (steps.compress.results), and the disk figures of the layer caches.

Reads:  <exp-dir>/<teacher>_s<teacher-seed>/{final.pt,decode_{dev,test}/wer}
        <exp-dir>/compress_{parallel,scratch,gen}_s<seed>/{final.pt,decode_{dev,test}/wer}
        --dev-cuts (the network's CPU RTF is timed on them)
        --dump-dirs (teacher.json of each layer cache: MB per hour of speech, storage error)
Writes: --out (RESULTS.md): the section between `<!-- compress: begin -->` and
        `<!-- compress: end -->`, replaced when present, appended otherwise.

Example:
  python -m steps.compress_report --exp-dir exp --teacher am_hier_big --seeds 1 \\
      --dev-cuts data/fbank/synth_cuts_dev.jsonl.gz \\
      --dump-dirs data/compress/am data/compress/am_lilcom --out RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from lhotse import CutSet

from steps.compress.results import collect, render, splice
from steps.core.atomic import write_text
from steps.core.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp-dir", type=Path, default=Path("exp"))
    parser.add_argument("--teacher", default="am_hier_big", help="teacher run name (without _s<seed>)")
    parser.add_argument("--teacher-seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--dev-cuts", type=Path, required=True)
    parser.add_argument("--dump-dirs", type=Path, nargs="*", default=[])
    parser.add_argument("--options", default="", help="how the recipe was run, recorded in the table")
    parser.add_argument("--out", type=Path, default=Path("RESULTS.md"))
    return parser


def disk_notes(dump_dirs: list[Path]) -> list[str]:
    notes = []
    for d in dump_dirs:
        path = d / "teacher.json"
        if not path.is_file():
            notes.append(f"- {d}: no teacher.json")
            continue
        info = json.loads(path.read_text())
        for part, f in info.get("parts", {}).items():
            if not notes:
                notes.append(f"- students trained on {f['hours']:.3f} h of speech ({f['cuts']} cuts, part {part})")
            err = f.get("storage_relative_rms_error")
            notes.append(f"- layer cache {d} ({info['storage']}, {len(info['layers'])} layers x {info['dim']}, "
                         f"one frame per {info['frame_subsampling']} x 10 ms), {part}: {f['mb_per_hour']} MB "
                         f"per hour of speech; storage error max {f['storage_max_abs_error']:.2g}, "
                         f"relative RMS {err if err is None else format(err, '.2g')}")
    return (["Teacher-layer cache on disk:", *notes] if notes else [])


def provenance(options: str) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"Commit: `{commit}`. Options: `local/compress.sh {options}`. Written {when}."


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    cuts = CutSet.from_file(args.dev_cuts).to_eager()
    systems = [("(a) teacher", args.teacher, [args.teacher_seed]),
               ("(b) DistilHuBERT-style", "compress_parallel", args.seeds),
               ("(c) same size, from scratch", "compress_scratch", args.seeds),
               ("(d) GenDistiller", "compress_gen", args.seeds)]
    rows = collect(args.exp_dir, systems, cuts)
    section = render(rows, args.seeds, [*disk_notes(args.dump_dirs), "", provenance(args.options)])
    old = args.out.read_text() if args.out.is_file() else ""
    write_text(args.out, splice(old, section))
    print(section)


if __name__ == "__main__":
    main()
