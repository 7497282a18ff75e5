"""The synth corpus' speakers: espeak voices, and how their sound is set and read.

A speaker is an accent (a language voice such as en-us, en-gb-scotland) with a voice
variant (m1..m8, f1..f5), a speaking rate, a base pitch and a pitch range. Every speaker
is a distinct accent x variant pair, so no voice of dev or test is heard in training, and
dev and test share none either (each accent and variant still occurs in training).

Also here: setting a speaker's voice on the engine, the echo some variants add (which
local/synth/boundaries.py takes out to find silences), and espeak's 22050 Hz output
resampled to the corpus rate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lhotse.augmentation.resample import Resample

from local.synth import espeak
from local.synth.config import PARTS, SpeakerConfig


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


# One resampler per rate pair: building its filter costs more than running it.
_RESAMPLERS: dict = {}


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """espeak's int16 samples as float32 at rate_out (lhotse's zero-phase resampler)."""
    x = samples.astype(np.float32) / 32768.0
    if rate_in == rate_out:
        return x
    key = (rate_in, rate_out)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = Resample(rate_in, rate_out)
    with torch.no_grad():
        y = _RESAMPLERS[key](torch.from_numpy(x).unsqueeze(0))[0].numpy()
    return y.astype(np.float32)


def set_voice(engine, speaker: Speaker, rate: int) -> None:
    """The speaker's voice, pitch and pitch range, at this rate (words per minute)."""
    engine.set_voice(speaker.voice)
    engine.set_parameter(espeak.RATE, rate)
    engine.set_parameter(espeak.PITCH, speaker.pitch)
    engine.set_parameter(espeak.RANGE, speaker.pitch_range)
