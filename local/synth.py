"""Speech and lhotse manifests for the embedded synth corpus (egs/synth/s5), made with
espeak-ng (local/espeak.py) from the transcripts of egs/synth/s5/local/make_sentences.py.

Speakers are espeak voices: an accent (a language voice such as en-us, en-gb-scotland)
with a voice variant (m1..m8, f1..f5), a speaking rate, a base pitch and a pitch range.
Every speaker is a distinct accent x variant pair, so no voice of dev or test is heard in
training, and dev and test share none either (each accent and variant still occurs in
training). Per utterance: the speaker's rate varies a little, one pause (a comma for
espeak) is put at a likely phrase boundary with probability audio.pause_prob, espeak's
22050 Hz output is resampled to 16 kHz, brought to a random active-speech level, padded
with silence and mixed with noise at a random SNR (speech power over the samples where
speech is active, against the noise power over the whole recording). Noise types: white,
pink (1/f), brown (1/f^2), mains hum (50/60 Hz and harmonics over a faint hiss) and
babble (3-6 talkers of the same part's synthetic speech, so no dev/test voice leaks into
training). Defaults (conf/data_default.yaml): SNR 5-20 dB, speech -30..-18 dBFS.

True boundaries (supervision.alignment, AlignmentItems in seconds from the start of the
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

Reads:  --text-dir/{train,dev,test}.txt (`utt-id WORDS...`), --config (seed, speakers,
        audio)
Writes: <out-dir>/audio/<part>/<speaker>/<utt>.flac   16 kHz mono FLAC
        <out-dir>/audio/<part>/<speaker>/<utt>.json   the utterance's recording and
                                                      supervision (resume: a finished
                                                      utterance is skipped)
        <out-dir>/manifests/synth_{recordings,supervisions}_<part>.jsonl.gz
        <out-dir>/manifests/synth_skipped_<part>.txt  `id reason` (see local/manifest_checks.py;
                                                      also synthesis-failed: espeak made nothing)
        <out-dir>/audio/log/synth.JOB.log             per job, when --nj > 1
        <out-dir>/manifests/.synth_<part>/.done        written last, with the fingerprint of
                                                      the part's inputs (its transcripts, the
                                                      seed, speaker and audio settings)
Recordings point at the FLAC files by the path as given (data/audio/... when run from
egs/synth/s5). A part whose manifests exist and whose marker holds the same fingerprint
is finished and is not redone (--force rewrites its manifests); when the text or the
config changed, the part and the utterances whose inputs changed are made again. An
interrupted part is finished by the next run: the utterances already made are kept.

Example (from egs/synth/s5):
  python -m local.synth --config conf/data_tiny.yaml --text-dir data/text --out-dir data --nj 2
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import random
import sys
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from local.synth_config import SpeakerConfig, SynthDataConfig

log = logging.getLogger(__name__)

CORPUS = "synth"
PARTS = ("train", "dev", "test")
PAUSE = "_"
STOP_INITIALS = frozenset("ptkbdg")
# Consonant phoneme names of espeak's English start with one of these; the rest are vowels.
CONSONANT_INITIALS = frozenset("pbtdkgfvTDszSZhmnNlrwjxC?")
MAX_CLOSURE_S = 0.100
SILENCE_AMPLITUDE = 3  # espeak's silences are exact zeros (up to rounding once de-echoed)
MIN_SILENCE_S = 0.003
# Words after which, or before which, a speaker may pause.
PAUSE_BEFORE = frozenset("and but so because then please or when if after before while "
                         "that with saying".split())
PAUSE_AFTER = frozenset("hey okay alright hi hello so well um please".split())
# No pause right after these (articles, prepositions, pronouns...).
NO_PAUSE_AFTER = frozenset("a an the to of my your our his her their this that in on at for "
                           "with by from is are was were i you we they some and or but".split())


# ---------------------------------------------------------------- speakers

@dataclass(frozen=True)
class Speaker:
    accent: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int

    @property
    def id(self) -> str:
        return f"{self.accent}_{self.variant}_r{self.rate}_p{self.pitch}"

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def gender(self) -> str:
        return "female" if self.variant.startswith("f") else "male"


def make_speakers(config: SpeakerConfig, seed: int) -> dict[str, list[Speaker]]:
    """Disjoint speakers for train, dev and test: each one a distinct accent x variant
    pair; training covers every accent and every variant whenever the counts allow."""
    rng = random.Random(f"speakers-{seed}")
    pairs = [(a, v) for a in config.accents for v in config.variants]
    counts = {"train": config.num_train, "dev": config.num_dev, "test": config.num_test}
    for _ in range(1000):
        rng.shuffle(pairs)
        held = config.num_dev + config.num_test
        train_pairs = pairs[held:held + config.num_train]
        covers = ({a for a, _ in train_pairs} == set(config.accents)
                  and {v for _, v in train_pairs} == set(config.variants))
        if covers or config.num_train < max(len(config.accents), len(config.variants)):
            break
    chosen = {"dev": pairs[:config.num_dev],
              "test": pairs[config.num_dev:config.num_dev + config.num_test],
              "train": pairs[config.num_dev + config.num_test:
                             config.num_dev + config.num_test + config.num_train]}
    speakers: dict[str, list[Speaker]] = {}
    for part in PARTS:
        speakers[part] = [
            Speaker(a, v, rng.randint(*config.rate), rng.randint(*config.pitch),
                    rng.randint(*config.pitch_range))
            for a, v in sorted(chosen[part])]
        assert len(speakers[part]) == counts[part]
    return speakers


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Utterance:
    id: str
    part: str
    text: str  # the transcript as written (UPPERCASE words), possibly empty
    speaker: Speaker


def read_transcripts(path: str | Path) -> list[tuple[str, str]]:
    """(utt-id, text) per non-blank line; a line with an id only has text ''."""
    out = []
    for line in Path(path).read_text().splitlines():
        fields = line.split(maxsplit=1)
        if fields:
            out.append((fields[0], fields[1].strip() if len(fields) > 1 else ""))
    return out


def plan_part(config: SynthDataConfig, part: str, transcripts: list[tuple[str, str]],
              speakers: list[Speaker]) -> tuple[list[Utterance], list[str]]:
    """Utterances with their speakers (balanced, shuffled; independent of --nj), and the
    ids that occur more than once (all but the first are dropped)."""
    rng = random.Random(f"assign-{config.seed}-{part}")
    slots = speakers * math.ceil(len(transcripts) / max(1, len(speakers)))
    rng.shuffle(slots)
    seen, duplicates, plan = set(), [], []
    for (utt_id, text), speaker in zip(transcripts, slots):
        if utt_id in seen:
            duplicates.append(utt_id)
            continue
        seen.add(utt_id)
        plan.append(Utterance(utt_id, part, text, speaker))
    return plan, duplicates


def utterance_rng(seed: int, utt: Utterance) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(utt.part.encode()), zlib.crc32(utt.id.encode())])


# The code that makes the audio: editing it redoes the audio and stage 1 (like a setting).
AUDIO_SOURCES = (Path(__file__), Path(__file__).with_name("espeak.py"))


def sources_fingerprint() -> str:
    h = hashlib.sha256()
    for path in AUDIO_SOURCES:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def config_fingerprint(config: SynthDataConfig) -> str:
    """What the audio depends on besides the text: seed, speakers and audio settings, and
    the code that makes it."""
    data = [config.seed, dataclasses.asdict(config.speakers), dataclasses.asdict(config.audio),
            sources_fingerprint()]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def utterance_fingerprint(config_print: str, utt: Utterance) -> str:
    data = [config_print, utt.part, utt.id, utt.text, utt.speaker.id]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def audio_path(out_dir: Path, utt: Utterance) -> Path:
    return out_dir / "audio" / utt.part / utt.speaker.id / f"{utt.id}.flac"


def spoken_text(words: list[str], rng: np.random.Generator, pause_prob: float) -> str:
    """The words for espeak, maybe with one comma where a speaker would pause."""
    if len(words) < 4 or rng.random() >= pause_prob:
        return " ".join(words)
    # A comma after word i-1 (before word i); likely places first.
    candidates = [i for i in range(2, len(words) - 1) if words[i] in PAUSE_BEFORE]
    candidates += [i for i in range(1, len(words) - 2) if words[i - 1] in PAUSE_AFTER]
    if not candidates:
        candidates = [i for i in range(2, len(words) - 1) if words[i - 1] not in NO_PAUSE_AFTER]
    if not candidates:
        return " ".join(words)
    i = candidates[int(rng.integers(len(candidates)))]
    return " ".join(words[:i]) + ", " + " ".join(words[i:])


# ---------------------------------------------------------------- true boundaries

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


def variant_echo(data_path: str, variant: str, sample_rate: int) -> tuple[int, float]:
    """(delay in samples, gain) of a voice variant's echo (`echo <ms> <amp>` in
    espeak-ng-data/voices/!v/<variant>: espeak adds amp/256 of what it played delay ms
    earlier); (0, 0.0) if it has none."""
    path = Path(data_path) / "voices" / "!v" / variant
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return 0, 0.0
    for line in lines:
        fields = line.split("//", 1)[0].split()
        if len(fields) >= 3 and fields[0] == "echo":
            delay_ms, amp = int(fields[1]), min(int(fields[2]), 100)
            if delay_ms > 0 and amp > 0:
                return delay_ms * sample_rate // 1000, amp / 256.0
    return 0, 0.0


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
    from local.espeak import EVENT_PHONEME, EVENT_WORD

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


# ---------------------------------------------------------------- noise

def _unit_power(x: np.ndarray) -> np.ndarray:
    p = float(np.mean(x.astype(np.float64) ** 2))
    return (x / math.sqrt(p)).astype(np.float32) if p > 0 else x.astype(np.float32)


def colored_noise(n: int, rng: np.random.Generator, exponent: float, sample_rate: int) -> np.ndarray:
    """Noise with power spectrum 1/f^exponent (0 white, 1 pink, 2 brown), unit power."""
    if exponent == 0:
        return _unit_power(rng.standard_normal(n))
    size = 1 << max(1, (n - 1).bit_length())  # a power of two: fast FFTs
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    spectrum /= np.maximum(freqs, 20.0) ** (exponent / 2)
    return _unit_power(np.fft.irfft(spectrum, size)[:n])


def hum_noise(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) over a faint hiss, unit power."""
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / sample_rate
    x = np.zeros(n)
    for k in range(1, 9):
        x += rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    x = _unit_power(x) + 0.1 * rng.standard_normal(n)
    return _unit_power(x)


class Babble:
    """Talker streams of a part's own synthetic speech, mixed into babble on request."""

    def __init__(self, engine, transcripts: list[str], speakers: list[Speaker], seed: int,
                 part: str, sample_rate: int, streams: int = 6, seconds: float = 15.0):
        rng = random.Random(f"babble-{seed}-{part}")
        np_rng = np.random.default_rng([seed, zlib.crc32(f"babble-{part}".encode())])
        texts = [t for t in transcripts if t.strip()] or ["hello there"]
        self.streams: list[np.ndarray] = []
        for _ in range(streams):
            pieces, total = [], 0
            while total < seconds * sample_rate:
                speaker = rng.choice(speakers)
                engine.reset(rng.getrandbits(31))
                _set_voice(engine, speaker, speaker.rate)
                out = engine.synth(rng.choice(texts).lower())
                x = _resample(out.samples, out.sample_rate, sample_rate)
                gap = np.zeros(int(np_rng.uniform(0.05, 0.3) * sample_rate), np.float32)
                pieces += [_unit_power(x), gap]
                total += len(x) + len(gap)
            self.streams.append(_unit_power(np.concatenate(pieces)))

    def noise(self, n: int, talkers: int, rng: np.random.Generator) -> np.ndarray:
        talkers = min(talkers, len(self.streams))
        chosen = rng.choice(len(self.streams), size=talkers, replace=False)
        mix = np.zeros(n, np.float32)
        for s in chosen:
            stream = self.streams[int(s)]
            offset = int(rng.integers(len(stream)))
            mix += np.resize(np.roll(stream, -offset), n)
        return _unit_power(mix)


class _LazyBabble:
    """Builds a part's Babble on first use (many parts and jobs never need it)."""

    def __init__(self, engine, plan: list[Utterance], config: SynthDataConfig, part: str):
        self.args = (engine, plan, config, part)
        self.babble: Babble | None = None

    def noise(self, n: int, talkers: int, rng: np.random.Generator) -> np.ndarray:
        if self.babble is None:
            engine, plan, config, part = self.args
            speakers = sorted({u.speaker for u in plan}, key=lambda s: s.id)
            self.babble = Babble(engine, [u.text for u in plan], speakers, config.seed, part,
                                 config.audio.sample_rate)
        return self.babble.noise(n, talkers, rng)


def make_noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int,
               babble: "Babble | _LazyBabble | None", talkers: int) -> np.ndarray:
    if kind == "white":
        return colored_noise(n, rng, 0, sample_rate)
    if kind == "pink":
        return colored_noise(n, rng, 1, sample_rate)
    if kind == "brown":
        return colored_noise(n, rng, 2, sample_rate)
    if kind == "hum":
        return hum_noise(n, rng, sample_rate)
    if kind == "babble":
        assert babble is not None
        return babble.noise(n, talkers, rng)
    if kind == "none":
        return np.zeros(n, np.float32)
    raise ValueError(f"unknown noise type {kind!r}")


def active_power(x: np.ndarray, sample_rate: int) -> float:
    """Mean power over the 10 ms frames within 40 dB of the loudest frame."""
    frame = sample_rate // 100
    usable = len(x) // frame * frame
    if usable == 0:
        return float(np.mean(x ** 2)) if len(x) else 0.0
    energy = np.mean(x[:usable].astype(np.float64).reshape(-1, frame) ** 2, axis=1)
    active = energy[energy >= energy.max() * 1e-4]
    return float(np.mean(active)) if len(active) else 0.0


# ---------------------------------------------------------------- synthesis

_RESAMPLERS: dict = {}


def _resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    x = samples.astype(np.float32) / 32768.0
    if rate_in == rate_out:
        return x
    import torch
    from lhotse.augmentation.resample import Resample

    key = (rate_in, rate_out)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = Resample(rate_in, rate_out)
    with torch.no_grad():
        y = _RESAMPLERS[key](torch.from_numpy(x).unsqueeze(0))[0].numpy()
    return y.astype(np.float32)


def _set_voice(engine, speaker: Speaker, rate: int) -> None:
    from local import espeak

    engine.set_voice(speaker.voice)
    engine.set_parameter(espeak.RATE, rate)
    engine.set_parameter(espeak.PITCH, speaker.pitch)
    engine.set_parameter(espeak.RANGE, speaker.pitch_range)


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


@dataclass
class Rendered:
    audio: np.ndarray  # float32 at the output rate
    alignment: TrueAlignment  # in seconds of the output (see to_items)
    offset_s: float  # where espeak's first sample lies in the output
    espeak_rate: int
    info: dict


def render(engine, citations: Citations, utt: Utterance, config: SynthDataConfig,
           babble: "Babble | _LazyBabble | None") -> Rendered:
    """One utterance: speech, true segments, level, padding and noise."""
    a = config.audio
    rng = utterance_rng(config.seed, utt)
    words = utt.text.lower().split()
    speaker = utt.speaker
    jitter = config.speakers.rate_jitter
    rate = int(round(speaker.rate * (1 + rng.uniform(-jitter, jitter))))
    text = spoken_text(words, rng, a.pause_prob)
    # A clean engine for every utterance: its audio then depends on nothing spoken before.
    engine.reset(zlib.crc32(f"{config.seed}-{utt.part}-{utt.id}".encode()))
    _set_voice(engine, speaker, rate)
    out = engine.synth(text)
    cits = [citations(speaker.accent, w) for w in words]
    # Phonemise after synthesis: both use the voice set above.
    delay, gain = variant_echo(engine.data_path(), speaker.variant, out.sample_rate)
    truth = true_alignment(out.events, quiet_samples(out.samples, delay, gain),
                           out.sample_rate, words, cits)

    sr = a.sample_rate
    speech = _resample(out.samples, out.sample_rate, sr)
    level_db = float(rng.uniform(*a.speech_level_db))
    power = active_power(speech, sr)
    if power > 0:
        speech *= 10 ** (level_db / 20) / math.sqrt(power)
    n0 = int(round(rng.uniform(*a.pad_start) * sr))
    n1 = int(round(rng.uniform(*a.pad_end) * sr))
    clean = np.concatenate([np.zeros(n0, np.float32), speech, np.zeros(n1, np.float32)])
    kinds = sorted(a.noise_weights)
    weights = np.array([a.noise_weights[k] for k in kinds], dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    snr_db = float(rng.uniform(*a.snr_db))
    talkers = int(rng.integers(a.babble_talkers[0], a.babble_talkers[1] + 1))
    noise = make_noise(kind, len(clean), rng, sr, babble, talkers)
    speech_power = 10 ** (level_db / 10)
    mix = clean + noise * math.sqrt(speech_power / 10 ** (snr_db / 10))
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    if peak > 0.97:
        mix *= 0.97 / peak
    info = {"voice": speaker.voice, "rate": rate, "pitch": speaker.pitch,
            "pitch_range": speaker.pitch_range, "noise": kind, "snr_db": round(snr_db, 2),
            "speech_level_db": round(level_db, 2), "spoken_text": text,
            "mapping_cost": round(truth.mapping_cost, 2)}
    if kind == "babble":
        info["babble_talkers"] = talkers
    return Rendered(mix.astype(np.float32), truth, n0 / sr, out.sample_rate, info)


def to_items(segments: list[Segment], espeak_rate: int, offset_s: float, duration: float):
    from lhotse.supervision import AlignmentItem

    items = []
    for s in segments:
        start = min(offset_s + s.start / espeak_rate, duration)
        end = min(offset_s + s.end / espeak_rate, duration)
        items.append(AlignmentItem(symbol=s.symbol, start=round(start, 5),
                                   duration=round(max(0.0, end - start), 5)))
    return items


def make_manifest_entries(utt: Utterance, path: Path, rendered: Rendered, sample_rate: int):
    from lhotse import AudioSource, Recording, SupervisionSegment

    num_samples = len(rendered.audio)
    duration = num_samples / sample_rate
    recording = Recording(id=utt.id, sources=[AudioSource(type="file", channels=[0], source=str(path))],
                          sampling_rate=sample_rate, num_samples=num_samples, duration=duration)
    alignment = {
        "word": to_items(rendered.alignment.words, rendered.espeak_rate, rendered.offset_s, duration),
        "espeak_phone": to_items(rendered.alignment.phones, rendered.espeak_rate, rendered.offset_s, duration),
    }
    supervision = SupervisionSegment(
        id=utt.id, recording_id=utt.id, start=0.0, duration=duration, channel=0, text=utt.text,
        language="English", speaker=utt.speaker.id, gender=utt.speaker.gender,
        custom=rendered.info, alignment=alignment)
    return recording, supervision


# ---------------------------------------------------------------- jobs and manifests

def sidecar_path(flac: Path) -> Path:
    return flac.with_suffix(".json")


def read_sidecar(out_dir: Path, utt: Utterance, config_print: str) -> dict | None:
    """A finished utterance's sidecar, or None if there is none or it was made from other
    inputs (other text, speaker or settings: the utterance is then made again)."""
    path = sidecar_path(audio_path(out_dir, utt))
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != utterance_fingerprint(config_print, utt):
        return None
    return data


def synthesize_share(config: SynthDataConfig, plans: dict[str, list[Utterance]], out_dir: Path,
                     job: int, nj: int) -> dict[str, int]:
    """Makes the audio and sidecars of this job's utterances (every nj-th, from job-1),
    skipping finished ones. Returns counts."""
    import soundfile as sf
    import torch
    from steps.core.log import progress

    from local.espeak import Espeak
    from steps.core import atomic

    torch.set_num_threads(1)
    engine = Espeak()
    citations = Citations(engine)
    counts = {"made": 0, "kept": 0, "failed": 0, "empty": 0}
    config_print = config_fingerprint(config)
    for part, plan in plans.items():
        share = plan[job - 1::nj]
        todo = [u for u in share
                if u.text.strip() and read_sidecar(out_dir, u, config_print) is None]
        counts["kept"] += sum(1 for u in share if u.text.strip()) - len(todo)
        counts["empty"] += sum(1 for u in share if not u.text.strip())
        if not todo:
            continue
        babble = _LazyBabble(engine, plan, config, part)
        for utt in progress(todo, desc=f"synth {part} job {job}/{nj}", mininterval=5):
            flac = audio_path(out_dir, utt)
            try:
                rendered = render(engine, citations, utt, config, babble)
                recording, supervision = make_manifest_entries(utt, flac, rendered,
                                                               config.audio.sample_rate)
                with atomic.atomic_path(flac) as tmp:
                    sf.write(str(tmp), rendered.audio, config.audio.sample_rate,
                             format="FLAC", subtype="PCM_16")
                atomic.write_text(sidecar_path(flac), json.dumps(
                    {"fingerprint": utterance_fingerprint(config_print, utt),
                     "recording": recording.to_dict(), "supervision": supervision.to_dict()}) + "\n")
                counts["made"] += 1
            except Exception as e:  # one bad utterance must not stop the others
                log.warning("%s %s: synthesis failed: %s: %s", part, utt.id, type(e).__name__, e)
                counts["failed"] += 1
    return counts


def manifest_paths(out_dir: Path, part: str) -> tuple[Path, Path]:
    m = out_dir / "manifests"
    return (m / f"{CORPUS}_recordings_{part}.jsonl.gz", m / f"{CORPUS}_supervisions_{part}.jsonl.gz")


def part_marker_dir(out_dir: Path, part: str) -> Path:
    return out_dir / "manifests" / f".{CORPUS}_{part}"


def part_fingerprint(config: SynthDataConfig, text_dir: Path, part: str) -> dict:
    """What a part's manifests are made from: its transcripts, the settings the audio
    depends on, and the code that makes the audio and checks it."""
    from local import manifest_checks
    from steps.core import atomic

    return atomic.inputs_fingerprint([text_dir / f"{part}.txt"], seed=config.seed,
                                     speakers=dataclasses.asdict(config.speakers),
                                     audio=dataclasses.asdict(config.audio),
                                     sources=atomic.source_fingerprint(*AUDIO_SOURCES, manifest_checks.__file__))


def part_done(out_dir: Path, part: str, stamp: dict, force: bool = False) -> bool:
    """The part's manifests exist and were made from the same inputs (logs why not)."""
    from steps.core import atomic

    return atomic.up_to_date(part_marker_dir(out_dir, part), stamp, force, manifest_paths(out_dir, part),
                             what=f"{CORPUS} {part} manifests", logger=log)


def write_part_manifests(plan: list[Utterance], duplicates: list[str], out_dir: Path, part: str,
                         config: SynthDataConfig):
    """Collects the finished utterances, passes them through the shared entry point
    (local.manifest_checks.manifests_from_files: every file checked and decoded, what is
    unusable dropped and reported), validates with lhotse and writes the part's manifests."""
    from lhotse import SupervisionSegment

    from local import manifest_checks

    items, failed = [], []
    config_print = config_fingerprint(config)
    for utt in plan:
        data = read_sidecar(out_dir, utt, config_print)
        if data is not None:
            sup = SupervisionSegment.from_dict(data["supervision"])
            items.append(manifest_checks.CorpusItem(
                utt.id, audio_path(out_dir, utt), sup.text, sup.speaker, gender=sup.gender,
                language=sup.language, alignment=sup.alignment, custom=sup.custom))
        elif not utt.text.strip():
            # Nothing to say: the checks report the empty transcript.
            items.append(manifest_checks.CorpusItem(utt.id, audio_path(out_dir, utt), utt.text,
                                                    utt.speaker.id))
        else:
            failed.append(manifest_checks.Skipped(
                utt.id, "synthesis-failed", "no audio was made (see the job's log)"))
    manifest_dir = out_dir / "manifests"
    recs, sups, skipped = manifest_checks.manifests_from_files(
        items, decode=True, audio=manifest_checks.AudioFormat(sampling_rate=config.audio.sample_rate))
    skipped = [manifest_checks.Skipped(u, "duplicate-id", "the id occurs again in the text")
               for u in duplicates] + failed + skipped
    manifest_checks.write_skipped_report(
        skipped, manifest_checks.skipped_report_path(manifest_dir, CORPUS, part), CORPUS, part,
        total=len(plan) + len(duplicates))
    rec_path, sup_path = manifest_paths(out_dir, part)
    recs, sups = manifest_checks.write_manifests(recs, sups, rec_path, sup_path, part)
    hours = sum(r.duration for r in recs) / 3600
    log.info("%s: %d utterances, %.2f h, %d speakers -> %s, %s", part, len(recs), hours,
             len({s.speaker for s in sups}), rec_path, sup_path)
    return recs, sups, skipped


def build_plans(config: SynthDataConfig, text_dir: Path, parts: list[str]):
    speakers = make_speakers(config.speakers, config.seed)
    plans, duplicates = {}, {}
    for part in parts:
        plans[part], duplicates[part] = plan_part(
            config, part, read_transcripts(text_dir / f"{part}.txt"), speakers[part])
    return plans, duplicates


def main(argv: list[str] | None = None) -> int:
    from steps.core import jobs
    from steps.core.config import load_config
    from steps.core.log import setup_logging

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="conf/data_*.yaml")
    parser.add_argument("--text-dir", required=True, help="directory with {train,dev,test}.txt")
    parser.add_argument("--out-dir", required=True, help="e.g. data (audio/ and manifests/ go under it)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--force", action="store_true",
                        help="rewrite the manifests of finished parts (finished audio is kept)")
    jobs.add_job_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()

    config = load_config(args.config, SynthDataConfig)
    text_dir, out_dir = Path(args.text_dir), Path(args.out_dir)
    missing = [p for p in args.parts if not (text_dir / f"{p}.txt").is_file()]
    if missing:
        log.error("no transcripts %s (run local/make_sentences.py first)",
                  ", ".join(str(text_dir / f"{p}.txt") for p in missing))
        return 1
    if args.job is not None:
        plans, _ = build_plans(config, text_dir, args.parts)
        counts = synthesize_share(config, plans, out_dir, args.job, args.nj)
        log.info("job %d/%d: %s", args.job, args.nj, counts)
        return 0

    from steps.core import atomic

    stamps = {p: part_fingerprint(config, text_dir, p) for p in args.parts}
    parts = [p for p in args.parts if not part_done(out_dir, p, stamps[p], args.force)]
    if not parts:
        return 0
    for part in parts:
        # Unfinished until its manifests are rewritten; the old ones go first, since the
        # audio they point at may be remade.
        atomic.clear_done(part_marker_dir(out_dir, part))
        atomic.remove(*manifest_paths(out_dir, part))
    started = time.time()
    plans, duplicates = build_plans(config, text_dir, parts)
    if args.nj > 1:
        job_args = ["--config", args.config, "--text-dir", args.text_dir, "--out-dir",
                    args.out_dir, "--parts", *parts]
        log.info("synthesising %s with %d jobs (logs: %s)", " ".join(parts), args.nj,
                 out_dir / "audio" / "log")
        try:
            jobs.run_jobs(args.cmd, args.nj, out_dir / "audio" / "log" / "synth.JOB.log",
                          "local.synth", job_args)
        except jobs.JobsFailed as e:
            log.error("synthesis failed: %s", e)
            return 1
    else:
        counts = synthesize_share(config, plans, out_dir, 1, 1)
        log.info("synthesis: %s", counts)
    log.info("synthesis took %.1f s", time.time() - started)
    for part in parts:
        try:
            write_part_manifests(plans[part], duplicates[part], out_dir, part, config)
        except (RuntimeError, AssertionError) as e:
            log.error("%s: %s", part, e)
            return 1
        atomic.mark_done(part_marker_dir(out_dir, part), fingerprint=stamps[part])
    return 0


if __name__ == "__main__":
    sys.exit(main())
