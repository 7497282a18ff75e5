"""Units of a text and of an alignment: words -> phones -> senones, and the same from a
monophone alignment, with the check that both sides agree.

Text side (the conventions' interface, used for the teacher LMs' token corpora):

    phones = words_to_phones(["HELLO", "WORLD"], lang)          # phone ids, no silence
    senones = phones_to_senones(phones, topology, tree)          # one per HMM state, runs collapsed

Alignment side (used by steps.acc_tree_stats and steps.convert_ali):

    phones, starts, ends = phone_instances(mono_ali, topology)   # phone segments of the states
    events = frame_events(mono_ali, topology, silence)           # [T, 4] left, centre, right, state

Agreement: the senone alignment's runs over the non-silence frames must equal
phones_to_senones of the aligned phones without silence (`alignment_agrees`). Both sides
take contexts from steps.hmm.context.phone_contexts (silence transparent, edges 0), so they
differ only when the alignment is not a path of the phones it claims.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from steps.data.ali_times import item_frames
from steps.hmm.context import BOUNDARY, phone_contexts
from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang

SILENCE_ID = 1  # SIL's id in phones.txt by the conventions; a tree names its own


class BadAlignment(ValueError):
    """A state sequence that is not a concatenation of whole left-to-right phone HMMs."""


# ------------------------------------------------------------------ text side


def words_to_phones(words: list[str], lang: Lang, pron_choice: dict[str, tuple] | None = None) -> list[int]:
    """Phone ids of the words, no silence. An out-of-vocabulary word gets <UNK>'s
    pronunciation (SPN); pron_choice maps a word to the pronunciation (phone symbols) to
    use, else the lexicon's first."""
    phones: list[int] = []
    silence = lang.phone_id.get(lang.optional_silence)
    for word in words:
        pron = (pron_choice or {}).get(word) or lang.prons(word)[0]
        for symbol in pron:
            if symbol not in lang.phone_id:
                raise ValueError(f"word {word}: phone {symbol!r} is not in phones.txt")
            phone = lang.phone_id[symbol]
            if phone != silence:
                phones.append(phone)
    return phones


def phones_to_senones(phones: list[int], topology: Topology, tree) -> list[int]:
    """One senone per HMM state of each phone, in order, contexts by phone_contexts,
    consecutive repeats collapsed (as the de-duplicated senone runs of an alignment)."""
    senones: list[int] = []
    for phone, (left, right) in zip(phones, phone_contexts(phones, getattr(tree, "silence", SILENCE_ID))):
        for state in range(topology.num_states[phone]):
            senone = tree.senone(left, phone, right, state)
            if not senones or senones[-1] != senone:
                senones.append(senone)
    return senones


# ------------------------------------------------------------------ alignment side


def phone_instances(mono_ali: np.ndarray, topology: Topology, starts: Sequence[int] = ()
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phone ids, start frames, end frames) of the phone instances of an HMM-state
    alignment. A new instance starts where the phone changes or the state index neither
    stays nor advances by one (a repeat of the same phone restarts at state 0). `starts`
    adds known instance starts (e.g. from ali_phone) where the state index is 0, which
    separates repeats of a one-state phone. Raises BadAlignment if an instance does not
    run from its phone's first state to its last."""
    ali = np.asarray(mono_ali, dtype=np.int64).reshape(-1)
    if len(ali) == 0:
        return (np.zeros(0, np.int32),) * 3
    if ali.min() < 0 or ali.max() >= topology.num_hmm_states:
        raise BadAlignment(f"HMM-state id outside 0..{topology.num_hmm_states - 1}")
    phone = topology.state_phone[ali]
    index = topology.state_index[ali]
    new = np.ones(len(ali), dtype=bool)
    step = index[1:] - index[:-1]
    new[1:] = (phone[1:] != phone[:-1]) | ((step != 0) & (step != 1))
    extra = np.asarray([s for s in starts if 0 < s < len(ali)], dtype=np.int64)
    if len(extra):
        new[extra[index[extra] == 0]] = True
    begin = np.flatnonzero(new)
    end = np.concatenate([begin[1:], [len(ali)]])
    phones = phone[begin]
    last = np.array([topology.num_states[int(p)] - 1 for p in phones])
    broken = (index[begin] != 0) | (index[end - 1] != last)
    # within an instance the index advances by at most one per frame, so first == 0 and
    # last == n-1 mean every state was visited
    if broken.any():
        i = int(np.flatnonzero(broken)[0])
        raise BadAlignment(f"phone instance at frames {begin[i]}..{end[i]} (phone id {phones[i]}) runs "
                           f"from state {index[begin[i]]} to {index[end[i] - 1]}, not 0 to {last[i]}")
    return phones.astype(np.int32), begin.astype(np.int32), end.astype(np.int32)


def frame_events(mono_ali: np.ndarray, topology: Topology, silence: int, ci_phones: Sequence[int] = (),
                 starts: Sequence[int] = ()) -> np.ndarray:
    """[T, 4] int32 per frame: left context, centre phone, right context, state index.
    Contexts by phone_contexts over the phone instances (silence transparent, edges 0);
    phones in ci_phones get contexts 0 (context-independent)."""
    phones, begin, end = phone_instances(mono_ali, topology, starts)
    contexts = np.array(phone_contexts(phones.tolist(), silence), dtype=np.int32).reshape(-1, 2)
    if len(ci_phones):
        contexts[np.isin(phones, list(ci_phones))] = BOUNDARY
    lengths = end - begin
    ali = np.asarray(mono_ali, dtype=np.int64).reshape(-1)
    events = np.empty((len(ali), 4), dtype=np.int32)
    events[:, 0] = np.repeat(contexts[:, 0], lengths)
    events[:, 1] = topology.state_phone[ali]
    events[:, 2] = np.repeat(contexts[:, 1], lengths)
    events[:, 3] = topology.state_index[ali]
    return events


def segments_from_items(items, lang: Lang, num_frames: int, cut_start: float) -> list[tuple[int, int, int]]:
    """(phone id, start frame, end frame) of lhotse AlignmentItems (ali_phone) of a cut that
    starts at `cut_start` (steps.data.ali_times). Unknown symbols raise ValueError."""
    segments = []
    for item in items:
        if item.symbol not in lang.phone_id:
            raise ValueError(f"ali_phone symbol {item.symbol!r} is not in phones.txt")
        segments.append((lang.phone_id[item.symbol], *item_frames(item, cut_start, num_frames)))
    return segments


def word_prons(words, phones, lang: Lang) -> list[tuple[str, tuple[str, ...]]]:
    """(word, the pronunciation it was aligned with) for each word of frame segments
    `words` [(word, start, end)] and `phones` [(phone id, start, end)]: the phones inside the
    word's span, optional silence left out; a word with no other phone is left out."""
    result = []
    for word, start, end in words:
        inside = tuple(lang.phones[p] for p, s, e in phones if s >= start and e <= end and e > s)
        if inside and not all(p == lang.optional_silence for p in inside):
            result.append((word, tuple(p for p in inside if p != lang.optional_silence)))
    return result


def item_word_prons(alignment: dict, lang: Lang, num_frames: int, cut_start: float
                    ) -> list[tuple[str, tuple[str, ...]]]:
    """word_prons of a supervision's `ali_word` and `ali_phone` items; [] without them."""
    if "ali_word" not in alignment or "ali_phone" not in alignment:
        return []
    phones = segments_from_items(alignment["ali_phone"], lang, num_frames, cut_start)
    words = [(item.symbol, *item_frames(item, cut_start, num_frames)) for item in alignment["ali_word"]]
    return word_prons(words, phones, lang)


def consistent_starts(segments: list[tuple[int, int, int]], mono_ali: np.ndarray, topology: Topology
                      ) -> list[int] | None:
    """The segments' start frames if they label every frame with the phone of its HMM
    state (then they can refine phone_instances), else None."""
    ali = np.asarray(mono_ali, dtype=np.int64).reshape(-1)
    labels = np.full(len(ali), -1, dtype=np.int64)
    for phone, start, end in segments:
        labels[start:end] = phone
    if len(ali) == 0 or ali.max() >= topology.num_hmm_states:
        return None
    if not np.array_equal(labels, topology.state_phone[ali]):
        return None
    return [start for _, start, _ in segments]


# ------------------------------------------------------------------ agreement


def alignment_senone_runs(senone_ali: np.ndarray, speech: np.ndarray) -> list[int]:
    """The de-duplicated senone sequence of the frames where `speech` is true."""
    values = np.asarray(senone_ali).reshape(-1)[np.asarray(speech, dtype=bool)]
    if len(values) == 0:
        return []
    keep = np.concatenate([[True], values[1:] != values[:-1]])
    return values[keep].astype(int).tolist()


def alignment_agrees(senone_ali: np.ndarray, mono_ali: np.ndarray, aligned_phones: Sequence[int],
                     topology: Topology, tree) -> bool:
    """Whether the senone runs of the alignment over its non-silence frames (silence =
    frames of the tree's silence phone in mono_ali) equal phones_to_senones of the
    aligned phone sequence with silence removed."""
    silence = getattr(tree, "silence", SILENCE_ID)
    frame_phone = topology.state_phone[np.asarray(mono_ali, dtype=np.int64).reshape(-1)]
    runs = alignment_senone_runs(senone_ali, frame_phone != silence)
    expected = phones_to_senones([int(p) for p in aligned_phones if p != silence], topology, tree)
    return runs == expected
