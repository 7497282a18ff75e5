"""Lattice decoding of the hybrid HCLG graph with k2 (icefall's way).

- k2_graph:  HCLG.fst (steps.mkgraph, OpenFst) -> an epsilon-free k2 Fsa, converted once and
             cached next to HCLG.fst (HCLG.k2.pt)
- lattice:   k2.intersect_dense_pruned with the senone scores as a DenseFsaVec (search beam,
             output beam, min/max active states); the 1-best of any LM weight from one
             lattice; N-best lists
- forced:    the reference's best path through the same graph (search-error counts)
- rescore:   N-best LM rescoring, Kaldi's lmrescore rule: minus the first pass's LM cost,
             plus a bigger LM's

May import k2, torch, numpy and steps' graph, lexicon and n-gram modules. Decoding is a CPU
stage; the teachers, acoustic-model training and compression never import this package.
"""
