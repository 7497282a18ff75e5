"""Language models: n-grams for decoding and the teacher LMs.

- ngram.py       the word n-gram back-off model: ARPA in and out, queries, perplexity
- kneser_ney.py  its estimation (interpolated modified Kneser-Ney) and pruning
- arpa.py        prebuilt ARPA files (openslr's LibriSpeech LMs) read as a stream, plain or
                 gzip: header, words, restriction to a vocabulary
- bigram.py      the add-k bigram every teacher's perplexity is compared with
- tokens.py      the unit levels' vocabularies and the LM text as token corpora
- corpus.py      token corpora larger than memory: written a sentence at a time, read
                 through a memmapped index
- model.py       the teacher LM (causal or masked Transformer) over one unit level; the
                 top-k soft labels of any teacher's logits
- training.py    training a teacher LM on the shared loop (steps.train): batches, loss,
                 held-out perplexity
- word_perplexity.py  the n-grams and the subword teacher on the same held-out words:
                 per-word perplexity and the teacher's gap, with a paired bootstrap

May import torch, numpy, sentencepiece and steps.core, steps.train, steps.lang, steps.hmm,
steps.tree, steps.scoring.
"""
