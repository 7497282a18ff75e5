"""Small synthetic inputs, made at run time, that the tests and the benchmarks (utils/bench/)
build on; nothing here is downloaded or used by a recipe.

- tree_data.py      a toy lang and topology, utterances with known monophone alignments and
                    features, lhotse cuts of them, synthetic tree statistics
- alignments.py     a toy world for the soft-label path: lexicon, random tree, sentences,
                    sentencepiece model, aligned cuts (ToyWorld)
- am_data.py        synthetic acoustic-model training data with soft labels at every level
- decode_graphs.py  a toy graph (lang, tree, bigram -> HCLG), paths and peaked scores through
                    it; a CMUdict-sized synthetic world for the decoding benchmark

May import any library module of steps; never a program, and nothing imports it but tests
and benchmarks.
"""
