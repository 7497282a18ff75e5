"""The teacher language model: a small transformer over one unit level's tokens.

Two objectives, chosen in the config (`objective`):
- causal (default): p(u_i | u_<i), the usual left-to-right LM;
- masked (BERT-style): p(u_i | u_!=i), position i replaced by the mask token, every other
  token visible.

Token ids: the level's units are 0..U-1 (exp/lm_<level>/tokens.txt); the model adds four
special tokens after them (`Specials`): pad = U, bos = U+1, eos = U+2, mask = U+3. A sentence
is seen as [bos] u_1 .. u_n [eos]. Soft labels only ever use the unit slice [0, U).

Sequences longer than the model's context (`max_context` positions) are never cut off:
- causal: sliding windows of max_context inputs with a stride of half the context; every
  prediction after the first window has at least max_context/2 - 1 tokens of left context
  (training sees random crops of the same length, so windows that do not start at [bos]
  are familiar);
- masked: for position i, the window of max_context tokens centred on i (clamped to the
  sentence), so i keeps as much context on both sides as fits.

The attention is written out (no torch>=2-only kernels), so the model runs the same on
torch 1.13 and 2.x, on CPU and CUDA.

    model = model_from_checkpoint(steps.core.checkpoint.load("exp/lm_phone/final.pt"))
    unit_top_k(model, [[3, 5, 7]], k=8, temperature=1.0)   # [(ids [3, 8], probs [3, 8])]
    log_likelihood(model, sentences)                       # (sum ln p, events)

A teacher's soft labels (top_k_soft_labels, for every teacher of steps.kd): q = softmax(z / T)
restricted to the k largest and renormalised, which is softmax over the k largest z / T
(the full normaliser cancels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from steps.core.config import require

KIND = "teacher_lm"


@dataclass
class ModelConfig:
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 512
    dropout: float = 0.1
    max_context: int = 128  # positions the model attends over, [bos]/[eos] included
    objective: Literal["causal", "masked"] = "causal"

    def __post_init__(self):
        require(self.d_model > 0, "d_model", "must be positive")
        require(self.num_heads > 0 and self.d_model % self.num_heads == 0, "num_heads",
                f"must divide d_model ({self.d_model})")
        require(self.num_layers > 0, "num_layers", "must be positive")
        require(self.ff_dim > 0, "ff_dim", "must be positive")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.max_context >= 4, "max_context", "must be at least 4")


@dataclass(frozen=True)
class Specials:
    """Special token ids, placed after the U unit ids."""

    num_units: int

    @property
    def pad(self) -> int:
        return self.num_units

    @property
    def bos(self) -> int:
        return self.num_units + 1

    @property
    def eos(self) -> int:
        return self.num_units + 2

    @property
    def mask(self) -> int:
        return self.num_units + 3

    @property
    def vocab_size(self) -> int:
        return self.num_units + 4


class _Block(nn.Module):
    """Pre-norm transformer layer: self-attention and a feed-forward net."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.num_heads = c.num_heads
        self.norm1 = nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.norm2 = nn.LayerNorm(c.d_model)
        self.ff = nn.Sequential(nn.Linear(c.d_model, c.ff_dim), nn.GELU(),
                                nn.Dropout(c.dropout), nn.Linear(c.ff_dim, c.d_model))
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        """x [B, L, D]; blocked [B or 1, 1, L, L] bool, True where a query may not see a key."""
        b, length, d = x.shape
        h = self.num_heads
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, h, d // h).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // h)
        scores = scores.masked_fill(blocked, float("-inf"))
        attention = self.dropout(torch.softmax(scores, dim=-1))
        y = torch.matmul(attention, v).transpose(1, 2).reshape(b, length, d)
        x = x + self.dropout(self.proj(y))
        return x + self.dropout(self.ff(self.norm2(x)))


class TransformerLM(nn.Module):
    """Token ids [B, L] -> logits [B, L, U + 4]. The output layer is not tied to the
    embedding: measured on a 150k-sentence corpus, untied gave clearly lower perplexity at
    all three levels for the same steps (a briefly trained tied model tends to predict the
    token it has just seen)."""

    def __init__(self, num_units: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.num_units = num_units
        self.specials = Specials(num_units)
        self.embed = nn.Embedding(self.specials.vocab_size, config.d_model)
        self.position = nn.Embedding(config.max_context, config.d_model)
        self.layers = nn.ModuleList(_Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.d_model, self.specials.vocab_size)
        nn.init.normal_(self.embed.weight, std=config.d_model ** -0.5)
        nn.init.normal_(self.position.weight, std=0.02)

    @property
    def causal(self) -> bool:
        return self.config.objective == "causal"

    def hidden(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids [B, L] (valid lengths [B]) -> final hidden states [B, L, D]."""
        b, length = tokens.shape
        if length > self.config.max_context:
            raise ValueError(f"{length} positions given, the model's context is "
                             f"{self.config.max_context} (use the windowed scoring functions)")
        positions = torch.arange(length, device=tokens.device)
        x = self.dropout(self.embed(tokens) * math.sqrt(self.config.d_model)
                         + self.position(positions))
        blocked = torch.zeros(1, 1, length, length, dtype=torch.bool, device=tokens.device)
        if self.causal:
            blocked = blocked | torch.triu(torch.ones(length, length, dtype=torch.bool,
                                                      device=tokens.device), diagonal=1)
        if lengths is not None:
            padded = positions[None, :] >= lengths.to(tokens.device)[:, None]  # [B, L]
            # Padded queries keep key 0 visible so no row is all -inf.
            blocked = blocked | padded[:, None, None, :]
        for layer in self.layers:
            x = layer(x, blocked)
        return self.norm(x)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [..., D] -> logits [..., U + 4]."""
        return self.output(hidden)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.hidden(tokens, lengths))


def build_model(num_units: int, config: ModelConfig) -> TransformerLM:
    return TransformerLM(num_units, config)


def model_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu") -> TransformerLM:
    if checkpoint.get("kind") != KIND:
        raise ValueError(f"not a teacher LM checkpoint (kind={checkpoint.get('kind')!r})")
    config = ModelConfig(**checkpoint["config"]["model"])
    model = TransformerLM(int(checkpoint["num_units"]), config)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


# ---------------------------------------------------------------- windowed scoring
# A "row" is one model input: a window of one sentence (causal), or one masked copy of a
# window (masked). Rows of many sentences are batched by length; each row says which of
# its output positions answer which of the sentence's targets.


@dataclass
class _Row:
    sentence: int
    tokens: list[int]  # model input
    outputs: slice  # output positions (within the row) that are kept
    targets: slice  # the sentence's target positions they answer


def causal_windows(num_inputs: int, context: int) -> list[tuple[int, int, int]]:
    """(start, end, keep_from) windows over num_inputs positions: the window's outputs at
    positions [keep_from, end) are kept. Stride half the context; windows overlap so that
    every kept prediction after the first window has >= context//2 - 1 tokens on its left."""
    if num_inputs <= context:
        return [(0, num_inputs, 0)]
    stride = max(1, context // 2)
    windows, kept = [], 0
    start = 0
    while kept < num_inputs:
        end = min(start + context, num_inputs)
        windows.append((start, end, kept))
        kept = end
        start = min(start + stride, num_inputs - context)
        if end == num_inputs:
            break
    return windows


def masked_window(length: int, position: int, context: int) -> tuple[int, int]:
    """The window of `context` positions centred on `position`, clamped to [0, length)."""
    if length <= context:
        return 0, length
    start = min(max(0, position - context // 2), length - context)
    return start, start + context


def _causal_rows(sentences: Sequence[Sequence[int]], specials: Specials, context: int,
                 with_eos: bool) -> list[_Row]:
    rows = []
    for index, units in enumerate(sentences):
        inputs = [specials.bos, *units]  # input j predicts target j (u_{j+1}, or eos at j = n)
        num_targets = len(units) + (1 if with_eos else 0)
        for start, end, keep_from in causal_windows(len(inputs), context):
            last = min(end, num_targets)
            if last <= keep_from:
                continue
            rows.append(_Row(index, inputs[start:end], slice(keep_from - start, last - start),
                             slice(keep_from, last)))
    return rows


def _masked_rows(sentences: Sequence[Sequence[int]], specials: Specials, context: int) -> list[_Row]:
    rows = []
    for index, units in enumerate(sentences):
        full = [specials.bos, *units, specials.eos]
        for i in range(len(units)):
            start, end = masked_window(len(full), i + 1, context)
            tokens = full[start:end]
            tokens[i + 1 - start] = specials.mask
            rows.append(_Row(index, tokens, slice(i + 1 - start, i + 2 - start), slice(i, i + 1)))
    return rows


def sentence_rows(model: TransformerLM, sentences: Sequence[Sequence[int]],
                  with_eos: bool = False) -> list[_Row]:
    if model.causal:
        return _causal_rows(sentences, model.specials, model.config.max_context, with_eos)
    return _masked_rows(sentences, model.specials, model.config.max_context)


@torch.no_grad()
def _run_rows(model: TransformerLM, rows: list[_Row],
              take: Callable[[list[_Row], torch.Tensor], None], batch_tokens: int,
              device: torch.device) -> None:
    """Runs the rows through the model in length-sorted batches of about batch_tokens
    padded positions. take(batch rows, logits [M, V]) receives the kept outputs of the
    batch's rows, concatenated in row order (only those positions are projected)."""
    order = sorted(range(len(rows)), key=lambda r: len(rows[r].tokens))
    pad = model.specials.pad
    batch: list[_Row] = []

    def flush():
        if not batch:
            return
        width = len(batch[-1].tokens)
        x = torch.full((len(batch), width), pad, dtype=torch.long)
        for b, row in enumerate(batch):
            x[b, :len(row.tokens)] = torch.tensor(row.tokens)
        lengths = torch.tensor([len(row.tokens) for row in batch])
        hidden = model.hidden(x.to(device), lengths.to(device))
        kept = torch.cat([hidden[b, row.outputs] for b, row in enumerate(batch)])
        take(list(batch), model.project(kept).float())
        batch.clear()

    for r in order:
        if batch and (len(batch) + 1) * len(rows[r].tokens) > batch_tokens:
            flush()
        batch.append(rows[r])
    flush()


def _split(batch: list[_Row], values: torch.Tensor):
    """(row, its slice of values) for a batch's concatenated outputs."""
    start = 0
    for row in batch:
        n = row.outputs.stop - row.outputs.start
        yield row, values[start:start + n]
        start += n


def _scoring(model: TransformerLM, device) -> torch.device:
    model.eval()
    return torch.device(device) if device is not None else next(model.parameters()).device


def unit_logits(model: TransformerLM, sentences: Sequence[Sequence[int]], batch_tokens: int = 8192,
                device: str | torch.device | None = None) -> list[torch.Tensor]:
    """For each sentence u_1..u_n, logits [n, U] over the units at every position i: the
    causal model's prediction of u_i from u_<i, or the masked model's from u_!=i (i masked).
    Returned on the CPU."""
    was_training = model.training
    device = _scoring(model, device)
    out = [torch.empty(len(s), model.num_units) for s in sentences]

    def take(batch: list[_Row], logits: torch.Tensor) -> None:
        logits = logits[:, :model.num_units].cpu()
        for row, values in _split(batch, logits):
            out[row.sentence][row.targets] = values

    _run_rows(model, sentence_rows(model, sentences), take, batch_tokens, device)
    model.train(was_training)
    return out


def top_k_soft_labels(logits: torch.Tensor | np.ndarray, k: int, temperature: float = 1.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """logits [N, V] -> (ids int32 [N, k], probs float32 [N, k]): the k most likely units
    under softmax(logits / temperature), their probabilities renormalised to sum to 1,
    sorted descending."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = torch.as_tensor(logits).float()
    if z.dim() != 2:
        raise ValueError(f"logits must be [N, V], got shape {tuple(z.shape)}")
    if k > z.shape[1] or k < 1:
        raise ValueError(f"top-k {k} is not in 1..{z.shape[1]} (the vocabulary size)")
    values, ids = torch.topk(z / temperature, k, dim=-1, largest=True, sorted=True)
    probs = torch.softmax(values, dim=-1)
    return ids.to(torch.int32).cpu().numpy(), probs.cpu().numpy()


def unit_top_k(model: TransformerLM, sentences: Sequence[Sequence[int]], k: int,
               temperature: float = 1.0, batch_tokens: int = 8192,
               device: str | torch.device | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Like unit_logits, but only the soft labels: per sentence (ids int32 [n, k], probs
    float32 [n, k]) from top_k_soft_labels, computed batch-wise."""

    was_training = model.training
    device = _scoring(model, device)
    ids_out = [np.zeros((len(s), k), np.int32) for s in sentences]
    probs_out = [np.zeros((len(s), k), np.float32) for s in sentences]

    def take(batch: list[_Row], logits: torch.Tensor) -> None:
        ids, probs = top_k_soft_labels(logits[:, :model.num_units], k, temperature)
        start = 0
        for row in batch:
            n = row.outputs.stop - row.outputs.start
            ids_out[row.sentence][row.targets] = ids[start:start + n]
            probs_out[row.sentence][row.targets] = probs[start:start + n]
            start += n

    _run_rows(model, sentence_rows(model, sentences), take, batch_tokens, device)
    model.train(was_training)
    return list(zip(ids_out, probs_out))


def log_likelihood(model: TransformerLM, sentences: Sequence[Sequence[int]], batch_tokens: int = 8192,
                   device: str | torch.device | None = None) -> tuple[float, int]:
    """(sum of natural-log probabilities, number of predicted events) over the sentences.
    Causal: every unit and the final [eos] (exp(-sum/events) is the perplexity). Masked:
    every unit with its own position masked, [eos] not predicted (the pseudo-perplexity)."""
    totals = sentence_log_likelihoods(model, sentences, batch_tokens, device)
    events = sum(len(s) for s in sentences) + (len(sentences) if model.causal else 0)
    return float(totals.sum()), events


def sentence_log_likelihoods(model: TransformerLM, sentences: Sequence[Sequence[int]],
                             batch_tokens: int = 8192, device: str | torch.device | None = None
                             ) -> np.ndarray:
    """float64 [len(sentences)]: each sentence's sum of natural-log probabilities, over the
    events log_likelihood counts."""
    was_training = model.training
    device = _scoring(model, device)
    totals = np.zeros(len(sentences))
    targets = [np.asarray([*s, model.specials.eos], dtype=np.int64) for s in sentences]

    def take(batch: list[_Row], logits: torch.Tensor) -> None:
        wanted = torch.from_numpy(np.concatenate([targets[row.sentence][row.targets]
                                                  for row in batch])).to(logits.device)
        picked = torch.log_softmax(logits, dim=-1).gather(1, wanted[:, None])[:, 0].double().cpu()
        for row, values in _split(batch, picked):
            totals[row.sentence] += float(values.sum())

    _run_rows(model, sentence_rows(model, sentences, with_eos=True), take, batch_tokens, device)
    model.train(was_training)
    return totals
