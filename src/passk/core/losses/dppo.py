"""DPPO, divergence proximal policy optimisation (arXiv 2602.04879): the binary TV and binary
KL trust regions, registered as ``dppo_tv`` and ``dppo_kl``.

PPO's ratio clip bounds ``pi / mu`` of the sampled token, a one-sample estimate of how far the
policy moved: a rare token going from 1e-5 to 1e-3 is clipped although the distribution
barely changed, while a likely token going from 0.99 to 0.8 is not. DPPO masks instead the
tokens whose *divergence* left a trust region, measured on the binary distribution
``(p, 1 - p)`` of the sampled token (``p = pi(y_t)``, ``p_old = mu(y_t)``). A token keeps its
gradient while the update has not moved it past the region in the direction its advantage
pushes; its gradient is the truncated-importance-weighted policy gradient
``A min(r, is_cap) grad log pi``.

Both have the family signature of :mod:`passk.core.losses`. Reference implementation: verl
0.9.1 ``compute_policy_loss_dppo_tv`` / ``_dppo_kl`` (``clip_ratio_low`` / ``_high`` are
the thresholds there, ``clip_ratio_c`` the cap); passk equals them in value and gradient
(``tests/core/test_dppo.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from passk.core._checks import check_real
from passk.core._masked import _LOG_RATIO_CLAMP, Metrics, _fill, _masked_mean, _up
from passk.core.losses._common import loss_inputs, ratio_metrics
from passk.core.losses.registry import register_policy_loss

__all__ = ["DPPOKLParams", "DPPOTVParams", "dppo_kl_loss", "dppo_tv_loss"]

# verl's binary KL keeps log(1 - p) finite with this offset; the same one here, so the two
# masks agree to the last token.
_BINARY_KL_EPS = 1e-8


def _check_dppo(delta_low: float, delta_high: float, is_cap: float) -> None:
    for name, value in (("delta_low", delta_low), ("delta_high", delta_high)):
        check_real(name, value)
        if not value >= 0.0:
            raise ValueError(f"{name} must be >= 0 (a divergence threshold), got {value!r}")
    check_real("is_cap", is_cap)
    if not is_cap > 0.0:
        raise ValueError(f"is_cap must be > 0 (e.g. 20.0), got {is_cap!r}")


@dataclass(frozen=True)
class DPPOTVParams:
    """Parameters of :func:`dppo_tv_loss` (``policy_loss = "dppo_tv"``)."""

    delta_low: float = 0.15
    """TV threshold for tokens with ``A <= 0``: masked once ``p_old - p > delta_low``
    (verl's DPPO example: 0.15); >= 0."""
    delta_high: float = 0.15
    """TV threshold for tokens with ``A > 0``: masked once ``p - p_old > delta_high``; >= 0."""
    is_cap: float = 20.0
    """Truncation of the detached importance ratio ``min(r, is_cap)`` (paper §5.4, verl's
    ``clip_ratio_c`` fallback 20); > 0."""

    def __post_init__(self) -> None:
        _check_dppo(self.delta_low, self.delta_high, self.is_cap)


@dataclass(frozen=True)
class DPPOKLParams:
    """Parameters of :func:`dppo_kl_loss` (``policy_loss = "dppo_kl"``)."""

    delta_low: float = 0.05
    """Binary-KL threshold for tokens with ``A <= 0`` whose probability fell (verl's DPPO
    example: 0.05); >= 0."""
    delta_high: float = 0.05
    """Binary-KL threshold for tokens with ``A > 0`` whose probability rose; >= 0."""
    is_cap: float = 20.0
    """Truncation of the detached importance ratio ``min(r, is_cap)``; > 0."""

    def __post_init__(self) -> None:
        _check_dppo(self.delta_low, self.delta_high, self.is_cap)


_TV, _KL = DPPOTVParams(), DPPOKLParams()


def _dppo(
    mask: Tensor,  # [B, T] bool
    keep_pos: Tensor,  # [B, T] bool: A > 0 tokens inside the region
    keep_neg: Tensor,  # [B, T] bool: A <= 0 tokens inside the region
    adv: Tensor,
    lp: Tensor,
    log_ratio: Tensor,
    is_cap: float,
) -> tuple[Tensor, Metrics]:
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)).detach()  # [B, T]
    weight = ratio.clamp(max=is_cap)  # truncated IS weight, no gradient
    keep = torch.where(adv > 0, keep_pos, keep_neg) & mask
    loss = torch.where(keep, -adv * weight * lp, torch.zeros_like(lp))
    f = torch.float32
    metrics = {
        "actor/pg_loss": _masked_mean(loss.detach(), mask),
        "actor/clip_frac": _masked_mean((~keep & mask).to(f), mask),
        "actor/clip_frac_high": _masked_mean((~keep & mask & (adv > 0)).to(f), mask),
        "actor/clip_frac_low": _masked_mean((~keep & mask & (adv <= 0)).to(f), mask),
        "actor/is_capped_frac": _masked_mean((keep & (ratio > is_cap)).to(f), mask),
        **ratio_metrics("actor", ratio, log_ratio, mask),
    }
    return loss, metrics


@register_policy_loss("dppo_tv", params=DPPOTVParams)
def dppo_tv_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    delta_low: float = _TV.delta_low,
    delta_high: float = _TV.delta_high,
    is_cap: float = _TV.is_cap,
) -> tuple[Tensor, Metrics]:
    """DPPO-Binary-TV (arXiv 2602.04879): the policy gradient, masked where the sampled
    token's probability moved past a total-variation trust region.

    With ``p = exp(logp)``, ``p_old = exp(old_logp)`` and ``r = exp(logp - old_logp)``
    (log clamped to +-20)::

        keep = (p - p_old <= delta_high)   if A > 0
               (p - p_old >= -delta_low)   if A <= 0
        loss = -A sg(min(r, is_cap)) logp keep

    ``|p - p_old|`` is the TV distance between the binary distributions ``(p, 1 - p)`` and
    ``(p_old, 1 - p_old)``. The gradient is ``-A min(r, is_cap) grad logp`` on kept tokens;
    the value is verl 0.9.1's ``dppo_tv`` (``-A sg(w) logp``, not a ratio objective).

    Args:
        logp, old_logp: ``[B, T]`` current and behaviour log-probs of the sampled tokens.
        advantages: ``[B]`` or ``[B, T]``; mask: ``[B, T]``.
        delta_low, delta_high: the TV thresholds (verl's example: 0.15 each).
        is_cap: truncation of the detached ratio (20).

    Returns ``(loss_mat[B, T], metrics)``: ``actor/clip_frac{,_high,_low}`` (tokens outside
    the region), ``actor/is_capped_frac``, ``actor/pg_loss``, ``actor/approx_kl``,
    ``actor/ratio_{mean,max,min}``.

        >>> import torch
        >>> logp = torch.log(torch.tensor([[0.9, 0.5, 0.2]]))
        >>> old = torch.log(torch.tensor([[0.7, 0.5, 0.4]]))
        >>> loss, m = dppo_tv_loss(logp, old, torch.tensor([[1.0, 1.0, -1.0]]), torch.ones(1, 3))
        >>> loss  # +0.2 > 0.15 with A > 0, and -0.2 < -0.15 with A < 0: masked; -1 * 1 * log 0.5
        tensor([[0.0000, 0.6931, 0.0000]])
        >>> m["actor/clip_frac"]
        tensor(0.6667)
    """
    _check_dppo(delta_low, delta_high, is_cap)
    mask, lp, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
    with torch.no_grad():
        diff = torch.exp(lp) - torch.exp(_fill(_up(old_logp), mask))  # p - p_old
        keep_pos, keep_neg = diff <= delta_high, diff >= -delta_low
    return _dppo(mask, keep_pos, keep_neg, adv, lp, log_ratio, is_cap)


@register_policy_loss("dppo_kl", params=DPPOKLParams)
def dppo_kl_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    delta_low: float = _KL.delta_low,
    delta_high: float = _KL.delta_high,
    is_cap: float = _KL.is_cap,
) -> tuple[Tensor, Metrics]:
    """DPPO-Binary-KL (arXiv 2602.04879): the policy gradient, masked where the binary KL
    between the behaviour and current probability of the sampled token left the region in
    the direction the advantage pushes.

    With ``p``, ``p_old``, ``r`` as in :func:`dppo_tv_loss` and
    ``KL = p_old log(p_old / p) + (1 - p_old) log((1 - p_old + 1e-8) / (1 - p + 1e-8))``
    (the binary KL(mu || pi), offset as verl's)::

        keep = (KL <= delta_high) or (p <= p_old)   if A > 0
               (KL <= delta_low)  or (p >= p_old)   if A <= 0
        loss = -A sg(min(r, is_cap)) logp keep

    so a token is masked only when the divergence is past the threshold *and* the move went
    the way its advantage pushes (further along would only widen it). Gradient and value as
    in :func:`dppo_tv_loss`; equal to verl 0.9.1's ``dppo_kl``.

    Args:
        logp, old_logp, advantages, mask: as in :func:`dppo_tv_loss`.
        delta_low, delta_high: the binary-KL thresholds (verl's example: 0.05 each).
        is_cap: truncation of the detached ratio (20).

    Returns ``(loss_mat[B, T], metrics)`` as :func:`dppo_tv_loss`.

        >>> import torch
        >>> logp = torch.log(torch.tensor([[0.9, 0.2]]))
        >>> old = torch.log(torch.tensor([[0.5, 0.4]]))
        >>> loss, _ = dppo_kl_loss(logp, old, torch.tensor([[1.0, 1.0]]), torch.ones(1, 2))
        >>> loss  # 0.5 -> 0.9: KL 0.51 > 0.05 and rose with A > 0, masked; 0.4 -> 0.2: kept
        tensor([[0.0000, 0.8047]])
    """
    _check_dppo(delta_low, delta_high, is_cap)
    mask, lp, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
    with torch.no_grad():
        old_lp = _fill(_up(old_logp), mask)
        p, p_old = torch.exp(lp), torch.exp(old_lp)
        eps = _BINARY_KL_EPS
        kl = p_old * (old_lp - lp) + (1 - p_old) * torch.log((1 - p_old + eps) / (1 - p + eps))
        keep_pos = (kl <= delta_high) | (p <= p_old)
        keep_neg = (kl <= delta_low) | (p >= p_old)
    return _dppo(mask, keep_pos, keep_neg, adv, lp, log_ratio, is_cap)
