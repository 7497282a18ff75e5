"""Deep Mixture of Experts layers (Eigen, Ranzato & Sutskever 2013, "Learning Factored
Representations in a Deep Mixture of Experts") for the acoustic model's encoder.

A MoE layer has its own experts and its own gate. For a frame x_t (the layer's input, [H]):

    g_t    = softmax(gate(x_t))                        [E]  (gate: linear, or one hidden layer)
    y_t    = bypass * x_t + dropout(LayerNorm(sum_e g_t[e] * expert_e(x)_t))

Stacking L such layers routes every frame through one combination of experts per layer
(E^L combinations from L*E experts). An expert is a small block ending in a ReLU:

- tdnnf: a kernel-wide time conv into a bottleneck (no bias), an affine layer back up, ReLU;
  with one expert and its gate fixed at 1 the layer is exactly steps.am.layers.TdnnfLayer.
- ffn:   Linear(H, expert_dim), ReLU, Linear(expert_dim, H), ReLU (the frame alone).

combine:
- gated (DMoE): the gate-weighted sum above. top_k > 0 keeps each frame's k largest gates,
  renormalised (0: dense, the paper's form); in eval mode only the chosen experts are
  computed, on the frames that chose them.
- concat (the paper's "concatenated experts" baseline): no gate; every expert outputs H / E
  dimensions on every frame and the outputs are concatenated to H.

Stage one (the paper's trick against collapse onto a few experts): while the cap is on
(training mode only), each expert may take at most `cap` of a batch's assignments. The
valid frames are visited in a random order; once an expert's running sum of gate values
reaches cap * (number of frames), its gate is 0 on the frames that follow and those
frames' remaining gates are renormalised; a frame left with none of its top_k experts
takes the uncapped expert with the largest gate, so the cap holds for every top_k
(`capped_gates`). Stage two lifts the cap. Which stage a model is in is set by
AcousticModel.set_epoch (steps.train_am calls it every epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from steps.core.config import require


@dataclass
class DmoeConfig:
    num_moe_layers: int = 2  # the top layers of the encoder's stack (the others stay TDNN-F)
    num_experts: int = 4  # per MoE layer
    expert: Literal["tdnnf", "ffn"] = "tdnnf"
    expert_dim: int = 16  # an expert's bottleneck (tdnnf) or hidden width (ffn)
    combine: Literal["gated", "concat"] = "gated"
    gate_hidden_dim: int = 0  # 0: a linear gate; > 0: Linear, ReLU, Linear
    top_k: int = 0  # 0: dense gates; k: each frame keeps its k largest gates, renormalised
    cap: float = 0.5  # stage one: the most of a batch's assignments one expert may take (0: no cap;
    #                   ignored without a gate: one expert, or combine: concat)
    cap_epochs: int = 1  # stage one lasts this many epochs; then the cap is lifted

    def __post_init__(self):
        require(self.num_moe_layers >= 1, "num_moe_layers", "must be at least 1")
        require(self.num_experts >= 1, "num_experts", "must be at least 1")
        require(self.expert_dim >= 1, "expert_dim", "must be positive")
        require(self.gate_hidden_dim >= 0, "gate_hidden_dim", "must be >= 0")
        require(0 <= self.top_k <= self.num_experts, "top_k",
                f"must be in 0..num_experts ({self.num_experts})")
        require(self.cap == 0 or 0 < self.cap <= 1, "cap", "must be 0 (no cap) or in (0, 1]")
        gated = self.combine == "gated" and self.num_experts > 1  # else there is no gate to cap
        require(not gated or self.cap == 0 or self.cap * self.num_experts >= 1, "cap",
                f"cap * num_experts must be >= 1, or some frames have no expert left "
                f"(cap {self.cap}, {self.num_experts} experts)")
        require(self.cap_epochs >= 0, "cap_epochs", "must be >= 0")
        require(self.combine == "gated" or self.top_k == 0, "top_k",
                "applies to combine: gated only")


# ------------------------------------------------------------------ experts


class TdnnfExpert(nn.Module):
    """kernel-wide time conv into a bottleneck (one matmul whose column slices are added
    with their time shifts, as in TdnnfLayer) -> affine -> ReLU."""

    def __init__(self, dim: int, bottleneck: int, kernel: int, out_dim: int):
        super().__init__()
        self.kernel, self.bottleneck = kernel, bottleneck
        self.linear = nn.Linear(dim, kernel * bottleneck, bias=False)
        self.affine = nn.Linear(bottleneck, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, H] -> [B, N, out]
        c, b, n = self.kernel // 2, self.bottleneck, x.shape[1]
        z = self.linear(x)
        if c:
            z = F.pad(z, (0, 0, c, c))
        y = z[:, 0:n, 0:b]
        for k in range(1, self.kernel):
            y = y + z[:, k:k + n, k * b:(k + 1) * b]
        return F.relu(self.affine(y))

    def at(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The output at frames (rows, cols) only: [M, out]. Reads the input's neighbours
        (zeros past either end, as the padded conv does)."""
        c, n = self.kernel // 2, x.shape[1]
        w = self.linear.weight.view(self.kernel, self.bottleneck, -1)  # [K, b, H]
        y = 0
        for k in range(self.kernel):
            t = cols + k - c
            inside = ((t >= 0) & (t < n)).to(x.dtype)[:, None]
            y = y + (x[rows, t.clamp(0, n - 1)] * inside) @ w[k].t()
        return F.relu(self.affine(y))


class FfnExpert(nn.Module):
    def __init__(self, dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.output = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.output(F.relu(self.hidden(x))))

    def at(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return self(x[rows, cols])


# ------------------------------------------------------------------ gates


def renormalise(gates: torch.Tensor) -> torch.Tensor:
    return gates / gates.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def top_k_mask(probs: torch.Tensor, k: int) -> torch.Tensor:
    """True at each row's k largest entries."""
    keep = torch.zeros_like(probs, dtype=torch.bool)
    return keep.scatter_(-1, probs.topk(k, dim=-1).indices, True)


def capped_gates(probs: torch.Tensor, keep: torch.Tensor, cap: float,
                 order: torch.Tensor | None = None) -> torch.Tensor:
    """Gates [M, E] from softmax outputs probs [M, E] (rows: the batch's frames) under the
    stage-one cap, visiting the rows in `order` (default: as given): an expert whose running
    sum of gates has reached cap * M is off for the rows that follow; a row keeps its kept
    experts (`keep`) that are still on, renormalised, or, when none is, the expert still on
    with the largest gate. So an expert is used only where its sum so far is below cap * M
    and its total is below cap * M + 1. One expert is always on (cap * E >= 1: the sums
    before row r add up to r < M). Experts only ever go off, so the rows split into at most
    E + 1 runs with the same experts on; each run is one vectorised pass. The choice of
    experts is not differentiated; the remaining gates are."""
    m = probs.shape[0]
    if m == 0:
        return probs
    perm = order if order is not None else torch.arange(m, device=probs.device)
    p, keep = probs[perm], keep[perm]
    on = torch.zeros_like(keep)
    limit = cap * m
    with torch.no_grad():
        free = torch.ones(probs.shape[1], dtype=torch.bool, device=probs.device)  # under the cap
        used = torch.zeros(probs.shape[1], dtype=torch.float64, device=probs.device)
        start = 0
        while start < m:  # a run: the rows from `start` on, the experts in `free` on
            rows = p[start:]
            kept = keep[start:] & free
            best = torch.where(free, rows, torch.full_like(rows, -float("inf"))).argmax(-1, keepdim=True)
            fallback = torch.zeros_like(kept).scatter_(-1, best, True)
            run = torch.where(kept.any(-1, keepdim=True), kept, fallback)
            g = renormalise(rows * run).double()  # float64: these sums decide which experts stay on
            before = used + torch.cumsum(g, dim=0) - g  # each expert's sum over the earlier rows
            reached = (before >= limit) & free
            hit = torch.nonzero(reached.any(-1))
            stop = int(hit[0]) if len(hit) else len(rows)  # the first row where an expert is full
            on[start:start + stop] = run[:stop]
            if stop == len(rows):
                break
            used, free = before[stop], free & ~reached[stop]
            start += stop
    out = torch.empty_like(probs)
    out[perm] = renormalise(p * on)
    return out


# ------------------------------------------------------------------ the layer


class MoeLayer(nn.Module):
    """One MoE layer of the encoder: forward(x [B, N, H], mask [B, N]) -> [B, N, H]."""

    def __init__(self, dim: int, config: DmoeConfig, kernel: int, bypass: float, dropout: nn.Module):
        super().__init__()
        self.config = config
        e = config.num_experts
        out_dim = dim // e if config.combine == "concat" else dim

        def expert():
            if config.expert == "tdnnf":
                return TdnnfExpert(dim, config.expert_dim, kernel, out_dim)
            return FfnExpert(dim, config.expert_dim, out_dim)

        self.experts = nn.ModuleList(expert() for _ in range(e))
        self.gate = None
        if config.combine == "gated" and e > 1:  # one expert: its gate is always 1
            self.gate = (nn.Linear(dim, e) if config.gate_hidden_dim == 0 else
                         nn.Sequential(nn.Linear(dim, config.gate_hidden_dim), nn.ReLU(),
                                       nn.Linear(config.gate_hidden_dim, e)))
        self.norm = nn.LayerNorm(dim)
        self.dropout = dropout
        self.bypass = bypass
        self.cap_on = False  # stage one (set by AcousticModel.set_epoch)
        self.record = False  # keep the last gates in self.last_gates (for analyses)
        self.last_gates: torch.Tensor | None = None

    def gates(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, N, E]: each valid frame's gates (sum 1), after top-k and, in stage one of
        training, the cap; zeros on padding."""
        b, n = mask.shape
        e = self.config.num_experts
        if self.gate is None:
            return mask[..., None].to(x.dtype).expand(b, n, e) / (e if self.config.combine == "concat" else 1)
        probs = self.gate(x[mask]).softmax(dim=-1)  # [M, E]
        keep = top_k_mask(probs, self.config.top_k) if self.config.top_k else torch.ones_like(probs, dtype=torch.bool)
        if self.training and self.cap_on and self.config.cap > 0:
            order = torch.randperm(probs.shape[0], device=probs.device)
            g = capped_gates(probs, keep, self.config.cap, order)
        else:
            g = renormalise(probs * keep) if self.config.top_k else probs
        out = x.new_zeros(b, n, e)
        out[mask] = g
        return out

    def mix(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.config.combine == "concat":
            return torch.cat([expert(x) for expert in self.experts], dim=-1)
        if self.config.top_k and not self.training:  # only the chosen experts, where chosen
            y = x.new_zeros(x.shape)
            for i, expert in enumerate(self.experts):
                rows, cols = torch.nonzero((g[..., i] > 0) & mask, as_tuple=True)
                if len(rows):
                    y[rows, cols] += g[rows, cols, i, None] * expert.at(x, rows, cols)
            return y
        y = g[..., 0:1] * self.experts[0](x)
        for i in range(1, len(self.experts)):
            y = y + g[..., i:i + 1] * self.experts[i](x)
        return y

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        g = self.gates(x, mask)
        if self.record:
            self.last_gates = g.detach()
        return self.bypass * x + self.dropout(self.norm(self.mix(x, mask, g)))


def moe_layers(module: nn.Module) -> list[MoeLayer]:
    return [m for m in module.modules() if isinstance(m, MoeLayer)]
