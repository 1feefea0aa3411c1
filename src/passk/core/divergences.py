"""DPH-RL f-divergence generators and the divergence term on stored reference samples.

:func:`dph_divergence_loss` has the per-token loss shape ``(loss_mat[B, T], metrics)`` of
:mod:`passk.core.losses`; multiply by eta and add before one aggregation. Masked
entries are replaced before any arithmetic; half-precision inputs are computed in float32.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from passk.core._masked import _LOG_RATIO_CLAMP, Metrics, _check_2d, _fill, _masked_mean, _up

__all__ = ["DPH_GENERATORS", "dph_divergence_loss", "dph_generator"]

DPH_GENERATORS: tuple[str, ...] = ("forward_kl", "js", "alpha")
_LOG2 = math.log(2.0)


def dph_generator(log_u: Tensor, kind: str = "forward_kl", alpha: float = 0.2) -> Tensor:
    """Generator ``f(u)`` of an f-divergence, evaluated from ``log u`` (elementwise).

    All three are convex with ``f(1) = 0`` and ``f'(1) = 0``, hence ``f >= 0``
    with equality only at ``u = 1``:

    - ``"forward_kl"``: ``u - log u - 1``; with ``u = pi_theta / pi_ref`` on
      samples from pi_ref, ``E[f(u)] = KL(pi_ref || pi_theta)`` (mass-covering).
    - ``"js"``: ``u log u - (u + 1) log((u + 1) / 2)``; its f-divergence is
      twice the Jensen-Shannon divergence, so bounded by ``2 log 2``.
    - ``"alpha"``: ``(u^a - a u - (1 - a)) / (a (a - 1))`` (Amari alpha family,
      with the linear term that makes ``f'(1) = 0``); ``f''(u) = u^(a-2) > 0``.
      ``a -> 0`` gives ``forward_kl``, ``a -> 1`` gives ``u log u - u + 1``
      (reverse KL); those limits are used at ``a = 0`` and ``a = 1`` exactly.

        >>> import torch
        >>> lu = torch.log(torch.tensor([1.0, 2.0]))
        >>> dph_generator(lu, "forward_kl"), dph_generator(lu, "js")
        (tensor([0.0000, 0.3069]), tensor([0.0000, 0.1699]))
    """
    if kind not in DPH_GENERATORS:
        raise ValueError(f"unknown DPH generator {kind!r}; valid: {', '.join(DPH_GENERATORS)}")
    if kind == "forward_kl" or (kind == "alpha" and alpha == 0.0):
        return torch.expm1(log_u) - log_u
    u = torch.exp(log_u)
    if kind == "js":
        # f = u log(2u / (u + 1)) + log(2 / (u + 1)). Near u = 1 write t = (u - 1) / (u + 1)
        # = tanh(log u / 2): f = u log1p(t) + log1p(-t) keeps f ~ (u - 1)^2 / 4 free of
        # cancellation; elsewhere log(2 / (u + 1)) = log 2 - softplus(log u) is exact.
        t = torch.tanh(log_u.clamp(-1.0, 1.0) / 2)
        near = u * torch.log1p(t) + torch.log1p(-t)
        sp = torch.nn.functional.softplus(log_u)
        far = u * (log_u - sp + _LOG2) + (_LOG2 - sp)
        return torch.where(log_u.abs() < 1.0, near, far)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] for the alpha generator, got {alpha!r}")
    if alpha == 1.0:
        return u * log_u - torch.expm1(log_u)
    # (a (u - 1) - (u^a - 1)) / (a (1 - a)), expm1 for precision near u = 1.
    num = alpha * torch.expm1(log_u) - torch.expm1(alpha * log_u)
    return num / (alpha * (1.0 - alpha))


def dph_divergence_loss(
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    kind: str = "forward_kl",
    alpha: float = 0.2,
    *,
    log_u_clamp: float = _LOG_RATIO_CLAMP,
) -> tuple[Tensor, Metrics]:
    """DPH-RL (arXiv 2509.07430) divergence term on stored reference samples.

    ``loss_mat = f(u_t)`` with ``u_t = pi_theta(y_t) / pi_ref(y_t) =
    exp(logp - ref_logp)``, ``log u`` clamped to ``+-log_u_clamp``, ``f`` from
    :func:`dph_generator`. Multiply by eta (0.01-0.2) and aggregate
    (token-mean in the paper).

    Args:
        logp: ``[B, T]`` current log-probs of the stored reference samples.
        ref_logp: ``[B, T]`` their stored log pi_ref.
        mask: ``[B, T]``.
        kind: ``"forward_kl" | "js" | "alpha"``; alpha: for ``"alpha"``.

    Returns ``(loss_mat[B, T], {"dph/divergence", "dph/log_ratio_mean"})``.

        >>> import torch
        >>> loss, m = dph_divergence_loss(torch.tensor([[0.0, 0.0]]), torch.zeros(1, 2),
        ...                               torch.ones(1, 2), kind="alpha")
        >>> loss
        tensor([[0., 0.]])
    """
    if kind not in DPH_GENERATORS:
        raise ValueError(f"unknown DPH generator {kind!r}; valid: {', '.join(DPH_GENERATORS)}")
    if not log_u_clamp > 0:
        raise ValueError(f"log_u_clamp must be > 0, got {log_u_clamp!r}")
    mask = _check_2d(mask, logp=logp, ref_logp=ref_logp)
    log_u = (_fill(_up(logp), mask) - _fill(_up(ref_logp), mask)).clamp(-log_u_clamp, log_u_clamp)
    loss = _fill(dph_generator(log_u, kind, alpha), mask)
    return loss, {
        "dph/divergence": _masked_mean(loss, mask),
        "dph/log_ratio_mean": _masked_mean(log_u, mask),
    }
