"""Scoring what the toolkit made against references.

- wer.py               word error rate in Kaldi's compute-wer format; icefall's recogs and errs files
- boundaries.py        word-boundary errors of an alignment against the corpus' true segments
- bootstrap.py         bootstrap intervals and paired significance of a ratio over items, for one fixed model
- seed_utterance.py    intervals, paired tests and minimal detectable effects that count training seeds and test utterances
- multiple_testing.py  Holm's correction of a family of p-values
- claims.py            the paper's claims as paired tests between two systems (AUX vs LI, HIER vs AUX, soft vs hard)
- significance.py      the report's figures: each system against the baseline, the A/A check, Holm's family
- strengths.py         differences from the baseline across decoder-LM strengths, and their trend
- recipe_results.py    a recipe's decodes read back per system, seed, part and pass (dev at the system's LM weight)
- tables.py            results tables in Markdown, one way for every report (rows, rules, mean ± std cells)

May import kaldialign, numpy, scipy and steps.core.
"""
