"""Sequence-level and soft-gated policy losses: GSPO, CISPO, SAPO (SPEC §2.1).

Each has the family signature of :mod:`passk.core.losses` and registers itself here::

    fn(logp[B, T], old_logp[B, T], advantages[B] | [B, T], mask[B, T], *, **params)
        -> (loss_mat[B, T], metrics)

``loss_mat`` is exactly 0 at padding; metrics are detached 0-d tensors averaged over the valid
tokens. Masked entries of every input are replaced before any arithmetic, so NaN/inf in
padding reach neither the loss, nor metrics, nor gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from passk.core._checks import check_real
from passk.core._masked import (
    _LOG_RATIO_CLAMP,
    Metrics,
    _fill,
    _masked_mean,
)
from passk.core.losses._common import check_bounds, loss_inputs, ratio_metrics
from passk.core.losses.ppo import ppo_clip_from_ratio
from passk.core.losses.registry import register_policy_loss

__all__ = ["CISPOParams", "GSPOParams", "SAPOParams", "cispo_loss", "gspo_loss", "sapo_loss"]


@dataclass(frozen=True)
class GSPOParams:
    """Parameters of :func:`gspo_loss` (``policy_loss = "gspo"``); arXiv 2507.18071 §5.1."""

    eps_low: float = 3e-4
    """The sequence ratio is clipped at ``1 - eps_low`` (paper: 3e-4); in [0, 1)."""
    eps_high: float = 4e-4
    """... and at ``1 + eps_high`` (paper: 4e-4); >= 0."""

    def __post_init__(self) -> None:
        check_bounds(self.eps_low, self.eps_high, low_max_inclusive=False)


@dataclass(frozen=True)
class CISPOParams:
    """Parameters of :func:`cispo_loss` (``policy_loss = "cispo"``); arXiv 2506.13585 §3.1."""

    eps_low: float = 1.0
    """The IS weight is clipped below at ``1 - eps_low``; 1 (default) means no lower bound
    (MiniMax-M1: "we did not impose a lower bound ... by setting eps_low to a large
    value"); in [0, 1]."""
    eps_high: float = 0.28
    """Upper bound ``1 + eps_high`` of the IS weight. The paper tunes it without publishing a
    value (*unverified*); 0.28 is DAPO's clip-higher bound, the project's PPO default."""

    def __post_init__(self) -> None:
        check_bounds(self.eps_low, self.eps_high, low_max_inclusive=True)


@dataclass(frozen=True)
class SAPOParams:
    """Parameters of :func:`sapo_loss` (``policy_loss = "sapo"``); arXiv 2511.20347."""

    tau_pos: float = 1.0
    """Gate temperature of tokens with ``A > 0`` (paper / verl: 1.0); > 0."""
    tau_neg: float = 1.05
    """Gate temperature of tokens with ``A <= 0`` (paper / verl: 1.05, > tau_pos so negative
    updates decay faster off-policy); > 0."""

    def __post_init__(self) -> None:
        for name in ("tau_pos", "tau_neg"):
            value = getattr(self, name)
            check_real(name, value)
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")


_GSPO, _CISPO, _SAPO = GSPOParams(), CISPOParams(), SAPOParams()


# ---------------------------------------------------------------------------------------------
# GSPO
# ---------------------------------------------------------------------------------------------


@register_policy_loss("gspo", params=GSPOParams)
def gspo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = _GSPO.eps_low,
    eps_high: float = _GSPO.eps_high,
) -> tuple[Tensor, Metrics]:
    """GSPO (arXiv 2507.18071): PPO's clip on the sequence ratio, in its token-level form.

    ``s_i = exp(mean_t (logp - old_logp))`` over the valid tokens of response i (its log
    clamped to +-20). The token form (paper eq. GSPO-token) uses
    ``s_i,t = sg(s_i) pi(y_t) / sg(pi(y_t))``: value ``s_i`` on every token, and
    ``d s_i,t / d logp_t = s_i``. The loss is PPO's on that ratio,
    ``max(-A s_i,t, -A clip(s_i,t, 1 - eps_low, 1 + eps_high))`` (paper eps 3e-4 / 4e-4), so a
    whole sequence is clipped together. With ``[B]`` advantages this is GSPO exactly; with
    ``[B, T]`` advantages it is GSPO-token.

    Per-token gradient ``d loss / d logp_t`` after aggregation over B sequences:

    - ``seq-mean-token-mean`` (the paper's objective ``1/G sum_i``; verl forces it):
      ``-A_i s_i / (B |y_i|)`` inside the clip, 0 outside; i.e. the sequence-level loss
      ``-A_i s_i`` (``d s_i / d logp_t = s_i / |y_i|``) averaged over sequences. Use this.
    - ``token-mean``: ``-A_i s_i / N_tokens``: sequences weighted by their length.
    - ``seq-mean-token-sum``: ``-A_i s_i / B``: the length normalisation of ``s_i`` undone.

    Metrics: ``actor/clip_frac{,_high,_low}`` (valid tokens whose sequence ratio is clipped,
    token-weighted like every metric, so across micro-batches it stays exact; with ``[B]``
    advantages it is the fraction of response tokens in clipped sequences),
    ``actor/pg_loss``, ``actor/approx_kl`` (token-level), ``actor/ratio_{mean,max,min}``
    (of ``s_i``, per token), ``actor/dual_clip_frac`` (0).

        >>> import torch
        >>> logp = torch.log(torch.tensor([[1.0, 1.0004], [1.0, 1.0]])).requires_grad_(True)
        >>> loss, m = gspo_loss(logp, torch.zeros(2, 2), torch.tensor([1.0, -1.0]),
        ...                     torch.ones(2, 2))
        >>> m["actor/clip_frac"]  # s_0 = 1.0002 (inside), s_1 = 1
        tensor(0.)
    """
    check_bounds(eps_low, eps_high, low_max_inclusive=False)
    mask, lp, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
    n_tok = mask.sum(dim=-1).clamp(min=1).to(lp.dtype)  # [B]
    seq_log_ratio = (log_ratio.sum(dim=-1) / n_tok).detach()  # [B]
    seq_log_ratio = seq_log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    # log s_i,t = sg(log s_i) + logp - sg(logp): value log s_i, gradient 1 on its own token
    log_s = seq_log_ratio[:, None] + (lp - lp.detach())  # [B, T]
    s = torch.exp(log_s)
    return ppo_clip_from_ratio(s, log_ratio, adv, mask, eps_low, eps_high, None)


# ---------------------------------------------------------------------------------------------
# CISPO
# ---------------------------------------------------------------------------------------------


@register_policy_loss("cispo", params=CISPOParams)
def cispo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = _CISPO.eps_low,
    eps_high: float = _CISPO.eps_high,
) -> tuple[Tensor, Metrics]:
    """CISPO (MiniMax-M1, arXiv 2506.13585 eq. 4): a REINFORCE loss weighted by the clipped,
    stop-gradient IS weight: ``loss = -sg(clip(r, 1 - eps_low, 1 + eps_high)) A logp``.

    No token loses its gradient: ``d loss / d logp = -A clip(r)`` everywhere, where PPO's is 0
    on clipped tokens. The value is the paper's surrogate (it carries ``logp``, so it is not
    comparable to PPO's loss value). Defaults: no lower bound (``eps_low = 1``, the paper's
    choice) and ``eps_high = 0.28`` (*unverified*: the paper does not publish its value).
    Same form as verl's ``compute_policy_loss_cispo``.

    Metrics: ``actor/pg_loss``, ``actor/clip_frac{,_high,_low}`` (tokens whose IS weight was
    truncated, either sign of A), ``actor/is_weight_mean`` (the clipped weight),
    ``actor/approx_kl``, ``actor/ratio_{mean,max,min}``.

        >>> import torch
        >>> logp = torch.log(torch.tensor([[2.0, 0.5]])).requires_grad_(True)
        >>> loss, m = cispo_loss(logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
        >>> loss.sum().backward()
        >>> logp.grad  # -A clip(r): 1.28 (truncated), 0.5 (no lower bound)
        tensor([[-1.2800, -0.5000]])
    """
    check_bounds(eps_low, eps_high, low_max_inclusive=True)
    mask, lp, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
    r = torch.exp(log_ratio.detach().clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    weight = r.clamp(1.0 - eps_low, 1.0 + eps_high)  # detached
    loss = _fill(-weight * adv * lp, mask)
    high = (r > 1.0 + eps_high) & mask
    low = (r < 1.0 - eps_low) & mask
    f = torch.float32
    metrics = {
        "actor/pg_loss": _masked_mean(loss, mask),
        "actor/clip_frac": _masked_mean((high | low).to(f), mask),
        "actor/clip_frac_high": _masked_mean(high.to(f), mask),
        "actor/clip_frac_low": _masked_mean(low.to(f), mask),
        "actor/is_weight_mean": _masked_mean(weight, mask),
        **ratio_metrics("actor", r, log_ratio, mask),
    }
    return loss, metrics


# ---------------------------------------------------------------------------------------------
# SAPO
# ---------------------------------------------------------------------------------------------


@register_policy_loss("sapo", params=SAPOParams)
def sapo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    tau_pos: float = _SAPO.tau_pos,
    tau_neg: float = _SAPO.tau_neg,
) -> tuple[Tensor, Metrics]:
    """SAPO (arXiv 2511.20347): a smooth sigmoid gate in place of PPO's hard clip.

    ``loss = -f(r) A`` with ``f(r) = sigmoid(tau (r - 1)) 4 / tau``, ``tau = tau_pos`` where
    ``A > 0`` and ``tau_neg`` otherwise (defaults 1.0 / 1.05, as verl's
    ``compute_policy_loss_sapo`` and its ``actor.yaml``). The gradient is
    ``d loss / d logp = -A w r`` with ``w = 4 p (1 - p)``, ``p = sigmoid(tau (r - 1))``: ``w = 1``
    on-policy (the plain policy gradient) and it decays smoothly as r leaves 1, faster for
    larger tau. At ``r = 1`` the value is ``-2 A / tau``. The paper averages tokens per
    sequence, then over sequences (``seq-mean-token-mean``).

    Metrics: ``actor/pg_loss``, ``actor/gate_weight_mean`` (mean ``w``), ``actor/approx_kl``,
    ``actor/ratio_{mean,max,min}``.

        >>> import torch
        >>> logp = torch.zeros(1, 2, requires_grad=True)
        >>> loss, m = sapo_loss(logp, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]),
        ...                     torch.ones(1, 2))
        >>> loss.sum().backward()
        >>> loss.detach(), logp.grad  # -2A/tau; on-policy gradient -A
        (tensor([[-2.0000,  1.9048]]), tensor([[-1.,  1.]]))
    """
    for name, value in (("tau_pos", tau_pos), ("tau_neg", tau_neg)):
        check_real(name, value)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    mask, _, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
    r = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    tau = torch.full_like(r, float(tau_neg)).masked_fill(adv > 0, float(tau_pos))  # [B, T]
    p = torch.sigmoid(tau * (r - 1.0))
    loss = _fill(-p * (4.0 / tau) * adv, mask)
    pd = p.detach()
    metrics = {
        "actor/pg_loss": _masked_mean(loss, mask),
        "actor/gate_weight_mean": _masked_mean(4.0 * pd * (1.0 - pd), mask),
        **ratio_metrics("actor", r.detach(), log_ratio, mask),
    }
    return loss, metrics
