"""Randomly initialised GPT-2- and BERT-style checkpoints with real tokenizers, written with
save_pretrained: what the tests, the benchmark and smoke runs of the `plm` level load in
place of a downloaded model (nothing is fetched here).

    write_gpt2(out_dir, sentences, vocab_size=400, layers=2, dim=64, context=64)
    write_bert(out_dir, sentences, vocab_size=400, layers=2, dim=64, context=64)

The tokenizers are trained with the `tokenizers` library on the given sentences: byte-level
BPE, cased (GPT-2's scheme, <|endoftext|> as BOS/EOS/pad), and a lower-casing WordPiece
(BERT's: [PAD] [UNK] [CLS] [SEP] [MASK]), each wrapped in PreTrainedTokenizerFast.
`filler_to` pads the vocabulary with pieces no text produces, to get a model of a real
vocabulary size (50,257 for GPT-2 small) from a small training text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

GPT2_SPECIAL = "<|endoftext|>"
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def gpt2_tokenizer(sentences: Sequence[str], vocab_size: int, filler_to: int = 0):
    from tokenizers import (  # only the plm path needs it
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast  # seconds to import; only the plm path needs it

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[GPT2_SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(sentences), trainer)
    tok = _with_filler(tok, filler_to)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=GPT2_SPECIAL,
                                   eos_token=GPT2_SPECIAL, unk_token=GPT2_SPECIAL,
                                   pad_token=GPT2_SPECIAL)


def _with_filler(tok, filler_to: int):
    """The tokenizer with its model's vocabulary padded to filler_to entries."""
    from tokenizers import Tokenizer  # only the plm path needs it

    if filler_to <= tok.get_vocab_size():
        return tok
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(filler_to - len(vocab)):
        vocab[f"<filler{i}>"] = len(vocab)
    return Tokenizer.from_str(json.dumps(spec))


def bert_tokenizer(sentences: Sequence[str], vocab_size: int, filler_to: int = 0):
    from tokenizers import (  # only the plm path needs it
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast  # seconds to import; only the plm path needs it

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIALS,
                                        show_progress=False)
    tok.train_from_iterator(list(sentences), trainer)
    tok = _with_filler(tok, filler_to)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def write_gpt2(out_dir: str | Path, sentences: Sequence[str], vocab_size: int = 400, layers: int = 2,
               dim: int = 64, heads: int = 2, context: int = 64, seed: int = 0,
               filler_to: int = 0) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel  # seconds to import; only the plm path needs it

    tokenizer = gpt2_tokenizer(sentences, vocab_size, filler_to)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=context, n_embd=dim, n_layer=layers,
                        n_head=heads, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_bert(out_dir: str | Path, sentences: Sequence[str], vocab_size: int = 400, layers: int = 2,
               dim: int = 64, heads: int = 2, context: int = 64, seed: int = 0,
               filler_to: int = 0) -> Path:
    from transformers import BertConfig, BertForMaskedLM  # seconds to import; only the plm path needs it

    tokenizer = bert_tokenizer(sentences, vocab_size, filler_to)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=dim, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * dim,
                        max_position_embeddings=context, pad_token_id=tokenizer.pad_token_id)
    model = BertForMaskedLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
