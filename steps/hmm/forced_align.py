"""Forced alignment and the numerator (full-sum) loss on k2 numerator graphs.

Both score a batch of per-frame log-probabilities over HMM states against one
UtteranceGraph per utterance with k2.intersect_dense:
- `numerator_loss`: minus the total log-probability of all paths (the forward score);
- `align`: the best path (k2.shortest_path), one arc per frame, read back into per-frame
  HMM-state ids and phone / word segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import k2
import numpy as np
import torch

from steps.hmm.training_graph import UtteranceGraph


@dataclass
class Alignment:
    states: np.ndarray  # [T] int32 HMM-state ids
    phones: list[tuple[int, int, int]]  # (phone id, start frame, end frame), SIL included
    words: list[tuple[str, int, int]]  # (word, start frame, end frame)
    score: float  # log-probability of the best path
    # graphs whose labels are senones carry each arc's monophone state (+1) as `mono_state`
    mono_states: np.ndarray | None = None


def _dense(log_probs: torch.Tensor, lengths: torch.Tensor) -> k2.DenseFsaVec:
    # Graph labels are HMM-state ids + 1: column c of the dense matrix scores label c,
    # so a column for the unused label 0 goes in front.
    padded = torch.nn.functional.pad(log_probs, (1, 0), value=float("-inf"))
    segments = torch.stack(
        [torch.arange(len(lengths), dtype=torch.int32), torch.zeros(len(lengths), dtype=torch.int32),
         lengths.to(torch.int32).cpu()], dim=1)
    return k2.DenseFsaVec(padded, segments)


def too_short(graphs: list[UtteranceGraph], lengths: torch.Tensor) -> list[str | None]:
    """A reason for each utterance that has fewer frames than its transcript needs."""
    return [
        f"too short: {int(n)} frames, the transcript needs at least {g.min_frames}"
        if int(n) < g.min_frames else None
        for g, n in zip(graphs, lengths)
    ]


def numerator_loss(log_probs: torch.Tensor, lengths: torch.Tensor,
                   graphs: list[UtteranceGraph], output_beam: float = 20.0) -> tuple[torch.Tensor, int]:
    """Sum over utterances of -log p(graph paths | frames), and how many utterances had
    no surviving path (their terms are left out, never inf)."""
    fsas = k2.create_fsa_vec([g.fsa for g in graphs])
    lattice = k2.intersect_dense(fsas, _dense(log_probs, lengths), output_beam=output_beam)
    scores = lattice.get_tot_scores(log_semiring=True, use_double_scores=True)
    finite = torch.isfinite(scores)
    return -(scores[finite].sum()), int((~finite).sum())


def _segments(frame_instances: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal phone instance: (instance, start, end)."""
    if len(frame_instances) == 0:
        return []
    change = np.flatnonzero(np.diff(frame_instances)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(frame_instances)]])
    return [(int(frame_instances[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def alignment_from_path(labels: np.ndarray, instances: np.ndarray, graph: UtteranceGraph,
                        score: float) -> Alignment:
    """labels / instances: the best path's arcs (final arc dropped), one per frame."""
    states = (labels - 1).astype(np.int32)
    phones, words = [], []
    for instance, start, end in _segments(instances):
        phones.append((int(graph.instance_phone[instance]), start, end))
        position = int(graph.instance_word[instance])
        if position < 0:
            continue
        if words and words[-1][0] == position:
            words[-1] = (position, words[-1][1], end)
        else:
            words.append((position, start, end))
    return Alignment(states, phones, [(graph.words[p], s, e) for p, s, e in words], score)


def align(log_probs: torch.Tensor, lengths: torch.Tensor, graphs: list[UtteranceGraph],
          output_beam: float = 20.0) -> list[Alignment | str]:
    """Best path of each utterance, or the reason it has none."""
    results: list[Alignment | str | None] = list(too_short(graphs, lengths))
    todo = [i for i, r in enumerate(results) if r is None]
    if not todo:
        return results  # type: ignore[return-value]
    index = torch.tensor(todo)
    fsas = k2.create_fsa_vec([graphs[i].fsa for i in todo])
    with torch.no_grad():
        lattice = k2.intersect_dense(fsas, _dense(log_probs[index], lengths[index]),
                                     output_beam=output_beam)
        best = k2.shortest_path(lattice, use_double_scores=True)
        scores = best.get_tot_scores(log_semiring=False, use_double_scores=True)
    for j, i in enumerate(todo):
        path = best[j]
        labels = path.labels.numpy()
        if len(labels) == 0 or not np.isfinite(float(scores[j])):
            results[i] = "no path through the graph within the beam"
            continue
        keep = labels != -1
        n = int(lengths[i])
        if int(keep.sum()) != n:
            results[i] = f"best path covers {int(keep.sum())} of {n} frames"
            continue
        result = alignment_from_path(labels[keep], path.phone_instance.numpy()[keep], graphs[i],
                                     float(scores[j]))
        if hasattr(path, "mono_state"):
            result.mono_states = (path.mono_state.numpy()[keep] - 1).astype(np.int32)
        results[i] = result
    return results  # type: ignore[return-value]
