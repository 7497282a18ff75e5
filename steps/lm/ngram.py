"""Word n-gram LM: interpolated modified Kneser-Ney estimation, pruning, ARPA in and out.

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

Everything is vectorised with numpy: an n-gram is stored as the index of its prefix in
the table one order below and its last token (key = prefix * num_tokens + last), so no
key ever overflows whatever the order and vocabulary.

    lm, stats = estimate_kneser_ney(text_lines, vocabulary, order=3, min_counts={3: 2})
    lm.write_arpa("lm_3gram.arpa");  lm = BackoffLM.read_arpa("lm_3gram.arpa")
    lm.log10_prob(["<s>", "THE"], "CAT");  perplexity(lm, valid_lines)
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from steps.core.atomic import atomic_path

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<UNK>"
NON_LM_WORDS = ("<eps>", "!SIL", BOS, EOS)  # and disambiguation symbols #N
DISCOUNT_FALLBACK = (0.5, 1.0, 1.5)
LOG10_ZERO = -99.0  # ARPA's log10 probability of <s>


def lm_vocabulary(words: Sequence[str], unk: str = UNK) -> list[str]:
    """The LM's words from a words.txt symbol list: all but <eps>, !SIL, #N, <s>, </s>."""
    vocab = [w for w in words if w and w not in NON_LM_WORDS and not w.startswith("#")]
    if unk not in vocab:
        vocab.insert(0, unk)
    return vocab


def parse_min_counts(specs: Iterable[str]) -> dict[int, int]:
    """["3gram:2", "4gram:3"] or ["3gram:2,4gram:3"] -> {3: 2, 4: 3}."""
    result: dict[int, int] = {}
    for spec in specs:
        for item in filter(None, spec.split(",")):
            match = re.fullmatch(r"\s*(\d+)(?:-?gram)?\s*:\s*(\d+)\s*", item)
            if not match:
                raise ValueError(f"bad min-count {item!r}: expected e.g. 3gram:2")
            order, count = int(match.group(1)), int(match.group(2))
            if order < 2:
                raise ValueError(f"bad min-count {item!r}: unigrams are never cut")
            result[order] = count
    return result


# ----------------------------------------------------------------------------- text


@dataclass
class EncodedText:
    """Sentences as one token stream: <s> w1 .. wn </s> <s> ..."""

    stream: np.ndarray  # int64
    num_sentences: int
    num_words: int  # words, </s> not included
    oov: Counter  # text word -> times it was mapped to <UNK>


def encode_sentences(lines: Iterable[str], token_id: dict[str, int], unk: int, bos: int,
                     eos: int) -> EncodedText:
    stream: list[int] = []
    oov: Counter = Counter()
    sentences = words = 0
    for line in lines:
        ids = [bos]
        for word in line.split():
            index = token_id.get(word)
            if index is None or index == bos or index == eos:
                oov[word] += 1
                if unk is None:
                    raise ValueError(f"{word!r} is not in the LM's vocabulary, which has "
                                     f"no {UNK}")
                index = unk
            ids.append(index)
        ids.append(eos)
        stream.extend(ids)
        sentences += 1
        words += len(ids) - 2
    return EncodedText(np.asarray(stream, dtype=np.int64), sentences, words, oov)


# ----------------------------------------------------------------------------- model


@dataclass
class NgramTable:
    """The n-grams of one order, sorted by key = prefix index * num_tokens + last token,
    where the prefix index points into the table one order below (order 1: prefix 0)."""

    keys: np.ndarray  # int64 [M], strictly increasing
    logprob: np.ndarray  # float64 [M], log10 p(last | prefix)
    backoff: np.ndarray  # float64 [M], log10 back-off weight as a history (0 if none)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class BackoffLM:
    """A back-off n-gram model: what an ARPA file holds, with vectorised lookups."""

    tokens: list[str]  # token id -> string; the order-1 table has every token, index = id
    bos: int
    eos: int
    tables: list[NgramTable]  # tables[n - 1] holds order n
    unk: int | None = None
    token_id: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.token_id = {t: i for i, t in enumerate(self.tokens)}
        if self.unk is None:
            self.unk = self.token_id.get(UNK)

    @property
    def order(self) -> int:
        return len(self.tables)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def counts(self) -> list[int]:
        return [len(t) for t in self.tables]

    # ---- lookups

    def index(self, ngrams: np.ndarray) -> np.ndarray:
        """Index in tables[n-1] of each row of token ids [M, n], -1 where absent."""
        ngrams = np.asarray(ngrams, dtype=np.int64)
        index = ngrams[:, 0].copy()
        for k in range(1, ngrams.shape[1]):
            index = self._extend(k, index, ngrams[:, k])
        return index

    def _extend(self, k: int, prefix: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Index in tables[k] of (prefix entry of tables[k-1], last token); -1 if absent."""
        keys = self.tables[k].keys
        result = np.full(len(prefix), -1, dtype=np.int64)
        ok = prefix >= 0
        if not ok.any() or len(keys) == 0:
            return result
        wanted = prefix[ok] * self.num_tokens + last[ok]
        pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        result[ok] = np.where(keys[pos] == wanted, pos, -1)
        return result

    def log10_prob(self, context: Sequence[str | int], word: str | int) -> float:
        """log10 p(word | context) by the back-off rule; context oldest first."""
        ids = [self._id(t) for t in context][-(self.order - 1):] if self.order > 1 else []
        if self.bos in ids:  # nothing before a sentence start
            ids = ids[len(ids) - 1 - ids[::-1].index(self.bos):]
        target = self._id(word)
        total = 0.0
        for start in range(len(ids) + 1):
            history = ids[start:]
            found = self.index(np.array([history + [target]]))[0]
            if found >= 0:
                return total + float(self.tables[len(history)].logprob[found])
            if history:
                h = self.index(np.array([history]))[0]
                if h >= 0:
                    total += float(self.tables[len(history) - 1].backoff[h])
        raise KeyError(f"{word!r} is not in the model")

    def _id(self, token: str | int) -> int:
        if isinstance(token, (int, np.integer)):
            return int(token)
        return self.token_id.get(token, self.unk if self.unk is not None else -1)

    def log10_probs(self, stream: np.ndarray) -> np.ndarray:
        """log10 p of every token of a <s> .. </s> stream given its history (NaN at <s>)."""
        stream = np.asarray(stream, dtype=np.int64)
        T, N = len(stream), self.order
        # ending[n-1][t]: index of the n-gram stream[t-n+1 .. t] in tables[n-1], -1 if none
        ending = [stream.copy()]
        for n in range(2, N + 1):
            prev = np.full(T, -1, dtype=np.int64)
            prev[1:] = ending[-1][:-1]
            prev[np.r_[True, stream[:-1] == self.eos]] = -1  # no history across sentences
            prev[stream == self.bos] = -1
            ending.append(self._extend(n - 1, prev, stream))
        result = np.zeros(T)
        done = np.zeros(T, dtype=bool)
        for n in range(N, 0, -1):  # the longest n-gram found gives the probability
            hit = (ending[n - 1] >= 0) & ~done
            result[hit] += self.tables[n - 1].logprob[ending[n - 1][hit]]
            done |= hit
            if n > 1:  # back off past the history of length n-1 where it is an entry
                context = np.full(T, -1, dtype=np.int64)
                context[1:] = ending[n - 2][:-1]
                context[np.r_[True, stream[:-1] == self.eos]] = -1
                backed = ~done & (context >= 0)
                result[backed] += self.tables[n - 2].backoff[context[backed]]
        result[stream == self.bos] = np.nan
        return result

    def ngram_tokens(self, n: int) -> np.ndarray:
        """Token ids [M, n] of the entries of tables[n-1], in table order."""
        cols = [self.tables[n - 1].keys % self.num_tokens]
        index = self.tables[n - 1].keys // self.num_tokens
        for k in range(n - 2, -1, -1):
            keys = self.tables[k].keys[index]
            cols.append(keys % self.num_tokens)
            index = keys // self.num_tokens
        return np.stack(cols[::-1], axis=1)

    # ---- ARPA

    def write_arpa(self, path: str | Path) -> None:
        """ARPA text: \\data\\ counts, then each order sorted by its words (C order).
        A back-off weight is written for the n-grams that are histories of the next order."""
        rank = np.empty(self.num_tokens, dtype=np.int64)
        rank[np.argsort(np.array(self.tokens, dtype=object))] = np.arange(self.num_tokens)
        names = np.array(self.tokens, dtype=object)
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write("\n\\data\\\n")
            for n, table in enumerate(self.tables, 1):
                f.write(f"ngram {n}={len(table)}\n")
            for n, table in enumerate(self.tables, 1):
                f.write(f"\n\\{n}-grams:\n")
                cols = self.ngram_tokens(n)
                order = np.lexsort([rank[cols[:, k]] for k in range(n - 1, -1, -1)])
                is_history = np.zeros(len(table), dtype=bool)
                if n < self.order:
                    is_history[self.tables[n].keys // self.num_tokens] = True
                columns = [names[cols[order, k]].tolist() for k in range(n)]
                words = columns[0] if n == 1 else [" ".join(w) for w in zip(*columns)]
                probs = [f"{p:.7f}" for p in table.logprob[order]]
                bows = np.where(is_history[order], table.backoff[order], np.nan)
                lines = [
                    f"{p}\t{w}\n" if math.isnan(b) else f"{p}\t{w}\t{b:.7f}\n"
                    for p, w, b in zip(probs, words, bows.tolist())
                ]
                f.write("".join(lines))
            f.write("\n\\end\\\n")

    @classmethod
    def read_arpa(cls, path: str | Path) -> "BackoffLM":
        """Reads an ARPA file; token ids follow the order of its 1-gram section."""
        declared: dict[int, int] = {}
        entries: dict[int, list[tuple[list[str], float, float]]] = {}
        section = None
        with open(path) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    section = 0
                elif line == "\\end\\":
                    break
                elif re.fullmatch(r"\\\d+-grams:", line):
                    section = int(line[1:].split("-")[0])
                    entries[section] = []
                elif section == 0 and line.startswith("ngram "):
                    n, count = line[6:].split("=")
                    declared[int(n)] = int(count)
                elif section:
                    parts = line.split()
                    if len(parts) not in (section + 1, section + 2):
                        raise ValueError(f"{path}:{number}: bad {section}-gram line {line!r}")
                    bow = float(parts[section + 1]) if len(parts) == section + 2 else 0.0
                    entries[section].append((parts[1:section + 1], float(parts[0]), bow))
        order = max(declared) if declared else 0
        for n in range(1, order + 1):
            if len(entries.get(n, [])) != declared[n]:
                raise ValueError(f"{path}: \\data\\ says ngram {n}={declared[n]}, "
                                 f"found {len(entries.get(n, []))}")
        tokens = [e[0][0] for e in entries[1]]
        token_id = {t: i for i, t in enumerate(tokens)}
        B = len(tokens)
        tables = [NgramTable(np.arange(B, dtype=np.int64),
                             np.array([e[1] for e in entries[1]]),
                             np.array([e[2] for e in entries[1]]))]
        lm = cls(tokens, token_id[BOS], token_id[EOS], tables)
        for n in range(2, order + 1):
            rows = entries[n]
            ids = np.array([[token_id[w] for w in e[0]] for e in rows], dtype=np.int64)
            ids = ids.reshape(len(rows), n)
            prefix = lm.index(ids[:, :-1])
            if (prefix < 0).any():
                bad = rows[int(np.flatnonzero(prefix < 0)[0])][0]
                raise ValueError(f"{path}: {n}-gram {' '.join(bad)!r} has no history entry")
            keys = prefix * B + ids[:, -1]
            sort = np.argsort(keys, kind="stable")
            lm.tables.append(NgramTable(keys[sort], np.array([e[1] for e in rows])[sort],
                                        np.array([e[2] for e in rows])[sort]))
        return lm

    def encode(self, lines: Iterable[str]) -> EncodedText:
        return encode_sentences(lines, self.token_id, self.unk, self.bos, self.eos)


def perplexity(lm: BackoffLM, lines: Iterable[str]) -> dict:
    """Per-word perplexity over words and </s> (OOV words scored as <UNK>)."""
    text = lm.encode(lines)
    logp = lm.log10_probs(text.stream)
    total = float(np.nansum(logp))
    events = text.num_words + text.num_sentences
    return {
        "ppl": 10 ** (-total / events) if events else float("nan"),
        "log10_prob": total,
        "sentences": text.num_sentences,
        "words": text.num_words,
        "oov": sum(text.oov.values()),
    }


# ----------------------------------------------------------------------------- estimation


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
