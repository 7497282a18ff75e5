"""The phonetic decision tree that ties triphone states into senones (Kaldi's tree/).

- decision_tree.py  the tree itself: lookup, its text form (tree.txt), senones
- questions.py      what it is built from: roots and phonetic questions
- building.py       greedy likelihood-gain splitting of Gaussian statistics, post-merging
- convert.py        monophone alignments -> senone alignments through the tree

May import numpy, lhotse and steps.core, steps.data, steps.lang, steps.hmm.
"""
