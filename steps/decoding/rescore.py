"""N-best LM rescoring with a bigger n-gram, Kaldi's lmrescore rule: a path's graph score
loses the first-pass LM's log-probability of its words and gains the new LM's; its other
graph parts (silence and pronunciation choices, transitions) and its acoustic score stay.
The N-best comes from the first pass's lattice (steps.decoding.k2_search.nbest).

    rescorer = NbestRescorer("data/lang_test/lm_3gram.arpa", "data/lang_test_4gram/lm_4gram.arpa", words)
    best = rescorer.best(paths, lm_weight=10)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from steps.decoding.k2_search import PathScores
from steps.lm.ngram import BackoffLM

LN10 = math.log(10.0)


class NbestRescorer:
    def __init__(self, old_arpa: str | Path, new_arpa: str | Path, words: list[str]):
        self.old = BackoffLM.read_arpa(old_arpa)
        self.new = BackoffLM.read_arpa(new_arpa)
        self.words = words
        self._cache: dict[tuple[int, ...], float] = {}

    @staticmethod
    def log_prob(lm: BackoffLM, words: list[str]) -> float:
        """Natural-log probability of the sentence, </s> included (as G scores it)."""
        ids = [lm.bos] + [lm.token_id.get(w, lm.unk if lm.unk is not None else -1) for w in words] + [lm.eos]
        if min(ids) < 0:
            raise KeyError(f"a word of {' '.join(words)!r} is not in the LM and it has no <unk>")
        return float(np.nansum(lm.log10_probs(np.array(ids)))) * LN10

    def graph_change(self, word_ids: list[int]) -> float:
        """new LM log-prob minus old LM log-prob of these words."""
        key = tuple(word_ids)
        if key not in self._cache:
            words = [self.words[i] for i in word_ids]
            self._cache[key] = self.log_prob(self.new, words) - self.log_prob(self.old, words)
        return self._cache[key]

    def rescored(self, path: PathScores) -> PathScores:
        return PathScores(path.words, path.graph + self.graph_change(path.words), path.acoustic)

    def best(self, paths: list[PathScores], lm_weight: float) -> PathScores:
        return max((self.rescored(p) for p in paths), key=lambda p: p.total(lm_weight))
