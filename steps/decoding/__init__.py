"""Decoding the hybrid HCLG graph: k2's lattice search (icefall's way; `--decoder k2`) and
kaldi-decoder's (`--decoder kaldi`), the LM-weight sweep and rescoring.

- decoder:   the k2 decoder (search, best paths per LM weight, rescoring, forced score)
- hybrid_graph: HCLG with its words and units; kaldi-decoder's lattice search of it (`--decoder kaldi`)
- cut_decoding: a part's cuts scored by the acoustic model and searched, one record each
- lm_weights: the LM-weight sweep: weight names, the dev-chosen weight, hypothesis files,
             search errors (at the search's weight) apart from lattice-beam losses
- k2_search: k2.intersect_dense_pruned with the senone scores as a DenseFsaVec (search beam,
             output beam, min/max active states); the 1-best of any LM weight from one
             lattice; N-best lists
- forced:    the reference's best path through the same graph (search-error counts)
- rescore:   N-best LM rescoring, Kaldi's lmrescore rule: minus the first pass's LM cost,
             plus a bigger LM's

May import k2, kaldi-decoder, torch, numpy and steps.core, steps.data, steps.lang, steps.graph,
steps.lm, steps.am.scorer, steps.scoring. Decoding is a CPU
stage; the teachers, acoustic-model training and compression never import this package.
"""
