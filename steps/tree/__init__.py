"""The phonetic decision tree that ties triphone states into senones (Kaldi's tree/).

- decision_tree.py  the tree itself: lookup, text form (tree.txt), senones.txt
- building.py       questions from phone clustering, greedy likelihood-gain splitting, merging

May import numpy and steps.core, steps.lang, steps.hmm.
"""
