"""Word n-gram back-off LMs: the model (NgramTable, BackoffLM), ARPA in and out, queries and
perplexity. steps.lm.kneser_ney estimates and prunes one.

Everything is vectorised with numpy: an n-gram is stored as the index of its prefix in
the table one order below and its last token (key = prefix * num_tokens + last), so no
key ever overflows whatever the order and vocabulary.

    lm, stats = estimate_kneser_ney(text_lines, vocabulary, order=3, min_counts={3: 2})  # steps.lm.kneser_ney
    lm.write_arpa("lm_3gram.arpa");  lm = BackoffLM.read_arpa("lm_3gram.arpa")
    lm.log10_prob(["<s>", "THE"], "CAT");  perplexity(lm, valid_lines)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from steps.core.atomic import atomic_path
from steps.lm.arpa import BOS, EOS, UNK, ngram_lines, numbered_lines, open_arpa, read_header

NON_LM_WORDS = ("<eps>", "!SIL", BOS, EOS)  # and disambiguation symbols #N
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
        """Reads an ARPA file, plain or gzip (steps.lm.arpa checks its form); token ids follow
        the order of its 1-gram section."""
        path = Path(path)
        with open_arpa(path) as f:
            lines = numbered_lines(path, f)
            declared = read_header(path, lines)
            entries: dict[int, list[tuple[list[str], float, float]]] = {n: [] for n in declared}
            for n, fields, _ in ngram_lines(path, lines, declared):
                if fields is not None:
                    bow = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
                    entries[n].append((fields[1:n + 1], float(fields[0]), bow))
        order = max(declared)
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


