"""A pre-trained causal or masked LM from a local Hugging Face `transformers` directory as
the teacher of the `plm` unit level, whose units are the model's own tokenizer pieces.

    teacher = PretrainedTeacher.load("exp/lm_plm")        # or the model directory itself
    pieces = teacher.encode_words(["THE", "CAT", "SAT"])   # steps.kd.plm_text.WordPieces
    [(ids, probs)] = teacher.top_k([pieces.ids], k=8, temperature=1.0)   # [n, k] each

Kinds: `causal` (AutoModelForCausalLM) gives p(u_i | u_<i), the input starting with the
tokenizer's BOS token (its EOS when it has none, as GPT-2); `masked` (AutoModelForMaskedLM)
gives p(u_i | the other words) by whole-word masking: every piece of the word holding
position i is replaced by the mask token, not piece i alone, whose word's other pieces
would all but give it away (near one-hot labels, an optimistic pseudo-perplexity). This is
PLL-whole-word of Kauf & Ivanova 2023 ("A better way to do masked language model
scoring"), with words as the tokenizer marks them in its pieces (steps.kd.plm_text.
word_marks: WordPiece's ## prefix, as BERT's whole-word masking; the Ġ / ▁ space marks).
One masked copy per word serves all its pieces; the copies are batched, inside
[CLS] ... [SEP] when the tokenizer has them. `auto` reads the config's `architectures`
(*ForMaskedLM -> masked; *ForCausalLM, *LMHeadModel -> causal), then its model_type (types
that only one AutoModel class knows). The units are the len(tokenizer) ids; logits beyond
them (padded embeddings) are dropped.

Transcripts longer than the model's context (max_position_embeddings or n_positions) are
scored in windows, as steps.lm.model does for the toolkit's own teachers: causal windows of
the full context with a stride of half of it (every prediction after the first window has
at least half a context on its left), masked windows centred on the predicted position
(the word's pieces inside the window masked).
`fits()` says whether a transcript needed them (steps.dump_soft_labels counts those).
Rows (windows, masked copies) are batched by length up to batch_tokens positions, fewer for
large vocabularies: the model forms logits at every position, so a batch holds at most
2**27 position-pieces of them (512 MB; 2,670 positions for GPT-2's 50,257 pieces).

A teacher directory (steps.prepare_plm_teacher) holds teacher.json: the model directory
(`model/` there after fine-tuning), the kind, the normalisation and the masking (MASKING
for a masked model, "none" for a causal one); tokens.txt lists the pieces. Every problem
with the model directory (missing, unreadable, no config, no fast tokenizer, neither
kind) raises PlmError with the directory and what is wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from steps.kd.plm_text import Normalisation, WordPieces, choose_normalisation, encode_words, word_marks
from steps.lm.model import causal_windows, masked_window, top_k_soft_labels

LEVEL = "plm"
KINDS = ("auto", "causal", "masked")
TEACHER_FILE = "teacher.json"
MASKING = "whole_word"  # a masked model's masking: all pieces of the predicted piece's word
LOGITS_BUDGET = 2 ** 27  # positions x pieces of float32 logits in one batch (512 MB)


class PlmError(Exception):
    """A pre-trained model directory that cannot serve as a teacher (the message says why)."""


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def check_model_dir(model_dir: str | Path) -> Path:
    path = Path(model_dir)
    if not path.exists():
        raise PlmError(f"{path}: no such directory (a local transformers checkpoint is needed; "
                       "nothing is downloaded)")
    if not path.is_dir():
        raise PlmError(f"{path}: not a directory (give the folder save_pretrained wrote)")
    if not os.access(path, os.R_OK | os.X_OK):
        raise PlmError(f"{path}: not readable")
    config = path / "config.json"
    if not config.is_file():
        raise PlmError(f"{path}: no config.json (not a transformers checkpoint directory)")
    if not os.access(config, os.R_OK):
        raise PlmError(f"{config}: not readable")
    return path


def model_kind(config, requested: str = "auto") -> str:
    """'causal' or 'masked' for a transformers config (see the module docstring)."""
    from transformers.models.auto.modeling_auto import (  # seconds to import; only the plm path needs it
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if requested not in KINDS:
        raise PlmError(f"kind must be one of {KINDS}, got {requested!r}")
    model_type = getattr(config, "model_type", None)
    causal_ok = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    masked_ok = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if requested != "auto":
        if not (causal_ok if requested == "causal" else masked_ok):
            raise PlmError(f"model type {model_type!r} has no {requested} LM class in transformers")
        return requested
    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith("ForMaskedLM") and masked_ok:
            return "masked"
        if (arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel")) and causal_ok:
            return "causal"
    if causal_ok and not masked_ok:
        return "causal"
    if masked_ok and not causal_ok:
        return "masked"
    if causal_ok and masked_ok:
        raise PlmError(f"model type {model_type!r} can be causal or masked and the config's "
                       f"architectures {getattr(config, 'architectures', None)} do not say which; "
                       "give the kind (--kind causal|masked)")
    raise PlmError(f"model type {model_type!r} is neither a causal nor a masked LM "
                   "(no AutoModelForCausalLM or AutoModelForMaskedLM class)")


def load_model_dir(model_dir: str | Path, kind: str = "auto", device: str | torch.device = "cpu"):
    """(model in eval mode, fast tokenizer, kind) from a local checkpoint directory."""
    from transformers import (  # seconds to import; only the plm path needs it
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoTokenizer,
    )

    path = check_model_dir(model_dir)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as e:  # transformers raises many kinds; say which file and why
        raise PlmError(f"{path}/config.json: not a usable transformers config ({_first_line(e)})") from None
    kind = model_kind(config, kind)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
    except Exception as e:
        raise PlmError(f"{path}: no usable tokenizer ({_first_line(e)})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise PlmError(f"{path}: the tokenizer is not a fast one (tokenizer.json); its character "
                       "offsets are needed to map pieces to words")
    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForMaskedLM
    try:
        model = cls.from_pretrained(path, local_files_only=True)
    except Exception as e:
        raise PlmError(f"{path}: the {kind} model does not load ({_first_line(e)})") from None
    vocab = model.get_output_embeddings().weight.shape[0]
    if vocab < len(tokenizer):
        raise PlmError(f"{path}: the model predicts {vocab} pieces, the tokenizer has {len(tokenizer)}")
    model.to(device).eval()
    return model, tokenizer, kind


def model_context(config) -> int:
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 512


@dataclass
class _Row:
    sentence: int
    inputs: list[int]
    outputs: list[int]  # positions in inputs whose predictions are kept
    targets: list[int]  # the sentence positions they predict


class PretrainedTeacher:
    level = LEVEL

    def __init__(self, model, tokenizer, kind: str, normalisation: Normalisation, path: Path,
                 batch_tokens: int = 4096):
        self.model, self.tokenizer, self.kind = model, tokenizer, kind
        self.normalisation, self.path, self.batch_tokens = normalisation, Path(path), batch_tokens
        self.context = model_context(model.config)
        t = tokenizer
        if kind == "causal":
            start = t.bos_token_id if t.bos_token_id is not None else t.eos_token_id
            if start is None:
                raise PlmError(f"{path}: a causal model needs a BOS or EOS token to predict the "
                               "first piece; the tokenizer has neither")
            self.prefix, self.suffix = [start], []
        else:
            if t.mask_token_id is None:
                raise PlmError(f"{path}: a masked model needs a mask token; the tokenizer has none")
            self.prefix = [t.cls_token_id] if t.cls_token_id is not None else []
            self.suffix = [t.sep_token_id] if t.sep_token_id is not None else []
            self.word_marks = word_marks(t)
        self.pad = next((i for i in (t.pad_token_id, t.eos_token_id, 0) if i is not None))

    # ---- construction

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu",
             kind: str = "auto", case: str = "auto") -> "PretrainedTeacher":
        """From a teacher directory (teacher.json) or a transformers checkpoint directory."""
        directory = Path(directory)
        spec = directory / TEACHER_FILE
        if spec.is_file():
            info = json.loads(spec.read_text())
            done_here = MASKING if info["kind"] == "masked" else "none"
            masking = info.get("masking", done_here)  # written before masking was recorded
            if masking != done_here:
                raise PlmError(f"{spec}: masking {masking!r} for a {info['kind']} model; only "
                               f"{MASKING!r} (masked) and 'none' (causal) are done here")
            model_dir = directory / info["model_dir"]
            model, tokenizer, kind = load_model_dir(model_dir, info["kind"], device)
            norm = Normalisation(**info["normalisation"])
            return cls(model, tokenizer, kind, norm, spec)
        model, tokenizer, kind = load_model_dir(directory, kind, device)
        return cls(model, tokenizer, kind, choose_normalisation(tokenizer, case), directory)

    @property
    def num_units(self) -> int:
        return len(self.tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def pieces(self) -> list[str]:
        """The units, by id."""
        vocab = self.tokenizer.get_vocab()
        out = [""] * len(self.tokenizer)
        for piece, index in vocab.items():
            if index < len(out):
                out[index] = piece
        return out

    def encode_words(self, words: Sequence[str]) -> WordPieces:
        return encode_words(self.tokenizer, self.normalisation, words)

    @property
    def masking(self) -> str:
        return MASKING if self.kind == "masked" else "none"

    def describe_masking(self) -> str:
        """Lines for normalisation.txt: how a piece is hidden from the model predicting it."""
        if self.kind == "causal":
            return "masking: none (causal: each piece predicted from the pieces before it)\n"
        return (f"masking: {MASKING} (every piece of the predicted piece's word masked, "
                f"PLL-whole-word)\nwords: {self.word_marks.rule}\n")

    def fits(self, length: int) -> bool:
        return length + len(self.prefix) + len(self.suffix) <= self.context

    # ---- scoring

    def _rows(self, sentences: Sequence[Sequence[int]]) -> list[_Row]:
        rows = []
        for index, ids in enumerate(sentences):
            ids = list(ids)
            if not ids:
                continue
            if self.kind == "causal":
                inputs = self.prefix + ids  # input j predicts ids[j]
                for start, end, keep_from in causal_windows(len(inputs), self.context):
                    last = min(end, len(ids))
                    if last > keep_from:
                        rows.append(_Row(index, inputs[start:end],
                                         list(range(keep_from - start, last - start)),
                                         list(range(keep_from, last))))
            else:
                rows.extend(self._masked_rows(index, ids))
        return rows

    def _masked_rows(self, index: int, ids: list[int]) -> list[_Row]:
        """Whole-word masking: the row predicting piece i has every piece of i's word (inside
        its window) masked; pieces of one word with the same window share a row."""
        full = self.prefix + ids + self.suffix
        offset, mask = len(self.prefix), self.tokenizer.mask_token_id
        words = self.word_marks.words(ids)
        rows: list[_Row] = []
        first = 0
        while first < len(ids):
            end_of_word = first + 1
            while end_of_word < len(ids) and words[end_of_word] == words[first]:
                end_of_word += 1
            shared: dict[tuple[int, int], _Row] = {}
            for i in range(first, end_of_word):
                start, end = masked_window(len(full), i + offset, self.context)
                row = shared.get((start, end))
                if row is None:
                    window = full[start:end]
                    for j in range(max(first + offset, start), min(end_of_word + offset, end)):
                        window[j - start] = mask
                    row = shared[start, end] = _Row(index, window, [], [])
                    rows.append(row)
                row.outputs.append(i + offset - start)
                row.targets.append(i)
            first = end_of_word
        return rows

    @torch.no_grad()
    def _run(self, sentences: Sequence[Sequence[int]],
             take: Callable[[_Row, torch.Tensor], None]) -> None:
        """Calls take(row, logits [len(row.outputs), num_units]) for every row."""
        rows = sorted(self._rows(sentences), key=lambda r: len(r.inputs))
        device, units = self.device, self.num_units
        batch: list[_Row] = []

        def flush():
            if not batch:
                return
            width = max(len(r.inputs) for r in batch)
            inputs = torch.full((len(batch), width), self.pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for b, row in enumerate(batch):
                inputs[b, :len(row.inputs)] = torch.tensor(row.inputs)
                attention[b, :len(row.inputs)] = 1
            logits = self.model(input_ids=inputs.to(device), attention_mask=attention.to(device)).logits
            for b, row in enumerate(batch):
                take(row, logits[b, row.outputs, :units].float())
            batch.clear()

        # transformers forms logits at every position: [B, L, V] floats, capped at ~512 MB
        budget = min(self.batch_tokens, max(1, LOGITS_BUDGET // max(units, 1)))
        for row in rows:
            if batch and (len(batch) + 1) * len(row.inputs) > budget:
                flush()
            batch.append(row)
        flush()

    def top_k(self, sentences: Sequence[Sequence[int]], k: int, temperature: float
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sentence (ids int32 [n, k], probs float32 [n, k]): top-k after temperature,
        renormalised (steps.lm.model.top_k_soft_labels)."""
        if k > self.num_units:
            raise PlmError(f"top-k {k} is larger than the {self.num_units} pieces of {self.path}")
        out = [(np.zeros((len(s), k), np.int32), np.zeros((len(s), k), np.float32)) for s in sentences]

        def take(row: _Row, logits: torch.Tensor) -> None:
            ids, probs = top_k_soft_labels(logits, k, temperature)
            out[row.sentence][0][row.targets] = ids
            out[row.sentence][1][row.targets] = probs

        self._run(sentences, take)
        return out

    def log_likelihood(self, sentences: Sequence[Sequence[int]]) -> tuple[float, int]:
        """(sum of log p(u_i | context), number of pieces): causal log-likelihood, or the
        masked model's pseudo-log-likelihood."""
        total = [0.0]

        def take(row: _Row, logits: torch.Tensor) -> None:
            targets = torch.tensor([sentences[row.sentence][t] for t in row.targets])
            total[0] += float(logits.log_softmax(-1).gather(1, targets[:, None].to(logits.device)).sum())

        self._run(sentences, take)
        return total[0], sum(len(s) for s in sentences)
