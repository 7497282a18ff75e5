"""Search of the HCLG graph (steps.mkgraph) with per-frame senone scores: Kaldi's
lattice decoder through kaldi_decoder, and 1-best word sequences from its lattices for any
LM weight.

    graph = HybridGraph.load("exp/graph")
    hyps = graph.decode(loglikes, [9, 10, 11], SearchOptions(acoustic_scale=0.1))
    hyps.words[10]                  # word ids of the best path for LM weight 10

`loglikes` are hybrid scaled likelihoods, log p(senone | x) - log p(senone), [T, S].
The graph's input labels are units (phone, state, senone) from 1 (units.txt); each frame's
scores are gathered into unit order, times the acoustic scale, and handed to the decoder
as a matrix whose column u-1 scores label u (kaldi_decoder.DecodableCtc's convention).

The search: kaldi-decoder's LatticeSimpleDecoder keeps every token within `beam` of the
best (it has no active-state limit) and writes a state-level lattice of everything within
`lattice_beam`, costs (graph, acoustic x acoustic_scale). The 1-best for LM weight w
minimises w * graph + acoustic (Kaldi's LMWT: lattice-scale --inv-acoustic-scale=w), so an
LM-weight sweep costs one search. (The recipe's default decoder is k2's pruned lattice
search, steps.decoding; this one stays as steps.decode --decoder kaldi: at equal beams it
holds less memory and writes smaller lattices. FasterDecoder, one search per LM weight, was
removed: on a trained model it cost 27x the k2 sweep at the same WER, BENCHMARKS.md.)
Graph costs include the LM, the silence and pronunciation choices and the transition
model, as in Kaldi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steps.decoding.k2_search import DEFAULT_BEAM, DEFAULT_LATTICE_BEAM
from steps.graph.fst_arrays import fst_type_of
from steps.lang.lexicon import read_symbol_table

DECODERS = ("kaldi",)


@dataclass
class SearchOptions:
    decoder: str = "kaldi"  # kaldi-decoder's LatticeSimpleDecoder
    acoustic_scale: float = 0.1
    beam: float = DEFAULT_BEAM
    lattice_beam: float = DEFAULT_LATTICE_BEAM
    prune_interval: int = 25

    def __post_init__(self):
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")


@dataclass
class SearchResult:
    lattice: object | None  # kaldifst.Lattice (raw, state level) or None if nothing survived
    reached_final: bool


@dataclass
class WeightedHyps:
    words: dict[float, list[int] | None]  # LM weight -> word ids (None: no path)
    reached_final: bool


class HybridGraph:
    """HCLG.fst with what its labels mean."""

    def __init__(self, fst, unit_senones: np.ndarray, words: list[str], num_senones: int):
        self.fst = fst
        self.unit_senones = unit_senones  # [U] senone of unit u+1
        self.words = words
        self.num_senones = num_senones

    @classmethod
    def load(cls, graph_dir: str | Path, with_fst: bool = True) -> "HybridGraph":
        """with_fst=False: the label tables only (the k2 decoder reads its own graph)."""
        import kaldifst  # only --decoder kaldi needs it

        graph_dir = Path(graph_dir)
        info = json.loads((graph_dir / "graph.json").read_text())
        rows = [line.split() for line in (graph_dir / "units.txt").read_text().splitlines() if line.strip()]
        unit_senones = np.zeros(len(rows), dtype=np.int64)
        for row in rows:
            unit_senones[int(row[0]) - 1] = int(row[3])
        table = read_symbol_table(graph_dir / "words.txt")
        words = [""] * (max(table.values()) + 1)
        for word, index in table.items():
            words[index] = word
        path = graph_dir / "HCLG.fst"
        if not with_fst:
            return cls(None, unit_senones, words, int(info["num_senones"]))
        reader = kaldifst.StdConstFst if fst_type_of(path) == "const" else kaldifst.StdVectorFst
        fst = reader.read(str(path))
        if fst is None:
            raise IOError(f"cannot read {graph_dir / 'HCLG.fst'}")
        return cls(fst, unit_senones, words, int(info["num_senones"]))

    def unit_scores(self, loglikes: np.ndarray, acoustic_scale: float) -> np.ndarray:
        """[T, S] senone scores -> [T, U] scaled unit scores (column u-1 = unit u)."""
        if loglikes.shape[1] != self.num_senones:
            raise ValueError(f"scores have {loglikes.shape[1]} columns; the graph has "
                             f"{self.num_senones} senones")
        return np.ascontiguousarray(loglikes[:, self.unit_senones] * acoustic_scale, dtype=np.float32)

    def decode(self, loglikes: np.ndarray, lm_weights: list[float], options: SearchOptions) -> WeightedHyps:
        """The best word sequence for each LM weight w (minimising w * graph + acoustic):
        one lattice search at options.acoustic_scale, then a 1-best per weight."""
        result = self.search(loglikes, options)
        return WeightedHyps({w: lattice_best_words(result.lattice, w, options.acoustic_scale)
                             for w in lm_weights}, result.reached_final)

    def search(self, loglikes: np.ndarray, options: SearchOptions) -> SearchResult:
        """LatticeSimpleDecoder (beam, lattice_beam; it has no active-state limit)."""
        import kaldi_decoder  # only --decoder kaldi needs it

        scores = self.unit_scores(np.asarray(loglikes, dtype=np.float32), options.acoustic_scale)
        config = kaldi_decoder.LatticeSimpleDecoderConfig(
            beam=options.beam, lattice_beam=options.lattice_beam, prune_interval=options.prune_interval)
        decoder = kaldi_decoder.LatticeSimpleDecoder(self.fst, config)
        decodable = kaldi_decoder.DecodableCtc(scores)
        if not decoder.decode(decodable):
            return SearchResult(None, False)
        reached_final = bool(np.isfinite(decoder.final_relative_cost()))
        ok, lattice = decoder.get_raw_lattice(use_final_probs=True)
        if not ok or lattice.num_states == 0:
            return SearchResult(None, reached_final)
        return SearchResult(lattice, reached_final)


def lattice_best_words(lattice, lm_weight: float, acoustic_scale: float) -> list[int] | None:
    """Word ids of the lattice path minimising lm_weight * graph + acoustic (acoustic
    unscaled: the lattice holds it times acoustic_scale); None if there is no path."""
    import kaldifst  # only --decoder kaldi needs it

    if lattice is None:
        return None
    scaled = kaldifst.Lattice(lattice)
    kaldifst.scale_lattice([[lm_weight, 0.0], [0.0, 1.0 / acoustic_scale]], scaled)
    best = kaldifst.shortest_path(scaled)
    if best.num_states == 0:
        return None
    ok, _, words, _ = kaldifst.get_linear_symbol_sequence(best)
    return list(words) if ok else None
