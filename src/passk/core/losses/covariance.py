"""Covariance-selected policy losses: Clip-Cov and KL-Cov (arXiv 2505.22617, SPEC §2.1).

Clip-Cov and KL-Cov select tokens by a covariance over the *whole mini-batch*; they take the
selection as the need :data:`COV_SELECT` (bool ``[B, T]``), which the caller computes once per
mini-batch with the params' ``select_tokens`` method (:mod:`passk.core.token_select`) and
slices per micro-batch. So the loss of a micro-batch is the loss of the mini-batch restricted
to its rows::

    >>> import torch
    >>> from passk.core.losses import get_policy_loss
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

from passk.core._checks import check_fraction, check_real
from passk.core._masked import (
    _LOG_RATIO_CLAMP,
    Metrics,
    _fill,
    _masked_mean,
)
from passk.core.losses._common import check_bounds, loss_inputs, ratio_metrics
from passk.core.losses.ppo import ppo_clip_from_ratio
from passk.core.losses.registry import register_policy_loss
from passk.core.token_select import clip_cov_select, kl_cov_select

__all__ = ["COV_SELECT", "ClipCovParams", "KLCovParams", "clip_cov_loss", "kl_cov_loss"]

COV_SELECT = "cov_select"
"""The need of a loss whose token selection is global over the mini-batch: a bool ``[B, T]``
from ``params.select_tokens(logp, old_logp, advantages, mask, generator=...)`` evaluated on
the whole mini-batch (detached current log-probs) before it is split."""


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
        check_bounds(self.eps_low, self.eps_high, low_max_inclusive=True)
        check_fraction("clip_cov_ratio", self.clip_cov_ratio)
        check_real("clip_cov_lb", self.clip_cov_lb)
        check_real("clip_cov_ub", self.clip_cov_ub)
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
        check_fraction("kl_cov_ratio", self.kl_cov_ratio)
        check_real("ppo_kl_coef", self.ppo_kl_coef)
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


_CLIPCOV, _KLCOV = ClipCovParams(), KLCovParams()


def _check_selection(cov_select: Tensor, mask: Tensor) -> Tensor:
    if cov_select.shape != mask.shape:
        raise ValueError(
            f"cov_select has shape {tuple(cov_select.shape)}, expected the mask shape "
            f"{tuple(mask.shape)} (the mini-batch selection sliced to this batch's rows)"
        )
    return (cov_select != 0) & mask


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

    Metrics: PPO's (:func:`~passk.core.losses.ppo_clip_loss`, before the removal)
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
    check_bounds(eps_low, eps_high, low_max_inclusive=True)
    mask, _, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
    sel = _check_selection(cov_select, mask)
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    loss, metrics = ppo_clip_from_ratio(ratio, log_ratio, adv, mask, eps_low, eps_high, None)
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
    mask, _, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
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
        **ratio_metrics("actor", ratio.detach(), log_ratio, mask),
    }
    return loss, metrics
