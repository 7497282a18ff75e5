"""Teachers whose hidden layers a student learns to generate.

    teacher = load_teacher(TeacherConfig(kind="am", path="exp/am_hier_big_s1/final.pt",
                                         layers=[3, 6, 9, 12]))
    layers = teacher.layers_of(cut)        # float32 [N, L, D] at the teacher's frame rate
    teacher.frame_subsampling              # 10 ms feature frames per output frame

Two kinds:
- am: an acoustic model of steps.train_am. Its layers are those of steps.am.model (0 = the
  input layer, i = encoder layer i), at the model's output rate (one frame per
  `subsampling` 10 ms frames, output j centred on frame j*s + s//2, as the senone targets).
- hubert / wavlm: a transformers checkpoint directory (HubertModel / WavLMModel, written by
  save_pretrained). It reads the raw 16 kHz waveform (zero mean, unit variance when the
  directory's preprocessor_config.json says do_normalize, the default) and emits one frame
  per 20 ms. Layer 0 is hidden_states[0] (the transformer's input), i the output of layer i.
  Mapped to the 10 ms fbank frames by nearest centre (`frames_20ms_to_10ms`): fbank frame t
  (snip_edges false) is centred on sample 160 t + 80, the model's frame j on
  stride j + window / 2 (stride 320, window 400 samples for the usual conv stack, computed
  from the config); frame t takes j = round((160 t + 80 - window/2) / stride), clipped to the
  model's frames. Each 20 ms frame thus serves two 10 ms frames, and the cache has the fbank
  frame count, so the senone alignment indexes it directly (frame_subsampling 1).

The fingerprint (sha256 of the kind, the layers and the bytes of the checkpoint files)
names the teacher in a dump; a student configured with another teacher is refused.
A checkpoint whose weights do not fit its own config, and layer indices outside the model,
are refused with TeacherError naming the file and what does not match.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from lhotse.utils import compute_num_frames

from steps.am.model import KIND as AM_KIND
from steps.am.model import AcousticModel, ModelConfig, split_legacy_weights
from steps.compress.config import TeacherConfig
from steps.core import checkpoint as ckpt_io
from steps.core.config import ConfigError, from_dict

FBANK_HOP = 160  # samples per 10 ms frame at 16 kHz
FBANK_CENTRE = 80  # a frame's centre after its start (snip_edges false)


class TeacherError(ValueError):
    """A teacher that cannot be used as configured; the message says why."""


def teacher_files(config: TeacherConfig) -> list[Path]:
    path = Path(config.path)
    if config.kind == "am":
        if not path.is_file():
            raise TeacherError(f"teacher checkpoint {path} not found")
        return [path]
    if not (path / "config.json").is_file():
        raise TeacherError(f"{path}: not a transformers checkpoint directory (no config.json)")
    return sorted(p for p in path.iterdir() if p.is_file())


def teacher_fingerprint(config: TeacherConfig) -> str:
    digest = hashlib.sha256(json.dumps({"kind": config.kind, "layers": list(config.layers)}).encode())
    for path in teacher_files(config):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_layers(layers: list[int], num_layers: int, where: str) -> None:
    bad = [i for i in layers if not 0 <= i <= num_layers]
    if bad:
        raise TeacherError(f"{where}: layer indices {bad} out of range: this teacher has layers "
                           f"0..{num_layers}")


def frames_20ms_to_10ms(num_frames: int, num_teacher_frames: int, stride: int = 320,
                        window: int = 400) -> np.ndarray:
    """For each 10 ms fbank frame, the index of the teacher frame whose centre is nearest."""
    if num_teacher_frames < 1:
        raise TeacherError("the teacher gave no frames (utterance shorter than its window?)")
    t = np.arange(num_frames, dtype=np.float64)
    j = np.floor((FBANK_HOP * t + FBANK_CENTRE - window / 2) / stride + 0.5).astype(np.int64)
    return np.clip(j, 0, num_teacher_frames - 1)


class AmTeacher:
    """An acoustic model of this toolkit (kind acoustic_model)."""

    input = "fbank"

    def __init__(self, config: TeacherConfig, device: str | torch.device = "cpu"):
        path = teacher_files(config)[0]
        checkpoint = ckpt_io.load(path)
        if not isinstance(checkpoint, dict) or checkpoint.get("kind") != AM_KIND:
            raise TeacherError(f"{path}: not an acoustic model checkpoint of steps.train_am "
                               f"(kind={checkpoint.get('kind') if isinstance(checkpoint, dict) else None!r})")
        try:
            # a checkpoint from before the loss weights left model_config carries them per head
            model_config = from_dict(ModelConfig, split_legacy_weights(checkpoint["model_config"])[0],
                                     f"{path} model_config")
            model = AcousticModel(checkpoint["feature_dim"], checkpoint["num_senones"], model_config,
                                  checkpoint.get("aux_units"))
        except (ConfigError, KeyError, ValueError) as e:
            raise TeacherError(f"{path}: cannot build the model its config describes: {e}") from None
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as e:
            detail = "; ".join(line.strip() for line in str(e).splitlines()[1:4])
            raise TeacherError(f"{path}: the checkpoint's weights do not match its model_config "
                               f"({model_config.num_layers} layers x {model_config.hidden_dim}): {detail}") from None
        check_layers(config.layers, model_config.num_layers, str(path))
        self.config, self.model = config, model.to(device).eval()
        self.device = torch.device(device)
        self.dim = model_config.hidden_dim
        self.frame_subsampling = model_config.subsampling
        self.num_parameters = (sum(p.numel() for p in model.input_layer.parameters())
                               + sum(p.numel() for p in model.layers.parameters())
                               + sum(p.numel() for p in model.main_head.parameters()))

    @torch.no_grad()
    def layers_of(self, cut) -> np.ndarray:
        feats = torch.as_tensor(np.asarray(cut.load_features(), dtype=np.float32), device=self.device)
        lens = torch.tensor([feats.shape[0]], device=self.device)
        outputs, _, _ = self.model.encode(self.model.normalise(feats[None], lens), lens)
        return torch.stack([outputs[i][0] for i in self.config.layers], dim=1).float().cpu().numpy()


class SpeechTeacher:
    """A HuBERT or WavLM checkpoint in a local directory (transformers)."""

    input = "waveform"

    def __init__(self, config: TeacherConfig, device: str | torch.device = "cpu"):
        import transformers  # only for speech teachers: a slow import an AM teacher does not need

        path = Path(config.path)
        teacher_files(config)
        try:
            hf_config = transformers.AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise TeacherError(f"{path}/config.json: cannot read it: {e}") from None
        if hf_config.model_type != config.kind:
            raise TeacherError(f"{path}: model_type {hf_config.model_type!r} in config.json, but the "
                               f"teacher config says kind {config.kind!r}")
        cls = {"hubert": transformers.HubertModel, "wavlm": transformers.WavLMModel}[config.kind]
        try:
            model, info = cls.from_pretrained(path, output_loading_info=True)
        except (RuntimeError, ValueError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TeacherError(f"{path}: the weights do not match config.json: {first}") from None
        missing = [k for k in info.get("missing_keys", []) if "masked_spec_embed" not in k]
        wrong = info.get("mismatched_keys", [])
        if missing or wrong:
            shown = (missing + [k[0] if isinstance(k, tuple) else k for k in wrong])[:4]
            raise TeacherError(f"{path}: the weights do not match config.json "
                               f"({hf_config.num_hidden_layers} layers x {hf_config.hidden_size}): "
                               f"{len(missing)} weights missing, {len(wrong)} of another shape, e.g. {shown}")
        check_layers(config.layers, hf_config.num_hidden_layers, str(path))
        self.config, self.model = config, model.to(device).eval()
        self.device = torch.device(device)
        self.dim = hf_config.hidden_size
        self.frame_subsampling = 1  # mapped to the 10 ms fbank frames
        self.stride = math.prod(hf_config.conv_stride)
        window, step = 1, 1
        for kernel, stride in zip(hf_config.conv_kernel, hf_config.conv_stride):
            window, step = window + (kernel - 1) * step, step * stride
        self.window = window
        self.normalize = True
        preprocessor = path / "preprocessor_config.json"
        if preprocessor.is_file():
            self.normalize = bool(json.loads(preprocessor.read_text()).get("do_normalize", True))
        self.num_parameters = sum(p.numel() for p in model.parameters())

    @torch.no_grad()
    def layers_of(self, cut) -> np.ndarray:
        if cut.sampling_rate != self.config.sample_rate:
            cut = cut.resample(self.config.sample_rate)
        audio = np.asarray(cut.load_audio(), dtype=np.float32)
        if audio.ndim == 2:
            if audio.shape[0] != 1:
                raise TeacherError(f"{cut.id}: {audio.shape[0]} channels; one is expected")
            audio = audio[0]
        wave = torch.from_numpy(audio).to(self.device)
        if self.normalize:
            wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
        hidden = self.model(wave[None], output_hidden_states=True).hidden_states
        layers = torch.stack([hidden[i][0] for i in self.config.layers], dim=1).float().cpu().numpy()
        num_frames = cut.num_frames if cut.has_features else compute_num_frames(cut.duration, 0.01, cut.sampling_rate)
        index = frames_20ms_to_10ms(num_frames, layers.shape[0], self.stride, self.window)
        return layers[index]


def load_teacher(config: TeacherConfig, device: str | torch.device = "cpu"):
    if config.kind == "am":
        return AmTeacher(config, device)
    return SpeechTeacher(config, device)
