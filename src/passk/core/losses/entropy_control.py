"""Entropy controllers: one step of each, as pure functions of the measured entropy and the
controller's state, and EntroPIC's loss term.

- :func:`adaptive_entropy_coef`: Skywork-OR1's adaptive entropy coefficient (arXiv
  2505.22312 §3.2; TRL 1.16's ``use_adaptive_entropy``): the coefficient moves by a fixed
  step toward holding a target entropy, and the bonus is applied only while the entropy is
  at or below the target.
- :func:`entropic_alpha` and :func:`entropic_loss`: EntroPIC (arXiv 2511.15248): a
  proportional-integral controller on the entropy error sets ``alpha``, which reweights
  positive against negative samples on the high-probability tokens.

The state (the coefficient; the integral of the error) belongs to the caller: the trainer
keeps it in its checkpointed run state (:class:`passk.train.loop.RunState`), the mechanism
lab in its arm's trajectory (:mod:`passk.sim.dynamics`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from passk.core._checks import check_real
from passk.core._masked import _LOG_RATIO_CLAMP, Metrics, _masked_mean
from passk.core.losses._common import loss_inputs

__all__ = ["adaptive_entropy_coef", "entropic_alpha", "entropic_loss"]


def adaptive_entropy_coef(
    coef: float,
    entropy: float,
    *,
    target: float,
    delta: float,
    coef_min: float = 0.0,
    coef_max: float = 1.0,
) -> tuple[float, float]:
    """One step of Skywork-OR1's adaptive entropy coefficient: ``(applied, next_coef)``.

    With ``e`` the entropy measured at this step and ``c`` the coefficient::

        applied = c                           if e <= target else 0
        next    = min(c + delta, coef_max)     if e <= target
                  max(c - delta, coef_min)     otherwise

    ``applied`` multiplies this step's entropy bonus (``loss -= applied * H``); ``next`` is
    the coefficient of the following step. The paper writes ``c_k = alpha_k 1{e_k <= tgt}``
    and moves ``alpha`` up below the target and down above it; at equality it moves up, as
    TRL 1.16 does.

        >>> adaptive_entropy_coef(0.01, 0.15, target=0.2, delta=0.005)
        (0.01, 0.015)
        >>> adaptive_entropy_coef(0.01, 0.35, target=0.2, delta=0.005)
        (0.0, 0.005)
        >>> adaptive_entropy_coef(0.003, 0.35, target=0.2, delta=0.005)  # floored at coef_min
        (0.0, 0.0)
    """
    for name, value in (("coef", coef), ("entropy", entropy), ("target", target)):
        check_real(name, value)
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    if not 0 <= coef_min <= coef_max:
        raise ValueError(f"need 0 <= coef_min <= coef_max, got {coef_min!r} and {coef_max!r}")
    if not math.isfinite(entropy):
        return 0.0, coef  # no measurement: no bonus, no move
    if entropy <= target:
        return coef, min(coef + delta, coef_max)
    return 0.0, max(coef - delta, coef_min)


def entropic_alpha(
    entropy: float, integral: float, *, target: float, kp: float, ki: float
) -> tuple[float, float]:
    """One step of EntroPIC's PI controller: ``(alpha, next_integral)``.

    With the error ``e = entropy - target`` and ``I`` the sum of the errors of the steps
    before this one::

        alpha = clip(kp e + ki I, -1, 1)
        next_integral = I + e

    ``alpha > 0`` (entropy above target) strengthens positive samples and weakens negative
    ones (:func:`entropic_loss`), which lowers entropy; ``alpha < 0`` does the opposite.
    The official code (github.com/yk7333/EntroPIC, ``dp_actor.py``) has the same law with
    ``kp = 1``, ``ki = 0.01`` and the integral read before it is updated.

        >>> alpha, integral = entropic_alpha(0.5, 2.0, target=0.3, kp=1.0, ki=0.01)
        >>> round(alpha, 12), round(integral, 12)  # 1.0 * 0.2 + 0.01 * 2.0; 2.0 + 0.2
        (0.22, 2.2)
        >>> entropic_alpha(0.0, -300.0, target=0.25, kp=1.0, ki=0.01)  # clipped at -1
        (-1.0, -300.25)
    """
    for name, value in (("entropy", entropy), ("integral", integral), ("target", target)):
        check_real(name, value)
    if not (kp >= 0 and ki >= 0):
        raise ValueError(f"kp and ki must be >= 0, got {kp!r} and {ki!r}")
    if not math.isfinite(entropy):
        return 0.0, integral
    error = entropy - target
    alpha = min(1.0, max(-1.0, kp * error + ki * integral))
    return alpha, integral + error


def entropic_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    alpha: float,
    prob_threshold: float = 0.95,
) -> tuple[Tensor, Metrics]:
    """EntroPIC's loss term: ``alpha * (-r |A|)`` on the tokens whose current probability is
    above ``prob_threshold``, 0 elsewhere (``r = exp(logp - old_logp)``, log clamped to +-20).

    Added to a policy loss ``-A r`` it makes the high-probability tokens' loss
    ``-(1 + alpha) A r`` for ``A > 0`` and ``-(1 - alpha) A r`` for ``A < 0``: positive
    samples weighted ``1 + alpha``, negative ones ``1 - alpha`` (the term is unclipped, as in
    the official code's ``entropic`` loss). Returns ``(loss_mat[B, T], metrics)`` with
    ``entropic/high_prob_frac`` (tokens the term touches) and ``entropic/alpha``.

        >>> import torch
        >>> logp = torch.log(torch.tensor([[0.99, 0.5, 0.98]]))
        >>> loss, m = entropic_loss(logp, logp, torch.tensor([[1.0, 1.0, -2.0]]),
        ...                         torch.ones(1, 3), alpha=0.5)
        >>> loss, m["entropic/high_prob_frac"]
        (tensor([[-0.5000,  0.0000, -1.0000]]), tensor(0.6667))
    """
    check_real("alpha", alpha)
    if not -1.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [-1, 1], got {alpha!r}")
    if not 0.0 <= prob_threshold < 1.0:
        raise ValueError(f"prob_threshold must be in [0, 1), got {prob_threshold!r}")
    mask, lp, log_ratio, adv = loss_inputs(logp, old_logp, advantages, mask)
    high = (lp.detach() > math.log(prob_threshold)) & mask if prob_threshold > 0 else mask
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    loss = torch.where(high, -alpha * ratio * adv.abs(), torch.zeros_like(lp))
    metrics = {
        "entropic/high_prob_frac": _masked_mean(high.to(torch.float32), mask),
        "entropic/alpha": torch.tensor(float(alpha)),
    }
    return loss, metrics
