"""Reward transforms applied before the advantage: noise rewards and overlong shaping.

>>> import torch
>>> overlong_penalty(torch.tensor([10, 90, 95, 100]), max_len=100, cache_len=10)
tensor([ 0.0000,  0.0000, -0.5000, -1.0000], dtype=torch.float64)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["noisy_rewards", "overlong_penalty"]


def noisy_rewards(
    rewards: Tensor, p: float, *, seed: int = 0, mask: Tensor | None = None
) -> Tensor:
    """Flip each 0-reward to 1 independently with probability ``p`` (§3.1 noise baseline).

    The paper's noise-reward baseline (p = 0.1 / 0.3 / 0.5) shows that unstructured
    optimism hurts, unlike Pass@k. Deterministic under ``seed``; masked entries are
    left unchanged; rewards other than exactly 0 are never touched.

    >>> r = torch.zeros(2, 8)
    >>> noisy_rewards(r, 0.5, seed=1).sum().item() > 0, noisy_rewards(r, 0.0).sum().item()
    (True, 0.0)
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"noise probability p must be in [0, 1], got {p}")
    gen = torch.Generator().manual_seed(seed)
    flip = torch.rand(rewards.shape, generator=gen).to(rewards.device) < p
    flip &= rewards == 0
    if mask is not None:
        flip &= mask.to(torch.bool)
    return torch.where(flip, torch.ones_like(rewards), rewards)


def overlong_penalty(lengths: Tensor, max_len: int, cache_len: int) -> Tensor:
    """DAPO soft overlong punishment, added to the task reward.

    0 for ``|y| <= max_len - cache_len``, then linear down to -1 at ``max_len`` (and -1
    beyond).
    """
    if max_len <= 0 or not 0 < cache_len <= max_len:
        raise ValueError(
            f"need max_len > 0 and 0 < cache_len <= max_len, got max_len={max_len}, "
            f"cache_len={cache_len}"
        )
    over = lengths.to(torch.float64) - (max_len - cache_len)
    return 0.0 - (over / cache_len).clamp(0.0, 1.0)
