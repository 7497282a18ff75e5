"""The layers of the acoustic model (steps.am.model): the input layer (spliced frames,
strided), the encoder layers (TDNN-F, BLSTM, conformer) and the output heads (full, or
restricted to the teacher's top-k ids: TopKHead / TopKLogits). Each encoder layer maps
[B, N, H] and the validity mask [B, N] to [B, N, H].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class InputLayer(nn.Module):
    """Splices 2*context+1 frames with a strided conv: output j is centred on input frame
    j*s + s//2 and there are ceil(T / s) outputs."""

    def __init__(self, feature_dim: int, hidden_dim: int, context: int, subsampling: int,
                 dropout: float):
        super().__init__()
        self.context, self.subsampling = context, subsampling
        self.conv = nn.Conv1d(feature_dim, hidden_dim, 2 * context + 1, stride=subsampling)
        self.norm = nn.LayerNorm(hidden_dim)
        self.dropout = dropout_module(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, F] -> [B, N, H]
        s, kernel = self.subsampling, 2 * self.context + 1
        n = (x.shape[1] + s - 1) // s
        left = self.context - s // 2
        right = (n - 1) * s - left + kernel - x.shape[1]
        x = F.pad(x.transpose(1, 2), (left, max(0, right)))
        x = F.relu(self.conv(x)).transpose(1, 2)
        return self.dropout(self.norm(x))


class TdnnfLayer(nn.Module):
    """x -> kernel-wide time conv into the bottleneck (no bias) -> affine -> ReLU ->
    LayerNorm -> dropout, plus bypass * x. The time conv is one matmul into kernel x
    bottleneck columns whose slices are added with their time shifts: the same as a
    zero-padded Conv1d, without moving [B, N, H] to channels-first and back (on a CPU
    those copies cost as much as the layer's arithmetic)."""

    def __init__(self, dim: int, bottleneck: int, kernel: int, bypass: float, dropout: float):
        super().__init__()
        self.kernel, self.bottleneck = kernel, bottleneck
        self.linear = nn.Linear(dim, kernel * bottleneck, bias=False)
        self.affine = nn.Linear(bottleneck, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = dropout_module(dropout)
        self.bypass = bypass

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        c, b, n = self.kernel // 2, self.bottleneck, x.shape[1]
        z = self.linear(x)  # [B, N, K * b]; slice k looks at frame t + k - c
        if c:
            z = F.pad(z, (0, 0, c, c))
        y = z[:, 0:n, 0:b]
        for k in range(1, self.kernel):
            y = y + z[:, k:k + n, k * b:(k + 1) * b]
        return self.bypass * x + self.dropout(self.norm(F.relu(self.affine(y))))


def dropout_module(p: float) -> nn.Module:
    # no module at all for p = 0: a CPU spends ~10% of a step drawing dropout masks
    return nn.Dropout(p) if p > 0 else nn.Identity()


class BlstmLayer(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim // 2, batch_first=True, bidirectional=True)
        self.norm = nn.LayerNorm(dim)
        self.dropout = dropout_module(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.dropout(self.norm(y))


class ConformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, kernel: int, dropout: float):
        super().__init__()

        def ffn():
            return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.SiLU(),
                                 dropout_module(dropout), nn.Linear(4 * dim, dim), dropout_module(dropout))

        self.ffn1, self.ffn2 = ffn(), ffn()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.conv_norm = nn.LayerNorm(dim)
        self.pointwise = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.conv_out = nn.Conv1d(dim, dim, 1)
        self.final_norm = nn.LayerNorm(dim)
        self.dropout = dropout_module(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        a = self.attn_norm(x)
        a, _ = self.attn(a, a, a, key_padding_mask=~mask, need_weights=False)
        x = x + self.dropout(a)
        c = F.glu(self.pointwise(self.conv_norm(x).transpose(1, 2)), dim=1)
        c = c * mask[:, None, :].to(c.dtype)  # the depthwise conv must see zeros past the end
        c = self.conv_out(F.silu(self.depthwise(c))).transpose(1, 2)
        x = x + self.dropout(c)
        x = x + 0.5 * self.ffn2(x)
        return self.final_norm(x)


class Head(nn.Module):
    """hidden -> dim (ReLU, LayerNorm) -> units."""

    def __init__(self, in_dim: int, dim: int, num_units: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, num_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.norm(F.relu(self.proj(x)))).log_softmax(dim=-1)


class TopKLogits:
    """A restricted head's output for M frames: features [M, D] and the output layer."""

    def __init__(self, features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        self.features, self.weight, self.bias = features, weight, bias

    def __len__(self) -> int:
        return self.features.shape[0]

    def over(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [M, k] -> log-probabilities [M, k], normalised over each frame's ids; a slot
        with id -1 (no id: padding) is left out and gets 0 (its teacher probability is 0)."""
        pad = ids < 0
        safe = ids.clamp(min=0)
        logits = torch.einsum("md,mkd->mk", self.features, self.weight[safe]) + self.bias[safe]
        # the lowest finite value, not -inf: a row of padding alone stays finite (no NaN gradient)
        logits = logits.masked_fill(pad, torch.finfo(logits.dtype).min)
        return logits.log_softmax(dim=-1).masked_fill(pad, 0.0)

    def argmax(self, dim: int = -1, chunk: int = 1024) -> torch.Tensor:
        """The full head's argmax per frame, chunk frames at a time."""
        return torch.cat([F.linear(self.features[i:i + chunk], self.weight, self.bias).argmax(dim=-1)
                          for i in range(0, len(self), chunk)]) if len(self) else \
            torch.zeros(0, dtype=torch.long, device=self.features.device)


class TopKHead(Head):
    """A Head whose output layer is only evaluated at the ids asked for (TopKLogits)."""

    def forward(self, x: torch.Tensor) -> TopKLogits:
        return TopKLogits(self.norm(F.relu(self.proj(x))), self.output.weight, self.output.bias)
