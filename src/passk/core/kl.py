"""KL penalty estimators: per-token KL(pi_theta || pi_ref) at tokens sampled from pi_theta.

``logr = logp - ref_logp`` = log(pi_theta / pi_ref); the estimators are Schulman's k1-k3.
:func:`kl_penalty_loss` has the per-token loss shape ``(loss_mat[B, T], metrics)`` of
:mod:`passk.core.losses`, so it composes by adding loss matrices before one
aggregation. Masked entries are replaced before any arithmetic; half-precision inputs are
computed in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from passk.core._masked import _LOG_RATIO_CLAMP, Metrics, _check_2d, _fill, _masked_mean, _up

__all__ = ["KL_ESTIMATORS", "kl_penalty", "kl_penalty_loss"]

KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")
_KL_ALIASES = {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}


def _resolve_kl_kind(kind: str) -> str:
    if kind in KL_ESTIMATORS:
        return kind
    resolved = _KL_ALIASES.get(kind)
    if resolved is None:
        valid = [*KL_ESTIMATORS, *_KL_ALIASES]
        raise ValueError(f"unknown KL estimator {kind!r}; valid: {', '.join(valid)}")
    return resolved


def kl_penalty(
    logp: Tensor,
    ref_logp: Tensor,
    kind: str = "k3",
    clamp: float | None = 10.0,
    *,
    mask: Tensor | None = None,
) -> Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) at tokens sampled from pi_theta.

    With ``logr = logp - ref_logp`` = log(pi_theta / pi_ref) (Schulman's k1-k3):

    - ``"k1"`` (alias ``"kl"``): ``logr``; unbiased, can be negative.
    - ``"k2"`` (alias ``"mse"``): ``0.5 logr^2``; biased, low variance, >= 0.
    - ``"k3"`` (alias ``"low_var_kl"``): ``exp(-logr) + logr - 1``; unbiased,
      >= 0 (the ``r - 1 - log r`` form with ``r = pi_ref / pi_theta``).

    ``logr`` is clamped to +-20 before ``exp`` and the estimate to
    ``[-clamp, clamp]`` (ProRL v2 / verl use 10; ``None`` disables); beyond the
    clamp the gradient is 0. With ``mask`` (``[B, T]``), masked entries are 0
    and garbage there cannot reach gradients.

        >>> import torch
        >>> logr = torch.tensor([0.0, 1.0, -1.0])
        >>> [kl_penalty(logr, torch.zeros(3), k) for k in ("k1", "k2", "k3")]
        [tensor([ 0.,  1., -1.]), tensor([0.0000, 0.5000, 0.5000]), tensor([0.0000, 0.3679, 0.7183])]
    """
    kind = _resolve_kl_kind(kind)
    if logp.shape != ref_logp.shape:
        raise ValueError(
            f"logp shape {tuple(logp.shape)} != ref_logp shape {tuple(ref_logp.shape)}"
        )
    if clamp is not None and not clamp > 0:
        raise ValueError(f"clamp must be > 0 or None, got {clamp!r}")
    if mask is not None:
        mask = _check_2d(mask, logp=logp)
        logp, ref_logp = _fill(logp, mask), _fill(ref_logp, mask)
    logr = _up(logp) - _up(ref_logp)
    if kind == "k1":
        kl = logr
    elif kind == "k2":
        kl = 0.5 * logr.square()
    else:
        lr = logr.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
        kl = torch.expm1(-lr) + lr  # expm1 keeps precision near logr = 0
    if clamp is not None:
        kl = kl.clamp(-clamp, clamp)
    return kl if mask is None else _fill(kl, mask)


def kl_penalty_loss(
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    *,
    kind: str = "k3",
    clamp: float | None = 10.0,
) -> tuple[Tensor, Metrics]:
    """:func:`kl_penalty` as a loss: ``(kl[B, T], {"actor/kl": token mean})``.

    Multiply by beta (ProRL: unpublished; verl default 0.001) before adding.
    """
    kl = kl_penalty(logp, ref_logp, kind, clamp, mask=mask)
    mask = _check_2d(mask)
    return kl, {"actor/kl": _masked_mean(kl, mask)}
