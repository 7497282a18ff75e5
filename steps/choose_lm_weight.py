"""One LM weight per system: chosen on the dev decodes of all its seeds together.

Each seed's dev decode (steps.decode with an LM-weight sweep) holds its word errors at every
weight (decode_info.json); the weight with the fewest errors summed over the seeds is the
system's, written where `steps.decode --lm-weight-from` reads a weight. A seed that picked
its own weight would carry that choice's noise into its test figure, and the spread between
seeds, which limits every comparison of systems, would grow by it.

    python -m steps.choose_lm_weight --dev-dirs exp/am_baseline_s{1,2,3}/decode_dev \
        --out-dir exp/lm_weights/baseline/decode_dev

Writes <out-dir>/best_lm_weight, and <out-dir>/rescore/best_lm_weight where every dev decode
was rescored; <out-dir>/choice.json: the pooled WER of every weight, each seed's own best
weight and the decodes it was chosen from.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from steps.core import atomic
from steps.core.log import setup_logging
from steps.decoding.lm_weights import format_weight, pooled_weight, sweep_counts

log = logging.getLogger(__name__)


def read_info(dev_dir: Path) -> dict:
    path = dev_dir / "decode_info.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: decode {dev_dir} (dev, with an LM-weight sweep) first")
    return json.loads(path.read_text())


def choose(infos: list[dict], dirs: list[Path], what: str) -> dict:
    sweeps = [sweep_counts(i) for i in infos]
    lacking = [str(d) for d, s in zip(dirs, sweeps) if not s]
    if lacking:
        raise SystemExit(f"{what}: no LM-weight sweep in {' '.join(lacking)} (decoded with one weight?)")
    best, pooled = pooled_weight(sweeps)
    own = [format_weight(min(s, key=lambda w: (s[w][0], w))) for s in sweeps]
    log.info("%s: LM weight %s (pooled WER %.2f%% over %d decodes; each seed's own best: %s)", what,
             format_weight(best), pooled[best], len(infos), " ".join(own))
    return {"lm_weight": best, "pooled_wer": {format_weight(w): v for w, v in pooled.items()}, "own_best": own}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev-dirs", type=Path, nargs="+", required=True, help="one system's dev decodes")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    infos = [read_info(d) for d in args.dev_dirs]
    choice = {"decodes": [str(d) for d in args.dev_dirs], "first pass": choose(infos, args.dev_dirs, str(args.out_dir))}
    atomic.write_text(args.out_dir / "best_lm_weight", format_weight(choice["first pass"]["lm_weight"]) + "\n")
    rescored = [i.get("rescore") for i in infos]
    if all(rescored):
        choice["rescored"] = choose(rescored, args.dev_dirs, f"{args.out_dir} rescored")
        atomic.write_text(args.out_dir / "rescore" / "best_lm_weight",
                          format_weight(choice["rescored"]["lm_weight"]) + "\n")
    elif any(rescored):
        raise SystemExit(f"{args.out_dir}: some dev decodes were rescored and some not; decode them alike")
    atomic.write_text(args.out_dir / "choice.json", json.dumps(choice, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
