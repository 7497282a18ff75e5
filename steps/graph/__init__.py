"""Decoding graphs built with kaldifst: H, C, L and G composed into HCLG.

- fst_arrays.py   FSTs as numpy arc arrays, and to and from kaldifst
- context_fst.py  C: cross-word triphone context
- hmm_fst.py      H: context-dependent HMM states -> senones through the tree
- lexicon_fst.py  L: the lexicon with optional silence and disambiguation symbols
- hclg.py         composition, determinisation and minimisation into HCLG
- make.py         HCLG from a lang dir, G, the tree and the topology, with its stats
- k2_graph.py     HCLG.fst -> an epsilon-free k2 Fsa for k2's search, converted once and
                  cached next to HCLG.fst (HCLG.k2.pt)
- epsilon.py      input-epsilon removal that keeps every word sequence (for k2_graph.py)

May import kaldifst, numpy, k2 and torch (k2_graph.py; k2 on first use) and steps.core,
steps.lang, steps.hmm, steps.tree.
"""
