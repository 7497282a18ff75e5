"""Knowledge distillation from teachers to the acoustic model: soft labels and their teachers.

- soft_labels.py         the per-token top-k soft labels, stored as lhotse arrays, expanded
                         to frames when batching
- alignment_tokens.py    each level's tokens read off a cut's alignment, with frame spans
- teachers.py            a dump's teachers: a trained unit LM or a pre-trained one
- dump.py                every cut's tokens scored by the teachers, top-k kept and stored
- pretrained_teacher.py  a causal or masked LM from a local Hugging Face `transformers`
                         directory: loading with clear errors, top-k soft labels (windowed)
- plm_text.py            the transcript normalisation such a model expects and its pieces
                         mapped back to the words (and each piece's word, for whole-word masking)
- plm_finetune.py        optional fine-tuning of that model on the corpus' LM text
- random_models.py       tiny randomly initialised transformers checkpoints (tests, examples)

May import torch, numpy, lhotse, transformers, tokenizers and steps.core, steps.data,
steps.lang, steps.hmm, steps.lm; never k2 (the teacher, dump and AM stages run on machines
without it).
"""
