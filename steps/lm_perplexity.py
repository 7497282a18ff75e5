"""Per-word perplexity of the decoder's n-gram LMs and of the subword teacher on the same
held-out sentences, and the teacher's gap to each n-gram (steps.lm.word_perplexity).

    python -m steps.lm_perplexity \
        --supervisions data/manifests/synth_supervisions_{dev,test}.jsonl.gz \
        --ngram data/lang_test_1gram/lm_1gram.arpa data/lang_test_2gram/lm_2gram.arpa \
                data/lang_test/lm_3gram.arpa data/lang_rescore/lm_4gram.arpa \
        --teacher exp/lm_subword --bpe-model data/lang_bpe_500/bpe.model \
        --out exp/lm_perplexity

--supervisions: lhotse supervision manifests (every corpus has them: local/README.md), their
texts split into words as the lang stage does. --text: Kaldi-style `utt_id word ...` lines,
or plain sentences with --no-ids. Either or both; a file without any transcript is named in
the log. Writes <out>.txt (the table, also printed) and <out>.json; sentences any model
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
from steps.data.manifests import supervision_words
from steps.lm.model import model_from_checkpoint
from steps.lm.ngram import BackoffLM
from steps.lm.tokens import load_sentencepiece
from steps.lm.word_perplexity import SentenceScores, events, perplexity_gap, word_perplexity
from steps.scoring.bootstrap import format_p

log = logging.getLogger(__name__)
DRAWS = 1000


def read_sentences(paths: list[str], with_ids: bool, supervisions: list[str] = ()) -> list[list[str]]:
    """The non-empty sentences of the text files, then of the supervision manifests; a file
    without any is named (an empty part would otherwise just be missing from the count)."""
    sentences = []
    for path, manifest in [*((p, False) for p in paths), *((p, True) for p in supervisions)]:
        if manifest:
            found = [words for _, words in supervision_words(path) if words]
        else:
            lines = Path(path).read_text().splitlines()
            found = [words for words in (line.split()[1:] if with_ids else line.split() for line in lines) if words]
        if not found:
            log.warning("%s: no transcript in it; the table has none of its sentences", path)
        sentences.extend(found)
    return sentences


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", nargs="+", default=[], help="held-out text files")
    parser.add_argument("--supervisions", nargs="+", default=[],
                        help="held-out lhotse supervision manifests (<corpus>_supervisions_<part>.jsonl.gz)")
    parser.add_argument("--no-ids", action="store_true", help="lines are sentences without an utterance id")
    parser.add_argument("--ngram", nargs="+", required=True,
                        help="ARPA files of any order, e.g. the LM strengths' 1- and 2-gram, the first-pass "
                             "3-gram and the rescoring 4-gram; the table lists them in this order")
    parser.add_argument("--teacher", required=True, help="a causal subword teacher (exp/lm_subword)")
    parser.add_argument("--bpe-model", required=True)
    parser.add_argument("--out", type=Path, required=True, help="writes <out>.txt and <out>.json")
    return parser


def ngram_names(paths: list[str]) -> list[str]:
    """The table's name of each ARPA: its file name, or folder/file name where two share one
    (stage 10 can give a first-pass LM and the rescoring LM of one order, both lm_4gram.arpa)."""
    names = [Path(p).name for p in paths]
    return [f"{Path(p).parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def load_subword_teacher(path: str) -> tuple[Path, object]:
    """The subword teacher's checkpoint path and model; a clear exit for anything else."""
    teacher_path = Path(path) / "final.pt" if Path(path).is_dir() else Path(path)
    if not teacher_path.is_file():
        raise SystemExit(f"no teacher at {teacher_path} (train it first: stage 6)")
    checkpoint = ckpt_io.load(teacher_path)
    if checkpoint.get("level") != "subword":
        raise SystemExit(f"{teacher_path}: a {checkpoint.get('level')} teacher; the comparison needs the "
                         "subword one (its pieces spell the words)")
    try:
        return teacher_path, model_from_checkpoint(checkpoint)
    except ValueError as e:
        raise SystemExit(f"{teacher_path}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()

    sources = [*args.text, *args.supervisions]
    if not sources:
        parser.error("give the held-out sentences: --supervisions and/or --text")
    missing = [f for f in sources if not Path(f).is_file()]
    if missing:
        raise SystemExit(f"lm_perplexity: no such held-out file: {' '.join(missing)}")
    sentences = read_sentences(args.text, not args.no_ids, args.supervisions)
    if not sentences:
        raise SystemExit(f"no sentence in {' '.join(sources)}")
    teacher_path, model = load_subword_teacher(args.teacher)
    teacher = SentenceScores.from_teacher(f"teacher ({teacher_path.parent.name})", model,
                                          load_sentencepiece(args.bpe_model), sentences)
    ngrams = [SentenceScores.from_ngram(name, BackoffLM.read_arpa(a), sentences)
              for name, a in zip(ngram_names(args.ngram), args.ngram)]
    kept = teacher.scorable.copy()
    for scores in ngrams:
        kept &= scores.scorable
    if not kept.any():
        raise SystemExit("no sentence that every model can score (see the vocabularies)")
    counts = events(sentences)
    left_out = {s.name: int((~s.scorable).sum()) for s in [teacher, *ngrams]}
    lines = [f"held-out: {len(sentences)} sentences from {' '.join(sources)}; {int(kept.sum())} scored "
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
