"""Language models: n-grams for decoding and the neural teachers' model.

- ngram.py   ARPA n-grams: estimation (Kneser-Ney), pruning, reading, writing, queries
- bigram.py  the add-k bigram every teacher's perplexity is compared with
- model.py   the teacher LM (causal or masked Transformer) over one unit level

May import torch, numpy and steps.core, steps.kd.soft_labels.
"""
