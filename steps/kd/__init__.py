"""Knowledge-distillation teachers that the toolkit does not train itself.

pretrained_teacher  a causal or masked LM from a local Hugging Face `transformers`
                    directory: loading with clear errors, top-k soft labels (windowed)
plm_text            the transcript normalisation such a model expects (case, apostrophes)
                    and its tokenizer pieces mapped back to the words
plm_finetune        optional fine-tuning of that model on the corpus' LM text

May import torch, numpy, transformers, tokenizers and steps.lm.model / steps.kd.soft_labels;
never k2 (the teacher, dump and AM stages run on machines without it).
"""
