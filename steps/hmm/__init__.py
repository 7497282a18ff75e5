"""HMMs for alignment: topology, phonetic context, the flat-start model and forced alignment.

- topology.py        HMM topology per phone (states, self-loops), written to topology.json
- context.py         left/right phone context of every frame
- units.py           alignment items -> unit segments (phones, words, senones)
- align_model.py     the small neural model that scores HMM states for alignment
- training_graph.py  per-utterance numerator graphs for k2 (optional silence, alternatives)
- forced_align.py    Viterbi forced alignment with k2 (intersect_dense + shortest_path)

May import k2, torch, numpy, lhotse and steps.core, steps.data, steps.lang.
"""
