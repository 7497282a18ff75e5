"""Per-word perplexity of the decoder's n-gram LMs and of the subword teacher on the same
held-out sentences, and the teacher's gap to each n-gram (steps.lm.word_perplexity).

    python -m steps.lm_perplexity --text data/text/dev.txt data/text/test.txt \
        --ngram data/lang_test/lm_3gram.arpa data/lang_rescore/lm_4gram.arpa \
        --teacher exp/lm_subword --bpe-model data/lang_bpe_500/bpe.model \
        --out exp/lm_perplexity

--text: Kaldi-style `utt_id word ...` lines (data/text/<part>.txt), or plain sentences with
--no-ids. Writes <out>.txt (the table, also printed) and <out>.json; sentences any model
cannot score are left out of every figure and counted there.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from steps.core import checkpoint as ckpt_io
from steps.core.atomic import write_text
from steps.core.log import setup_logging
from steps.lm.model import model_from_checkpoint
from steps.lm.ngram import BackoffLM
from steps.lm.tokens import load_sentencepiece
from steps.lm.word_perplexity import SentenceScores, events, perplexity_gap, word_perplexity
from steps.scoring.bootstrap import format_p

log = logging.getLogger(__name__)
DRAWS = 1000


def read_sentences(paths: list[str], with_ids: bool) -> list[list[str]]:
    sentences = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            words = line.split()[1:] if with_ids else line.split()
            if words:
                sentences.append(words)
    return sentences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", nargs="+", required=True, help="held-out text files")
    parser.add_argument("--no-ids", action="store_true", help="lines are sentences without an utterance id")
    parser.add_argument("--ngram", nargs="+", required=True, help="ARPA files (the first is the reference)")
    parser.add_argument("--teacher", required=True, help="a causal subword teacher (exp/lm_subword)")
    parser.add_argument("--bpe-model", required=True)
    parser.add_argument("--out", type=Path, required=True, help="writes <out>.txt and <out>.json")
    args = parser.parse_args(argv)
    setup_logging()

    sentences = read_sentences(args.text, not args.no_ids)
    if not sentences:
        raise SystemExit(f"no sentence in {' '.join(args.text)}")
    teacher_path = Path(args.teacher) / "final.pt" if Path(args.teacher).is_dir() else Path(args.teacher)
    if not teacher_path.is_file():
        raise SystemExit(f"no teacher at {teacher_path} (train it first: stage 6)")
    checkpoint = ckpt_io.load(teacher_path)
    if checkpoint.get("level") != "subword":
        raise SystemExit(f"{teacher_path}: a {checkpoint.get('level')} teacher; the comparison needs the "
                         "subword one (its pieces spell the words)")
    try:
        model = model_from_checkpoint(checkpoint)
    except ValueError as e:
        raise SystemExit(f"{teacher_path}: {e}") from None
    teacher = SentenceScores.from_teacher(f"teacher ({teacher_path.parent.name})", model,
                                          load_sentencepiece(args.bpe_model), sentences)
    ngrams = [SentenceScores.from_ngram(Path(a).name, BackoffLM.read_arpa(a), sentences) for a in args.ngram]
    kept = teacher.scorable.copy()
    for scores in ngrams:
        kept &= scores.scorable
    if not kept.any():
        raise SystemExit("no sentence that every model can score (see the vocabularies)")
    counts = events(sentences)
    left_out = {s.name: int((~s.scorable).sum()) for s in [teacher, *ngrams]}
    lines = [f"held-out: {len(sentences)} sentences from {' '.join(args.text)}; {int(kept.sum())} scored "
             f"by every model ({int(counts[kept].sum())} words and sentence ends); left out, per model: "
             + ", ".join(f"{k} {v}" for k, v in left_out.items()),
             f"{'model':<32} {'per-word ppl':>12} {'teacher / model (95% interval, p)':>40}"]
    figures = {"sentences": len(sentences), "scored": int(kept.sum()), "events": int(counts[kept].sum()),
               "left_out": left_out, "models": {}}
    teacher_ppl = word_perplexity(teacher, counts, kept)
    for scores in ngrams:
        gap = perplexity_gap(scores, teacher, counts, kept, draws=DRAWS)
        ppl = word_perplexity(scores, counts, kept)
        p = format_p(gap.p_value, DRAWS)
        lines.append(f"{scores.name:<32} {ppl:>12.2f} {gap.ratio:>12.3f} ({gap.low:.3f} to {gap.high:.3f}, {p})")
        figures["models"][scores.name] = {"ppl": ppl, "teacher_ratio": gap.ratio, "low": gap.low,
                                          "high": gap.high, "p_value": gap.p_value}
    lines.append(f"{teacher.name:<32} {teacher_ppl:>12.2f}")
    figures["models"][teacher.name] = {"ppl": teacher_ppl}
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    write_text(args.out.with_suffix(".txt"), text)
    write_text(args.out.with_suffix(".json"), json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
