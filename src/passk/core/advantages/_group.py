"""Group statistics shared by the estimator families (private to ``passk.core.advantages``)."""

from __future__ import annotations

import torch
from torch import Tensor


def log_binom(n: Tensor, k: Tensor) -> Tensor:
    """log C(n, k) for float tensors, -inf where k < 0 or k > n."""
    valid = (k >= 0) & (k <= n)
    n_, k_ = n.clamp(min=0), k.clamp(min=0)
    out = torch.lgamma(n_ + 1) - torch.lgamma(k_ + 1) - torch.lgamma((n_ - k_).clamp(min=0) + 1)
    return torch.where(valid, out, float("-inf"))


def zscore(values: Tensor, mask: Tensor, eps: float, std: Tensor | None = None) -> Tensor:
    """Per-row (R - mean) / (std + eps) over valid entries, population std.

    Rows whose valid values are all equal (or have fewer than two) give 0 exactly, which
    no eps-based guard can promise for continuous values.
    """
    n = mask.sum(1, keepdim=True).clamp(min=1)
    mean = values.sum(1, keepdim=True) / n
    centred = torch.where(mask, values - mean, 0.0)
    if std is None:
        std = (centred.square().sum(1, keepdim=True) / n).sqrt()
    big = torch.finfo(values.dtype).max
    vmax = torch.where(mask, values, -big).amax(1, keepdim=True)
    vmin = torch.where(mask, values, big).amin(1, keepdim=True)
    degenerate = vmax <= vmin
    denom = torch.where(degenerate, 1.0, std + eps)
    return torch.where(degenerate | ~mask, 0.0, centred / denom)
