"""QAE: quantile advantage estimation (arXiv 2509.22611).

GRPO with the group's K-quantile of rewards as the baseline instead of its mean::

    b = Q_K(r_1..r_N)        (linear interpolation between order statistics)
    A_i = (r_i - b) / (std(r) + eps)      std: unbiased, over the group

This is the official code's one change to verl's GRPO (junkangwu/QAE,
``verl/trainer/ppo/core_algos.py``: ``torch.quantile(scores, quantile_k)`` in place of
``torch.mean``), with verl's normalisation kept: ``torch.std`` (unbiased) and
``epsilon=1e-6``. ``std="none"`` drops the division (``r_i - b``, verl's
``norm_adv_by_std_in_grpo=False``).

**With 0/1 rewards.** A group of N with c correct sorts as N - c zeros, then c ones; the
quantile sits at position ``h = K (N - 1)``, so

- ``c <= (1 - K)(N - 1)``: b = 0, **only the correct responses get an advantage**
  (positive); the hard prompts reinforce their rare successes;
- ``c >= (1 - K)(N - 1) + 1``: b = 1, **only the wrong responses get one** (negative);
  the easy prompts push down their remaining failures;
- in between (one value of c, only when K (N - 1) is not an integer): b is fractional
  and both signs occur. h is computed in floating point, as ``torch.quantile`` does:
  where K (N - 1) is an integer only up to rounding (0.3 x 10), b can sit within 1e-15
  of 0 or 1.

An all-correct or all-wrong group gets 0, and so does a group of one response (verl
gives it the raw reward).

>>> import torch
>>> from passk.core.advantages import compute_advantages
>>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0]])
>>> compute_advantages("qae", r, quantile=0.5)  # median: 0 for the first, 1 for the second
tensor([[ 2.2361,  0.0000,  0.0000,  0.0000,  0.0000],
        [ 0.0000,  0.0000,  0.0000,  0.0000, -2.2361]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from passk.core.advantages.registry import register_estimator

__all__ = ["QAEParams", "group_quantile"]


@dataclass(frozen=True)
class QAEParams:
    """``quantile`` K in (0, 1): the baseline's quantile of the group's rewards (0.4 in the
    paper's scripts); ``std``: ``"group"`` (divide by the unbiased group std + ``eps``, as
    the official code) or ``"none"``; ``eps``: 1e-6 as verl."""

    quantile: float = 0.4
    std: str = "group"
    eps: float = 1e-6

    def __post_init__(self) -> None:
        q = self.quantile
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q < 1:
            raise ValueError(
                f"quantile must be a number in (0, 1) (the paper's K; 0.4 in its scripts), "
                f"got {q!r}"
            )
        if self.std not in ("group", "none"):
            raise ValueError(f"std must be 'group' or 'none', got {self.std!r}")
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
            raise ValueError(f"eps must be a number >= 0, got {eps!r}")
        if not math.isfinite(eps):
            raise ValueError(f"eps must be finite, got {eps!r}")


def group_quantile(values: Tensor, mask: Tensor, q: float) -> Tensor:
    """``[G, 1]``: each row's q-quantile of its valid values, linearly interpolated between
    order statistics (``torch.quantile``'s default), 0 for a row with none.

    >>> v = torch.tensor([[3.0, 1.0, 2.0, 9.0], [5.0, 7.0, 0.0, 0.0]])
    >>> m = torch.tensor([[True, True, True, False], [True, True, False, False]])
    >>> group_quantile(v, m, 0.25).flatten().tolist()
    [1.5, 5.5]
    """
    n = mask.sum(1, keepdim=True)  # [G, 1]
    ordered = values.masked_fill(~mask, math.inf).sort(1).values  # valid values first
    h = q * (n - 1).clamp(min=0).to(values.dtype)  # [G, 1]
    lo = h.floor().long()
    hi = (lo + 1).clamp(max=(n - 1).clamp(min=0))
    v_lo, v_hi = ordered.gather(1, lo), ordered.gather(1, hi)
    out = v_lo + (h - lo.to(values.dtype)) * (v_hi - v_lo)
    return torch.where(n > 0, out, 0.0)


@register_estimator("qae", params=QAEParams)
def qae_advantage(rewards: Tensor, mask: Tensor, p: QAEParams) -> Tensor:
    """Quantile advantage: ``(r_i - Q_K(r)) / (std(r) + eps)``, the group's K-quantile as
    baseline (with 0/1 rewards: hard groups get only positive, easy ones only negative
    advantages)."""
    n = mask.sum(1, keepdim=True).to(rewards.dtype)  # [G, 1]
    baseline = group_quantile(rewards, mask, p.quantile)  # [G, 1]
    centred = torch.where(mask, rewards - baseline, 0.0)
    if p.std == "group":
        mean = rewards.sum(1, keepdim=True) / n.clamp(min=1)
        var = torch.where(mask, rewards - mean, 0.0).square().sum(1, keepdim=True)
        centred = centred / ((var / (n - 1).clamp(min=1)).sqrt() + p.eps)
    return torch.where(mask & (n > 1), centred, 0.0)
