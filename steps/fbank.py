"""Kaldi fbank computed by kaldi-native-fbank, as a lhotse feature extractor.

lhotse has no extractor for kaldi-native-fbank (knf), so this module registers one under
the name "kaldi-native-fbank". Importing the module registers it; after that a cut
manifest loaded from disk can be turned back into its extractor by name:

    import steps.fbank  # noqa: F401  (registers the extractor)
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

Speed: knf computes all frames inside accept_waveform (C++). What is left to Python is
handing the samples over (a Python list of floats converts faster than a numpy array in
knf's binding) and collecting the frames (one get_frame call per frame: this knf version
has no bulk read for OnlineFbank). See steps/bench/bench_fbank.py for measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import kaldi_native_fbank as knf
import numpy as np
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


@register_extractor
class KnfFbank(FeatureExtractor):
    """Log-mel filter bank energies (Kaldi fbank) by kaldi-native-fbank."""

    name = NAME
    config_type = KnfFbankConfig

    def __init__(self, config: KnfFbankConfig | None = None):
        super().__init__(config=config)
        self._options: dict[int, knf.FbankOptions] = {}

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
        if is_numpy:
            return feats
        import torch

        return torch.from_numpy(feats)

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
