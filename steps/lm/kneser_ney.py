"""Interpolated modified Kneser-Ney estimation of a word n-gram LM, and its pruning.

Estimation (Chen & Goodman 1998, "interpolated modified Kneser-Ney", as in SRILM's
`-interpolate -kndiscount` and KenLM's lmplz):

    a(h w)      adjusted count: the raw count at the highest order and for n-grams that
                start with <s>; otherwise the continuation count N1+(. h w), the number
                of distinct words seen before h w
    D1, D2, D3+ per order, from the counts-of-counts n1..n4 of the adjusted counts:
                Y = n1 / (n1 + 2 n2), Dk = k - (k + 1) Y n_{k+1} / n_k
                (if one is undefined or outside (0, k], that order falls back to
                0.5, 1.0, 1.5 -- KenLM's --discount_fallback -- and says so; usual at
                order 1 with a small closed vocabulary, where n1..n4 are all 0)
    p(w | h)    = (a(h w) - D(a(h w))) / S(h) + gamma(h) p(w | h')      h' = h minus its first word
    gamma(h)    = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / S(h),  S(h) = sum_w a(h w)
    p(w)        = (a(w) - D(a(w))) / S + gamma() / |V|                 the base case

The base distribution is uniform over the |V| predicted symbols: every vocabulary word
(words.txt minus <eps>, !SIL, #N, <s>, </s>; <UNK> included) and </s>. So a vocabulary word
never seen in the text gets gamma() / |V| through the interpolation, not a floor. Text
words outside the vocabulary are counted as <UNK>. <s> is a context only (log10 p = -99).

Pruning, both optional, both from the highest order down; an n-gram that is the prefix
(a history) or the suffix of a kept higher-order n-gram is always kept, so the ARPA file
stays prefix- and suffix-closed:
  - count cutoffs (`min_counts={3: 2}`, `--min-count 3gram:2`): drop n-grams of order
    n >= 2 seen fewer than min_counts[n] times (raw counts), like SRILM's -gtNmin;
  - relative-entropy pruning (Stolcke 1998, SRILM's `-prune`): drop an n-gram when removing
    it alone raises the model's perplexity by less than `prune_threshold` (relative),
    10^dH - 1 < threshold, where, with p'(w|h) = bow'(h) p(w|h') the backed-off value,
        dH = P(h) [p(w|h) log10(p(w|h) / p'(w|h)) + M(h) log10(bow(h) / bow'(h))],
    M(h) the mass of the words already backed off and P(h) the model's probability of the
    history as a word sequence (<s> as p(</s>), as SRILM does). Each n-gram of an order
    is judged alone against the model before that order is pruned.
Probabilities of kept n-grams stay the interpolated ones; the back-off weights of
histories that lost children are recomputed so every distribution sums to one:
    bow(h) = (1 - sum_{kept w} p(w | h)) / (1 - sum_{kept w} p(w | h')).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from steps.lm.ngram import BOS, EOS, LOG10_ZERO, UNK, BackoffLM, EncodedText, NgramTable, encode_sentences

log = logging.getLogger(__name__)


DISCOUNT_FALLBACK = (0.5, 1.0, 1.5)


@dataclass
class _Counts:
    """The distinct n-grams of one order seen in the text (before pruning)."""

    keys: np.ndarray  # sorted, prefix index * B + last
    raw: np.ndarray  # raw counts
    suffix: np.ndarray | None  # index in the order below of the n-gram minus its first word
    first: np.ndarray  # first token


def _count(stream: np.ndarray, num_tokens: int, eos: int, order: int) -> list[_Counts]:
    B, T = num_tokens, len(stream)
    counts = [_Counts(np.arange(B, dtype=np.int64), np.bincount(stream, minlength=B),
                      None, np.arange(B, dtype=np.int64))]
    position_id = stream.copy()  # id of the (n-1)-gram starting at each position
    valid = np.ones(T, dtype=bool)
    for n in range(2, order + 1):
        m = T - n + 1
        if m <= 0:
            empty = np.zeros(0, dtype=np.int64)
            counts.append(_Counts(empty, empty, empty, empty))
            position_id, valid = empty, np.zeros(0, dtype=bool)
            continue
        # window [i, i+n) stays in one sentence iff [i, i+n-1) did and does not end in </s>
        ok = valid[:m] & (stream[n - 2:n - 2 + m] != eos)
        positions = np.flatnonzero(ok)
        keys = position_id[positions] * B + stream[positions + n - 1]
        unique, first, inverse, raw = np.unique(keys, return_index=True, return_inverse=True,
                                                return_counts=True)
        suffix = position_id[positions[first] + 1]
        prefix = unique // B
        counts.append(_Counts(unique, raw, suffix, counts[-1].first[prefix]))
        position_id = np.full(m, -1, dtype=np.int64)
        position_id[positions] = inverse
        valid = ok
    return counts


def kn_discounts(adjusted: np.ndarray, order: int) -> tuple[float, float, float]:
    """D1, D2, D3+ from the counts-of-counts of the adjusted counts (fallback if invalid)."""
    n = [int(np.count_nonzero(adjusted == k)) for k in range(1, 5)]
    try:
        y = n[0] / (n[0] + 2 * n[1])
        d = tuple(k - (k + 1) * y * n[k] / n[k - 1] for k in (1, 2, 3))
    except ZeroDivisionError:
        d = None
    if d is None or not all(0 < dk <= k for k, dk in zip((1, 2, 3), d)):
        # Usual at order 1 with a small closed vocabulary (every word has many left
        # contexts, so n1..n4 are 0); a sign of too little text at higher orders.
        log.log(logging.INFO if order == 1 else logging.WARNING,
                "order %d: counts-of-counts n1..n4 = %s give no valid Kneser-Ney "
                "discounts; using %s", order, n, DISCOUNT_FALLBACK)
        return DISCOUNT_FALLBACK
    return d  # type: ignore[return-value]


@dataclass
class EstimationStats:
    order: int
    sentences: int
    words: int
    oov: int
    oov_words: Counter  # text word -> tokens mapped to <UNK>
    distinct: list[int]  # distinct n-grams seen per order
    kept: list[int]  # n-grams in the model per order
    discounts: list[tuple[float, float, float]]

    def summary(self) -> str:
        lines = [f"{self.sentences} sentences, {self.words} words, {self.oov} OOV tokens "
                 f"({len(self.oov_words)} types) mapped to {UNK}"]
        for n in range(1, self.order + 1):
            d = ", ".join(f"{x:.4f}" for x in self.discounts[n - 1])
            lines.append(f"{n}-grams: {self.distinct[n - 1]} seen, {self.kept[n - 1]} kept, "
                         f"discounts D1, D2, D3+ = {d}")
        return "\n".join(lines)


def estimate_kneser_ney(lines: Iterable[str], vocabulary: Sequence[str] | None = None,
                        order: int = 3, min_counts: dict[int, int] | None = None,
                        prune_threshold: float = 0.0) -> tuple[BackoffLM, EstimationStats]:
    """Interpolated modified Kneser-Ney LM of the sentences in `lines`, pruned.

    vocabulary: the closed word list (<UNK> added if missing); None = the text's words.
    Token ids: the vocabulary words, then </s>, then <s>.
    """
    kn = KneserNey.estimate(lines, vocabulary, order)
    keep = kn.prune(min_counts or {}, prune_threshold)
    lm = kn.backoff_model(keep)
    text = kn.text
    stats = EstimationStats(order, text.num_sentences, text.num_words, sum(text.oov.values()),
                            text.oov, [len(c.keys) for c in kn.counts],
                            lm.counts() + [0] * (order - lm.order), kn.discounts)
    return lm, stats


@dataclass
class KneserNey:
    """The unpruned interpolated model: every n-gram seen, its probability and, for every
    history, the interpolation weight gamma. `backoff_model(keep)` turns it into ARPA form."""

    tokens: list[str]
    bos: int
    eos: int
    text: EncodedText
    counts: list[_Counts]  # per order
    adjusted: list[np.ndarray]  # per order, adjusted counts a
    discounts: list[tuple[float, float, float]]  # per order, D1 D2 D3+
    probs: list[np.ndarray]  # per order, interpolated p(last | prefix)
    gammas: list[np.ndarray]  # gammas[n-1]: gamma of the entries of order n as histories

    @property
    def order(self) -> int:
        return len(self.counts)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @classmethod
    def estimate(cls, lines: Iterable[str], vocabulary: Sequence[str] | None = None,
                 order: int = 3) -> "KneserNey":
        if order < 1:
            raise ValueError("order must be >= 1")
        lines = list(lines)
        if vocabulary is None:
            vocabulary = sorted({w for line in lines for w in line.split()} - {BOS, EOS})
        vocab = list(vocabulary)
        if UNK not in vocab:
            vocab.insert(0, UNK)
        if len(set(vocab)) != len(vocab) or BOS in vocab or EOS in vocab:
            raise ValueError("vocabulary must be distinct words without <s> and </s>")
        tokens = [*vocab, EOS, BOS]
        B, eos, bos = len(tokens), len(vocab), len(vocab) + 1
        token_id = {t: i for i, t in enumerate(tokens)}
        text = encode_sentences(lines, token_id, token_id[UNK], bos, eos)
        counts = _count(text.stream, B, eos, order)

        # adjusted counts: raw at the top order and for n-grams starting with <s>
        adjusted = [np.zeros(0)] * order
        adjusted[order - 1] = counts[order - 1].raw.astype(np.float64)
        for n in range(order - 1, 0, -1):
            left = np.bincount(counts[n].suffix, minlength=len(counts[n - 1].keys))
            starts = counts[n - 1].first == bos
            adjusted[n - 1] = np.where(starts, counts[n - 1].raw, left).astype(np.float64)
        adjusted[0][bos] = 0.0  # <s> is never predicted

        discounts, probs, gammas = [], [], []
        for n in range(1, order + 1):
            a = adjusted[n - 1]
            d1, d2, d3 = kn_discounts(a[a > 0], n)
            discounts.append((d1, d2, d3))
            d = np.select([a >= 3, a == 2, a == 1], [d3, d2, d1], 0.0)
            if n == 1:
                total = a.sum()
                if total > 0:  # interpolation with the uniform distribution over B-1 tokens
                    p = (a - d) / total + d.sum() / total / (B - 1)
                else:
                    p = np.full(B, 1.0 / (B - 1))
                p[bos] = 0.0
            else:
                prefix = counts[n - 1].keys // B
                size = len(counts[n - 2].keys)
                total = np.bincount(prefix, weights=a, minlength=size)
                held = np.bincount(prefix, weights=d, minlength=size)
                gamma = np.divide(held, total, out=np.zeros(size), where=total > 0)
                gammas.append(gamma)
                lower = probs[n - 2][counts[n - 1].suffix]
                p = (a - d) / total[prefix] + gamma[prefix] * lower
            probs.append(p)
        gammas.append(np.zeros(len(counts[-1].keys)))  # the top order is no history
        return cls(tokens, bos, eos, text, counts, adjusted, discounts, probs, gammas)

    # ---- pruning

    def _prefix(self, n: int) -> np.ndarray:
        return self.counts[n - 1].keys // self.num_tokens

    def bows(self, keep: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Back-off weights (not logs) of the entries of order n-1 as histories, given the
        kept n-grams of order n; with the numerators 1 - sum_kept p(w|h) and denominators
        1 - sum_kept p(w|h')."""
        prefix, kept = self._prefix(n), keep[n - 1]
        size = len(self.counts[n - 2].keys)
        lower = self.probs[n - 2][self.counts[n - 1].suffix]
        num = 1.0 - np.bincount(prefix[kept], weights=self.probs[n - 1][kept], minlength=size)
        den = 1.0 - np.bincount(prefix[kept], weights=lower[kept], minlength=size)
        num, den = np.maximum(num, 1e-300), np.maximum(den, 1e-300)
        bow = num / den
        gamma = self.gammas[n - 2]
        intact = (np.bincount(prefix[~kept], minlength=size) == 0) & (gamma > 0)
        bow[intact] = gamma[intact]  # the same, without the rounding of 1 - sum
        bow[np.bincount(prefix[kept], minlength=size) == 0] = 1.0
        return bow, num, den

    def cutoff(self, min_counts: dict[int, int]) -> list[np.ndarray]:
        """Kept masks per order after count cutoffs (raw count >= min_counts[n])."""
        keep = [np.ones(len(c.keys), dtype=bool) for c in self.counts]
        for n, minimum in min_counts.items():
            if 2 <= n <= self.order:
                keep[n - 1] = self.counts[n - 1].raw >= minimum
        for n in range(self.order, 1, -1):
            keep[n - 2] |= self._needed(keep, n - 1)
        return keep

    def _needed(self, keep: list[np.ndarray], n: int) -> np.ndarray:
        """Entries of order n that are the history or the suffix of a kept (n+1)-gram."""
        needed = np.zeros(len(self.counts[n - 1].keys), dtype=bool)
        if n < self.order:
            needed[self._prefix(n + 1)[keep[n]]] = True
            needed[self.counts[n].suffix[keep[n]]] = True
        return needed

    def history_log10_probs(self) -> list[np.ndarray]:
        """log10 P(h) of every entry of orders 1..N-1 as a word sequence (SRILM: <s> as
        p(</s>)), by the chain of its own interpolated probabilities."""
        first = np.log10(np.maximum(self.probs[0], 1e-300))
        first[self.bos] = np.log10(self.probs[0][self.eos])
        history = [first]
        for n in range(2, self.order):
            history.append(history[-1][self._prefix(n)] + np.log10(self.probs[n - 1]))
        return history

    def entropy_deltas(self, keep: list[np.ndarray], n: int,
                       history: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of order n (kept, not needed by order n+1) and, for each, the rise of
        the model's entropy (log10, weighted by P(h)) if it alone were backed off."""
        history = history or self.history_log10_probs()
        bow, num, den = self.bows(keep, n)
        candidates = np.flatnonzero(keep[n - 1] & ~self._needed(keep, n))
        h = self._prefix(n)[candidates]
        p = self.probs[n - 1][candidates]
        q = self.probs[n - 2][self.counts[n - 1].suffix[candidates]]
        new_bow = (num[h] + p) / (den[h] + q)
        delta = (10.0 ** history[n - 2][h]) * (
            p * (np.log10(p) - np.log10(new_bow * q))
            + num[h] * (np.log10(bow[h]) - np.log10(new_bow)))
        return candidates, delta

    def prune(self, min_counts: dict[int, int], threshold: float = 0.0) -> list[np.ndarray]:
        """Count cutoffs, then (threshold > 0) relative-entropy pruning from the top order
        down; each n-gram is judged alone against the model before that order's pruning."""
        keep = self.cutoff(min_counts)
        if threshold <= 0:
            return keep
        history = self.history_log10_probs()
        for n in range(self.order, 1, -1):
            candidates, delta = self.entropy_deltas(keep, n, history)
            pruned = candidates[10.0 ** delta - 1.0 < threshold]
            keep[n - 1][pruned] = False
            log.info("relative-entropy pruning: %d of %d %d-grams pruned", len(pruned),
                     len(keep[n - 1]), n)
        return keep

    def backoff_model(self, keep: list[np.ndarray] | None = None) -> BackoffLM:
        """The ARPA form of the kept n-grams (all if keep is None)."""
        if keep is None:
            keep = [np.ones(len(c.keys), dtype=bool) for c in self.counts]
        B = self.num_tokens
        bows = [self.bows(keep, n)[0] for n in range(2, self.order + 1)]
        bows.append(np.ones(len(self.counts[-1].keys)))
        tables = []
        new_index = np.zeros(0, dtype=np.int64)
        for n in range(1, self.order + 1):
            k = keep[n - 1]
            keys = self.counts[n - 1].keys[k]
            if n > 1:
                keys = new_index[keys // B] * B + keys % B  # prefix indices after pruning
            logprob = np.log10(np.maximum(self.probs[n - 1][k], 1e-300))
            if n == 1:
                logprob[self.bos] = LOG10_ZERO
            tables.append(NgramTable(keys, logprob, np.log10(bows[n - 1][k])))
            new_index = np.cumsum(k) - 1
        while len(tables) > 1 and len(tables[-1]) == 0:  # everything pruned at the top
            log.warning("no %d-grams (none seen or all pruned): the model is of order %d",
                        len(tables), len(tables) - 1)
            tables.pop()
        return BackoffLM(list(self.tokens), self.bos, self.eos, tables)
