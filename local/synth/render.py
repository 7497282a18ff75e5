"""One synth utterance rendered: speech, true boundaries, level, padding and noise, and its
lhotse recording and supervision.

Per utterance: the speaker's rate varies a little, one pause (a comma for espeak) is put
at a likely phrase boundary with probability audio.pause_prob, espeak's 22050 Hz output
is resampled to 16 kHz, brought to a random active-speech level, padded with silence and
mixed with noise (local/synth/noise.py) at a random SNR. Defaults
(conf/data_default.yaml): SNR 5-20 dB, speech -30..-18 dBFS. Everything random comes
from the seed, the part and the utterance id, so an utterance sounds the same whatever
job makes it and whatever was made before.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lhotse import AudioSource, Recording, SupervisionSegment
from lhotse.supervision import AlignmentItem

from local.synth.boundaries import Citations, Segment, TrueAlignment, quiet_samples, true_alignment
from local.synth.config import SynthDataConfig
from local.synth.noise import Babble, LazyBabble, active_power, make_noise
from local.synth.voices import Speaker, resample, set_voice, variant_echo

# Words after which, or before which, a speaker may pause.
PAUSE_BEFORE = frozenset("and but so because then please or when if after before while "
                         "that with saying".split())
PAUSE_AFTER = frozenset("hey okay alright hi hello so well um please".split())
# No pause right after these (articles, prepositions, pronouns...).
NO_PAUSE_AFTER = frozenset("a an the to of my your our his her their this that in on at for "
                           "with by from is are was were i you we they some and or but".split())


@dataclass(frozen=True)
class Utterance:
    id: str
    part: str
    text: str  # the transcript as written (UPPERCASE words), possibly empty
    speaker: Speaker


def utterance_rng(seed: int, utt: Utterance) -> np.random.Generator:
    """The utterance's own random stream: the same whatever job makes it."""
    return np.random.default_rng([seed, zlib.crc32(utt.part.encode()), zlib.crc32(utt.id.encode())])


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


@dataclass
class Rendered:
    audio: np.ndarray  # float32 at the output rate
    alignment: TrueAlignment  # in seconds of the output (see to_items)
    offset_s: float  # where espeak's first sample lies in the output
    espeak_rate: int
    info: dict


def render(engine, citations: Citations, utt: Utterance, config: SynthDataConfig,
           babble: Babble | LazyBabble | None) -> Rendered:
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
    set_voice(engine, speaker, rate)
    out = engine.synth(text)
    cits = [citations(speaker.accent, w) for w in words]
    # Phonemise after synthesis: both use the voice set above.
    delay, gain = variant_echo(engine.data_path(), speaker.variant, out.sample_rate)
    truth = true_alignment(out.events, quiet_samples(out.samples, delay, gain),
                           out.sample_rate, words, cits)

    sr = a.sample_rate
    speech = resample(out.samples, out.sample_rate, sr)
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
    """Segments in espeak's samples as AlignmentItems in seconds of the recording."""

    items = []
    for s in segments:
        start = min(offset_s + s.start / espeak_rate, duration)
        end = min(offset_s + s.end / espeak_rate, duration)
        items.append(AlignmentItem(symbol=s.symbol, start=round(start, 5),
                                   duration=round(max(0.0, end - start), 5)))
    return items


def make_manifest_entries(utt: Utterance, path: Path, rendered: Rendered, sample_rate: int):
    """The utterance's Recording (pointing at path) and its Supervision with the true
    boundaries (alignment keys `word` and `espeak_phone`)."""

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
