"""Benchmark of forced alignment (steps.align) on a recipe's dev set.

Prints, for the trained monophone alignment model of a recipe (exp/mono/final.pt):
  - the alignment pass itself in one process (network forward + k2 intersect_dense and
    shortest_path, graphs compiled beforehand) with --threads torch threads: audio seconds
    per wall second;
  - graph compilation time for the same cuts;
  - the whole program `python -m steps.align --nj N` (start-up, feature loading, graphs,
    alignment, writing the arrays and the merged manifest): audio seconds per wall second;
  - the flat-start training time of the model, from exp/mono/.done.

    python -m steps.bench.bench_align --recipe egs/synth/s5 [--part dev] [--nj 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from lhotse import CutSet

from steps import checkpoint
from steps.align_model import model_from_checkpoint
from steps.lexicon import Lang
from steps.topology import Topology
from steps.train_mono import align_utterances
from steps.training_graph import TrainingGraphCompiler
from steps.utterances import load_utterances


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("egs/synth/s5"))
    parser.add_argument("--corpus", default="synth")
    parser.add_argument("--part", default="dev")
    parser.add_argument("--nj", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the in-process pass")
    args = parser.parse_args(argv)
    recipe = args.recipe.resolve()
    model_path = recipe / "exp/mono/final.pt"
    cuts_path = recipe / f"data/fbank/{args.corpus}_cuts_{args.part}.jsonl.gz"
    for path in (model_path, cuts_path):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run the recipe's stages 1-4 first")

    os.chdir(recipe)  # the manifests' storage paths are relative to the recipe
    torch.set_num_threads(args.threads)
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
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
        program_seconds = time.perf_counter() - start

    done = recipe / "exp/mono/.done"
    flat_start = json.loads(done.read_text()).get("train_seconds") if done.exists() else None
    print(f"alignment benchmark: {args.part} of {recipe}, {len(utterances)} cuts, {audio:.0f} s of audio, "
          f"{os.cpu_count()} cores")
    print(f"graph compilation   : {compile_seconds:7.2f} s   ({audio / compile_seconds:7.0f}x real time)")
    print(f"alignment pass      : {align_seconds:7.2f} s   ({audio / align_seconds:7.0f}x real time, "
          f"{args.threads} threads, {aligned}/{len(utterances)} aligned)")
    print(f"  in CPU time       : {align_cpu:7.2f} s   ({audio / align_cpu:7.0f}x real time per core; "
          "wall figures count waiting for the cores on a shared machine)")
    print(f"steps.align --nj {args.nj}  : {program_seconds:7.2f} s   ({audio / program_seconds:7.0f}x real time, "
          "whole program)")
    if flat_start is not None:
        print(f"flat-start training : {flat_start:7.1f} s   (exp/mono/.done)")
    else:
        print("flat-start training : no timing in exp/mono/.done")


if __name__ == "__main__":
    main()
