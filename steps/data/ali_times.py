"""Alignment times and feature frames: the one convention every step keeps.

lhotse keeps an AlignmentItem's times on its recording's timeline: `Cut.truncate` (and so
`trim_to_supervisions`) moves a supervision's `start` with `SupervisionSegment.with_offset`
but leaves its alignment items as they are, and `Cut.trim_to_alignments` turns an item into
a supervision by subtracting `cut.start`. A cut's features start at the cut's start, so
frame f covers `cut.start + f * FRAME_SHIFT` on that timeline, wherever the supervision
starts. Alignments written here (`ali_phone`, `ali_word`) follow the same rule, so they
agree with reference alignments such as the synthesiser's `word`, and a CTM line of a
recording takes an item's start as it is.
"""

from __future__ import annotations

from typing import Callable, Iterable

from lhotse.supervision import AlignmentItem

FRAME_SHIFT = 0.01


def item_frames(item: AlignmentItem, cut_start: float, num_frames: int) -> tuple[int, int]:
    """(start, end) frame of an item within a cut that starts at `cut_start` and has
    `num_frames` frames, clipped to them."""
    start = int(round((item.start - cut_start) / FRAME_SHIFT))
    end = int(round((item.start + item.duration - cut_start) / FRAME_SHIFT))
    return max(0, min(start, num_frames)), max(0, min(end, num_frames))


def frame_items(segments: Iterable[tuple[object, int, int]], symbol_of: Callable[[object], str],
                cut_start: float) -> list[AlignmentItem]:
    """AlignmentItems of (unit, start frame, end frame) segments of a cut starting at
    `cut_start`, on the recording's timeline."""
    return [AlignmentItem(symbol=symbol_of(unit), start=round(cut_start + start * FRAME_SHIFT, 4),
                          duration=round((end - start) * FRAME_SHIFT, 4))
            for unit, start, end in segments]
