"""Fine-tuning a pre-trained teacher (steps.kd.pretrained_teacher) on the corpus' LM text.

Each line is normalised as the transcripts are (steps.kd.plm_text) and tokenised with the
model's tokenizer, inside its special tokens, cut to the model's context. Causal models
learn next-piece prediction; masked models BERT's objective (15% of the pieces chosen,
of those 80% masked, 10% a random piece, 10% kept). AdamW, constant learning rate, lines
shuffled per epoch with the seed. The held-out lines' per-piece log-likelihood
(PretrainedTeacher.log_likelihood) before and after is returned.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Sequence

import torch
from tqdm import tqdm

from steps.kd.pretrained_teacher import PretrainedTeacher


def split_held_out(lines: Sequence[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, valid): a line is held out when the MD5 of its text falls in the first
    `fraction` of the hash range, the rule of steps.lm_tokens, so that the toolkit's own
    teachers and this one are measured on the same sentences."""
    train, valid = [], []
    for line in lines:
        digest = int(hashlib.md5(line.encode("utf-8")).hexdigest()[:8], 16)
        (valid if digest < fraction * 0x100000000 else train).append(line)
    return train, valid


def _encode(teacher: PretrainedTeacher, lines: Sequence[str]) -> list[list[int]]:
    out = []
    room = teacher.context - len(teacher.prefix) - len(teacher.suffix)
    for line in lines:
        ids = teacher.encode_words(line.split()).ids[:room]
        if ids:
            out.append(teacher.prefix + ids + teacher.suffix)
    return out


def _mask(inputs: torch.Tensor, special: torch.Tensor, teacher: PretrainedTeacher,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = (torch.rand(inputs.shape, generator=generator) < 0.15) & ~special
    labels = torch.where(chosen, inputs, torch.full_like(inputs, -100))
    roll = torch.rand(inputs.shape, generator=generator)
    masked = inputs.clone()
    masked[chosen & (roll < 0.8)] = teacher.tokenizer.mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = torch.randint(teacher.num_units, inputs.shape, generator=generator)[swap]
    return masked, labels


def held_out_nll(teacher: PretrainedTeacher, lines: Sequence[str]) -> float:
    """Mean negative log-likelihood per piece of the lines (pseudo-LL for masked models)."""
    sentences = [teacher.encode_words(line.split()).ids for line in lines]
    total, count = teacher.log_likelihood([s for s in sentences if s])
    return -total / max(count, 1)


def finetune(teacher: PretrainedTeacher, train: Sequence[str], valid: Sequence[str], epochs: int,
             lr: float = 5e-4, batch_size: int = 16, seed: int = 0) -> dict:
    """Fine-tunes teacher.model in place; returns the held-out NLL before and after."""
    device = teacher.device
    before = held_out_nll(teacher, valid) if valid else math.nan
    examples = _encode(teacher, train)
    generator = torch.Generator().manual_seed(seed)
    order = random.Random(seed)
    model = teacher.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    steps, last_loss = 0, math.nan
    model.train()
    for epoch in range(epochs):
        order.shuffle(examples)
        for i in tqdm(range(0, len(examples), batch_size), desc=f"fine-tune epoch {epoch + 1}",
                      mininterval=5):
            batch = examples[i:i + batch_size]
            width = max(len(x) for x in batch)
            inputs = torch.full((len(batch), width), teacher.pad, dtype=torch.long)
            attention = torch.zeros_like(inputs)
            for b, x in enumerate(batch):
                inputs[b, :len(x)] = torch.tensor(x)
                attention[b, :len(x)] = 1
            if teacher.kind == "causal":
                labels = torch.where(attention.bool(), inputs, torch.full_like(inputs, -100))
                labels[:, 0] = -100  # the BOS is given, not predicted
            else:
                special = ~attention.bool()
                for token in teacher.prefix + teacher.suffix:
                    special |= inputs == token
                inputs, labels = _mask(inputs, special, teacher, generator)
            loss = model(input_ids=inputs.to(device), attention_mask=attention.to(device),
                         labels=labels.to(device)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            last_loss = float(loss)
    model.eval()
    after = held_out_nll(teacher, valid) if valid else math.nan
    return {"epochs": epochs, "steps": steps, "train_lines": len(examples), "valid_lines": len(valid),
            "last_train_loss": last_loss, "valid_nll_before": before, "valid_nll_after": after}
