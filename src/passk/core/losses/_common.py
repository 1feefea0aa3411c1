"""Helpers shared by the sequence-level and covariance losses (private to ``passk.core.losses``)."""

from __future__ import annotations

import torch
from torch import Tensor

from passk.core._checks import check_real
from passk.core._masked import (
    Metrics,
    _broadcast_advantages,
    _check_2d,
    _fill,
    _masked_max,
    _masked_mean,
    _masked_min,
    _up,
)


def check_bounds(eps_low: float, eps_high: float, *, low_max_inclusive: bool) -> None:
    """``eps_low`` in [0, 1) or [0, 1] (1: no lower bound, the ratio is > 0), ``eps_high`` >= 0."""
    check_real("eps_low", eps_low)
    check_real("eps_high", eps_high)
    ok = 0.0 <= eps_low <= 1.0 if low_max_inclusive else 0.0 <= eps_low < 1.0
    if not ok:
        valid = "[0, 1] (1: no lower bound)" if low_max_inclusive else "[0, 1)"
        raise ValueError(f"eps_low must be in {valid}, got {eps_low!r}")
    if not eps_high >= 0.0:
        raise ValueError(f"eps_high must be >= 0, got {eps_high!r}")


def loss_inputs(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(mask bool, logp, log_ratio, adv)``, all ``[B, T]`` in the compute dtype, 0 at padding."""
    mask = _check_2d(mask, logp=logp, old_logp=old_logp)
    lp = _fill(_up(logp), mask)
    log_ratio = lp - _fill(_up(old_logp), mask)
    adv = _fill(_up(_broadcast_advantages(advantages, mask)), mask)
    return mask, lp, log_ratio, adv


def ratio_metrics(prefix: str, r: Tensor, log_ratio: Tensor, mask: Tensor) -> Metrics:
    lr = log_ratio.detach()
    approx_kl = torch.expm1(lr) - lr  # k3 of KL(old || new), tokens drawn from old
    return {
        f"{prefix}/approx_kl": _masked_mean(approx_kl, mask),
        f"{prefix}/ratio_mean": _masked_mean(r, mask),
        f"{prefix}/ratio_max": _masked_max(r, mask),
        f"{prefix}/ratio_min": _masked_min(r, mask),
    }
