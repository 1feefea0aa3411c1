"""Policy losses of the field: GSPO, CISPO, SAPO, Clip-Cov and KL-Cov (SPEC §2.1).

Each has the family signature of :mod:`passk.core.policy_losses` and is registered there
(importing :mod:`passk.core.policy_losses` imports this module)::

    fn(logp[B, T], old_logp[B, T], advantages[B] | [B, T], mask[B, T], *, **params, **needs)
        -> (loss_mat[B, T], metrics)

``loss_mat`` is exactly 0 at padding; metrics are detached 0-d tensors averaged over the valid
tokens. Masked entries of every input are replaced before any arithmetic, so NaN/inf in
padding reach neither the loss, nor metrics, nor gradients.

Clip-Cov and KL-Cov select tokens by a covariance over the *whole mini-batch*; they take the
selection as the need :data:`COV_SELECT` (bool ``[B, T]``), which the caller computes once per
mini-batch with the params' ``select_tokens`` method (:mod:`passk.core.token_select`) and
slices per micro-batch. So the loss of a micro-batch is the loss of the mini-batch restricted
to its rows::

    >>> import torch
    >>> from passk.core.policy_losses import get_policy_loss
    >>> spec = get_policy_loss("kl_cov")
    >>> p = spec.make_params({"kl_cov_ratio": 0.5})
    >>> logp, old = torch.tensor([[-1.0, -9.0, -2.0, -5.0]]), torch.full((1, 4), -3.0)
    >>> adv, mask = torch.tensor([[2.0, -2.0, 0.5, -0.5]]), torch.ones(1, 4)
    >>> sel = p.select_tokens(logp, old, adv, mask)  # once, on the mini-batch
    >>> loss, m = spec.compute(logp, old, adv, mask, p, cov_select=sel)
    >>> sel, m["actor/cov_selected_frac"]
    (tensor([[ True,  True, False, False]]), tensor(0.5000))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from passk.core._masked import (
    _LOG_RATIO_CLAMP,
    Metrics,
    _broadcast_advantages,
    _check_2d,
    _fill,
    _masked_max,
    _masked_mean,
    _masked_min,
    _up,
)
from passk.core.policy_losses import _check_real, _ppo_clip_from_ratio, register_policy_loss
from passk.core.token_select import _check_fraction, clip_cov_select, kl_cov_select

__all__ = [
    "COV_SELECT",
    "CISPOParams",
    "ClipCovParams",
    "GSPOParams",
    "KLCovParams",
    "SAPOParams",
    "cispo_loss",
    "clip_cov_loss",
    "gspo_loss",
    "kl_cov_loss",
    "sapo_loss",
]

COV_SELECT = "cov_select"
"""The need of a loss whose token selection is global over the mini-batch: a bool ``[B, T]``
from ``params.select_tokens(logp, old_logp, advantages, mask, generator=...)`` evaluated on
the whole mini-batch (detached current log-probs) before it is split."""

# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------


def _check_bounds(eps_low: float, eps_high: float, *, low_max_inclusive: bool) -> None:
    """``eps_low`` in [0, 1) or [0, 1] (1: no lower bound, the ratio is > 0), ``eps_high`` >= 0."""
    _check_real("eps_low", eps_low)
    _check_real("eps_high", eps_high)
    ok = 0.0 <= eps_low <= 1.0 if low_max_inclusive else 0.0 <= eps_low < 1.0
    if not ok:
        valid = "[0, 1] (1: no lower bound)" if low_max_inclusive else "[0, 1)"
        raise ValueError(f"eps_low must be in {valid}, got {eps_low!r}")
    if not eps_high >= 0.0:
        raise ValueError(f"eps_high must be >= 0, got {eps_high!r}")


@dataclass(frozen=True)
class GSPOParams:
    """Parameters of :func:`gspo_loss` (``policy_loss = "gspo"``); arXiv 2507.18071 §5.1."""

    eps_low: float = 3e-4
    """The sequence ratio is clipped at ``1 - eps_low`` (paper: 3e-4); in [0, 1)."""
    eps_high: float = 4e-4
    """... and at ``1 + eps_high`` (paper: 4e-4); >= 0."""

    def __post_init__(self) -> None:
        _check_bounds(self.eps_low, self.eps_high, low_max_inclusive=False)


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
        _check_bounds(self.eps_low, self.eps_high, low_max_inclusive=True)


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
            _check_real(name, value)
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class ClipCovParams:
    """Parameters of :func:`clip_cov_loss` (``policy_loss = "clip_cov"``); arXiv 2505.22617.

    Defaults of the official recipes (PRIME-RL/Entropy-Mechanism-of-RL,
    ``recipe/dapo/7b_clip_cov.sh`` and ``32b_clip_cov.sh``): ratio 2e-4, bounds 1 / 5, and the
    PPO clip opened to ``[0, 2]`` (``clip_ratio_low = clip_ratio_high = 1``), so Clip-Cov
    replaces the hard clip; verl's generic defaults keep PPO's 0.2.
    """

    clip_cov_ratio: float = 2e-4
    """Fraction of the mini-batch's valid tokens whose gradient is removed; in (0, 1]."""
    clip_cov_lb: float = 1.0
    """Candidates have ``cov > clip_cov_lb``."""
    clip_cov_ub: float = 5.0
    """... and ``cov < clip_cov_ub``."""
    eps_low: float = 1.0
    """PPO clip lower bound ``1 - eps_low`` (1: none); in [0, 1]."""
    eps_high: float = 1.0
    """PPO clip upper bound ``1 + eps_high``; >= 0."""

    def __post_init__(self) -> None:
        _check_bounds(self.eps_low, self.eps_high, low_max_inclusive=True)
        _check_fraction("clip_cov_ratio", self.clip_cov_ratio)
        _check_real("clip_cov_lb", self.clip_cov_lb)
        _check_real("clip_cov_ub", self.clip_cov_ub)
        if not self.clip_cov_lb < self.clip_cov_ub:
            raise ValueError(
                f"clip_cov_lb must be < clip_cov_ub, got {self.clip_cov_lb!r} and "
                f"{self.clip_cov_ub!r}"
            )

    def select_tokens(
        self,
        logp: Tensor,
        old_logp: Tensor,
        advantages: Tensor,
        mask: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The :data:`COV_SELECT` need of a mini-batch: :func:`~passk.core.token_select.
        clip_cov_select` with these params; bool ``[B, T]``."""
        return clip_cov_select(
            logp,
            old_logp,
            advantages,
            mask,
            clip_cov_ratio=self.clip_cov_ratio,
            clip_cov_lb=self.clip_cov_lb,
            clip_cov_ub=self.clip_cov_ub,
            eps_low=self.eps_low,
            eps_high=self.eps_high,
            generator=generator,
        )


@dataclass(frozen=True)
class KLCovParams:
    """Parameters of :func:`kl_cov_loss` (``policy_loss = "kl_cov"``); arXiv 2505.22617.

    ``kl_cov_ratio`` 2e-4 is the SPEC's, verl's and the official 32B recipe's
    (``recipe/dapo/32b_kl_cov.sh``: ``k_percent=0.02``, in percent); the official 7B recipe
    uses 2e-3 (``k_percent=0.2``). ``ppo_kl_coef`` 1 is the official recipes' and the
    fallback in verl's code; verl's ``actor.yaml`` ships 0.1.
    """

    kl_cov_ratio: float = 2e-4
    """Fraction of the mini-batch's valid tokens (largest cov) that get the penalty; (0, 1]."""
    ppo_kl_coef: float = 1.0
    """Coefficient of ``|logp - old_logp|`` on the selected tokens; >= 0."""

    on_policy_warning: ClassVar[str] = (
        "policy_loss=kl_cov with an on-policy update (optim.ppo_epochs=1, "
        "optim.mini_batches=1): old_logp equals logp, so its penalty ppo_kl_coef*|logp - "
        "old_logp| is identically 0 and only the unclipped policy gradient -A*r remains; "
        "use optim.mini_batches > 1 or optim.ppo_epochs > 1"
    )

    def __post_init__(self) -> None:
        _check_fraction("kl_cov_ratio", self.kl_cov_ratio)
        _check_real("ppo_kl_coef", self.ppo_kl_coef)
        if not self.ppo_kl_coef >= 0:
            raise ValueError(f"ppo_kl_coef must be >= 0, got {self.ppo_kl_coef!r}")

    def select_tokens(
        self,
        logp: Tensor,
        old_logp: Tensor,
        advantages: Tensor,
        mask: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The :data:`COV_SELECT` need of a mini-batch: :func:`~passk.core.token_select.
        kl_cov_select` with these params (deterministic; ``old_logp`` and ``generator`` are
        not used); bool ``[B, T]``."""
        del old_logp, generator
        return kl_cov_select(logp, advantages, mask, kl_cov_ratio=self.kl_cov_ratio)


_GSPO, _CISPO, _SAPO, _CLIPCOV, _KLCOV = (
    GSPOParams(),
    CISPOParams(),
    SAPOParams(),
    ClipCovParams(),
    KLCovParams(),
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _inputs(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(mask bool, logp, log_ratio, adv)``, all ``[B, T]`` in the compute dtype, 0 at padding."""
    mask = _check_2d(mask, logp=logp, old_logp=old_logp)
    lp = _fill(_up(logp), mask)
    log_ratio = lp - _fill(_up(old_logp), mask)
    adv = _fill(_up(_broadcast_advantages(advantages, mask)), mask)
    return mask, lp, log_ratio, adv


def _ratio_metrics(prefix: str, r: Tensor, log_ratio: Tensor, mask: Tensor) -> Metrics:
    lr = log_ratio.detach()
    approx_kl = torch.expm1(lr) - lr  # k3 of KL(old || new), tokens drawn from old
    return {
        f"{prefix}/approx_kl": _masked_mean(approx_kl, mask),
        f"{prefix}/ratio_mean": _masked_mean(r, mask),
        f"{prefix}/ratio_max": _masked_max(r, mask),
        f"{prefix}/ratio_min": _masked_min(r, mask),
    }


def _check_selection(cov_select: Tensor, mask: Tensor) -> Tensor:
    if cov_select.shape != mask.shape:
        raise ValueError(
            f"cov_select has shape {tuple(cov_select.shape)}, expected the mask shape "
            f"{tuple(mask.shape)} (the mini-batch selection sliced to this batch's rows)"
        )
    return (cov_select != 0) & mask


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
    _check_bounds(eps_low, eps_high, low_max_inclusive=False)
    mask, lp, log_ratio, adv = _inputs(logp, old_logp, advantages, mask)
    n_tok = mask.sum(dim=-1).clamp(min=1).to(lp.dtype)  # [B]
    seq_log_ratio = (log_ratio.sum(dim=-1) / n_tok).detach()  # [B]
    seq_log_ratio = seq_log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    # log s_i,t = sg(log s_i) + logp - sg(logp): value log s_i, gradient 1 on its own token
    log_s = seq_log_ratio[:, None] + (lp - lp.detach())  # [B, T]
    s = torch.exp(log_s)
    return _ppo_clip_from_ratio(s, log_ratio, adv, mask, eps_low, eps_high, None)


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
    _check_bounds(eps_low, eps_high, low_max_inclusive=True)
    mask, lp, log_ratio, adv = _inputs(logp, old_logp, advantages, mask)
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
        **_ratio_metrics("actor", r, log_ratio, mask),
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
        _check_real(name, value)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    mask, _, log_ratio, adv = _inputs(logp, old_logp, advantages, mask)
    r = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    tau = torch.full_like(r, float(tau_neg)).masked_fill(adv > 0, float(tau_pos))  # [B, T]
    p = torch.sigmoid(tau * (r - 1.0))
    loss = _fill(-p * (4.0 / tau) * adv, mask)
    pd = p.detach()
    metrics = {
        "actor/pg_loss": _masked_mean(loss, mask),
        "actor/gate_weight_mean": _masked_mean(4.0 * pd * (1.0 - pd), mask),
        **_ratio_metrics("actor", r.detach(), log_ratio, mask),
    }
    return loss, metrics


# ---------------------------------------------------------------------------------------------
# Clip-Cov and KL-Cov
# ---------------------------------------------------------------------------------------------


@register_policy_loss("clip_cov", params=ClipCovParams, needs=(COV_SELECT,))
def clip_cov_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    cov_select: Tensor,
    clip_cov_ratio: float = _CLIPCOV.clip_cov_ratio,
    clip_cov_lb: float = _CLIPCOV.clip_cov_lb,
    clip_cov_ub: float = _CLIPCOV.clip_cov_ub,
    eps_low: float = _CLIPCOV.eps_low,
    eps_high: float = _CLIPCOV.eps_high,
) -> tuple[Tensor, Metrics]:
    """Clip-Cov (arXiv 2505.22617 §4): PPO's clipped loss with the selected tokens removed.

    ``cov_select`` (bool ``[B, T]``) is :func:`~passk.core.token_select.clip_cov_select` of
    the whole mini-batch, sliced to this call's rows (:meth:`ClipCovParams.select_tokens`);
    ``clip_cov_ratio``, ``clip_cov_lb``, ``clip_cov_ub`` act through it only. The loss is
    ``max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))``, set to 0 (value and gradient) on
    the selected tokens, as the official code does (``pg_losses * corr``, corr 0 there;
    the paper calls it detaching their gradient; the gradient is the same). The normaliser
    still counts them.

    Metrics: PPO's (:func:`~passk.core.policy_losses.ppo_clip_loss`, before the removal)
    and ``actor/cov_selected_frac`` (selected / valid tokens).

        >>> import torch
        >>> logp = torch.zeros(1, 3, requires_grad=True)
        >>> sel = torch.tensor([[False, True, False]])
        >>> loss, m = clip_cov_loss(logp, torch.zeros(1, 3), torch.tensor([-1.0]),
        ...                         torch.ones(1, 3), cov_select=sel)
        >>> loss.sum().backward()
        >>> loss.detach(), logp.grad
        (tensor([[1., 0., 1.]]), tensor([[1., 0., 1.]]))
    """
    _check_bounds(eps_low, eps_high, low_max_inclusive=True)
    mask, _, log_ratio, adv = _inputs(logp, old_logp, advantages, mask)
    sel = _check_selection(cov_select, mask)
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    loss, metrics = _ppo_clip_from_ratio(ratio, log_ratio, adv, mask, eps_low, eps_high, None)
    loss = _fill(loss, ~sel)
    metrics["actor/cov_selected_frac"] = _masked_mean(sel.to(torch.float32), mask)
    return loss, metrics


@register_policy_loss("kl_cov", params=KLCovParams, needs=(COV_SELECT,))
def kl_cov_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    cov_select: Tensor,
    kl_cov_ratio: float = _KLCOV.kl_cov_ratio,
    ppo_kl_coef: float = _KLCOV.ppo_kl_coef,
) -> tuple[Tensor, Metrics]:
    """KL-Cov (arXiv 2505.22617 §4): the unclipped policy gradient plus a KL penalty on the
    selected (largest-covariance) tokens: ``loss = -A r + ppo_kl_coef |logp - old_logp| [sel]``.

    ``cov_select`` is :func:`~passk.core.token_select.kl_cov_select` of the whole mini-batch
    sliced to this call's rows (:meth:`KLCovParams.select_tokens`); ``kl_cov_ratio`` acts
    through it only. As in the official code (``compute_policy_loss_kl_cov``), there is no
    PPO clip at all and the penalty is ``|log r|``. On-policy (``old_logp == logp``) the
    penalty and its gradient are identically 0 (``|x|`` has gradient 0 at 0). Where
    ``old_logp`` is recomputed in differently shaped batches than the update's (e.g. the first
    mini-batch after a behaviour pass over the whole batch), ``log r`` is float noise, yet its
    gradient ``sign(log r)`` is a full ``+-ppo_kl_coef`` on the selected tokens; the official
    code behaves the same.

    Metrics: ``actor/pg_loss``, ``actor/cov_selected_frac``, ``actor/kl_cov_penalty`` (mean
    over valid tokens of the added penalty), ``actor/abs_log_ratio`` (mean ``|log r|``),
    ``actor/approx_kl``, ``actor/ratio_{mean,max,min}``.

        >>> import torch
        >>> logp = torch.log(torch.tensor([[2.0, 2.0]])).requires_grad_(True)
        >>> loss, m = kl_cov_loss(logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2),
        ...                       cov_select=torch.tensor([[True, False]]))
        >>> loss.sum().backward()
        >>> loss.detach(), logp.grad  # -2 + |log 2|, -2; gradients -A r + 1, -A r
        (tensor([[-1.3069, -2.0000]]), tensor([[-1., -2.]]))
    """
    if isinstance(ppo_kl_coef, bool) or not ppo_kl_coef >= 0:
        raise ValueError(f"ppo_kl_coef must be >= 0, got {ppo_kl_coef!r}")
    mask, _, log_ratio, adv = _inputs(logp, old_logp, advantages, mask)
    sel = _check_selection(cov_select, mask)
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    penalty = _fill(ppo_kl_coef * log_ratio.abs(), sel)
    loss = _fill(-adv * ratio + penalty, mask)
    f = torch.float32
    metrics = {
        "actor/pg_loss": _masked_mean(loss, mask),
        "actor/cov_selected_frac": _masked_mean(sel.to(f), mask),
        "actor/kl_cov_penalty": _masked_mean(penalty, mask),
        "actor/abs_log_ratio": _masked_mean(log_ratio.abs(), mask),
        **_ratio_metrics("actor", ratio.detach(), log_ratio, mask),
    }
    return loss, metrics
