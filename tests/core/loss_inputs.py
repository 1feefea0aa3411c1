"""Inputs shared by the loss tests: float64 batches with a masked-out row, and poison
(NaN, inf, huge values) written at masked positions, which must not change a result."""

from __future__ import annotations

import torch

NAN, INF = float("nan"), float("inf")
D = torch.float64


def ln(*xs: float) -> torch.Tensor:
    return torch.log(torch.tensor([xs], dtype=D))


def garbage_batch(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 6
    logp = -torch.rand(B, T, generator=g, dtype=D) * 3
    old = logp + 0.3 * torch.randn(B, T, generator=g, dtype=D)
    adv = torch.randn(B, T, generator=g, dtype=D)
    mask = torch.rand(B, T, generator=g) < 0.6
    mask[0] = False  # one fully masked row
    return logp, old, adv, mask


def poison(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    m = mask if mask.ndim == x.ndim else mask[..., None].expand_as(x)
    vals = torch.tensor([NAN, INF, -INF, 1e30], dtype=x.dtype)
    y[~m] = vals.repeat(int((~m).sum()) // 4 + 1)[: int((~m).sum())]
    return y
