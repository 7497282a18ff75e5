"""The synth corpus' true word and phone boundaries.

They become supervision.alignment (AlignmentItems in seconds from the start of the
recording, i.e. after resampling and padding; computed on espeak's 22050 Hz samples, the
resampler is zero-phase). They come from espeak's events plus the silences of its direct
sound: espeak writes silence as exact zeros, and for the variants with an echo (m2, f2-f5:
amp/256 of the output `delay` ms earlier is added back) the echo is predicted and taken
out first (quiet_samples), so "silence" below means silence of the direct sound.

  word   START: the word's first phoneme event (a phoneme event sits at the phoneme's
         acoustic onset), except for a word that starts with a stop or affricate
         (p t k b d g tS dZ) in connected speech: it starts where the stop's closure
         starts, because an aligner's stop phone includes the closure. espeak makes the
         closure as silence (~50 ms at 175 wpm) before the stop's phoneme event, and its
         WORD event fires exactly there (164 stop-initial words with such a silence, 6
         voices, 3 rates: within 9 samples of the silence's start, median 0), so the start
         is the word event when it lies between the previous phoneme event and the stop's
         event, at most 100 ms before it. (Elsewhere the word event is not used: in
         connected speech it fires one phoneme early.) A stop-initial word that espeak
         grouped with the previous one has no word event: the start of the silence that
         ends at the burst is used, or the burst if there is none.
         The first word, and a word after a pause, start at the first phoneme event, which
         is the energy onset (for a stop, the burst: its closure is part of the silence).
         END: the next word's start in connected speech. Before a pause and for the last
         word: where the sound stops, i.e. the start of the silence that reaches the
         pause's first event (`_:`); a final stop that espeak leaves unreleased before a
         pause ends the word at its closure's start.
         Words that espeak merges into one group ("on the" -> O2 n D @2, one text
         position) are split by aligning each word's own phonemisation
         (espeak_TextToPhonemes, per accent) to the group's phoneme events.
         Measured on clean speech (740 generated sentences, half with a pause, 13 voices
         of which 5 with echo, 120-210 wpm), against the first/last 1 ms frame within 45 dB
         of the loudest 10 ms: first-word starts median 0.0 ms (max 2), starts after a
         pause 0.4 ms (max 1), ends before a pause 0.5 ms (max 7), last-word ends 0.4 ms
         (max 14), connected stop-initial starts vs the previous word's energy offset
         0.4 ms (max 2.5).
  espeak_phone  espeak's phonemes (ascii names such as `@2`, `t#`), starting at their
         events, except a word-initial stop (the word's start) and a word-internal stop
         after silence (the silence's start); ends as for words; a pause is `_` from the
         previous word's end to the next word's start; phonemes of no duration are left
         out.

Here in espeak's samples (Segment); local/synth/render.py turns them into seconds of the
recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from local.synth.espeak import EVENT_PHONEME, EVENT_WORD

PAUSE = "_"
STOP_INITIALS = frozenset("ptkbdg")
# Consonant phoneme names of espeak's English start with one of these; the rest are vowels.
CONSONANT_INITIALS = frozenset("pbtdkgfvTDszSZhmnNlrwjxC?")
MAX_CLOSURE_S = 0.100
SILENCE_AMPLITUDE = 3  # espeak's silences are exact zeros (up to rounding once de-echoed)
MIN_SILENCE_S = 0.003


@dataclass
class Segment:
    symbol: str
    start: int  # samples of espeak's output
    end: int


def _norm(name: str) -> str:
    return name.rstrip("#2-;:") or name


def _is_vowel(name: str) -> bool:
    return name[0] not in CONSONANT_INITIALS


_SUB_COSTS: dict[tuple[str, str], float] = {}


def _sub_cost(a: str, b: str) -> float:
    """Substitution cost of two espeak phoneme names: 0 same, 0.1 same but for a mark,
    0.4 two vowels, 0.5 consonants with the same first letter, else 1."""
    key = (a, b)
    cost = _SUB_COSTS.get(key)
    if cost is None:
        na, nb = _norm(a), _norm(b)
        va, vb = _is_vowel(a), _is_vowel(b)
        if a == b:
            cost = 0.0
        elif na == nb:
            cost = 0.1
        elif va and vb:
            cost = 0.4
        elif not va and not vb and na[0] == nb[0]:
            cost = 0.5
        else:
            cost = 1.0
        _SUB_COSTS[key] = cost
    return cost


@lru_cache(maxsize=200_000)
def edit_distance(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    if not a or not b:
        return float(len(a) + len(b))
    sub = _sub_cost
    prev = [float(j) for j in range(len(b) + 1)]
    for i, x in enumerate(a, 1):
        cur = [float(i)]
        for j, y in enumerate(b, 1):
            d = prev[j - 1] + sub(x, y)
            if prev[j] + 1 < d:
                d = prev[j] + 1
            if cur[j - 1] + 1 < d:
                d = cur[j - 1] + 1
            cur.append(d)
        prev = cur
    return prev[-1]


def split_group(phones: list[str], citations: list[list[str]]) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges of phones, one per word, in order, that best match the
    words' own phonemisations (a word may get none when espeak swallowed it)."""
    n, k = len(phones), len(citations)
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(k + 1)]
    back = [[0] * (n + 1) for _ in range(k + 1)]
    cost[0][0] = 0.0
    for j in range(1, k + 1):
        cit = tuple(citations[j - 1])
        for p in range(n + 1):
            for q in range(p + 1):
                if cost[j - 1][q] == inf:
                    continue
                # An empty share costs a bit more than its edit distance: prefer giving
                # every word at least one phone.
                c = cost[j - 1][q] + edit_distance(cit, tuple(phones[q:p])) + (0.5 if q == p else 0)
                if c < cost[j][p]:
                    cost[j][p], back[j][p] = c, q
    ranges, p = [], n
    for j in range(k, 0, -1):
        q = back[j][p]
        ranges.append((q, p))
        p = q
    return ranges[::-1]


def map_words_to_groups(groups: list[list[str]], citations: list[list[str]]
                        ) -> tuple[list[tuple[int, int, int, int]], float]:
    """Blocks (word_lo, word_hi, group_lo, group_hi), either one group holding several
    words or one word spread over several groups, covering both sequences in order, with
    the least total edit distance; and that distance."""
    n, m = len(citations), len(groups)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    slack = max(0, n - m)
    # Room for the merges the counts imply, plus one merge-and-split pair.
    max_a, max_b = min(4, slack + 2), min(3, max(0, m - n) + 2)
    moves = [(a, 1) for a in range(1, max_a + 1)] + [(1, b) for b in range(2, max_b + 1)]
    for i in range(n + 1):
        for g in range(m + 1):
            # Groups hardly ever outnumber words, and merges are few: stay near the
            # diagonal band between the two.
            if cost[i][g] == inf or g > i + 3 or i > g + slack + 3:
                continue
            for a, b in moves:
                if i + a > n or g + b > m:
                    continue
                words = tuple(p for c in citations[i:i + a] for p in c)
                phones = tuple(p for grp in groups[g:g + b] for p in grp)
                c = cost[i][g] + edit_distance(words, phones) + 0.3 * (a - 1) + 0.8 * (b - 1)
                if c < cost[i + a][g + b]:
                    cost[i + a][g + b], back[i + a][g + b] = c, (a, b)
    if cost[n][m] == inf:
        # Far more groups than words (never seen): one block with everything.
        return [(0, n, 0, m)], float("nan")
    blocks, i, g = [], n, m
    while i > 0 or g > 0:
        a, b = back[i][g]
        blocks.append((i - a, i, g - b, g))
        i, g = i - a, g - b
    return blocks[::-1], cost[n][m]


def silent_runs(quiet: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
    """[start, end) of the stretches of at least 3 ms where `quiet` (see quiet_samples)."""
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    min_len = int(MIN_SILENCE_S * sample_rate)
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b - a >= min_len]


def quiet_samples(samples: np.ndarray, delay: int = 0, gain: float = 0.0) -> np.ndarray:
    """Where espeak's direct sound is silent. Without an echo: exact zeros (|x| <= 3).
    With one, espeak's output is y[t] = s[t] + gain * c * y[t - delay], c = 1 after voiced
    sound and 3/4 after sampled sound (fricatives, bursts), so a sample is silent when
    y[t] - gain * c * y[t - delay] is ~0 for either c (measured: residual <= 1.5)."""
    y = samples.astype(np.float64)
    quiet = np.abs(y) <= SILENCE_AMPLITUDE
    if delay <= 0 or gain <= 0 or delay >= len(y):
        return quiet
    echo = gain * y[:-delay]
    tail = y[delay:]
    quiet[delay:] = (np.abs(tail - echo) <= SILENCE_AMPLITUDE) | (np.abs(tail - 0.75 * echo) <= SILENCE_AMPLITUDE)
    return quiet


def _closure_start(runs: list[tuple[int, int]], after: int, burst: int, sample_rate: int) -> int | None:
    """Start of the digital silence that ends at (within 3 ms of) the burst and begins
    after `after`."""
    tol = int(0.003 * sample_rate)
    for a, b in runs:
        if a >= after and abs(b - burst) <= tol and burst - a <= MAX_CLOSURE_S * sample_rate:
            return a
    return None


def _speech_end(runs: list[tuple[int, int]], pause: int, floor: int) -> int:
    """Where the sound stops before a pause event: the start of the digital silence that
    reaches the event (an unreleased final stop's closure is part of it), if that starts
    after floor; else the event itself."""
    for a, b in runs:
        if a <= pause <= b:
            return a if a > floor else pause
    return pause


@dataclass
class TrueAlignment:
    words: list[Segment]
    phones: list[Segment]
    mapping_cost: float  # edit distance of the word <-> phoneme-group mapping


def true_alignment(events, quiet: np.ndarray, sample_rate: int, words: list[str],
                   citations: list[list[str]]) -> TrueAlignment:
    """True word and phone segments (in espeak's samples) from espeak's events and the
    silences of its direct sound (quiet_samples); the definition is in the module
    docstring."""
    num_samples = len(quiet)
    word_event_at: dict[int, int] = {}
    for e in events:
        if e.type == EVENT_WORD and e.text_position not in word_event_at:
            word_event_at[e.text_position] = e.sample

    # Phones (pauses apart), grouped by espeak's text position; pauses noted between them.
    names: list[str] = []
    starts: list[int] = []
    group_of: list[int] = []
    groups: list[list[int]] = []
    group_pos: list[int] = []
    pause_before: dict[int, int] = {}  # phone index -> sample of the pause's first event
    pending_pause: int | None = None
    for e in events:
        if e.type != EVENT_PHONEME or not e.name:
            continue
        if e.name.startswith(PAUSE):
            if pending_pause is None:
                pending_pause = e.sample
            continue
        index = len(names)
        if not groups or e.text_position != group_pos[-1] or pending_pause is not None:
            groups.append([])
            group_pos.append(e.text_position)
        groups[-1].append(index)
        if pending_pause is not None and index > 0:
            pause_before[index] = pending_pause
        pending_pause = None
        names.append(e.name)
        starts.append(e.sample)
        group_of.append(len(groups) - 1)
    if not names:
        raise ValueError("espeak reported no phonemes")
    trailing_pause = pending_pause if pending_pause is not None else num_samples

    blocks, mapping_cost = map_words_to_groups(
        [[names[i] for i in grp] for grp in groups], citations)
    # Phone range [lo, hi) of every word, and whether it opens its group.
    word_range: list[tuple[int, int]] = []
    opens_group: list[bool] = []
    for w_lo, w_hi, g_lo, g_hi in blocks:
        first = groups[g_lo][0]
        last = groups[g_hi - 1][-1] + 1
        if w_hi - w_lo == 1:
            word_range.append((first, last))
            opens_group.append(True)
        else:
            shares = split_group(names[first:last], citations[w_lo:w_hi])
            for j, (lo, hi) in enumerate(shares):
                word_range.append((first + lo, first + hi))
                opens_group.append(j == 0 or lo == 0)

    runs = silent_runs(quiet, sample_rate)
    # Phone starts: the events, with stop closures added (see the module docstring).
    phone_start = list(starts)
    for k, (lo, hi) in enumerate(word_range):
        for i in range(lo, hi):
            if names[i][0] not in STOP_INITIALS or i == 0 or i in pause_before:
                continue
            prev_event = starts[i - 1]
            closure = None
            if i == lo and opens_group[k]:
                w = word_event_at.get(group_pos[group_of[i]])
                if w is not None and prev_event <= w <= starts[i] \
                        and starts[i] - w <= MAX_CLOSURE_S * sample_rate:
                    closure = w
            if closure is None:
                closure = _closure_start(runs, prev_event, starts[i], sample_rate)
            if closure is not None:
                phone_start[i] = max(closure, prev_event)

    # Where the sound stops before each pause (and at the end): phones end there at most.
    stretch_end: list[int] = [0] * len(names)  # end of the speech stretch a phone is in
    boundaries = sorted(pause_before) + [len(names)]
    lo = 0
    for b in boundaries:
        pause = pause_before.get(b, trailing_pause)
        end = _speech_end(runs, pause, phone_start[lo])
        for i in range(lo, b):
            stretch_end[i] = end
        lo = b
    phone_end = [0] * len(names)
    for i in range(len(names)):
        nxt = phone_start[i + 1] if i + 1 < len(names) and (i + 1) not in pause_before else None
        phone_end[i] = min(nxt, stretch_end[i]) if nxt is not None else stretch_end[i]
        phone_start[i] = min(phone_start[i], stretch_end[i])

    word_segments: list[Segment] = []
    for k, (lo, hi) in enumerate(word_range):
        if hi > lo:
            start, end = phone_start[lo], phone_end[hi - 1]
        else:
            # espeak swallowed the word: a point where its neighbours meet.
            start = end = phone_start[lo] if lo < len(names) else stretch_end[-1]
        word_segments.append(Segment(words[k].upper(), start, end))
    _repair_short_words(word_segments, int(0.01 * sample_rate))

    phone_segments: list[Segment] = []
    for i, name in enumerate(names):
        if i in pause_before and phone_segments:
            phone_segments.append(Segment(PAUSE, phone_segments[-1].end, phone_start[i]))
        if phone_end[i] > phone_start[i]:
            phone_segments.append(Segment(name, phone_start[i], phone_end[i]))
    return TrueAlignment(word_segments, phone_segments, mapping_cost)


def _repair_short_words(words: list[Segment], min_len: int) -> None:
    """Gives a word of (almost) no duration some time from a connected neighbour."""
    for k, w in enumerate(words):
        if w.end - w.start >= min_len:
            continue
        if k > 0 and words[k - 1].end == w.start and words[k - 1].end - words[k - 1].start >= 3 * min_len:
            w.start = words[k - 1].end = w.start - min_len
        if w.end - w.start < min_len and k + 1 < len(words) and words[k + 1].start == w.end \
                and words[k + 1].end - words[k + 1].start >= 3 * min_len:
            w.end = words[k + 1].start = w.end + min_len


class Citations:
    """Each word's own espeak phonemisation, per accent (cached)."""

    def __init__(self, engine):
        self.engine = engine
        self.cache: dict[tuple[str, str], list[str]] = {}

    def __call__(self, accent: str, word: str) -> list[str]:
        key = (accent, word)
        if key not in self.cache:
            self.cache[key] = self.engine.text_to_phonemes(word)
        return self.cache[key]
