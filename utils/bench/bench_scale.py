"""How the stages that grow with data scale: wall time and peak memory at three sizes, the
growth read off them, and a projection to a full-size corpus (LibriSpeech's 960 h of training
speech and its 800M-word LM corpus by default).

Runs the recipe's own programs (python -m steps.X, one thread) on nested shares of a recipe
trained through stage 9 (--recipe): the first --fractions of the training cuts, of the LM
text's lines and of the test cuts, in their order (a fraction above 1 repeats them: the LM
text's lines, and the cuts as copies with new ids, `<id>_rep<n>`, on the same features and
labels, for the stages whose cost follows their number). Each run is a process of its own, timed by
the wall clock; its peak resident memory is that of the largest process it ran (getrusage of
its reaped children, in a wrapper process of its own). Per stage it prints the size in the
stage's unit (hours of speech, LM words), seconds and MiB at each size, the exponents b of
least-squares fits t = a n^b and m = c n^b (the growth), and time and memory at the target
size from a fixed cost plus a cost per unit fitted to the three points (a lower bound where
the growth is faster than linear).

    utils/bench/bench_scale.py --recipe egs/synth/s5 --work-dir /tmp/bench_scale
        [--fractions 0.25,0.5,1] [--stages "ngram hclg ..."] [--target-hours 960]
        [--target-lm-words 8e8] [--target-decode-hours 21.4] [--json out.json]

Three sizes within a factor of 4 read the growth; a projection across three orders of
magnitude from them is a first estimate, not a measurement: a stage whose cost does not follow
one power of the size (a cache that stops fitting, an n-gram count that saturates on a
grammar's text) bends away from it. The synth corpus's LM text comes from a grammar of 2,480
words, so its n-gram and graph sizes grow more slowly than real text's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from lhotse import CutSet

REPO = Path(__file__).resolve().parents[2]
WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - start,
                  "max_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""
GIB = 1024.0
MACHINE_GIB, DAY_HOURS = 24.0, 24.0  # "fits": this machine's memory, and a day on one core


@dataclass
class Stage:
    name: str
    unit: str  # "h" (training speech), "words" (LM text), "test h" (speech decoded)
    what: str
    commands: Callable[[str], list[list[str]]]  # the timed commands at share k ("0.5")
    setup: Callable[[str], list[list[str]]] = lambda k: []  # untimed, before them
    points: list[dict] = field(default_factory=list)


class Shares:
    """The share k of the recipe's inputs, made once under the work dir."""

    def __init__(self, recipe: Path, work: Path):
        self.recipe, self.work = recipe, work

    def path(self, name: str) -> str:
        return str(self.work / name)

    def lm_text(self, k: str) -> str:
        return self.path(f"lm_text_{k}.txt")

    def cuts(self, name: str, k: str) -> str:
        """Share k of the cuts `name` of make_shares: train, test, mono_ali, senone_ali, kd."""
        return self.path(f"cuts_{name}_{k}.jsonl.gz")


def make_shares(recipe: Path, work: Path, fractions: list[float]) -> dict[str, dict]:
    """Writes every share's LM text and cut lists; returns each share's sizes."""
    shares = Shares(recipe, work)
    lines = (recipe / "data/text/lm_text.txt").read_text().splitlines()
    sources = {"train": "data/fbank/synth_cuts_train.jsonl.gz", "test": "data/fbank/synth_cuts_test.jsonl.gz",
               "mono_ali": "exp/mono_ali/cuts_train.jsonl.gz", "kd": "data/kd/synth_cuts_train.jsonl.gz"}
    sources["senone_ali"] = next(str(p.relative_to(recipe)) for p in
                                 [recipe / "exp/senone_ali/cuts_train.jsonl.gz", recipe / "exp/tri_ali/cuts_train.jsonl.gz"]
                                 if p.exists())
    cut_sets = {name: CutSet.from_file(recipe / path) for name, path in sources.items()}
    sizes = {}
    for f in fractions:
        k = f"{f:g}"
        # a share above 1 repeats the text: as many tokens, no new n-grams
        head = [lines[i % len(lines)] for i in range(max(1, int(round(f * len(lines)))))]
        Path(shares.lm_text(k)).write_text("\n".join(head) + "\n")
        sizes[k] = {"words": sum(len(line.split()) for line in head)}
        for name, path in sources.items():
            subset = repeated(cut_sets[name], f)
            subset.to_file(shares.cuts(name, k))
            if name in ("train", "test"):
                sizes[k]["h" if name == "train" else "test h"] = sum(c.duration for c in subset) / 3600
    return sizes


def repeated(cuts: CutSet, fraction: float) -> CutSet:
    """The first fraction of the cuts; above 1, copies of them with new ids (<id>_rep<n>)."""
    wanted = max(1, int(round(fraction * len(cuts))))
    copies = [cuts if n == 0 else cuts.modify_ids(lambda i, n=n: f"{i}_rep{n}")
              for n in range(-(-wanted // len(cuts)))]
    return CutSet.from_cuts(c for copy in copies for c in copy).subset(first=wanted)


# `python -m` puts the working folder (the recipe, whose steps/ may be another checkout's)
# first on the path; this runs the module of this repository.
RUNNER = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); module = sys.argv[2]; "
          "sys.argv = [module] + sys.argv[3:]; runpy.run_module(module, run_name='__main__', alter_sys=True)")


def py(module: str, *args: str) -> list[str]:
    return [sys.executable, "-c", RUNNER, str(REPO), module, *args]


def stages(recipe: Path, work: Path, mono_subset: int = 500) -> list[Stage]:
    s = Shares(recipe, work)
    one_epoch = work / "am_one_epoch.yaml"
    one_epoch.write_text("train:\n  num_epochs: 1\n")
    from_disk = work / "am_from_disk.yaml"
    from_disk.write_text("data:\n  cache_in_memory: false\n")
    teacher_conf = work / "lm_subword_steps.yaml"
    teacher_conf.write_text(f"base: {recipe.resolve()}/conf/lm_subword.yaml\n"
                            "train:\n  max_steps: 60\n  valid_every: 60\n  save_every: 60\n")
    senone_ali = "exp/senone_ali" if (recipe / "exp/senone_ali").exists() else "exp/tri_ali"
    tok = ["--lang-dir", "data/lang", "--tree", "exp/tree", "--pron-counts", "exp/mono_ali/pron_counts_train.txt",
           "--bpe-model", "data/lang_bpe_500/bpe.model"]
    def make_lm(k: str, *force: str) -> list[str]:
        return py("steps.make_lm", "--text", s.lm_text(k), "--lang-dir", "data/lang", "--order", "3",
                  "--min-count", "3gram:2", "--out-dir", s.path(f"lang_test_{k}"), *force)

    return [
        Stage("ngram", "words", "3-gram estimation (steps.make_lm, KN, min count 2)",
              lambda k: [make_lm(k, "--force")]),
        Stage("hclg", "words", "HCLG of that G (steps.mkgraph)",
              lambda k: [py("steps.mkgraph", "--lang-dir", "data/lang", "--lm-dir", s.path(f"lang_test_{k}"),
                            "--tree", "exp/tree", "--out-dir", s.path(f"graph_{k}"), "--force")],
              setup=lambda k: [make_lm(k)]),
        Stage("lm_tokens", "words", "senone token corpus of the LM text (steps.lm_tokens)",
              lambda k: [py("steps.lm_tokens", "--level", "senone", "--lm-text", s.lm_text(k), *tok,
                               "--out-dir", s.path(f"tok_senone_{k}"), "--force")]),
        Stage("teacher", "words", "subword teacher, 60 steps (steps.train_lm; time per step is flat, memory shows "
              "whether the corpus is held)",
              lambda k: [py("steps.train_lm", "--level", "subword", "--config", str(teacher_conf),
                               "--data-dir", s.path(f"tok_subword_{k}"), "--exp-dir", s.path(f"teacher_{k}"),
                               "--num-threads", "1", "--allow-worse-than-bigram", "--force")],
              setup=lambda k: [py("steps.lm_tokens", "--level", "subword", "--lm-text", s.lm_text(k), *tok,
                                     "--out-dir", s.path(f"tok_subword_{k}"))]),
        Stage("flat_start", "h", "flat-start monophone model (steps.train_mono, conf/mono.yaml)",
              lambda k: [py("steps.train_mono", "--config", "conf/mono.yaml", "--cuts",
                               s.cuts("train", k), "--lang-dir", "data/lang",
                               "--exp-dir", s.path(f"mono_{k}"), "--num-threads", "1", "--force")]),
        Stage("flat_start_subset", "h", f"flat start on {mono_subset} utterances drawn at random (steps.subset_cuts, "
              "steps.train_mono; as run.sh's mono_subset, drawn at random rather than the shortest)",
              lambda k: [py("steps.train_mono", "--config", "conf/mono.yaml", "--cuts", s.path(f"mono_subset_{k}.jsonl.gz"),
                            "--lang-dir", "data/lang", "--exp-dir", s.path(f"mono_subset_{k}"), "--num-threads", "1",
                            "--force")],
              setup=lambda k: [py("steps.subset_cuts", "--cuts", s.cuts("train", k), "--num", str(mono_subset),
                                  "--strategy", "random",  # the same lengths at every size
                                  "--out", s.path(f"mono_subset_{k}.jsonl.gz"), "--force")]),
        Stage("align", "h", "Viterbi alignment (steps.align, one job)",
              lambda k: [py("steps.align", "--model", "exp/mono/final.pt", "--cuts",
                               s.cuts("train", k), "--lang-dir", "data/lang",
                               "--part", "train", "--out-dir", s.path(f"ali_{k}"), "--nj", "1", "--force")]),
        Stage("tree", "h", "tree statistics and the tree (steps.acc_tree_stats, steps.build_tree)",
              lambda k: [py("steps.acc_tree_stats", "--cuts", s.cuts("mono_ali", k),
                               "--topology", "exp/mono_ali/topology.json", "--lang-dir", "data/lang", "--out-dir", s.path(f"tree_{k}"), "--nj", "1", "--force"),
                            py("steps.build_tree", "--stats-dir", s.path(f"tree_{k}"), "--lang-dir", "data/lang",
                               "--num-leaves", "1000", "--thresh", "300", "--out-dir", s.path(f"tree_{k}"),
                               "--force")]),
        Stage("soft_labels", "h", "the three teachers' soft labels (steps.dump_soft_labels, one job)",
              lambda k: [py("steps.dump_soft_labels", "--cuts", s.cuts("senone_ali", k),
                               "--part", "train", "--lang-dir", "data/lang", "--tree", f"{senone_ali}/tree.txt",
                               "--bpe-model", "data/lang_bpe_500/bpe.model", "--teachers", "exp/lm_senone",
                               "exp/lm_phone", "exp/lm_subword", "--top-k", "8", "--temperature", "1.0",
                               "--out-dir", s.path(f"kd_{k}"), "--corpus", "synth", "--device", "cpu", "--nj", "1",
                               "--force")]),
        Stage("am_epoch", "h", "one epoch of the hier AM (steps.train_am, data cached in memory)",
              lambda k: [py("steps.train_am", "--config", "conf/am_hier.yaml", "--override", str(one_epoch),
                               "--cuts", s.cuts("kd", k),
                               "--dev-cuts", "data/kd/synth_cuts_dev.jsonl.gz",
                               "--senone-counts", f"{senone_ali}/senone_counts.txt",
                               "--exp-dir", s.path(f"am_{k}"), "--seed", "1", "--num-threads", "1", "--force")]),
        Stage("am_epoch_disk", "h", "the same with data.cache_in_memory: false (batches read from disk)",
              lambda k: [py("steps.train_am", "--config", "conf/am_hier.yaml", "--override", str(one_epoch),
                            "--override", str(from_disk), "--cuts", s.cuts("kd", k),
                            "--dev-cuts", "data/kd/synth_cuts_dev.jsonl.gz",
                            "--senone-counts", f"{senone_ali}/senone_counts.txt",
                            "--exp-dir", s.path(f"am_disk_{k}"), "--seed", "1", "--num-threads", "1", "--force")]),
        Stage("decode", "test h", "k2 lattice search of the test cuts with exp/graph (steps.decode)",
              lambda k: [py("steps.decode", "--model", "exp/am_baseline_s1/final.pt", "--graph", "exp/graph",
                               "--cuts", s.cuts("test", k),
                               "--lang-dir", "data/lang", "--out-dir", s.path(f"decode_{k}"), "--num-threads", "1",
                               "--beam", "10", "--lattice-beam", "6", "--max-active", "7000", "--force")]),
    ]


def measure(command: list[str], cwd: Path, log) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", WRAPPER, *command], cwd=cwd, env=env, check=False,
                         stdout=subprocess.PIPE, stderr=log, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"failed ({result['rc']}): {' '.join(command)} (log: {log.name})")
    return result


def fit(sizes: list[float], values: list[float]) -> tuple[float, float]:
    """(a, b) of values = a * sizes^b, least squares in logs."""
    b, log_a = np.polyfit(np.log(sizes), np.log(values), 1)
    return float(np.exp(log_a)), float(b)


def affine(sizes: list[float], values: list[float]) -> tuple[float, float]:
    """(fixed, per unit) of values = fixed + per_unit * sizes, least squares."""
    per_unit, fixed = np.polyfit(sizes, values, 1)
    return float(fixed), float(per_unit)


def report(stage: Stage, target: float) -> dict:
    """The growth (power-law exponents) and the projection by fixed cost plus cost per unit;
    a stage that grows faster than its size (exponent above 1.1) projects at least that."""
    n = [p["size"] for p in stage.points]
    seconds = [p["seconds"] for p in stage.points]
    mib = [p["max_rss_kib"] / 1024 for p in stage.points]
    _, time_b = fit(n, seconds)
    _, memory_b = fit(n, mib)
    t0, t_rate = affine(n, seconds)
    m0, m_rate = affine(n, mib)
    row = {"stage": stage.name, "unit": stage.unit, "what": stage.what, "points": stage.points,
            "time_exponent": time_b, "memory_exponent": memory_b, "target": target,
            "seconds_fixed": t0, "seconds_per_unit": t_rate, "mib_fixed": m0, "mib_per_unit": m_rate,
            "projected_hours": max(t0, t0 + t_rate * target) / 3600,
            "projected_gib": max(m0, m0 + m_rate * target) / GIB,
            "lower_bound": time_b > 1.1 or memory_b > 1.1}
    row["fits"] = row["projected_gib"] <= MACHINE_GIB and row["projected_hours"] <= DAY_HOURS
    return row


def format_table(rows: list[dict]) -> str:
    lines = [f"{'stage':12s} {'unit':7s} {'sizes':>26s} {'seconds':>20s} {'peak MiB':>16s}  "
             f"{'time b':>6s} {'mem b':>6s}  {'target':>8s} {'proj. h':>9s} {'proj. GiB':>9s}  fits"]
    for r in rows:
        sizes = " ".join(f"{p['size']:.3g}" for p in r["points"])
        secs = " ".join(f"{p['seconds']:.1f}" for p in r["points"])
        mem = " ".join(f"{p['max_rss_kib'] / 1024:.0f}" for p in r["points"])
        bound = ">=" if r["lower_bound"] else ""
        lines.append(f"{r['stage']:12s} {r['unit']:7s} {sizes:>26s} {secs:>20s} {mem:>16s}  "
                     f"{r['time_exponent']:6.2f} {r['memory_exponent']:6.2f}  {r['target']:8.3g} "
                     f"{bound + format(r['projected_hours'], '.3g'):>9s} {bound + format(r['projected_gib'], '.3g'):>9s}  "
                     f"{'yes' if r['fits'] else 'no'}")
    lines.append("time b, mem b: exponents of power-law fits over the sizes (1: linear; a fixed cost pulls "
                 "them below 1); proj.: fixed cost plus cost per unit (linear least squares) at the target, "
                 ">= where an exponent exceeds 1.1 (grows faster than linearly: a lower bound); fits: at most "
                 f"{MACHINE_GIB:g} GiB and {DAY_HOURS:g} h on one core")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=REPO / "egs/synth/s5")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/lm2am_bench_scale"))
    parser.add_argument("--fractions", default="0.25,0.5,1", help="shares of the inputs, comma-separated")
    parser.add_argument("--stages", default=None, help="names, space-separated (default: all)")
    parser.add_argument("--target-hours", type=float, default=960.0)
    parser.add_argument("--target-lm-words", type=float, default=8e8)
    parser.add_argument("--target-decode-hours", type=float, default=21.4,
                        help="LibriSpeech's dev and test parts, clean and other")
    parser.add_argument("--mono-subset", type=int, default=500, help="utterances of flat_start_subset")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    recipe = args.recipe.resolve()
    fractions = sorted(float(f) for f in args.fractions.replace(",", " ").split())
    if len(fractions) < 3:
        parser.error("--fractions: three sizes at least, to read a growth off them")
    needed = ["data/text/lm_text.txt", "data/kd/synth_cuts_train.jsonl.gz", "exp/mono/final.pt", "exp/tree/tree.txt",
              "exp/lm_subword/final.pt", "exp/graph/HCLG.k2.pt", "exp/am_baseline_s1/final.pt"]
    missing = [n for n in needed if not (recipe / n).exists()]
    if missing:
        raise SystemExit(f"{recipe} is not trained through stage 9 (no {', '.join(missing)}): "
                         f"run its ./run.sh --stop-stage 9 first")
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    sizes = make_shares(recipe, work, fractions)
    chosen = stages(recipe, work, args.mono_subset)
    if args.stages:
        names = args.stages.split()
        unknown = set(names) - {st.name for st in chosen}
        if unknown:
            parser.error(f"--stages: unknown {sorted(unknown)}; known: {[st.name for st in chosen]}")
        chosen = [st for st in chosen if st.name in names]
    targets = {"h": args.target_hours, "words": args.target_lm_words, "test h": args.target_decode_hours}
    rows = []
    with open(work / "bench_scale.log", "w") as log:
        for stage in chosen:
            for f in fractions:
                k = f"{f:g}"
                for command in stage.setup(k):
                    measure(command, recipe, log)
                results = [measure(command, recipe, log) for command in stage.commands(k)]
                point = {"size": sizes[k][stage.unit], "seconds": sum(r["seconds"] for r in results),
                         "max_rss_kib": max(r["max_rss_kib"] for r in results)}
                stage.points.append(point)
                print(f"{stage.name} at {f:g}: {point['size']:.4g} {stage.unit}, {point['seconds']:.1f} s, "
                      f"{point['max_rss_kib'] / 1024:.0f} MiB", flush=True)
            rows.append(report(stage, targets[stage.unit]))
    print()
    print(f"recipe {recipe}; shares {args.fractions}; one thread; peak resident memory of the largest process")
    print(format_table(rows))
    print(f"({time.time() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "stages": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
