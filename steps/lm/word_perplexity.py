"""Per-word perplexity of the decoder's n-grams and of a subword teacher on the same held-out
sentences: what the teacher knows that the decoder's LM does not.

Every model scores each sentence's words and its end: an n-gram its words and </s>, the
subword teacher (a causal steps.train_lm model over sentencepiece pieces) its pieces and
[eos]; a sentence's pieces spell exactly its words, so both give log p(sentence) and the
per-word perplexity exp(-sum of ln p / (words + sentences)) of each counts the same events.
Sentences with a word outside an n-gram's vocabulary (scored as <UNK> there) or a piece
the sentencepiece model does not know are left out of every figure and counted.

The gap of the teacher to an n-gram is their per-word perplexity ratio, with a 95% paired
bootstrap interval over sentences (steps.scoring.bootstrap on the per-sentence nats per
word) and its two-sided p-value: a ratio below 1 means the teacher predicts the held-out
text better.

    scores = SentenceScores.from_ngram("trigram", BackoffLM.read_arpa(arpa), sentences)
    teacher = SentenceScores.from_teacher("teacher", model, sp, sentences)
    gap = perplexity_gap(scores, teacher, kept)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from steps.lm.model import TransformerLM, sentence_log_likelihoods
from steps.lm.ngram import BackoffLM
from steps.scoring.bootstrap import RatioItems, paired_bootstrap


@dataclass
class SentenceScores:
    name: str
    nats: np.ndarray  # [S] ln p(sentence) (words or pieces, and the sentence end)
    scorable: np.ndarray  # bool [S]: every word (piece) known to the model

    @classmethod
    def from_ngram(cls, name: str, lm: BackoffLM, sentences: Sequence[Sequence[str]]) -> "SentenceScores":
        specials = {lm.tokens[lm.bos], lm.tokens[lm.eos]}
        known = np.array([all(w in lm.token_id and w not in specials for w in words) for words in sentences],
                         dtype=bool)
        nats = np.zeros(len(sentences))
        index = np.flatnonzero(known)
        if len(index):
            text = lm.encode(" ".join(sentences[i]) for i in index)
            log10 = np.nan_to_num(lm.log10_probs(text.stream), nan=0.0)  # NaN at <s>
            sentence = np.cumsum(text.stream == lm.bos) - 1
            nats[index] = np.bincount(sentence, weights=log10, minlength=len(index)) * math.log(10)
        return cls(name, nats, known)

    @classmethod
    def from_teacher(cls, name: str, model: TransformerLM, sp, sentences: Sequence[Sequence[str]],
                     batch_tokens: int = 8192) -> "SentenceScores":
        if not model.causal:
            raise ValueError(f"{name}: a masked teacher gives no sentence probability (pseudo-"
                             "likelihood only); use a causal one")
        pieces = [list(sp.encode(" ".join(words))) for words in sentences]
        unknown = sp.unk_id()
        scorable = np.array([unknown not in p and all(i < model.num_units for i in p) for p in pieces])
        kept = [p if ok else [] for p, ok in zip(pieces, scorable)]
        nats = sentence_log_likelihoods(model, kept, batch_tokens)
        return cls(name, nats, scorable)


@dataclass
class Gap:
    ratio: float  # teacher ppl / n-gram ppl
    low: float
    high: float
    p_value: float


def events(sentences: Sequence[Sequence[str]]) -> np.ndarray:
    """Words and the sentence end, per sentence."""
    return np.array([len(words) + 1 for words in sentences], dtype=np.float64)


def word_perplexity(scores: SentenceScores, counts: np.ndarray, kept: np.ndarray) -> float:
    return float(math.exp(-scores.nats[kept].sum() / counts[kept].sum()))


def perplexity_gap(ngram: SentenceScores, teacher: SentenceScores, counts: np.ndarray,
                   kept: np.ndarray, draws: int = 1000) -> Gap:
    """teacher / n-gram per-word perplexity over the kept sentences, paired bootstrap."""
    a = RatioItems(-ngram.nats[kept], counts[kept])  # nats per word: ln ppl
    b = RatioItems(-teacher.nats[kept], counts[kept])
    c = paired_bootstrap(a, b, draws=draws)
    return Gap(math.exp(c.difference.value), math.exp(c.difference.low), math.exp(c.difference.high),
               c.p_value)
