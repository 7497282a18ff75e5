"""Training objectives of the acoustic model (DESIGN.md, "The method"), all on the same
model output (steps.am.model.ModelOutput) and batch (steps.am.data.AmBatch).

Per output frame t (at the model's subsampled rate), p^h_t the distribution of head h,
y_t the senone label, q^L_t the teacher's top-k soft label of level L (ids i_1..i_k,
probabilities q_1..q_k), m^L_t = 1 where a level-L token covers the frame (0 on silence):

    baseline  main_ce = CE(onehot(y_t), p^main_t) = -log p^main_t[y_t]
    li        main_li = -(1-λ) log p^main_t[y_t] - λ Σ_k q_k log p^main_t[i_k]   where m^senone_t
                        -log p^main_t[y_t]                                        on silence
    aux       main_ce, and for each auxiliary head of level L:
              kd_L = Σ_k q_k (log q_k - log p^L_t[i_k])   (KL(q ‖ p) with the sparse top-k q;
                                                          0 log 0 = 0), only where m^L_t
              ce_L = -log p^L_t[token_t]                   (hard labels), only where m^L_t
              (a head with output: topk has p^L_t normalised over the teacher's k ids
              i_1..i_k of the frame: steps.am.layers.TopKLogits)
    hier      aux with all three levels (each head on its own encoder layer).

The weights live here, in the loss config, not in the model: the model config says which
heads exist and which encoder layer each reads (structure); the loss config says how much
each term counts (icefall keeps --distillation-layer in the model, --codebook-loss-scale in
compute_loss):

    loss:
      objective: hier
      li_lambda: 0.5                    # λ, LI only
      kd:                               # per auxiliary head's level: β (KL) and α (hard CE)
        senone: {beta: 0.3, alpha: 0.0}
        phone: {beta: 0.3}
        subword: {beta: 0.3}
      head_frame_share: 1.0             # training: the share of token frames the heads read

A head without a kd entry takes β = 1, α = 0. OBJECTIVES is the one table of what each
objective reads: its main term, the soft-label levels that term reads and which auxiliary
heads it needs; `check_heads`, `required_levels` and `loss_terms` all read it.

Normalisation: each term is a mean over the frames it covers, i.e. its sum over frames
divided by the number of those frames in the (global) batch: main_* over the frames with a
senone label (every non-padding frame in training), kd_L and ce_L over the frames with a
level-L token (silence and padding excluded); `head_frames` gives those frames to the model,
which then evaluates each auxiliary head on them alone (out.aux_frames), with the same terms
and gradient at less cost. The total is

    loss = main + Σ_L β_L · kd_L + Σ_L α_L · ce_L          (α_L terms only where α_L > 0)

Terms are computed as (sum, count) so that multi-process training can divide every sum by
the count of the GLOBAL batch (steps.train_am all-reduces the counts): the gradient is then
exactly that of one process on the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import torch

from steps.am.layers import TopKLogits
from steps.core.config import require

HIER_LEVELS = ("senone", "phone", "subword")


@dataclass(frozen=True)
class Objective:
    main: str  # the main head's term: main_ce or main_li
    main_levels: tuple[str, ...]  # soft-label levels the main term reads
    heads: Optional[tuple[str, ...]]  # auxiliary heads: None: none allowed; (): any one or
    #                                   more levels; else exactly these levels


OBJECTIVES = {
    "baseline": Objective("main_ce", (), None),
    "li": Objective("main_li", ("senone",), None),
    "aux": Objective("main_ce", (), ()),
    "hier": Objective("main_ce", (), HIER_LEVELS),
}


@dataclass
class KdWeights:
    beta: float = 1.0  # weight of KL(teacher || head)
    alpha: float = 0.0  # weight of CE against the level's hard labels

    def __post_init__(self):
        require(self.beta >= 0, "beta", "must be >= 0")
        require(self.alpha >= 0, "alpha", "must be >= 0")


@dataclass
class LossConfig:
    objective: Literal["baseline", "li", "aux", "hier"] = "baseline"
    li_lambda: float = 0.5  # weight of the senone soft label in the LI target
    kd: dict[str, KdWeights] = field(default_factory=dict)  # level of an auxiliary head -> weights
    head_frame_share: float = 1.0  # training: the share of a level's token frames its head
    #                                reads, drawn anew each step (< 1 saves the heads' work)

    def __post_init__(self):
        require(0.0 <= self.li_lambda <= 1.0, "li_lambda", "must be in [0, 1]")
        require(0.0 < self.head_frame_share <= 1.0, "head_frame_share", "must be in (0, 1]")

    def weights(self, level: str) -> KdWeights:
        return self.kd.get(level, KdWeights())


def check_heads(loss: LossConfig, heads) -> Optional[tuple[str, str]]:
    """Whether the model's auxiliary heads (AuxHeadConfig list) suit the loss config:
    None, or (dotted key, message) of the first problem."""
    levels = [h.level for h in heads]
    wanted = OBJECTIVES[loss.objective].heads
    if wanted is None and levels:
        return ("model.aux_heads", f"objective {loss.objective} trains no auxiliary head; remove "
                                   "them or use aux/hier")
    if wanted == () and not levels:
        return ("model.aux_heads", f"objective {loss.objective} needs at least one head")
    if wanted and sorted(levels) != sorted(wanted):
        return ("model.aux_heads", f"objective {loss.objective} needs one head per level "
                                   f"({', '.join(wanted)}), got {levels}")
    for level in loss.kd:
        if level not in levels:
            return (f"loss.kd.{level}", f"no auxiliary head of level {level} in model.aux_heads "
                                        f"(heads: {levels or 'none'})")
    for i, head in enumerate(heads):
        if head.output == "topk" and loss.weights(head.level).alpha != 0:
            return (f"loss.kd.{head.level}.alpha", "must be 0 for a head with output: topk "
                    f"(model.aux_heads[{i}]; the hard label may be outside the teacher's top k)")
    return None


@dataclass
class Term:
    name: str
    weight: float
    sum: torch.Tensor  # scalar, differentiable: the term summed over its frames
    count: torch.Tensor  # scalar: the number of frames it covers (this process)

    def mean(self, count: torch.Tensor | float | None = None) -> torch.Tensor:
        c = self.count if count is None else count
        return self.sum / torch.clamp(torch.as_tensor(c, dtype=self.sum.dtype, device=self.sum.device), min=1.0)


def _gather(log_probs, ids: torch.Tensor) -> torch.Tensor:
    if isinstance(log_probs, TopKLogits):  # restricted head: normalised over the k ids
        return log_probs.over(ids)
    return log_probs.gather(1, ids.clamp(min=0))


def ce_sum(log_probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ -log p[y] over the frames with y >= 0; (sum, count)."""
    valid = labels >= 0
    nll = -_gather(log_probs, labels[:, None])[:, 0]
    return (nll * valid).sum(), valid.sum()


def li_sum(log_probs: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor, probs: torch.Tensor,
           mask: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """CE against (1-λ) onehot(y) + λ q where mask, onehot(y) elsewhere; over y >= 0."""
    valid = labels >= 0
    nll = -_gather(log_probs, labels[:, None])[:, 0]
    soft = -(probs * _gather(log_probs, ids)).sum(dim=1)
    mixed = torch.where(mask, (1.0 - lam) * nll + lam * soft, nll)
    return (mixed * valid).sum(), valid.sum()


def kd_sum(log_probs: torch.Tensor, ids: torch.Tensor, probs: torch.Tensor, mask: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_t Σ_k q_k (log q_k - log p[i_k]) over the masked frames; (sum, count)."""
    q_log_q = torch.xlogy(probs, probs)
    kl = (q_log_q - probs * _gather(log_probs, ids)).sum(dim=1)
    return (kl * mask).sum(), mask.sum()


def loss_terms(loss: LossConfig, head_levels: Sequence[str], out, batch) -> list[Term]:
    """The objective's terms for a batch. head_levels: the levels of the model's auxiliary
    heads; out: ModelOutput; batch: AmBatch (targets at the output rate)."""
    if loss.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {loss.objective!r} (known: {tuple(OBJECTIVES)})")
    objective = OBJECTIVES[loss.objective]
    mask = out.mask
    labels = batch.senone[mask]
    terms = []
    if objective.main == "main_li":
        t = batch.levels["senone"]
        s, c = li_sum(out.main, labels, t.ids[mask], t.probs[mask], t.mask[mask], loss.li_lambda)
        terms.append(Term("main_li", 1.0, s, c))
    else:
        s, c = ce_sum(out.main, labels)
        terms.append(Term("main_ce", 1.0, s, c))
    if objective.heads is not None:
        for level in head_levels:
            weights = loss.weights(level)
            t = batch.levels[level]
            rows = head_rows(out, level)  # the frames the head was evaluated on
            level_mask = t.mask[rows]
            s, c = kd_sum(out.aux[level], t.ids[rows], t.probs[rows], level_mask)
            terms.append(Term(f"kd_{level}", weights.beta, s, c))
            if weights.alpha > 0:
                hard = torch.where(level_mask, t.hard[rows], torch.full_like(t.hard[rows], -1))
                s, c = ce_sum(out.aux[level], hard)
                terms.append(Term(f"ce_{level}", weights.alpha, s, c))
    return terms


def head_frames(batch, head_levels: Sequence[str], share: float = 1.0) -> dict[str, torch.Tensor]:
    """level -> [B, N] bool: the frames an auxiliary head's terms read (kd_L and ce_L count
    only frames a level-L token covers), for model(..., aux_frames=...): the heads then skip
    silence and padding, with the same loss and gradient. share < 1 keeps each such frame
    with that probability (torch's generator, so a seed and a resume repeat the draw): the
    terms stay frame means, estimated on fewer frames."""
    frames = {level: batch.levels[level].mask for level in head_levels if level in batch.levels}
    if share < 1.0:
        frames = {level: mask & (torch.rand(mask.shape, device=mask.device) < share)
                  for level, mask in frames.items()}
    return frames


def head_rows(out, level: str) -> torch.Tensor:
    """[B, N] bool: the frames whose rows out.aux[level] holds."""
    return out.mask if out.aux_frames is None else out.aux_frames.get(level, out.mask)


def term_weights(loss: LossConfig, head_levels: Sequence[str]) -> dict[str, float]:
    """Every term name an objective may give -> its weight (for the logged total)."""
    return {"main_ce": 1.0, "main_li": 1.0,
            **{f"kd_{lv}": loss.weights(lv).beta for lv in head_levels},
            **{f"ce_{lv}": loss.weights(lv).alpha for lv in head_levels}}


def total_loss(terms: list[Term], counts: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """Σ weight · sum / count; counts (one per term) default to the terms' own (single
    process). scale multiplies the result (the world size under DDP, whose gradient
    averaging then gives the global-batch gradient)."""
    total = 0.0
    for i, term in enumerate(terms):
        total = total + term.weight * term.mean(None if counts is None else counts[i])
    return total * scale


def required_levels(objective: str, head_levels: Sequence[str]) -> tuple[str, ...]:
    """The soft-label levels an objective reads (head_levels: the model's auxiliary heads)."""
    o = OBJECTIVES[objective]
    return o.main_levels + (tuple(head_levels) if o.heads is not None else ())
