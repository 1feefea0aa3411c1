"""PPO's clipped loss (DAPO clip-higher, dual clip) and SimKO (SPEC §2.1).

Both have the family signature of :mod:`passk.core.losses` and register themselves here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from passk.core._checks import check_real
from passk.core._masked import (
    _LOG_RATIO_CLAMP,
    Metrics,
    _broadcast_advantages,
    _check_2d,
    _compute_dtype,
    _fill,
    _masked_max,
    _masked_mean,
    _masked_min,
    _up,
)
from passk.core.losses.registry import register_policy_loss

__all__ = [
    "PPOClipParams",
    "SimKOParams",
    "ppo_clip_from_ratio",
    "ppo_clip_loss",
    "simko_entropy_weights",
    "simko_loss",
]

# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------


def _check_eps(eps_low: float, eps_high: float, dual_clip: float | None) -> None:
    check_real("eps_low", eps_low)
    check_real("eps_high", eps_high)
    if not 0.0 <= eps_low < 1.0:
        raise ValueError(f"eps_low must be in [0, 1), got {eps_low!r}")
    if not eps_high >= 0.0:
        raise ValueError(f"eps_high must be >= 0, got {eps_high!r}")
    if dual_clip is not None:
        check_real("dual_clip", dual_clip)
        if not dual_clip > 1.0:
            raise ValueError(f"dual_clip must be > 1 (e.g. 3.0) or None, got {dual_clip!r}")


def _check_simko(K: int | None, alpha: float, tau: float, lam: float) -> None:
    if K is not None and (isinstance(K, bool) or not isinstance(K, int) or K < 1):
        raise ValueError(f"K must be None or an int >= 1, got {K!r}")
    for name, value in (("alpha", alpha), ("tau", tau), ("lam", lam)):
        check_real(name, value)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")
    if not lam >= 0.0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")


@dataclass(frozen=True)
class PPOClipParams:
    """Parameters of :func:`ppo_clip_loss` (``policy_loss = "ppo_clip"``)."""

    eps_low: float = 0.2
    """Lower clip bound: the ratio is clipped at ``1 - eps_low``; in [0, 1)."""
    eps_high: float = 0.28
    """Upper clip bound ``1 + eps_high`` (DAPO clip-higher; Pass@k/DAPO 0.28, ProRL 0.4)."""
    dual_clip: float | None = None
    """``None`` or ``c > 1``: caps the loss of ``A < 0`` tokens at ``-A c`` (3.0 is usual)."""

    def __post_init__(self) -> None:
        _check_eps(self.eps_low, self.eps_high, self.dual_clip)


@dataclass(frozen=True)
class SimKOParams(PPOClipParams):
    """Parameters of :func:`simko_loss`: PPO's clip parameters plus SimKO's own."""

    K: int | None = None
    """Top tokens that share the gradient (None: all columns of ``topk_logp``; paper: 3)."""
    alpha: float = 0.01
    """Fraction of a correct high-entropy token's gradient spread over the top-K; in [0, 1]."""
    tau: float = 0.8
    """Entropy quantile above which a token counts as high-entropy; in [0, 1]."""
    lam: float = 1.1
    """Advantage multiplier of incorrect, top-1, high-entropy tokens; >= 0."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_simko(self.K, self.alpha, self.tau, self.lam)


_PPO = PPOClipParams()
_SIMKO = SimKOParams()

# ---------------------------------------------------------------------------------------------
# PPO clip (DAPO clip-higher, dual clip)
# ---------------------------------------------------------------------------------------------


def ppo_clip_from_ratio(
    ratio: Tensor,  # [B, T], may carry a custom gradient (SimKO)
    log_ratio: Tensor,  # [B, T], detached use only (metrics)
    adv: Tensor,  # [B, T], masked entries already 0
    mask: Tensor,  # [B, T] bool
    eps_low: float,
    eps_high: float,
    dual_clip: float | None,
    prefix: str = "actor",
) -> tuple[Tensor, Metrics]:
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)  # pessimistic bound
    if dual_clip is not None:
        # For A < 0 the unclipped term grows without bound in r; cap it at -A * c.
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip), loss)
        dual = (adv < 0) & (ratio.detach() > dual_clip) & mask
    else:
        dual = torch.zeros_like(mask)
    loss = _fill(loss, mask)

    r = ratio.detach()
    clip_high = (adv > 0) & (r > 1.0 + eps_high) & mask
    clip_low = (adv < 0) & (r < 1.0 - eps_low) & mask
    lr = log_ratio.detach()
    approx_kl = torch.expm1(lr) - lr  # k3 of KL(old || new), tokens drawn from old
    f = torch.float32
    metrics = {
        f"{prefix}/pg_loss": _masked_mean(loss, mask),
        f"{prefix}/clip_frac": _masked_mean((clip_high | clip_low).to(f), mask),
        f"{prefix}/clip_frac_high": _masked_mean(clip_high.to(f), mask),
        f"{prefix}/clip_frac_low": _masked_mean(clip_low.to(f), mask),
        f"{prefix}/dual_clip_frac": _masked_mean(dual.to(f), mask),
        f"{prefix}/approx_kl": _masked_mean(approx_kl, mask),
        f"{prefix}/ratio_mean": _masked_mean(r, mask),
        f"{prefix}/ratio_max": _masked_max(r, mask),
        f"{prefix}/ratio_min": _masked_min(r, mask),
    }
    return loss, metrics


def ppo_clip_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = _PPO.eps_low,
    eps_high: float = _PPO.eps_high,
    dual_clip: float | None = _PPO.dual_clip,
) -> tuple[Tensor, Metrics]:
    """Clipped policy-gradient loss with decoupled bounds (DAPO clip-higher) and dual clip.

    ``loss = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))`` with
    ``r = exp(logp - old_logp)`` (log-ratio clamped to +-20 before exp); with
    ``dual_clip = c`` the loss of tokens with ``A < 0`` is further capped at
    ``-A c`` (Ye et al. 2020; c = 3.0 is usual).

    Args:
        logp: ``[B, T]`` log-prob of the sampled tokens under the current policy.
        old_logp: ``[B, T]`` the same under the behaviour (rollout) policy.
        advantages: ``[B]`` (broadcast over tokens) or ``[B, T]``.
        mask: ``[B, T]`` 0/1 or bool response mask.
        eps_low, eps_high: clip range ``[1 - eps_low, 1 + eps_high]``
            (Pass@k/DAPO 0.2/0.28, ProRL 0.2/0.4).
        dual_clip: ``None`` or ``c > 1``.

    Returns ``(loss_mat[B, T], metrics)`` with ``actor/pg_loss``,
    ``actor/clip_frac{,_low,_high}`` (tokens whose clipped branch is active,
    i.e. zero gradient), ``actor/dual_clip_frac``, ``actor/approx_kl`` (k3
    estimate of KL(old || new)), ``actor/ratio_{mean,max,min}``.

        >>> import torch
        >>> logp = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
        >>> loss, m = ppo_clip_loss(logp, torch.zeros(1, 3), torch.tensor([[1.0, -1.0, 2.0]]),
        ...                         torch.ones(1, 3))
        >>> loss  # r=1.5, A=1 -> clipped at 1.28; r=0.5, A=-1 -> clipped at 0.8; r=1 -> -2
        tensor([[-1.2800,  0.8000, -2.0000]])
        >>> m["actor/clip_frac"]
        tensor(0.6667)
    """
    _check_eps(eps_low, eps_high, dual_clip)
    mask = _check_2d(mask, logp=logp, old_logp=old_logp)
    adv = _fill(_up(_broadcast_advantages(advantages, mask)), mask)
    log_ratio = _fill(_up(logp), mask) - _fill(_up(old_logp), mask)  # [B, T]
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    return ppo_clip_from_ratio(ratio, log_ratio, adv, mask, eps_low, eps_high, dual_clip)


# ---------------------------------------------------------------------------------------------
# SimKO
# ---------------------------------------------------------------------------------------------


def simko_entropy_weights(entropy: Tensor, mask: Tensor, tau: float = _SIMKO.tau) -> Tensor:
    """``w[B, T]`` in {0, 1}: 1 where the token entropy exceeds its response's tau-quantile.

    The quantile is over the valid tokens of each row (linear interpolation,
    ``torch.nanquantile``); the comparison is strict, so a response with equal
    entropies everywhere has no high-entropy token. No gradient.

        >>> import torch
        >>> simko_entropy_weights(torch.tensor([[0.1, 0.5, 2.0, 0.3, 9.0]]),
        ...                       torch.tensor([[1, 1, 1, 1, 0]]), tau=0.5)
        tensor([[0., 1., 1., 0., 0.]])
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")
    mask = _check_2d(mask, entropy=entropy)
    ent = entropy.detach().to(_compute_dtype(entropy.dtype))
    ent = _fill(ent, mask & torch.isfinite(ent), math.nan)
    q = torch.nanquantile(ent, tau, dim=-1, keepdim=True)  # [B, 1]; NaN for empty rows
    return ((ent > q) & mask).to(ent.dtype)


def simko_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    topk_logp: Tensor,
    topk_old_logp: Tensor,
    entropy: Tensor,
    correct: Tensor,
    sampled_is_top1: Tensor,
    K: int | None = _SIMKO.K,
    alpha: float = _SIMKO.alpha,
    tau: float = _SIMKO.tau,
    lam: float = _SIMKO.lam,
    eps_low: float = _SIMKO.eps_low,
    eps_high: float = _SIMKO.eps_high,
    dual_clip: float | None = _SIMKO.dual_clip,
) -> tuple[Tensor, Metrics]:
    """SimKO (arXiv 2510.14807): PPO clip with a top-K mixed ratio and an asymmetric boost.

    With ``w_t`` = :func:`simko_entropy_weights` (tau-quantile of the
    response's token entropy), ``r_t = exp(logp - old_logp)`` and
    ``r_k = exp(topk_logp[k] - topk_old_logp[k])``:

    - correct responses: ``r~_t = (1 - alpha w_t) r_t + (alpha w_t / K)
      sum_k sg(r_t / r_k) r_k``. It has the same *value* as ``r_t`` (built as
      ``r_t + (x - sg(x))`` terms, so bit-identical), but a fraction
      ``alpha w_t`` of the gradient goes to the top-K tokens:
      ``dr~/dlogp = (1 - alpha w_t) r_t`` and
      ``dr~/dtopk_logp[k] = alpha w_t r_t / K``. When the sampled token is one
      of the top-K and both inputs are gathered from the same logits, autograd
      adds the two contributions.
    - incorrect responses: where ``sampled_is_top1`` and ``w_t = 1`` the
      advantage is multiplied by ``lam``.

    The PPO clip objective (:func:`ppo_clip_loss` rules) is then applied to
    ``r~_t``; its metrics plus ``simko/high_entropy_frac``,
    ``simko/mixed_frac``, ``simko/boost_frac`` are returned.

    Args:
        logp, old_logp: ``[B, T]`` sampled-token log-probs (current, rollout).
        advantages: ``[B]`` or ``[B, T]``.
        mask: ``[B, T]`` response mask.
        topk_logp: ``[B, T, K']`` log-probs of the top-K tokens of the current
            policy, top-1 first; K' >= K (the first K columns are used).
        topk_old_logp: ``[B, T, K']`` the rollout policy's log-probs of the
            *same* tokens.
        entropy: ``[B, T]`` token entropy (detached inside).
        correct: ``[B]`` bool, the response is correct (reward > 0).
        sampled_is_top1: ``[B, T]`` bool, the sampled token is the top-1 token.
        K: number of top tokens (None: ``topk_logp.shape[-1]``; paper: 3).
        alpha, tau, lam: paper defaults 0.01, 0.8, 1.1.
        eps_low, eps_high, dual_clip: as in :func:`ppo_clip_loss`.

    Returns ``(loss_mat[B, T], metrics)``.

        >>> import torch
        >>> B, T = 1, 5
        >>> logp = torch.zeros(B, T)
        >>> l, m = simko_loss(logp, logp, torch.tensor([1.0]), torch.ones(B, T),
        ...     topk_logp=torch.zeros(B, T, 3), topk_old_logp=torch.zeros(B, T, 3),
        ...     entropy=torch.arange(5.0)[None], correct=torch.tensor([True]),
        ...     sampled_is_top1=torch.ones(B, T, dtype=torch.bool))
        >>> l, m["simko/high_entropy_frac"]
        (tensor([[-1., -1., -1., -1., -1.]]), tensor(0.2000))
    """
    _check_eps(eps_low, eps_high, dual_clip)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if not lam >= 0.0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    mask = _check_2d(
        mask, logp=logp, old_logp=old_logp, entropy=entropy, sampled_is_top1=sampled_is_top1
    )
    B, T = mask.shape
    if topk_logp.ndim != 3 or topk_logp.shape[:2] != (B, T):
        raise ValueError(f"topk_logp must be [B, T, K]=[{B}, {T}, K], got {tuple(topk_logp.shape)}")
    if topk_old_logp.shape != topk_logp.shape:
        raise ValueError(
            f"topk_old_logp shape {tuple(topk_old_logp.shape)} != topk_logp shape "
            f"{tuple(topk_logp.shape)}"
        )
    if K is None:
        K = topk_logp.shape[-1]
    if not 1 <= K <= topk_logp.shape[-1]:
        raise ValueError(
            f"K must be in [1, {topk_logp.shape[-1]}] (topk_logp.shape[-1]), got {K!r}"
        )
    if correct.shape != (B,):
        raise ValueError(f"correct must have shape [B]=({B},), got {tuple(correct.shape)}")

    logp, old_logp, topk_logp, topk_old_logp = map(_up, (logp, old_logp, topk_logp, topk_old_logp))
    w = simko_entropy_weights(entropy, mask, tau).to(logp.dtype)  # [B, T]
    correct_t = (correct != 0)[:, None].expand(B, T)  # [B, T]
    top1 = sampled_is_top1 != 0

    log_ratio = _fill(logp, mask) - _fill(old_logp, mask)  # [B, T]
    lr = log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    ratio = torch.exp(lr)
    topk_lr = _fill(topk_logp[..., :K], mask) - _fill(topk_old_logp[..., :K], mask)  # [B, T, K]
    topk_lr = topk_lr.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    # sg(r_t / r_k) r_k, from log space so no overflow; value r_t up to rounding.
    spread = torch.exp(lr.detach()[..., None] - topk_lr.detach()) * torch.exp(topk_lr)
    a_w = torch.where(correct_t, alpha * w, torch.zeros_like(w))  # [B, T]
    # r~ = r + a_w (mean_k spread_k - r) written as r + (x - sg(x)) so the value is exactly r.
    delta = a_w * (spread.mean(dim=-1) - ratio)
    mixed = ratio + (delta - delta.detach())

    boost = (~correct_t) & top1 & (w > 0) & mask  # [B, T]
    adv = _fill(_up(_broadcast_advantages(advantages, mask)), mask)
    adv = torch.where(boost, adv * lam, adv)

    loss, metrics = ppo_clip_from_ratio(mixed, log_ratio, adv, mask, eps_low, eps_high, dual_clip)
    f = torch.float32
    metrics["simko/high_entropy_frac"] = _masked_mean((w > 0).to(f), mask)
    metrics["simko/mixed_frac"] = _masked_mean((a_w > 0).to(f), mask)
    metrics["simko/boost_frac"] = _masked_mean(boost.to(f), mask)
    return loss, metrics


register_policy_loss("ppo_clip", params=PPOClipParams)(ppo_clip_loss)
register_policy_loss(
    "simko",
    params=SimKOParams,
    needs=("topk_logp", "topk_old_logp", "entropy", "correct", "sampled_is_top1"),
)(simko_loss)
