"""HMM topologies and per-utterance numerator graphs as k2 FSAs.

The graphs are built directly at the HMM-state level rather than by composing H, L and
the word sequence: for forced alignment every utterance needs only one small acyclic
graph (apart from self-loops), and building it in one pass lets each arc carry the phone
instance it belongs to, which is what turns a best path into phone and word segments.

Conventions of every graph here:
- labels are HMM-state ids + 1 (steps.hmm.topology); there are no epsilon arcs, so each
  non-final arc consumes exactly one frame, and the best path has one arc per frame;
- an arc is labelled by the state it enters, every state has a self-loop;
- transition scores are 0 inside phone HMMs: with equal loop and forward probabilities
  every path of T frames would get the same transition score, so they would not change
  which path is best; the only scores are log(sil_prob) / log(1 - sil_prob) for taking or
  skipping the optional silence between words and at the ends;
- each arc has the attribute `phone_instance`: the index (within the utterance) of the
  phone instance it enters, -1 on final arcs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import k2
import numpy as np
import torch

from steps.lang.lexicon import Lang
from steps.hmm.topology import Topology


def _fsa_from_arcs(arcs: list[tuple[int, int, int, float]], attributes: dict[str, list[int]]) -> k2.Fsa:
    order = sorted(range(len(arcs)), key=lambda i: arcs[i][0])  # k2 wants arcs by source state
    table = torch.tensor([arcs[i][:3] + (0,) for i in order], dtype=torch.int32)
    scores = torch.tensor([arcs[i][3] for i in order], dtype=torch.float32)
    table[:, 3] = scores.view(torch.int32)
    fsa = k2.Fsa(table)
    for name, values in attributes.items():
        setattr(fsa, name, torch.tensor([values[i] for i in order], dtype=torch.int32))
    return fsa


def phone_hmm_fsa(topology: Topology, phone: int) -> k2.Fsa:
    """One phone's HMM: start state 0, state k (1..n) means "in HMM state k-1", each with
    a self-loop, left to right, and a final arc (label -1) from the last one."""
    labels = [s + 1 for s in topology.states_of(phone)]
    n = len(labels)
    arcs = [(0, 1, labels[0], 0.0)]
    for k in range(1, n + 1):
        arcs.append((k, k, labels[k - 1], 0.0))
        if k < n:
            arcs.append((k, k + 1, labels[k], 0.0))
    arcs.append((n, n + 1, -1, 0.0))
    return _fsa_from_arcs(arcs, {})


@dataclass
class UtteranceGraph:
    """A numerator graph and what its phone instances stand for."""

    fsa: k2.Fsa
    instance_phone: np.ndarray  # phone instance -> phone id
    instance_word: np.ndarray  # phone instance -> word position in the transcript; -1 = optional silence
    words: list[str]
    min_frames: int  # the fewest frames any path needs


class TrainingGraphCompiler:
    """Numerator graphs from transcripts: all pronunciations of each word as alternatives,
    optional silence with probability sil_prob between words and edge_sil_prob before the
    first and after the last word (default: sil_prob). Words not in the lexicon take
    <UNK>'s pronunciation."""

    def __init__(self, lang: Lang, topology: Topology, sil_prob: float = 0.5,
                 edge_sil_prob: float | None = None):
        edge_sil_prob = sil_prob if edge_sil_prob is None else edge_sil_prob
        for name, value in (("sil_prob", sil_prob), ("edge_sil_prob", edge_sil_prob)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        self.lang = lang
        self.topology = topology
        self.sil_prob = sil_prob
        self.edge_sil_prob = edge_sil_prob
        self.silence = lang.phone_id[lang.optional_silence]
        missing = [p for p in lang.real_phone_ids if p not in topology.num_states]
        if missing:
            raise ValueError(f"the topology has no HMM for phones {missing}")

    def compile(self, words: list[str], prons: list[tuple[str, ...]] | None = None) -> UtteranceGraph:
        """prons: one pronunciation per word to use instead of all the lexicon's (e.g. the
        ones an earlier alignment chose); silence stays optional."""
        # Length: one graph construction (states, word arcs, optional silence) over shared arc lists
        if not words:
            raise ValueError("cannot build a graph for an empty transcript")
        if prons is not None and len(prons) != len(words):
            raise ValueError(f"{len(prons)} pronunciations for {len(words)} words")
        phone_id = self.lang.phone_id
        topo = self.topology
        arcs: list[tuple[int, int, int, float]] = []
        entered: list[int] = []  # phone_instance attribute of each arc
        instance_phone: list[int] = []
        instance_word: list[int] = []
        first_fsa_state: list[int] = []
        next_state = 1  # FSA state 0 is the start

        def add_instance(phone: int, word: int) -> int:
            nonlocal next_state
            index = len(instance_phone)
            instance_phone.append(phone)
            instance_word.append(word)
            first_fsa_state.append(next_state)
            labels = [s + 1 for s in topo.states_of(phone)]
            for k, label in enumerate(labels):
                state = next_state + k
                arcs.append((state, state, label, 0.0))
                entered.append(index)
                if k + 1 < len(labels):
                    arcs.append((state, state + 1, labels[k + 1], 0.0))
                    entered.append(index)
            next_state += len(labels)
            return index

        def last_state(instance: int) -> int:
            return first_fsa_state[instance] + topo.num_states[instance_phone[instance]] - 1

        def connect(src_state: int, instance: int, score: float) -> None:
            label = topo.state_id(instance_phone[instance], 0) + 1
            arcs.append((src_state, first_fsa_state[instance], label, score))
            entered.append(instance)

        def log_or_none(p: float) -> float | None:
            return math.log(p) if p > 0 else None

        # Ends of the word sequence so far (FSA states); the start state stands for
        # "before the first word".
        ends: list[int] = [0]
        min_frames = 0
        for position, word in enumerate(words):
            p = self.edge_sil_prob if position == 0 else self.sil_prob
            take_sil, skip_sil = log_or_none(p), math.log(1.0 - p)
            silence = add_instance(self.silence, -1) if take_sil is not None else None
            pron_firsts, pron_lasts = [], []
            word_prons = self.lang.prons(word) if prons is None else [prons[position]]
            for pron in word_prons:
                chain = [add_instance(phone_id[p], position) for p in pron]
                for a, b in zip(chain, chain[1:]):
                    connect(last_state(a), b, 0.0)
                pron_firsts.append(chain[0])
                pron_lasts.append(last_state(chain[-1]))
            for end in ends:
                if silence is not None:
                    connect(end, silence, take_sil)
                for first in pron_firsts:
                    connect(end, first, skip_sil)
            if silence is not None:
                for first in pron_firsts:
                    connect(last_state(silence), first, 0.0)
            ends = pron_lasts
            min_frames += min(sum(topo.num_states[phone_id[p]] for p in pron) for pron in word_prons)

        take_sil, skip_sil = log_or_none(self.edge_sil_prob), math.log(1.0 - self.edge_sil_prob)
        if take_sil is not None:
            silence = add_instance(self.silence, -1)
            for end in ends:
                connect(end, silence, take_sil)
        final = next_state  # k2: the final state is the last one
        if take_sil is not None:
            arcs.append((last_state(silence), final, -1, 0.0))
            entered.append(-1)
        for end in ends:
            arcs.append((end, final, -1, skip_sil))
            entered.append(-1)
        fsa = _fsa_from_arcs(arcs, {"phone_instance": entered})
        return UtteranceGraph(fsa, np.array(instance_phone, dtype=np.int32),
                              np.array(instance_word, dtype=np.int32), list(words), min_frames)
