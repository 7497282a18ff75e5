"""HMMs for alignment: topology, phonetic context, the alignment model and forced alignment.

- topology.py        HMM topology per phone (states, self-loops), written to topology.json
- context.py         left/right phone context of a phone sequence
- units.py           alignments -> unit segments (phones, words, senones), word pronunciations
- align_model.py     the small neural model that scores HMM states for alignment
- training_graph.py  per-utterance numerator graphs for k2 (optional silence, alternatives)
- forced_align.py    Viterbi forced alignment with k2 (intersect_dense + shortest_path)
- mono_training.py   flat-start and Viterbi training epochs (on the loop of steps.train),
                      batched alignment, priors
- cut_alignment.py   a part's cuts aligned and the alignment kept on them (arrays and items)

May import k2, torch, numpy, lhotse and steps.core, steps.train, steps.data, steps.lang.
"""
