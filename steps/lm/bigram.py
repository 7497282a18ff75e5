"""The count-based anchor a teacher LM must beat: an interpolated Kneser-Ney bigram.

    p(w | v) = max(c(v, w) - D, 0) / c(v) + D * N1+(v, .) / c(v) * p_cont(w)
    p_cont(w) = (N1+(., w) + 1) / (sum_w' N1+(., w') + |V|)

over the events units 0..U-1 and </s>, contexts units and <s>. D = n1 / (n1 + 2 n2) from
the counts-of-counts of bigrams (Ney's estimate). The continuation unigram is add-one
smoothed, so an unseen unit or an unseen context still gets a probability (an unseen
context falls back to p_cont alone).

    bigram = Bigram.train(train_sentences, num_units)
    bigram.log_likelihood(valid_sentences, with_eos=True) -> (sum of ln p, number of events)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from steps.lm.corpus import sentences_from


@dataclass
class Bigram:
    num_units: int
    counts: dict[int, int]  # context * (U + 1) + next -> count; context U = <s>, next U = </s>
    context_totals: np.ndarray  # [U + 1] c(v)
    context_types: np.ndarray  # [U + 1] N1+(v, .)
    continuation: np.ndarray  # [U + 1] p_cont over units and </s>
    discount: float

    @classmethod
    def train(cls, sentences, num_units: int) -> "Bigram":
        """From a list of sentences or a steps.lm.corpus.TokenCorpus (counted a chunk at a time)."""
        boundary, width = num_units, num_units + 1
        keys, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        for flat, lengths in sentences_from(sentences):
            # [U] s_1 [U] s_2 [U] ...: consecutive pairs are exactly the bigram events, the
            # boundary serving as </s> of one sentence and <s> of the next
            stream = np.full(len(flat) + len(lengths) + 1, boundary, dtype=np.int64)
            stream[np.arange(len(flat)) + np.repeat(np.arange(len(lengths)), lengths) + 1] = flat
            chunk_keys, chunk_counts = np.unique(stream[:-1] * width + stream[1:], return_counts=True)
            if len(keys):
                keys, where = np.unique(np.concatenate([keys, chunk_keys]), return_inverse=True)
                counts = np.bincount(where, weights=np.concatenate([counts, chunk_counts])).astype(np.int64)
            else:
                keys, counts = chunk_keys, chunk_counts
        context, following = keys // width, keys % width
        n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
        discount = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
        distinct_left = np.bincount(following, minlength=width).astype(float)
        continuation = (distinct_left + 1) / (distinct_left.sum() + width)
        totals = np.bincount(context, weights=counts, minlength=width)
        types = np.bincount(context, minlength=width).astype(float)
        return cls(num_units, dict(zip(keys.tolist(), counts.tolist())), totals, types,
                   continuation, float(discount))

    def prob(self, previous: int, unit: int) -> float:
        """p(unit | previous); previous = num_units is <s>, unit = num_units is </s>."""
        total = self.context_totals[previous]
        if total == 0:
            return float(self.continuation[unit])
        count = self.counts.get(previous * (self.num_units + 1) + unit, 0)
        backoff = self.discount * self.context_types[previous] / total
        return max(count - self.discount, 0.0) / total + backoff * float(self.continuation[unit])

    def log_likelihood(self, sentences: Sequence[Sequence[int]],
                       with_eos: bool = True) -> tuple[float, int]:
        """(sum of ln p, events): every unit given its predecessor, plus </s> if with_eos."""
        total, events = 0.0, 0
        boundary = self.num_units
        for sentence in sentences:
            previous = boundary
            for unit in sentence:
                total += math.log(self.prob(int(previous), int(unit)))
                previous = unit
            events += len(sentence)
            if with_eos:
                total += math.log(self.prob(int(previous), boundary))
                events += 1
        return total, events


def perplexity(log_likelihood: float, events: int) -> float:
    return math.exp(-log_likelihood / max(events, 1))
