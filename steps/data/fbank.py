"""Kaldi fbank computed by kaldi-native-fbank, as a lhotse feature extractor.

lhotse has no extractor for kaldi-native-fbank (knf), so this module registers one under
the name "kaldi-native-fbank". Importing the module registers it; after that a cut
manifest loaded from disk can be turned back into its extractor by name:

    import steps.data.fbank  # noqa: F401  (registers the extractor)
    from lhotse.features.base import create_default_feature_extractor
    extractor = create_default_feature_extractor(cut.features.type)

    extractor = KnfFbank()                      # 80 bins, 25 ms / 10 ms, dither 0
    feats = extractor.extract(samples, 16000)   # [num_frames, 80] float32 log-mel

Choices (those of Kaldi's compute-fbank unless said otherwise):
- snip_edges is always False, so that a recording of N samples gives
  (N + hop // 2) // hop frames, which is what lhotse.utils.compute_num_frames expects
  (lhotse checks it when the features are stored).
- Samples are floats in [-1, 1] as lhotse loads them (lhotse's own extractors do the
  same), not Kaldi's int16 scale; with use_power that only shifts every log-mel value
  by 2*log(32768) except where the log floor (knf's eps) is reached.
- dither 0 by default, so that features are deterministic.
- Multi-channel audio is rejected: the toolkit works with one channel per cut.

Speed: knf's OnlineFbank computes one frame at a time in C++ (about 40 us a frame here),
3-4x slower than lhotse's batched torch Fbank. So where the options allow it (dither 0, no
energy term: the defaults), `extract` computes the same fbank in one batch: Kaldi's
framing with mirrored edges (snip_edges False), DC removal, pre-emphasis, knf's own window
and mel matrix (knf.FeatureWindowFunction, knf.MelBanks.get_matrix), torch's real FFT,
knf's log floor. It agrees with OnlineFbank to within 1e-3 in the log domain (float32
FFTs of different libraries), below lilcom's storage error, and is at least as fast as
lhotse's Fbank. Other options (dither, use_energy) and utterances shorter than one frame
window go through OnlineFbank. utils/bench/bench_fbank.py measures both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import kaldi_native_fbank as knf
import numpy as np
import torch
from lhotse.features.base import FeatureExtractor, register_extractor
from lhotse.utils import EPSILON, Seconds

NAME = "kaldi-native-fbank"


@dataclass
class KnfFbankConfig:
    """Options of the extractor; times in seconds like lhotse's configs."""

    num_mel_bins: int = 80
    frame_length: Seconds = 0.025
    frame_shift: Seconds = 0.01
    dither: float = 0.0
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    round_to_power_of_two: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0: offset from the Nyquist frequency (Kaldi)
    use_energy: bool = False
    energy_floor: float = 0.0
    raw_energy: bool = True
    use_log_fbank: bool = True
    use_power: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "KnfFbankConfig":
        return KnfFbankConfig(**data)


def knf_options(config: KnfFbankConfig, sampling_rate: int) -> knf.FbankOptions:
    """The knf options for config at a sampling rate (snip_edges always False)."""
    opts = knf.FbankOptions()
    frame = opts.frame_opts
    frame.samp_freq = float(sampling_rate)
    frame.frame_length_ms = config.frame_length * 1000.0
    frame.frame_shift_ms = config.frame_shift * 1000.0
    frame.dither = config.dither
    frame.preemph_coeff = config.preemph_coeff
    frame.remove_dc_offset = config.remove_dc_offset
    frame.window_type = config.window_type
    frame.round_to_power_of_two = config.round_to_power_of_two
    frame.snip_edges = False
    mel = opts.mel_opts
    mel.num_bins = config.num_mel_bins
    mel.low_freq = config.low_freq
    mel.high_freq = config.high_freq
    opts.use_energy = config.use_energy
    opts.energy_floor = config.energy_floor
    opts.raw_energy = config.raw_energy
    opts.use_log_fbank = config.use_log_fbank
    opts.use_power = config.use_power
    return opts


def _mono_float32(samples) -> np.ndarray:
    """1-D float32 samples from [N], [1, N] (numpy or torch); more channels is an error."""
    if not isinstance(samples, np.ndarray):  # a torch tensor
        samples = samples.detach().cpu().numpy()
    if samples.ndim == 2:
        if samples.shape[0] != 1:
            raise ValueError(f"{NAME}: expected one channel, got audio of shape {samples.shape}")
        samples = samples[0]
    elif samples.ndim != 1:
        raise ValueError(f"{NAME}: expected audio of shape [N] or [1, N], got {samples.shape}")
    return samples.astype(np.float32, copy=False)


class BatchFbank:
    """Kaldi fbank of a whole utterance in one batch, with knf's window and mel banks
    (for dither 0 and no energy term; see the module docstring)."""

    def __init__(self, config: KnfFbankConfig, sampling_rate: int):
        opts = knf_options(config, sampling_rate)
        self.length = int(sampling_rate * config.frame_length)  # Kaldi truncates, as here
        self.shift = int(sampling_rate * config.frame_shift)
        self.fft_size = 1 << (self.length - 1).bit_length() if config.round_to_power_of_two else self.length
        self.window = torch.tensor(np.asarray(knf.FeatureWindowFunction(opts.frame_opts).window), dtype=torch.float32)
        mel = np.asarray(knf.MelBanks(opts.mel_opts, opts.frame_opts, 1.0).get_matrix(), dtype=np.float32)
        self.mel = torch.from_numpy(np.ascontiguousarray(mel.T))  # [fft_size // 2 + 1, bins]
        self.preemph = config.preemph_coeff
        self.remove_dc = config.remove_dc_offset
        self.power = config.use_power
        self.log = config.use_log_fbank

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        n = len(samples)
        num_frames = (n + self.shift // 2) // self.shift
        x = torch.from_numpy(samples)
        # frame i covers [i*shift + shift/2 - length/2, + length); outside [0, n) Kaldi
        # mirrors: s < 0 -> -s-1, s >= n -> 2n-1-s (callers ensure n >= length)
        left = self.length // 2 - self.shift // 2
        right = max(0, (num_frames - 1) * self.shift + self.length - left - n)
        padded = torch.cat([x[:left].flip(0), x, x[n - right:].flip(0)])
        frames = padded.as_strided((num_frames, self.length), (self.shift, 1))
        if self.remove_dc:
            frames = frames - frames.mean(dim=1, keepdim=True)
        # pre-emphasis and window written into a zero-padded FFT buffer (an FFT of n
        # given points pads by itself, at twice the cost)
        buffer = torch.zeros(num_frames, self.fft_size)
        emphasised = buffer[:, : self.length]
        torch.sub(frames[:, 1:], frames[:, :-1], alpha=self.preemph, out=emphasised[:, 1:])
        emphasised[:, 0] = frames[:, 0] * (1.0 - self.preemph)
        emphasised *= self.window
        spectrum = torch.fft.rfft(buffer).abs()
        if self.power:
            spectrum.pow_(2)
        energies = spectrum @ self.mel
        if self.log:
            energies.clamp_(min=float(np.finfo(np.float32).eps)).log_()
        return energies.numpy()


@register_extractor
class KnfFbank(FeatureExtractor):
    """Log-mel filter bank energies (Kaldi fbank) by kaldi-native-fbank."""

    name = NAME
    config_type = KnfFbankConfig

    def __init__(self, config: KnfFbankConfig | None = None):
        super().__init__(config=config)
        self._options: dict[int, knf.FbankOptions] = {}
        self._batch: dict[int, BatchFbank] = {}
        self.batched = self.config.dither == 0.0 and not self.config.use_energy

    @property
    def frame_shift(self) -> Seconds:
        return self.config.frame_shift

    def feature_dim(self, sampling_rate: int) -> int:
        return self.config.num_mel_bins + (1 if self.config.use_energy else 0)

    def extract(self, samples, sampling_rate: int):
        """[N] or [1, N] samples in [-1, 1] -> [num_frames, dim] float32 (a torch tensor
        if samples was one)."""
        is_numpy = isinstance(samples, np.ndarray)
        samples = _mono_float32(samples)
        if self.batched and len(samples) >= int(sampling_rate * self.config.frame_length):
            batch = self._batch.get(sampling_rate)
            if batch is None:
                batch = self._batch[sampling_rate] = BatchFbank(self.config, sampling_rate)
            feats = batch(samples)
            return feats if is_numpy else torch.from_numpy(feats)
        opts = self._options.get(sampling_rate)
        if opts is None:
            opts = self._options[sampling_rate] = knf_options(self.config, sampling_rate)
        fbank = knf.OnlineFbank(opts)
        # A list converts to knf's std::vector<float> faster than a numpy array does.
        fbank.accept_waveform(sampling_rate, samples.tolist())
        fbank.input_finished()
        get_frame = fbank.get_frame
        num_frames = fbank.num_frames_ready
        if num_frames == 0:
            feats = np.zeros((0, self.feature_dim(sampling_rate)), dtype=np.float32)
        else:
            # np.stack copies: get_frame returns views of knf's own buffers.
            feats = np.stack([get_frame(i) for i in range(num_frames)])
        return feats if is_numpy else torch.from_numpy(feats)

    # Feature-domain mixing (lhotse MixedCut with precomputed features): log-mel energies.
    @staticmethod
    def mix(features_a: np.ndarray, features_b: np.ndarray, energy_scaling_factor_b: float) -> np.ndarray:
        return np.log(np.maximum(EPSILON, np.exp(features_a) + energy_scaling_factor_b * np.exp(features_b)))

    @staticmethod
    def compute_energy(features: np.ndarray) -> float:
        return float(np.sum(np.exp(features)))

    @staticmethod
    def scale(features: np.ndarray, energy_scaling_factor: float) -> np.ndarray:
        return features + np.log(energy_scaling_factor)
