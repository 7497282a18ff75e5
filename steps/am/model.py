"""The multi-head hybrid acoustic model: a shared encoder over globally normalised fbank,
a main senone head on top and any number of auxiliary heads, each on the output of an
encoder layer of its own (the AUX and HIER methods of DESIGN.md; the heads are dropped at
test time).

    model = AcousticModel(feature_dim=80, num_senones=S, config=ModelConfig(...),
                          aux_units={"phone": 40})
    model.set_normalisation(mean, std)               # global CMVN, kept as buffers
    out = model(feats, feat_lens)                    # feats [B, T, 80] raw fbank
    out.main        [M, S]  log-posteriors of the M valid output frames (row-major over
                            (utterance, frame): the True entries of out.mask [B, N])
    out.aux[level]  [M_L, V] log-posteriors of each auxiliary head (a TopKLogits for a head
                            with output: topk, see below) on the True frames of
                            out.aux_frames[level] [B, N]: all M valid frames, or those of
                            model(..., aux_frames={level: mask}) (the frames a level's loss
                            reads: a head need not run where no token lies)
    out.lengths     [B]     n = ceil(T / subsampling) outputs per utterance

Encoders (all run at the subsampled rate after the input layer):
- tdnnf (default): Kaldi-like factorised TDNN layers: a kernel_size time conv into a small
  bottleneck (no bias), an affine layer back up, ReLU, LayerNorm, dropout, plus a bypass
  (x * bypass_scale). LayerNorm rather than Kaldi's BatchNorm: an utterance's outputs then
  depend on nothing else in its batch, so multi-process training computes exactly the
  single-process gradient. Kaldi's semi-orthogonal constraint on the bottleneck is left out.
- blstm: bidirectional LSTM layers (hidden_dim / 2 per direction), packed sequences.
- conformer: a small conformer (half-step FFN, self-attention with padding masked, a
  depthwise-conv module, half-step FFN, LayerNorm) with relative position left out.
- dmoe: a Deep Mixture of Experts (steps.am.dmoe, section `dmoe`): TDNN-F layers with the
  top dmoe.num_moe_layers of the stack replaced by MoE layers (each its own softmax gate
  and experts); with one expert per layer it is the tdnnf stack. dmoe.combine: concat
  gives the concatenated-experts baseline. set_epoch(epoch) switches the stage-one cap.
Input layer: input_context frames each side spliced by a strided conv (stride =
subsampling), padded so that output j is centred on input frame j*s + s//2.
Padding frames are zeroed after every layer, so an utterance gives the same outputs alone
or in a padded batch (up to float rounding).

Large vocabularies (the plm level: a pre-trained model's pieces, e.g. 50,257 for GPT-2): an
auxiliary head with `output: topk` never forms the [M, V] output. Its forward returns
TopKLogits (steps.am.layers: the head's features and output weights); the KD loss asks it
for the logits of the teacher's k ids of each frame only and normalises over those k
(top-k-restricted logits: KL(q || p restricted to the teacher's top k), the student's mass
outside the k is not pushed down). Cost per frame O(k * hidden_dim) instead of
O(V * hidden_dim); the full argmax (dev frame accuracy) is computed in chunks. Such a head
takes no hard-label CE (loss.kd.<level>.alpha 0).

Layer indices for the auxiliary heads: 0 = the input layer's output, i = the output of
encoder layer i (1..num_layers); the main head sits on layer num_layers.

The model config is structure only; the loss weights of the heads are the loss config's
(steps.am.losses). Checkpoints written before they moved carry beta and alpha in each
model_config.aux_heads entry; `split_legacy_weights` takes them out when such a checkpoint
is loaded.

Checkpoints (kind "acoustic_model", steps.core.checkpoint) hold: config (the whole training
config), model_config, feature_dim, num_senones, aux_units {level: V}, state_dict,
log_priors [S] (log of the floored senone priors from the training alignments),
senone_counts [S]; `scorer_from_checkpoint` builds the FrameScorer (main head only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Optional

import torch
from torch import nn

from steps.am.dmoe import DmoeConfig, MoeLayer, moe_layers
from steps.am.layers import BlstmLayer, ConformerLayer, Head, InputLayer, TdnnfLayer, TopKHead, dropout_module
from steps.core.config import from_dict, require, to_dict

KIND = "acoustic_model"
LEVELS = ("senone", "phone", "subword", "plm")


@dataclass
class AuxHeadConfig:
    level: Literal["senone", "phone", "subword", "plm"]
    layer: int  # encoder layer whose output the head reads (0 = input layer)
    hidden_dim: int = 128  # the head's own projection
    num_units: Optional[int] = None  # None: exp/lm_<level>/tokens.txt (senone: num_senones)
    output: Literal["full", "topk"] = "full"  # topk: logits of the teacher's top-k ids only
    # the head's loss weights (beta, alpha) are the loss config's: loss.kd.<level>

    def __post_init__(self):
        require(self.layer >= 0, "layer", "must be >= 0")
        require(self.hidden_dim > 0, "hidden_dim", "must be positive")
        require(self.num_units is None or self.num_units > 0, "num_units", "must be positive")


@dataclass
class ModelConfig:
    encoder: Literal["tdnnf", "blstm", "conformer", "dmoe"] = "tdnnf"
    num_layers: int = 8
    hidden_dim: int = 256
    bottleneck_dim: int = 64  # tdnnf
    kernel_size: int = 3  # tdnnf: context per layer at the subsampled rate; conformer: conv
    bypass_scale: float = 0.66  # tdnnf
    num_attention_heads: int = 4  # conformer
    input_context: int = 2  # frames each side seen by the input layer
    subsampling: int = 3
    prefinal_dim: int = 256  # main head: hidden -> prefinal (ReLU, LayerNorm) -> senones
    dropout: float = 0.1
    num_senones: Optional[int] = None  # None: from the senone counts / alignments
    aux_heads: list[AuxHeadConfig] = field(default_factory=list)
    dmoe: DmoeConfig = field(default_factory=DmoeConfig)  # encoder dmoe only

    def __post_init__(self):
        require(self.num_layers >= 1, "num_layers", "must be at least 1")
        require(self.hidden_dim > 0, "hidden_dim", "must be positive")
        require(self.bottleneck_dim > 0, "bottleneck_dim", "must be positive")
        require(self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size",
                "must be odd and positive")
        require(self.input_context >= 0, "input_context", "must be >= 0")
        require(self.subsampling in (1, 2, 3, 4), "subsampling", "must be 1, 2, 3 or 4")
        require(self.input_context >= self.subsampling // 2, "input_context",
                "must be >= subsampling // 2 (the input layer is centred on each output)")
        require(self.prefinal_dim > 0, "prefinal_dim", "must be positive")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.num_senones is None or self.num_senones > 0, "num_senones", "must be positive")
        require(self.encoder != "blstm" or self.hidden_dim % 2 == 0, "hidden_dim",
                "must be even for the blstm encoder")
        require(self.encoder != "conformer" or self.hidden_dim % self.num_attention_heads == 0,
                "num_attention_heads", "must divide hidden_dim")
        if self.encoder == "dmoe":
            require(self.dmoe.num_moe_layers <= self.num_layers, "dmoe.num_moe_layers",
                    f"{self.dmoe.num_moe_layers} > num_layers ({self.num_layers})")
            require(self.dmoe.combine != "concat" or self.hidden_dim % self.dmoe.num_experts == 0,
                    "dmoe.num_experts", "must divide hidden_dim for combine: concat")
        levels = [h.level for h in self.aux_heads]
        require(len(set(levels)) == len(levels), "aux_heads", f"one head per level, got {levels}")
        for i, head in enumerate(self.aux_heads):
            require(head.layer <= self.num_layers, f"aux_heads[{i}].layer",
                    f"{head.layer} > num_layers ({self.num_layers})")


# ------------------------------------------------------------------ model


class ModelOutput(NamedTuple):
    main: torch.Tensor  # [M, S] log-posteriors over the valid output frames
    aux: dict  # level -> [M_L, V] over the True frames of aux_frames[level]
    lengths: torch.Tensor  # [B]
    mask: torch.Tensor  # [B, N] bool
    aux_frames: Optional[dict] = None  # level -> [B, N] bool: the frames of aux[level];
    #                                    None: out.mask for every level


class AcousticModel(nn.Module):
    def __init__(self, feature_dim: int, num_senones: int, config: ModelConfig,
                 aux_units: dict[str, int] | None = None):
        super().__init__()
        self.config = config
        self.feature_dim, self.num_senones = feature_dim, num_senones
        self.aux_units = dict(aux_units or {})
        missing = [h.level for h in config.aux_heads if h.level not in self.aux_units]
        if missing:
            raise ValueError(f"no vocabulary size for the auxiliary heads {missing}")
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_inv_std", torch.ones(feature_dim))
        c = config
        self.input_layer = InputLayer(feature_dim, c.hidden_dim, c.input_context, c.subsampling,
                                      c.dropout)
        layers = []
        first_moe = c.num_layers - c.dmoe.num_moe_layers if c.encoder == "dmoe" else c.num_layers
        for i in range(c.num_layers):
            if i >= first_moe:
                layers.append(MoeLayer(c.hidden_dim, c.dmoe, c.kernel_size, c.bypass_scale,
                                       dropout_module(c.dropout)))
            elif c.encoder in ("tdnnf", "dmoe"):
                layers.append(TdnnfLayer(c.hidden_dim, c.bottleneck_dim, c.kernel_size,
                                         c.bypass_scale, c.dropout))
            elif c.encoder == "blstm":
                layers.append(BlstmLayer(c.hidden_dim, c.dropout))
            else:
                layers.append(ConformerLayer(c.hidden_dim, c.num_attention_heads, c.kernel_size,
                                             c.dropout))
        self.layers = nn.ModuleList(layers)
        self.main_head = Head(c.hidden_dim, c.prefinal_dim, num_senones)
        self.aux_heads = nn.ModuleDict({
            h.level: (TopKHead if h.output == "topk" else Head)(c.hidden_dim, h.hidden_dim,
                                                                  self.aux_units[h.level])
            for h in c.aux_heads})
        self.aux_layer = {h.level: h.layer for h in c.aux_heads}

    @property
    def subsampling(self) -> int:
        return self.config.subsampling

    def set_epoch(self, epoch: int) -> None:
        """Training stage of the MoE layers: the assignment cap is on in epochs
        0..dmoe.cap_epochs-1 (0-based) and lifted after; nothing for other encoders."""
        on = self.config.dmoe.cap > 0 and epoch < self.config.dmoe.cap_epochs
        for layer in moe_layers(self):
            layer.cap_on = on

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_inv_std.copy_(1.0 / std.clamp(min=1e-5))

    def normalise(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> torch.Tensor:
        """Global CMVN; padding frames set to 0."""
        x = (feats - self.feature_mean) * self.feature_inv_std
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < feat_lens[:, None]
        return x * valid[..., None]

    def encode(self, x: torch.Tensor, feat_lens: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Normalised features -> (output of every layer [B, N, H], lengths [B], mask [B, N])."""
        s = self.config.subsampling
        lengths = (feat_lens + s - 1) // s
        h = self.input_layer(x)
        mask = torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]
        keep = mask[..., None].to(h.dtype)
        h = h * keep
        outputs = [h]
        for layer in self.layers:
            h = layer(h, mask) * keep
            outputs.append(h)
        return outputs, lengths, mask

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, augment=None,
                with_aux: bool = True, aux_frames: dict | None = None) -> ModelOutput:
        """feats [B, T, F] raw fbank; augment: optional function (x, feat_lens) -> x applied
        to the normalised features (SpecAugment); aux_frames: level -> [B, N] bool, the
        frames (within the valid ones) to evaluate that auxiliary head on; all valid frames
        for a level not given."""
        x = self.normalise(feats, feat_lens)
        if augment is not None:
            x = augment(x, feat_lens)
        outputs, lengths, mask = self.encode(x, feat_lens)
        packed = {len(outputs) - 1: outputs[-1][mask]}  # valid frames of a layer, once per layer
        main = self.main_head(packed[len(outputs) - 1])
        aux, frames = {}, {}
        if with_aux:
            for level, head in self.aux_heads.items():
                layer = self.aux_layer[level]
                if aux_frames is not None and level in aux_frames:
                    frames[level] = aux_frames[level] & mask
                    aux[level] = head(outputs[layer][frames[level]])
                    continue
                if layer not in packed:
                    packed[layer] = outputs[layer][mask]
                frames[level] = mask
                aux[level] = head(packed[layer])
        return ModelOutput(main, aux, lengths, mask, frames)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_summary(model: AcousticModel) -> dict[str, int]:
    """Parameters of the shared encoder, the main head and each auxiliary head."""
    return {"encoder": count_parameters(model.input_layer) + count_parameters(model.layers),
            "main_head": count_parameters(model.main_head),
            **{f"aux_{k}": count_parameters(v) for k, v in model.aux_heads.items()}}


# ------------------------------------------------------------------ checkpoints and scoring


def log_priors_from_counts(counts: torch.Tensor, floor: float) -> torch.Tensor:
    """log of the senone priors counts / total, each floored at `floor` and renormalised."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    priors = (counts / counts.sum().clamp(min=1.0)).clamp(min=floor)
    return (priors / priors.sum()).log().float()


def checkpoint_dict(model: AcousticModel, config: dict, log_priors: torch.Tensor,
                    senone_counts: torch.Tensor, extra: dict | None = None) -> dict:
    return {
        "kind": KIND,
        "config": config,
        "model_config": to_dict(model.config),
        "feature_dim": model.feature_dim,
        "num_senones": model.num_senones,
        "aux_units": dict(model.aux_units),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "log_priors": log_priors.cpu(),
        "senone_counts": senone_counts.cpu(),
        **(extra or {}),
    }


LEGACY_HEAD_WEIGHTS = ("beta", "alpha")  # in model.aux_heads[] before they moved to loss.kd


def split_legacy_weights(model_config: dict) -> tuple[dict, dict[str, dict]]:
    """A model config as plain data, possibly of the layout before the loss weights moved
    -> (the config without them, {level: {beta, alpha}} of the heads that had them)."""
    heads, weights = [], {}
    for head in model_config.get("aux_heads") or []:
        if isinstance(head, dict) and any(k in head for k in LEGACY_HEAD_WEIGHTS):
            weights[head.get("level")] = {k: head[k] for k in LEGACY_HEAD_WEIGHTS if k in head}
            head = {k: v for k, v in head.items() if k not in LEGACY_HEAD_WEIGHTS}
        heads.append(head)
    if not weights:
        return model_config, {}
    return {**model_config, "aux_heads": heads}, weights


def model_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu") -> AcousticModel:
    if checkpoint.get("kind") != KIND:
        raise ValueError(f"not an acoustic model checkpoint (kind={checkpoint.get('kind')!r})")
    model_config, _ = split_legacy_weights(checkpoint["model_config"])  # loss weights: not the model's
    config = from_dict(ModelConfig, model_config, "checkpoint model_config")
    model = AcousticModel(checkpoint["feature_dim"], checkpoint["num_senones"], config,
                          checkpoint.get("aux_units"))
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


class AcousticModelScorer:
    """FrameScorer (steps.am.scorer) over the main senone head."""

    def __init__(self, model: AcousticModel, log_priors: torch.Tensor | None, device: torch.device):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.num_outputs = model.num_senones
        self.log_priors = None if log_priors is None else log_priors.to(self.device)

    @torch.no_grad()
    def log_posteriors(self, feats: torch.Tensor) -> torch.Tensor:
        """[T, F] raw fbank -> [T, num_senones]: each output repeated over the subsampling
        input frames it covers."""
        feats = torch.as_tensor(feats, dtype=torch.float32, device=self.device)
        num_frames = feats.shape[0]
        main = self.main_outputs(feats[None], torch.tensor([num_frames], device=self.device))
        return main.repeat_interleave(self.model.subsampling, dim=0)[:num_frames]

    def main_outputs(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The main head's log-posteriors at the output rate, auxiliary heads skipped."""
        return self.model(feats, lengths, with_aux=False).main


def scorer_from_checkpoint(checkpoint: dict, device: torch.device | str = "cpu") -> AcousticModelScorer:
    return AcousticModelScorer(model_from_checkpoint(checkpoint, device), checkpoint.get("log_priors"),
                               torch.device(device))
