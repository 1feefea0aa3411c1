"""Pass@1 (GRPO) and its baselines and reweightings (SPEC §1.1, §1.9).

- ``pass1``: the GRPO z-score within the group (``std``: group, batch or none).

- ``rs_grpo`` (arXiv 2506.10406): the advantage of the risk-seeking objective
  ``(1/beta) log E[e^{beta r}]``, which moves from the mean reward (beta -> 0) toward the
  best reward of the group (beta -> infinity).
- ``w_reinforce`` (arXiv 2506.01347): fixed weights on correct and wrong samples; its
  extremes are NSR (negative samples only) and PSR (positive samples only).
- ``rloo``: REINFORCE with the leave-one-out mean as baseline.
- ``reinforce_pp``: REINFORCE++-baseline (group mean removed, then whitened over the batch).
- ``unlikeliness`` (arXiv 2506.02355): GRPO on rewards that favour the least likely of the
  correct samples, to counter the sharpening of pass@k.

>>> import torch
>>> from passk.core.advantages import compute_advantages
>>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
>>> compute_advantages("rloo", r)
tensor([[ 1.0000, -0.3333, -0.3333, -0.3333]])
>>> compute_advantages("rs_grpo", r, beta=2.0)  # the rare success is pushed harder
tensor([[ 0.9225, -0.3075, -0.3075, -0.3075]])
>>> compute_advantages("w_reinforce", r)
tensor([[ 0.1000, -1.0000, -1.0000, -1.0000]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from passk.core._checks import check_eps
from passk.core.advantages._group import zscore
from passk.core.advantages.registry import register_estimator

__all__ = [
    "Pass1Params",
    "RLOOParams",
    "RSGRPOParams",
    "ReinforcePPParams",
    "UnlikelinessParams",
    "WReinforceParams",
    "unlikeliness_rewards",
]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _counts(mask: Tensor, dtype: torch.dtype) -> Tensor:
    return mask.sum(1, keepdim=True).to(dtype)  # [G, 1]


# --------------------------------------------------------------------------- 1.1 pass@1


@dataclass(frozen=True)
class Pass1Params:
    """GRPO normalisation options.

    ``eps`` is added to the std (0 by default: degenerate groups are detected exactly,
    so no guard is needed and k = 1 Pass@k equals Pass@1 to rounding).
    ``std`` is ``"group"`` (GRPO), ``"batch"`` (std of all valid rewards in the batch,
    group mean kept) or ``"none"`` (Dr.GRPO / DARS: no division).
    """

    eps: float = 0.0
    std: str = "group"

    def __post_init__(self) -> None:
        check_eps(self.eps)
        if self.std not in ("group", "batch", "none"):
            raise ValueError(f"std must be 'group', 'batch' or 'none', got {self.std!r}")


@register_estimator("pass1", params=Pass1Params)
def pass1_advantage(rewards: Tensor, mask: Tensor, p: Pass1Params) -> Tensor:
    """GRPO z-score of each response within its group (Pass@1 training)."""
    if p.std == "group":
        return zscore(rewards, mask, p.eps)
    n = mask.sum(1, keepdim=True).clamp(min=1)
    centred = torch.where(mask, rewards - rewards.sum(1, keepdim=True) / n, 0.0)
    if p.std == "none":
        return centred
    valid = rewards[mask]
    batch_std = valid.std(unbiased=False) if valid.numel() > 1 else valid.new_zeros(())
    if batch_std == 0:
        return torch.zeros_like(rewards)
    return centred / (batch_std + p.eps)


# --------------------------------------------------------------------------- rs_grpo


@dataclass(frozen=True)
class RSGRPOParams:
    """``beta > 0``: risk-seeking strength (2 in the paper; beta -> 0 gives r - mean r)."""

    beta: float = 2.0

    def __post_init__(self) -> None:
        if not _number("beta", self.beta) > 0:
            raise ValueError(
                f"beta must be > 0 (2.0 in the paper), got {self.beta!r}; "
                f"the beta -> 0 limit is 'rloo'-like r - mean r ('pass1' with std='none')"
            )


@register_estimator("rs_grpo", params=RSGRPOParams)
def rs_grpo_advantage(rewards: Tensor, mask: Tensor, p: RSGRPOParams) -> Tensor:
    """Risk-seeking GRPO: ``(1/beta) (e^{beta r_i} / mean_j e^{beta r_j} - 1)``.

    Follows the paper's formula, which equals the official code's
    ``(exp(beta (r - soft)) - 1) / beta`` with ``soft = (1/beta) log mean e^{beta r}``
    (Jackory/RS-GRPO ``codes/risk_sensitive_adv.py``, ``compute_rs_grpo_advantage``). One
    difference: the official code gives a group of one response ``(e^{beta r} - 1)/beta``;
    here a group of one gets 0, the formula's own value (its mean is itself).
    """
    n = _counts(mask, rewards.dtype).clamp(min=1)
    big = torch.finfo(rewards.dtype).max
    top = torch.where(mask, rewards, -big).amax(1, keepdim=True)
    top = torch.where(torch.isfinite(top) & (top > -big), top, 0.0)
    e = torch.where(mask, torch.exp(p.beta * (rewards - top)), 0.0)  # <= 1: no overflow
    mean = e.sum(1, keepdim=True) / n
    return torch.where(mask, (e / mean.clamp(min=torch.finfo(e.dtype).tiny) - 1) / p.beta, 0.0)


# --------------------------------------------------------------------------- w_reinforce


@dataclass(frozen=True)
class WReinforceParams:
    """``A = positive_weight`` on correct, ``-negative_weight`` on wrong (lambda = 0.1 and 1
    in the paper). NSR: ``positive_weight=0`` (negative samples only); PSR:
    ``negative_weight=0`` (positive samples only)."""

    positive_weight: float = 0.1
    negative_weight: float = 1.0

    def __post_init__(self) -> None:
        pos = _number("positive_weight", self.positive_weight)
        neg = _number("negative_weight", self.negative_weight)
        if pos < 0 or neg < 0:
            raise ValueError(
                f"positive_weight and negative_weight must be >= 0, got {pos!r} and {neg!r}"
            )
        if pos == 0 and neg == 0:
            raise ValueError("positive_weight and negative_weight cannot both be 0")


@register_estimator("w_reinforce", params=WReinforceParams, binary_only=True)
def w_reinforce_advantage(rewards: Tensor, mask: Tensor, p: WReinforceParams) -> Tensor:
    """Weighted REINFORCE: ``+positive_weight`` on correct, ``-negative_weight`` on wrong
    responses (arXiv 2506.01347, TianHongZXY/RLVR-Decomposed); no baseline."""
    out = torch.where(rewards > 0, p.positive_weight, -p.negative_weight).to(rewards.dtype)
    return torch.where(mask, out, 0.0)


# --------------------------------------------------------------------------- rloo


@dataclass(frozen=True)
class RLOOParams:
    """RLOO has no parameters."""


@register_estimator("rloo", params=RLOOParams)
def rloo_advantage(rewards: Tensor, mask: Tensor, p: RLOOParams) -> Tensor:
    """REINFORCE leave-one-out: ``r_i - mean_{j != i} r_j`` (0 for a group of one)."""
    n = _counts(mask, rewards.dtype)
    total = rewards.sum(1, keepdim=True)
    loo = (total - rewards) / (n - 1).clamp(min=1)
    return torch.where(mask & (n > 1), rewards - loo, 0.0)


# --------------------------------------------------------------------------- reinforce_pp


@dataclass(frozen=True)
class ReinforcePPParams:
    """``eps`` is added to the batch variance before the square root (verl: 1e-8)."""

    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not _number("eps", self.eps) >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")


@register_estimator("reinforce_pp", params=ReinforcePPParams)
def reinforce_pp_advantage(rewards: Tensor, mask: Tensor, p: ReinforcePPParams) -> Tensor:
    """REINFORCE++-baseline: ``r - group mean``, then whitened over the batch's responses.

    Whitening subtracts the batch mean and divides by the (unbiased) batch std, as verl's
    ``compute_reinforce_plus_plus_baseline_outcome_advantage`` does with ``masked_whiten``.
    verl whitens over tokens (a long response weighs more); here each response counts once,
    since the estimator sees responses, not tokens.
    """
    n = _counts(mask, rewards.dtype).clamp(min=1)
    centred = torch.where(mask, rewards - rewards.sum(1, keepdim=True) / n, 0.0)
    valid = centred[mask]
    if valid.numel() < 2:
        return torch.zeros_like(rewards)
    mean, var = valid.mean(), valid.var(unbiased=True)
    if var == 0:
        return torch.zeros_like(rewards)
    return torch.where(mask, (centred - mean) * torch.rsqrt(var + p.eps), 0.0)


# --------------------------------------------------------------------------- unlikeliness


@dataclass(frozen=True)
class UnlikelinessParams:
    """``seq_logp`` ``[G, N]``: each response's mean token log-prob under the policy that
    sampled it (the trainer and the integrations supply it). ``beta`` is the rank penalty
    (0.25 in the paper), ``eps`` the GRPO std guard of the official code (1e-6)."""

    seq_logp: Tensor | None = None
    beta: float = 0.25
    eps: float = 1e-6

    def __post_init__(self) -> None:
        beta = _number("beta", self.beta)
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must be in [0, 1] (0.25 in the paper), got {self.beta!r}")
        if not _number("eps", self.eps) >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")


def unlikeliness_rewards(rewards: Tensor, mask: Tensor, seq_logp: Tensor, beta: float) -> Tensor:
    """``r_i (1 - beta rank_i / N)``: rank 0 is the least likely response of its group.

    Ranks are taken over all valid responses of a group by ascending ``seq_logp`` (ties by
    position), as in the official code (AndreHe02/rewarding-unlikely-release,
    ``verl/trainer/ppo/ray_lean_trainer.py``, ``_compute_advantages``: a double argsort of
    the token-mean old log-probs, divided by the group size). SPEC phrases it as a rank
    among the correct samples; the official code ranks every sample, and wrong ones are
    unaffected since their reward is 0. That is the reading followed here.
    """
    # the sort is the cost of this estimator: keep the log-probs' own dtype (float32 sorts
    # 1.4x faster than float64), masked entries last
    logp = seq_logp.to(rewards.device).masked_fill(~mask, math.inf)
    order = logp.argsort(dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    n = _counts(mask, rewards.dtype).clamp(min=1)
    return torch.where(mask, rewards * (1 - beta * rank.to(rewards.dtype) / n), 0.0)


@register_estimator(
    "unlikeliness", params=UnlikelinessParams, needs=("seq_logp",), binary_only=False
)
def unlikeliness_advantage(rewards: Tensor, mask: Tensor, p: UnlikelinessParams) -> Tensor:
    """Unlikeliness reward (arXiv 2506.02355): rewards scaled down by likelihood rank, then
    GRPO ``(r' - mean) / (std + eps)`` with the unbiased std, as the official code does.

    A group of one response gets 0 (the official code gives it ``r' / (1 + eps)``).
    """
    seq = torch.as_tensor(p.seq_logp, device=rewards.device)
    if seq.shape != rewards.shape:
        raise ValueError(
            f"seq_logp must have the rewards' shape {tuple(rewards.shape)} (one mean token "
            f"log-prob per response), got {tuple(seq.shape)}"
        )
    if not bool(torch.isfinite(seq[mask]).all()):
        raise ValueError("seq_logp must be finite on valid responses")
    shaped = unlikeliness_rewards(rewards, mask, seq, p.beta)
    n = _counts(mask, rewards.dtype)
    mean = shaped.sum(1, keepdim=True) / n.clamp(min=1)
    centred = torch.where(mask, shaped - mean, 0.0)
    std = (centred.square().sum(1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
    return torch.where(mask & (n > 1), centred / (std + p.eps), 0.0)
