"""The one rule for a phone's phonetic context, shared by the tree statistics, the
conversion of alignments to senones, the text -> senone tokens of the teacher LM, and
the context transducer of the decoding graph.

The left (right) context of a phone is the nearest phone before (after) it in the
utterance that is not the optional silence. Silence is transparent: "A SIL B" gives B the
left context A, exactly as "A B" does, so a senone sequence can be derived from text,
which does not know where pauses fall. The utterance edges give context 0 (<eps>, Kaldi's
boundary symbol). Spoken noise (SPN) is a context for its neighbours like any phone; its
own senone does not depend on context, nor does silence's.
"""

from __future__ import annotations

from typing import Sequence

BOUNDARY = 0


def phone_contexts(phones: Sequence[int], transparent: int) -> list[tuple[int, int]]:
    """(left, right) context for each phone of an utterance's phone sequence.

    `transparent` is the id of the optional silence phone. Silence phones themselves get
    the contexts of their position too; callers that model them context-independently
    ignore them.
    """
    contexts = [(BOUNDARY, BOUNDARY)] * len(phones)
    left = BOUNDARY
    lefts = []
    for phone in phones:
        lefts.append(left)
        if phone != transparent:
            left = phone
    right = BOUNDARY
    for i in range(len(phones) - 1, -1, -1):
        contexts[i] = (lefts[i], right)
        if phones[i] != transparent:
            right = phones[i]
    return contexts
