"""Students of a teacher's hidden layers, with a senone head for hybrid decoding.

    model = StudentModel(feature_dim=80, num_senones=S, config=StudentModelConfig(...),
                         teacher_dim=256, num_teacher_layers=4)
    out = model(feats, feat_lens)
    out.layers  [B, N, L, D]  generated (or predicted) teacher layers at the output rate
    out.main    [M, S]        senone log-posteriors of the M valid frames (row-major, out.mask)

Front end (both kinds): global CMVN, then steps.am.model.InputLayer (2*input_context+1
frames spliced by a strided conv: one frame per `subsampling` 10 ms frames, output j
centred on frame j*s + s//2, the teacher AM's own grid) and one TDNN-F block.

kind generative (GenDistiller, Gao et al. 2023-24): h_0 = a projection of the front-end
features f; step l = 1..L emits

    h_l = h_{l-1} + W_out( blocks( W_prev h_{l-1} + W_front f + e_l ) )

the generated layer l-1 is the history (causal across layers: step l never sees a later
layer), the TDNN-F blocks look at +-(kernel_size//2) frames each side (bidirectional in
time), the skip connection and output projection are those GenDistiller names. With
share_steps one generator serves every step, told apart by the step embedding e_l (our
choice, to spend parameters on width rather than depth); otherwise each step has its own.
Training feeds each step the step before's own output, never the teacher's layer, so
training and test run the same computation. The senone head reads h_L.

kind parallel (DistilHuBERT-style baseline, Chang et al. 2022): one encoder of num_layers
TDNN-F blocks on the front end; one linear prediction head per teacher layer on the
encoder's top output, no autoregression. The senone head reads the encoder's top output;
the prediction heads are dropped at test time.

Checkpoints (kind "compressed_am") hold config (the student config), feature_dim,
num_senones, teacher_dim, num_teacher_layers, state_dict, log_priors, teacher (the dump's
teacher.json). SCORERS is steps.am.scorer's table with this kind added: steps.decode loads
them with it like an acoustic model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from steps.am.layers import Head, InputLayer, TdnnfLayer
from steps.am.model import AcousticModelScorer
from steps.am.scorer import SCORERS as AM_SCORERS
from steps.compress.config import StudentConfig, StudentModelConfig
from steps.core.config import from_dict, to_dict

KIND = "compressed_am"
BYPASS = 0.66  # TDNN-F bypass scale, as steps.am.model's default


class StudentOutput(NamedTuple):
    layers: torch.Tensor  # [B, N, L, D]
    main: torch.Tensor  # [M, S]
    lengths: torch.Tensor  # [B]
    mask: torch.Tensor  # [B, N]


class FrontEnd(nn.Module):
    def __init__(self, feature_dim: int, c: StudentModelConfig):
        super().__init__()
        self.input_layer = InputLayer(feature_dim, c.frontend_dim, c.input_context, c.subsampling, c.dropout)
        self.block = TdnnfLayer(c.frontend_dim, c.bottleneck_dim, c.kernel_size, BYPASS, c.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        h = self.input_layer(x)[:, : mask.shape[1]] * keep
        return self.block(h, mask) * keep


class GeneratorStep(nn.Module):
    def __init__(self, c: StudentModelConfig, teacher_dim: int):
        super().__init__()
        self.prev = nn.Linear(teacher_dim, c.hidden_dim)
        self.front = nn.Linear(c.frontend_dim, c.hidden_dim, bias=False)
        self.blocks = nn.ModuleList(TdnnfLayer(c.hidden_dim, c.bottleneck_dim, c.kernel_size, BYPASS, c.dropout)
                                    for _ in range(c.blocks_per_step))
        self.out = nn.Linear(c.hidden_dim, teacher_dim)

    def forward(self, prev: torch.Tensor, front: torch.Tensor, embedding, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(prev.dtype)
        x = self.prev(prev) + self.front(front)
        if embedding is not None:
            x = x + embedding
        for block in self.blocks:
            x = block(x * keep, mask)
        return (prev + self.out(x)) * keep


class GenerativeBody(nn.Module):
    def __init__(self, c: StudentModelConfig, teacher_dim: int, num_teacher_layers: int):
        super().__init__()
        self.num_steps = num_teacher_layers
        self.init = nn.Linear(c.frontend_dim, teacher_dim)
        count = 1 if c.share_steps else num_teacher_layers
        self.steps = nn.ModuleList(GeneratorStep(c, teacher_dim) for _ in range(count))
        self.step_embedding = nn.Embedding(num_teacher_layers, c.hidden_dim) if c.share_steps else None
        self.top_dim = teacher_dim

    def step(self, index: int, prev: torch.Tensor, front: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Generation step index (0-based: it emits teacher layer index+1 of the cache)."""
        module = self.steps[0 if self.step_embedding is not None else index]
        embedding = None if self.step_embedding is None else self.step_embedding.weight[index]
        return module(prev, front, embedding, mask)

    def forward(self, front: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.init(front) * mask[..., None].to(front.dtype)
        generated = []
        for index in range(self.num_steps):
            h = self.step(index, h, front, mask)
            generated.append(h)
        return torch.stack(generated, dim=2), h


class ParallelBody(nn.Module):
    def __init__(self, c: StudentModelConfig, teacher_dim: int, num_teacher_layers: int):
        super().__init__()
        self.input = nn.Linear(c.frontend_dim, c.hidden_dim)
        self.layers = nn.ModuleList(TdnnfLayer(c.hidden_dim, c.bottleneck_dim, c.kernel_size, BYPASS, c.dropout)
                                    for _ in range(c.num_layers))
        self.heads = nn.ModuleList(nn.Linear(c.hidden_dim, teacher_dim) for _ in range(num_teacher_layers))
        self.top_dim = c.hidden_dim

    def forward(self, front: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = mask[..., None].to(front.dtype)
        h = self.input(front) * keep
        for layer in self.layers:
            h = layer(h, mask) * keep
        return torch.stack([head(h) for head in self.heads], dim=2), h


class StudentModel(nn.Module):
    def __init__(self, feature_dim: int, num_senones: int, config: StudentModelConfig,
                 teacher_dim: int, num_teacher_layers: int):
        super().__init__()
        self.config, self.feature_dim, self.num_senones = config, feature_dim, num_senones
        self.teacher_dim, self.num_teacher_layers = teacher_dim, num_teacher_layers
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_inv_std", torch.ones(feature_dim))
        self.frontend = FrontEnd(feature_dim, config)
        body = GenerativeBody if config.kind == "generative" else ParallelBody
        self.body = body(config, teacher_dim, num_teacher_layers)
        self.senone_head = Head(self.body.top_dim, config.prefinal_dim, num_senones)

    @property
    def subsampling(self) -> int:
        return self.config.subsampling

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_inv_std.copy_(1.0 / std.clamp(min=1e-5))

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, with_senones: bool = True) -> StudentOutput:
        s = self.config.subsampling
        valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < feat_lens[:, None]
        x = (feats - self.feature_mean) * self.feature_inv_std * valid[..., None]
        lengths = (feat_lens + s - 1) // s
        width = int(lengths.max()) if len(lengths) else 0
        mask = torch.arange(width, device=feats.device)[None, :] < lengths[:, None]
        front = self.frontend(x, mask)
        layers, top = self.body(front, mask)
        main = self.senone_head(top[mask]) if with_senones else top.new_zeros(0, self.num_senones)
        return StudentOutput(layers, main, lengths, mask)


def inference_parameters(model: nn.Module) -> int:
    """Parameters used at test time (the parallel kind's prediction heads are dropped)."""
    total = sum(p.numel() for p in model.parameters())
    if isinstance(model, StudentModel) and isinstance(model.body, ParallelBody):
        total -= sum(p.numel() for p in model.body.heads.parameters())
    return total


# ------------------------------------------------------------------ checkpoints and scoring


def checkpoint_dict(model: StudentModel, config: StudentConfig, log_priors: torch.Tensor,
                    teacher: dict, extra: dict | None = None) -> dict:
    return {"kind": KIND, "config": to_dict(config), "feature_dim": model.feature_dim,
            "num_senones": model.num_senones, "teacher_dim": model.teacher_dim,
            "num_teacher_layers": model.num_teacher_layers,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "log_priors": log_priors.cpu(), "teacher": teacher, **(extra or {})}


def model_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu") -> StudentModel:
    if checkpoint.get("kind") != KIND:
        raise ValueError(f"not a compressed acoustic model checkpoint (kind={checkpoint.get('kind')!r})")
    config = from_dict(StudentConfig, checkpoint["config"], "checkpoint config")
    model = StudentModel(checkpoint["feature_dim"], checkpoint["num_senones"], config.model,
                         checkpoint["teacher_dim"], checkpoint["num_teacher_layers"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


class StudentScorer(AcousticModelScorer):
    """FrameScorer (steps.am.scorer) over the senone head; generated layers are not kept."""

    def main_outputs(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(feats, lengths).main


def scorer_from_checkpoint(checkpoint: dict, device: torch.device | str = "cpu") -> StudentScorer:
    return StudentScorer(model_from_checkpoint(checkpoint, device), checkpoint.get("log_priors"),
                         torch.device(device))


# every checkpoint kind a scorer is built for: the acoustic models' and the students'
SCORERS = {**AM_SCORERS, KIND: scorer_from_checkpoint}
