"""Noise for the synth corpus, each kind at unit power, and the active-speech power it is
scaled against.

Types: white, pink (1/f), brown (1/f^2), mains hum (50/60 Hz and harmonics over a faint
hiss) and babble (3-6 talkers of the same part's synthetic speech, so no dev/test voice
leaks into training). local/synth/render.py mixes one into every utterance at a random
SNR: speech power over the samples where speech is active (active_power), against the
noise power over the whole recording.
"""

from __future__ import annotations

import math
import random
import zlib
from typing import TYPE_CHECKING

import numpy as np

from local.synth.config import SynthDataConfig
from local.synth.voices import Speaker, resample, set_voice

if TYPE_CHECKING:  # render.py imports this module
    from local.synth.render import Utterance


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
                set_voice(engine, speaker, speaker.rate)
                out = engine.synth(rng.choice(texts).lower())
                x = resample(out.samples, out.sample_rate, sample_rate)
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


class LazyBabble:
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
               babble: Babble | LazyBabble | None, talkers: int) -> np.ndarray:
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
