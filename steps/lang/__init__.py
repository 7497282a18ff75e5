"""The lang directory: the lexicon, phones.txt and words.txt in Kaldi's formats.

- lexicon.py     reading data/lang (Lang: phones, words, pronunciations, silence), symbol tables

May import numpy and steps.core.
"""
