"""Benchmark of the plm level (pre-trained LM teachers, steps.kd) on CPU.

Prints:
1. dump throughput, tokens (pieces) per second of PretrainedTeacher.top_k (k = 8) on one
   CPU thread, for a GPT-2-small-sized causal model (12 layers x 768, 50,257 pieces,
   context 1024) and a BERT-base-sized masked one (12 x 768, 30,522 pieces; one masked
   copy per piece), both randomly initialised (speed does not depend on the weights),
   transcripts of --pieces pieces;
2. the auxiliary head's cost in the acoustic model: one training step (forward, the KD
   loss, backward) of the tdnnf AM of conf/am_aux_plm.yaml (6 x 256) on a batch of
   utterances, without an auxiliary head (baseline), with a full 50,257-way head and with
   the top-k-restricted head (output: topk, k = 8), one thread.

    utils/bench/bench_plm.py [--tokens 1000] [--masked-tokens 100] [--frames 6000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from steps.am.losses import ce_sum, kd_sum
from steps.am.model import AcousticModel, AuxHeadConfig, ModelConfig
from steps.kd.pretrained_teacher import PretrainedTeacher
from steps.kd.random_models import write_bert, write_gpt2

TEXT = ["the cat sat on the mat", "she walked home today", "i do not know where it went"] * 20


def dump_rate(teacher: PretrainedTeacher, num_tokens: int, pieces: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    sentences = [rng.integers(0, teacher.num_units, pieces).tolist()
                 for _ in range(max(1, num_tokens // pieces))]
    teacher.top_k(sentences[:1], 8, 1.0)  # warm-up
    start = time.perf_counter()
    teacher.top_k(sentences, 8, 1.0)
    return sum(map(len, sentences)) / (time.perf_counter() - start)


def head_step_ms(head: str, frames: int, vocab: int, steps: int = 3, seed: int = 0) -> float:
    torch.manual_seed(seed)
    heads = [] if head == "none" else [AuxHeadConfig("plm", 6, 64, output=head)]
    config = ModelConfig(num_layers=6, hidden_dim=256, bottleneck_dim=64, prefinal_dim=128,
                         dropout=0.0, aux_heads=heads)
    model = AcousticModel(80, 1000, config, {"plm": vocab})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    num_utts, length = 8, frames // 8
    feats = torch.randn(num_utts, length, 80)
    lens = torch.full((num_utts,), length)
    m = num_utts * ((length + 2) // 3)
    labels = torch.randint(0, 1000, (m,))
    ids = torch.randint(0, vocab, (m, 8))
    probs = torch.softmax(torch.randn(m, 8), dim=-1)
    mask = torch.rand(m) < 0.8
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        out = model(feats, lens)
        s, c = ce_sum(out.main, labels)
        loss = s / c
        if heads:
            s, c = kd_sum(out.aux["plm"], ids, probs, mask)
            loss = loss + 0.3 * s / c
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1000, help="pieces scored by the causal model")
    parser.add_argument("--masked-tokens", type=int, default=100, help="pieces scored by the masked model")
    parser.add_argument("--pieces", type=int, default=20, help="pieces per transcript")
    parser.add_argument("--frames", type=int, default=6000, help="input frames per AM batch (8 utterances)")
    parser.add_argument("--vocab", type=int, default=50257)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        gpt2 = write_gpt2(Path(tmp) / "gpt2", TEXT, vocab_size=300, layers=12, dim=768, heads=12,
                          context=1024, filler_to=args.vocab)
        teacher = PretrainedTeacher.load(gpt2)
        rate = dump_rate(teacher, args.tokens, args.pieces)
        print(f"plm dump, GPT-2-small-sized causal (12x768, {teacher.num_units} pieces), 1 thread: "
              f"{rate:.0f} tokens/s ({args.tokens} pieces, {args.pieces} per transcript, top-8)")
        del teacher
        if args.masked_tokens:
            bert = write_bert(Path(tmp) / "bert", TEXT, vocab_size=300, layers=12, dim=768, heads=12,
                              context=512, filler_to=30522)
            teacher = PretrainedTeacher.load(bert)
            rate = dump_rate(teacher, args.masked_tokens, args.pieces)
            print(f"plm dump, BERT-base-sized masked (12x768, {teacher.num_units} pieces), 1 thread: "
                  f"{rate:.1f} tokens/s ({args.masked_tokens} pieces, one masked copy per word)")
    base = head_step_ms("none", args.frames, args.vocab)
    full = head_step_ms("full", args.frames, args.vocab)
    topk = head_step_ms("topk", args.frames, args.vocab)
    print(f"AM step (tdnnf 6x256, {args.frames} frames, 1 thread): baseline {base:.0f} ms; "
          f"+ full {args.vocab}-way plm head {full:.0f} ms ({full / base:.2f}x); "
          f"+ top-k-restricted head {topk:.0f} ms ({topk / base:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
