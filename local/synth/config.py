"""The synth corpus' data configuration (egs/synth/s5/conf/data_*.yaml).

One file drives both halves of prepare_synth: the text generator
(local/synth/sentences.py reads `seed` and `text`) and the synthesiser (the other modules
of local/synth read `seed`, `speakers` and `audio`). Unknown keys are rejected by
steps.core.config.load_config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from steps.core.config import require

PARTS = ("train", "dev", "test")


@dataclass
class TextConfig:
    # Paired sentences (transcripts) per part.
    num_train: int = 2600
    num_dev: int = 280
    num_test: int = 280
    # LM corpus size in sentences, as a multiple of num_train (at least 50).
    lm_factor: float = 60.0
    # Sentence length in words: shorter or longer draws are rejected and redrawn.
    min_words: int = 4
    max_words: int = 18
    # Deepest rule nesting before the generator takes the shortest way out.
    max_depth: int = 14
    # Grammar directory; empty: the grammar beside local/synth/grammar.py. A relative
    # path is taken from the working directory (the recipe, when run.sh runs it).
    grammar_dir: str = ""
    # Rules added to the start rule, with their weights (e.g. {discourse: 15}: the
    # long-dependency sentences of discourse.grammar, 15 against the domains' 97).
    extra_start_rules: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        for rule, weight in self.extra_start_rules.items():
            require(weight > 0, f"extra_start_rules.{rule}", "must be a positive weight")
        for key in ("num_train", "num_dev", "num_test"):
            require(getattr(self, key) > 0, key, "must be positive")
        require(self.lm_factor >= 50.0, "lm_factor", "the LM corpus must be >= 50x the training transcripts")
        require(1 <= self.min_words <= self.max_words, "max_words", "need 1 <= min_words <= max_words")
        require(self.max_depth >= 4, "max_depth", "must be >= 4")


@dataclass
class SpeakerConfig:
    # espeak-ng language voices (accents) and voice variants (espeak-ng-data/voices/!v).
    accents: list[str] = field(default_factory=lambda: [
        "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
        "en-029", "en-us-nyc"])
    variants: list[str] = field(default_factory=lambda: [
        "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5"])
    num_train: int = 72
    num_dev: int = 10
    num_test: int = 10
    # Per speaker, drawn uniformly (integers): words per minute, base pitch and pitch
    # range (espeak's 0..100 scales).
    rate: list[int] = field(default_factory=lambda: [120, 190])
    pitch: list[int] = field(default_factory=lambda: [25, 75])
    pitch_range: list[int] = field(default_factory=lambda: [30, 90])
    # Per utterance, the speaker's rate varies by up to this fraction.
    rate_jitter: float = 0.06

    def __post_init__(self):
        require(len(self.accents) >= 1, "accents", "need at least one accent")
        require(len(self.variants) >= 1, "variants", "need at least one variant")
        for key in ("num_train", "num_dev", "num_test"):
            require(getattr(self, key) > 0, key, "must be positive")
        voices = len(self.accents) * len(self.variants)
        need = self.num_train + self.num_dev + self.num_test
        require(need <= voices, "num_train",
                f"{need} speakers need as many accent x variant voices, there are {voices}")
        for key in ("rate", "pitch", "pitch_range"):
            v = getattr(self, key)
            require(len(v) == 2 and v[0] <= v[1], key, "must be [low, high]")
        require(80 <= self.rate[0] and self.rate[1] <= 450, "rate", "espeak rates are 80..450 wpm")
        require(0 <= self.pitch[0] and self.pitch[1] <= 100, "pitch", "must lie in 0..100")
        require(0 <= self.pitch_range[0] and self.pitch_range[1] <= 100, "pitch_range", "must lie in 0..100")
        require(0.0 <= self.rate_jitter < 0.5, "rate_jitter", "must lie in [0, 0.5)")


@dataclass
class AudioConfig:
    sample_rate: int = 16000
    # Silence added before and after the speech, seconds, drawn uniformly per utterance.
    pad_start: list[float] = field(default_factory=lambda: [0.15, 0.45])
    pad_end: list[float] = field(default_factory=lambda: [0.15, 0.45])
    # Active-speech level (RMS over the samples where speech is present), dBFS.
    speech_level_db: list[float] = field(default_factory=lambda: [-30.0, -18.0])
    # Signal-to-noise ratio in dB, drawn uniformly per utterance (speech power over the
    # active-speech samples against noise power over the whole recording).
    snr_db: list[float] = field(default_factory=lambda: [5.0, 20.0])
    # Relative weights of the noise types; babble is made of other synthetic speech.
    noise_weights: dict[str, float] = field(default_factory=lambda: {
        "white": 1.0, "pink": 2.0, "brown": 1.0, "hum": 1.0, "babble": 3.0})
    # Talkers summed in a babble noise (inclusive range).
    babble_talkers: list[int] = field(default_factory=lambda: [3, 6])
    # Probability that one pause (a comma for espeak) is put into an utterance.
    pause_prob: float = 0.25

    def __post_init__(self):
        require(self.sample_rate in (8000, 16000, 22050), "sample_rate", "must be 8000, 16000 or 22050")
        for key in ("pad_start", "pad_end", "speech_level_db", "snr_db"):
            v = getattr(self, key)
            require(len(v) == 2 and v[0] <= v[1], key, "must be [low, high]")
        require(self.pad_start[0] >= 0 and self.pad_end[0] >= 0, "pad_start", "must be >= 0")
        require(self.speech_level_db[1] <= -3.0, "speech_level_db", "must stay below -3 dBFS")
        known = {"white", "pink", "brown", "hum", "babble", "none"}
        for name, w in self.noise_weights.items():
            require(name in known, "noise_weights", f"unknown noise type {name!r} (known: {sorted(known)})")
            require(w >= 0, "noise_weights", "weights must be >= 0")
        require(sum(self.noise_weights.values()) > 0, "noise_weights", "need a positive weight")
        b = self.babble_talkers
        require(len(b) == 2 and 1 <= b[0] <= b[1], "babble_talkers", "must be [low, high], low >= 1")
        require(0.0 <= self.pause_prob <= 1.0, "pause_prob", "must lie in [0, 1]")


@dataclass
class SynthDataConfig:
    seed: int = 1234
    text: TextConfig = field(default_factory=TextConfig)
    speakers: SpeakerConfig = field(default_factory=SpeakerConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
