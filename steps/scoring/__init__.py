"""Scoring what the toolkit made against references.

- wer.py         word error rate in Kaldi's compute-wer format; icefall's recogs and errs files
- boundaries.py  word-boundary errors of an alignment against the corpus' true segments
- bootstrap.py   bootstrap intervals and paired significance of a ratio over items (WER, boundary shares)
- claims.py      the paper's claims as paired tests between two systems (AUX vs LI, HIER vs AUX, soft vs hard)

May import kaldialign, numpy and steps.core.
"""
