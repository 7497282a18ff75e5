"""Benchmark of forced alignment (steps.align) on a recipe's dev set.

Prints, for the trained monophone alignment model of a recipe (exp/mono/final.pt):
  - the alignment pass itself in one process (network forward + k2 intersect_dense and
    shortest_path, graphs compiled beforehand) with --threads torch threads: audio seconds
    per wall second;
  - graph compilation time for the same cuts;
  - the whole program `python -m steps.align --nj N` (start-up, feature loading, graphs,
    alignment, writing the arrays and the merged manifest): audio seconds per wall second;
  - the flat start itself, measured here (not read from a marker): steps.train_mono on the
    recipe's training cuts with --mono-config and with the --reference-config it is compared
    with, taking turns (--rounds), each model then aligning the part (steps.align) and
    scored against the true word boundaries (steps.score_alignment): wall and CPU seconds,
    their ratio to the reference's in the same run, and the share of word boundaries within
    20 ms and 50 ms, and the default's difference from the reference in those shares with a
    95% interval and p-value (paired bootstrap over cuts, steps.scoring.bootstrap). Needs only
    stages 1-3 (data/fbank, data/lang).

    utils/bench/bench_align.py --recipe egs/synth/s5 [--part dev] [--nj 2] \
        [--mono-config conf/mono.yaml] [--reference-config conf/mono_reference.yaml] [--rounds 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from steps.core import checkpoint
from steps.data.utterances import load_utterances
from steps.hmm.align_model import model_from_checkpoint
from steps.hmm.mono_training import align_utterances
from steps.hmm.topology import Topology
from steps.hmm.training_graph import TrainingGraphCompiler
from steps.lang.lexicon import Lang
from steps.scoring.boundaries import cut_errors, score_cuts, within_counts
from steps.scoring.bootstrap import RatioItems, format_p, paired_bootstrap

REPO = Path(__file__).resolve().parents[2]


def _run_timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Runs a program to its end; (wall seconds, CPU seconds of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def flat_start_trial(recipe: Path, corpus: str, part: str, config: Path, work: Path, nj: int) -> dict:
    """steps.train_mono with `config` on the training cuts (timed), then steps.align of `part`
    with the model it made, scored against the true word boundaries."""
    exp = work / "mono"
    wall, cpu = _run_timed([sys.executable, "-m", "steps.train_mono", "--config", str(config),
                            "--cuts", f"data/fbank/{corpus}_cuts_train.jsonl.gz", "--lang-dir", "data/lang",
                            "--exp-dir", str(exp), "--force"], recipe)
    _run_timed([sys.executable, "-m", "steps.align", "--model", str(exp / "final.pt"),
                "--topology", str(exp / "topology.json"), "--cuts", f"data/fbank/{corpus}_cuts_{part}.jsonl.gz",
                "--lang-dir", "data/lang", "--part", part, "--out-dir", str(work / "ali"), "--nj", str(nj),
                "--cmd", str(REPO / "utils" / "run.py"), "--force"], recipe)
    cuts = CutSet.from_file(work / "ali" / f"cuts_{part}.jsonl.gz")
    quality, _ = score_cuts(cuts)
    return {"wall": wall, "cpu": cpu, "within_20ms": quality.within_20ms, "within_50ms": quality.within_50ms,
            "boundaries": quality.boundaries, "errors": cut_errors(cuts)[0]}


def paired_boundary_difference(reference: list[dict], default: list[dict], seconds: float):
    """Paired bootstrap over cuts of the share of boundaries within `seconds`, default minus
    reference; round i of one is paired with round i of the other, rounds pooled."""
    items = {"reference": ([], []), "default": ([], [])}
    for ref, new in zip(reference, default):
        ids = sorted(set(ref["errors"]) & set(new["errors"]))
        for name, trial in (("reference", ref), ("default", new)):
            within, total = within_counts(trial["errors"], ids, seconds)
            items[name][0].append(within)
            items[name][1].append(total)
    a, b = (RatioItems(np.concatenate(items[n][0]), np.concatenate(items[n][1])) for n in ("reference", "default"))
    return paired_bootstrap(a, b)


def compare_flat_starts(recipe: Path, corpus: str, part: str, configs: dict[str, Path], rounds: int,
                        nj: int) -> dict[str, list[dict]]:
    """Each config's trials, the configs taking turns round by round so that other jobs on a
    shared machine weigh on them alike."""
    trials: dict[str, list[dict]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="bench_align_") as tmp:
        for round_index in range(rounds):
            order = list(configs) if round_index % 2 == 0 else list(reversed(configs))
            for name in order:
                trials[name].append(flat_start_trial(recipe, corpus, part, configs[name],
                                                     Path(tmp) / f"{name}_{round_index}", nj))
    return trials


def print_flat_starts(trials: dict[str, list[dict]], configs: dict[str, Path], train_hours: float,
                      part: str) -> None:
    reference = trials.get("reference")
    print(f"flat start (steps.train_mono, measured here) on {train_hours:.2f} h of training speech; "
          f"then steps.align of {part}, word boundaries against the true ones")
    print(f"{'config':<36} {'wall s':>8} {'CPU s':>8} {'wall/ref':>9} {'CPU/ref':>8} "
          f"{'within 20 ms':>13} {'within 50 ms':>13}")
    for name, rows in trials.items():
        for i, r in enumerate(rows):
            ref = reference[i] if reference else None
            wall_ratio = f"{r['wall'] / ref['wall']:.3f}x" if ref else "-"
            cpu_ratio = f"{r['cpu'] / ref['cpu']:.3f}x" if ref else "-"
            label = f"{name}: {configs[name].name}" + (f" #{i + 1}" if len(rows) > 1 else "")
            print(f"{label:<36} {r['wall']:>8.1f} "
                  f"{r['cpu']:>8.1f} {wall_ratio:>9} {cpu_ratio:>8} {100 * r['within_20ms']:>12.1f}% "
                  f"{100 * r['within_50ms']:>12.1f}%")
    if reference and "default" in trials:
        speedup = sum(r["cpu"] for r in reference) / sum(r["cpu"] for r in trials["default"])
        wall_speedup = sum(r["wall"] for r in reference) / sum(r["wall"] for r in trials["default"])
        print(f"speed-up of the default over the reference: {speedup:.2f}x in CPU time, "
              f"{wall_speedup:.2f}x in wall time (aim: >= 3x, boundaries no worse)")
        for ms in (20, 50):
            c = paired_boundary_difference(reference, trials["default"], ms / 1000)
            print(f"within {ms} ms, default - reference: {100 * c.difference.value:+.2f} points, 95% interval "
                  f"{100 * c.difference.low:+.2f} to {100 * c.difference.high:+.2f} (paired bootstrap over "
                  f"{c.items} cuts x rounds, {format_p(c.p_value, c.draws)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("egs/synth/s5"))
    parser.add_argument("--corpus", default="synth")
    parser.add_argument("--part", default="dev")
    parser.add_argument("--nj", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the in-process pass")
    parser.add_argument("--mono-config", type=Path, default=None,
                        help="flat-start config to time (default: the recipe's conf/mono.yaml)")
    parser.add_argument("--reference-config", type=Path, default=None,
                        help="config it is compared with (default: the recipe's conf/mono_reference.yaml "
                             "if there is one); 'none': no comparison")
    parser.add_argument("--rounds", type=int, default=1, help="turns of each flat-start config")
    parser.add_argument("--no-flat-start", action="store_true", help="skip the flat-start timing")
    args = parser.parse_args(argv)
    recipe = args.recipe.resolve()
    model_path = recipe / "exp/mono/final.pt"
    cuts_path = recipe / f"data/fbank/{args.corpus}_cuts_{args.part}.jsonl.gz"
    train_path = recipe / f"data/fbank/{args.corpus}_cuts_train.jsonl.gz"
    for path in (cuts_path, train_path, recipe / "data/lang"):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run the recipe's stages 1-3 first")
    configs = {}
    if not args.no_flat_start:
        configs["default"] = (args.mono_config or recipe / "conf/mono.yaml").resolve()
        reference = args.reference_config or recipe / "conf/mono_reference.yaml"
        if str(reference) != "none" and Path(reference).exists():
            configs = {"reference": Path(reference).resolve(), **configs}
        for path in configs.values():
            if not path.exists():
                raise SystemExit(f"{path} is missing")

    os.chdir(recipe)  # the manifests' storage paths are relative to the recipe
    torch.set_num_threads(args.threads)
    print(f"alignment benchmark: {args.part} of {recipe}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    if configs:
        train_hours = sum(c.duration for c in CutSet.from_file(train_path)) / 3600
        trials = compare_flat_starts(recipe, args.corpus, args.part, configs, args.rounds, args.nj)
        print_flat_starts(trials, configs, train_hours, args.part)
    if not model_path.exists():
        print(f"alignment pass: not run ({model_path} is missing: run the recipe's stage 4)")
        return
    ckpt = checkpoint.load(model_path)
    model = model_from_checkpoint(ckpt)
    lang = Lang.load(recipe / "data/lang")
    topology = Topology.from_dict(json.loads((recipe / "exp/mono/topology.json").read_text()))
    cuts = CutSet.from_file(cuts_path)
    utterances, skipped = load_utterances(cuts, "loading features")
    if not utterances:
        raise SystemExit(f"no usable cuts in {cuts_path}: {skipped[:3]}")
    audio = sum(u.num_frames for u in utterances) * 0.01
    train_config = ckpt.get("train_config", {})
    compiler = TrainingGraphCompiler(lang, topology, train_config.get("sil_prob", 0.5),
                                     train_config.get("edge_sil_prob"))
    start = time.perf_counter()
    graphs = [compiler.compile(u.words) for u in utterances]
    compile_seconds = time.perf_counter() - start
    prior_scale = train_config.get("training", {}).get("prior_scale", 0.0)
    start, cpu_start = time.perf_counter(), time.process_time()
    results = align_utterances(model, utterances, graphs, 20000, 20.0, torch.device("cpu"), "aligning",
                               ckpt.get("log_priors"), prior_scale)
    align_seconds, align_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    aligned = sum(not isinstance(r, str) for r in results)

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "steps.align", "--model", str(model_path),
                   "--topology", str(recipe / "exp/mono/topology.json"), "--cuts", str(cuts_path),
                   "--lang-dir", str(recipe / "data/lang"), "--part", args.part, "--out-dir", tmp,
                   "--nj", str(args.nj), "--cmd", str(recipe / "utils/run.py")]
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=recipe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
        program_seconds = time.perf_counter() - start

    print(f"alignment pass of exp/mono/final.pt: {len(utterances)} cuts, {audio:.0f} s of audio")
    print(f"graph compilation   : {compile_seconds:7.2f} s   ({audio / compile_seconds:7.0f}x real time)")
    print(f"alignment pass      : {align_seconds:7.2f} s   ({audio / align_seconds:7.0f}x real time, "
          f"{args.threads} threads, {aligned}/{len(utterances)} aligned)")
    print(f"  in CPU time       : {align_cpu:7.2f} s   ({audio / align_cpu:7.0f}x real time per core; "
          "wall figures count waiting for the cores on a shared machine)")
    print(f"steps.align --nj {args.nj}  : {program_seconds:7.2f} s   ({audio / program_seconds:7.0f}x real time, "
          "whole program)")


if __name__ == "__main__":
    main()
