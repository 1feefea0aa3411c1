"""Masked helpers shared by the per-token loss modules (private).

Every per-token term takes ``[B, T]`` tensors and a ``[B, T]`` response mask; masked
entries are replaced before any arithmetic (:func:`_fill`), so NaN or inf in padding reach
neither the loss, nor metrics, nor gradients. Half-precision inputs are computed in
float32 (:func:`_up`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Log-ratios are clamped to +-_LOG_RATIO_CLAMP before exp(): e^20 ~ 5e8 is far beyond any
# clip range, and it keeps float32 (and bf16) finite; gradient is 0 beyond it.
_LOG_RATIO_CLAMP = 20.0

Metrics = dict[str, Tensor]


def _check_2d(mask: Tensor, **tensors: Tensor) -> Tensor:
    """Check every tensor has ``mask``'s [B, T] shape; return the mask as bool."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [B, T], got shape {tuple(mask.shape)}")
    for name, t in tensors.items():
        if t.shape != mask.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}, expected the mask shape {tuple(mask.shape)}"
            )
    return mask if mask.dtype == torch.bool else mask != 0


def _broadcast_advantages(advantages: Tensor, mask: Tensor) -> Tensor:
    """[B] or [B, T] advantages -> [B, T]."""
    B, T = mask.shape
    if advantages.shape == (B,):
        return advantages.unsqueeze(-1).expand(B, T)
    if advantages.shape == (B, T):
        return advantages
    raise ValueError(
        f"advantages must have shape [B]={B} or [B, T]={(B, T)}, got {tuple(advantages.shape)}"
    )


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half precision, the dtype itself for float32/float64."""
    return torch.promote_types(dtype, torch.float32)


def _up(x: Tensor) -> Tensor:
    """Half precision -> float32 (a bf16 ratio moves in steps of 0.008 near 1); else as is."""
    return x.to(_compute_dtype(x.dtype))


def _fill(x: Tensor, mask: Tensor, value: float = 0.0) -> Tensor:
    """``x`` with masked-out entries replaced by ``value`` (gradient there is 0, never NaN)."""
    if mask.ndim < x.ndim:
        mask = mask.reshape(*mask.shape, *([1] * (x.ndim - mask.ndim)))
    return torch.where(mask, x, torch.full((), value, dtype=x.dtype, device=x.device))


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    x = _up(x.detach())
    n = mask.sum().clamp(min=1)
    return _fill(x, mask).sum() / n


def _masked_max(x: Tensor, mask: Tensor) -> Tensor:
    x = _up(x.detach())
    m = _fill(x, mask, -math.inf).max() if x.numel() else x.new_zeros(())
    return torch.where(mask.any(), m, torch.zeros_like(m))


def _masked_min(x: Tensor, mask: Tensor) -> Tensor:
    return -_masked_max(-x, mask)
