"""Word error rate, in Kaldi's compute-wer format, with icefall's recogs and errs files.

Reads two Kaldi text files, `utt-id WORD WORD ...` per line (a line with only the id is an
empty transcript): the reference (--ref) and the hypothesis (--hyp). Aligns each utterance
with kaldialign (Kaldi's Levenshtein alignment; ins = del = sub = 1) and writes to --out-dir:

    wer<suffix>     compute-wer --mode=all, exactly:
                        %WER 12.34 [ 56 / 454, 7 ins, 8 del, 41 sub ]
                        %SER 40.00 [ 20 / 50 ]
                        Scored 50 sentences, 0 not present in hyp.
                    A reference utterance missing from the hypothesis is scored as an empty
                    hypothesis (all deletions) and, as Kaldi does, the %WER line then ends in
                    " [PARTIAL]". Hypotheses whose id is not in the reference are not scored;
                    a fourth line counts them.
    recogs<suffix>  per utterance, icefall's store_transcripts: `utt:\\tref=[...]` and
                    `utt:\\thyp=[...]` (sorted by id)
    errs<suffix>    icefall's write_error_stats: %WER, totals, PER-UTT DETAILS (runs of
                    consecutive errors shown as one `(ref words->hyp words)`, `*` = nothing),
                    SUBSTITUTIONS / DELETIONS / INSERTIONS with counts, PER-WORD STATS
                    (word corr tot_errs count_in_ref count_in_hyp); then the ids missing from
                    the hypothesis and the hypothesis ids not in the reference.

From Python (steps.scoring.wer, e.g. the report stage): `score_files(ref, hyp) -> WerCounts` or
`read_wer(path) -> WerCounts` on a written wer file; WerCounts has errors, words, ins, dels,
subs, sentences, sentence_errors, missing and `.wer` (percent).

    python -m steps.score --ref data/text/test.txt --hyp exp/am/decode_test/hyp.txt \\
        --out-dir exp/am/decode_test [--suffix _12]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from steps.core.log import setup_logging
from steps.scoring.wer import read_text, score, write_scoring

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="reference text: utt-id WORDS...")
    parser.add_argument("--hyp", required=True, help="hypothesis text: utt-id WORDS...")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--suffix", default="", help="appended to the file names, e.g. _12")
    args = parser.parse_args(argv)
    setup_logging()
    for path in (args.ref, args.hyp):
        if not Path(path).is_file():
            log.error("missing input %s", path)
            return 1
    ref, hyp = read_text(args.ref), read_text(args.hyp)
    for problem in ref.problems + hyp.problems:
        log.warning("%s", problem)
    result = score(ref.texts, hyp.texts)
    if result.missing:
        log.warning("%d reference utterances have no hypothesis (scored as all deletions), "
                    "e.g. %s; listed in %s/errs%s", len(result.missing),
                    " ".join(result.missing[:5]), args.out_dir, args.suffix)
    if result.extra:
        log.warning("%d hypothesis utterances are not in the reference (not scored), e.g. %s",
                    len(result.extra), " ".join(result.extra[:5]))
    write_scoring(args.out_dir, result, args.suffix)
    log.info("%s: %s", args.hyp, result.counts.kaldi_lines().splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
