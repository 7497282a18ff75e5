"""The lang directory: the lexicon, phones.txt and words.txt in Kaldi's formats.

- lexicon.py   reading data/lang (Lang: phones, words, pronunciations, silence), symbol tables
- prepare.py   making it: CMUdict and extra lexicons, G2P lexicon, disambiguation symbols, OOV lists
- g2p.py       pronunciations for words CMUdict lacks: espeak-ng's phonemes mapped onto CMUdict's

May import numpy, lhotse, cmudict and steps.core.
"""
