"""Pass@k mixtures and MaxRL: unbiased gradients of ``sum_k c_k pass@k`` (SPEC §1.8).

For a prompt whose policy solves it with probability p, ``pass@k = 1 - (1 - p)^k``. Its
gradient has an unbiased estimate from a group of N samples with f failures, as a
U-statistic over the k-subsets of the group: a k-subset contributes
``-1{all k fail} * sum of its members' scores``, so a failure is weighted by the share of
k-subsets that contain it and fail entirely, and a success by 0 (k >= 2)::

    w_fail(k) = -C(f - 1, k - 1) / C(N, k) = -(k / N) C(f - 1, k - 1) / C(N - 1, k - 1)

and ``w_succ(1) = 1 / N`` for the k = 1 term (``pass@1 = p``). passk's advantage convention
is ``A_i = N w_i``, so that ``mean_i A_i grad log pi(y_i)`` is the estimate of
``grad sum_k c_k pass@k``. The weights have no baseline; adding one would change the
variance, not the expectation (the test enumerates every outcome of a Bernoulli policy and
checks the expectation to 1e-9).

MaxRL (arXiv 2602.02710, official code Zanette-Labs/MaxRL ``verl/trainer/ppo/maclaurin.py``,
``maclaurin_weights``) uses ``c_k = 1/k``: since ``log p = -sum_{k>=1} (1 - p)^k / k``,
``grad log p = sum_k (1/k) grad pass@k`` and truncating at order T interpolates between RL
(T = 1) and maximum likelihood (T -> infinity). Its headline estimator is the p-normalised
advantage ``(r - mean r) / mean r``, which on binary rewards is unbiased for order T = N - 1.

>>> import torch
>>> from passk.core.advantages import compute_advantages
>>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
>>> compute_advantages("maxrl", r)  # p-normalised: the hard prompt gets the larger push
tensor([[ 3.0000, -1.0000, -1.0000, -1.0000],
        [ 0.3333,  0.3333,  0.3333, -1.0000]])
>>> compute_advantages("passk_mixture", r, weights={1: 1.0})  # c_1 = 1: REINFORCE on pass@1
tensor([[1., 0., 0., 0.],
        [1., 1., 1., 0.]])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from passk.core.advantages.registry import register_estimator

__all__ = ["MaxRLParams", "MixtureParams", "mixture_failure_weights"]


def _group_sizes(mask: Tensor) -> Tensor:
    return mask.sum(1, dtype=torch.int64)


def _check_orders(ks: list[int], mask: Tensor, what: str) -> None:
    """Every k must fit the smallest non-empty group."""
    n = _group_sizes(mask)
    live = n[n > 0]
    if not live.numel():
        return
    smallest = int(live.min())
    bad = [k for k in ks if k > smallest]
    if bad:
        raise ValueError(
            f"{what} k={max(bad)} is larger than the smallest group ({smallest} valid "
            f"responses); valid: 1 <= k <= {smallest}"
        )


def mixture_failure_weights(n: Tensor, f: Tensor, weights: Mapping[int, float]) -> Tensor:
    """``-sum_{k >= 2} c_k k C(f - 1, k - 1) / C(n - 1, k - 1)`` for each (n, f) pair.

    ``n`` and ``f`` are integer tensors of the same shape (group size, failures); the
    result is the advantage (``N w``) of one failure of such a group. Terms with k > f
    vanish. Each distinct (n, f) pair is computed once, in log space, so the cost does not
    grow with the number of groups and nothing overflows at N = 4096.

    >>> n, f = torch.tensor([4, 4]), torch.tensor([3, 1])
    >>> mixture_failure_weights(n, f, {2: 0.5, 3: 1 / 3})
    tensor([-1.,  0.], dtype=torch.float64)
    """
    ks = sorted(k for k, c in weights.items() if k >= 2 and c > 0)
    shape = n.shape
    if not ks or n.numel() == 0:
        return torch.zeros(shape, dtype=torch.float64, device=n.device)
    n, f = n.reshape(-1).long(), f.reshape(-1).long()
    width = int(n.max()) + 1
    pairs, inverse = torch.unique(n * width + f, return_inverse=True)
    pn, pf = pairs // width, pairs % width  # [U]
    lf = torch.lgamma(torch.arange(width + 1, dtype=torch.float64, device=n.device) + 1)
    k_all = torch.tensor(ks, dtype=torch.int64, device=n.device)
    c_all = torch.tensor([float(weights[k]) for k in ks], dtype=torch.float64, device=n.device)
    out = torch.zeros(pairs.shape, dtype=torch.float64, device=n.device)
    step = max(1, (1 << 22) // max(len(pairs), 1))  # bound the [U, K] temporaries
    for start in range(0, len(ks), step):
        k, c = k_all[start : start + step], c_all[start : start + step]  # [K]
        nn, ff = pn[:, None], pf[:, None]  # [U, 1]
        live = (ff >= k) & (nn >= k)  # [U, K]
        # log C(f-1, k-1) - log C(n-1, k-1) = lf[f-1] - lf[f-k] - lf[n-1] + lf[n-k]
        log_ratio = (
            lf[(ff - 1).clamp(min=0)]
            - lf[(ff - k).clamp(min=0)]
            - lf[(nn - 1).clamp(min=0)]
            + lf[(nn - k).clamp(min=0)]
        )
        term = torch.where(live, (log_ratio + torch.log(c * k)).exp(), 0.0)
        out -= term.sum(1)
    return out[inverse].reshape(shape)


def _failure_advantages(
    rewards: Tensor, mask: Tensor, weights: Mapping[int, float], success: float
) -> Tensor:
    """``success`` on correct responses, the mixture's failure weight on wrong ones."""
    n = _group_sizes(mask)
    f = n - rewards.sum(1).round().long()
    a_fail = mixture_failure_weights(n, f, weights)[:, None]  # [G, 1]
    return torch.where(rewards > 0, success, a_fail.expand_as(rewards))


# --------------------------------------------------------------------------- passk_mixture


@dataclass(frozen=True)
class MixtureParams:
    """``weights`` maps k -> c_k >= 0 (1 <= k <= N, at least one c_k > 0): the objective is
    ``sum_k c_k pass@k`` per prompt. Keys may be integers or their decimal strings (as a
    ``--set`` override writes them); they are stored as a sorted tuple of (k, c_k) pairs.
    """

    weights: Any = None

    def __post_init__(self) -> None:
        w = self.weights
        if isinstance(w, (tuple, list)) and all(
            isinstance(p, (tuple, list)) and len(p) == 2 for p in w
        ):
            w = dict(w)
        if not isinstance(w, Mapping) or not w:
            raise ValueError(
                f"weights must be a non-empty mapping k -> c_k (e.g. {{1: 0.5, 8: 0.5}}), "
                f"got {self.weights!r}"
            )
        pairs = []
        for key, value in w.items():
            k = _as_order(key, "weights key k")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"weights[{key!r}] must be a number >= 0, got {value!r}")
            c = float(value)
            if not (c >= 0 and math.isfinite(c)):
                raise ValueError(f"weights[{key!r}] must be a finite number >= 0, got {value!r}")
            pairs.append((k, c))
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError(f"weights has a repeated k: {sorted(k for k, _ in pairs)}")
        if not any(c > 0 for _, c in pairs):
            raise ValueError(f"weights needs at least one c_k > 0, got {dict(pairs)}")
        object.__setattr__(self, "weights", tuple(sorted(pairs)))

    def mapping(self) -> dict[int, float]:
        return dict(self.weights)


def _as_order(value: Any, what: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value


@register_estimator("passk_mixture", params=MixtureParams, binary_only=True)
def passk_mixture_advantage(rewards: Tensor, mask: Tensor, p: MixtureParams) -> Tensor:
    """Unbiased gradient of ``sum_k c_k pass@k``: c_1 on successes, failures weighted by the
    share of all-failing k-subsets that contain them (SPEC §1.8)."""
    w = p.mapping()
    _check_orders(list(w), mask, "passk_mixture weights")
    return _failure_advantages(rewards, mask, w, success=w.get(1, 0.0))


# --------------------------------------------------------------------------- maxrl


@dataclass(frozen=True)
class MaxRLParams:
    """``order=None``: the p-normalised estimator ``(r - mean r) / mean r`` (the paper's
    headline one; rewards >= 0). ``order=T``: the Maclaurin weights of truncation order
    ``T`` (1 <= T <= N; binary rewards), unbiased for ``sum_{k<=T} pass@k / k``."""

    order: int | None = None

    def __post_init__(self) -> None:
        if self.order is not None:
            object.__setattr__(self, "order", _as_order(self.order, "order"))


@register_estimator("maxrl", params=MaxRLParams)
def maxrl_advantage(rewards: Tensor, mask: Tensor, p: MaxRLParams) -> Tensor:
    """MaxRL (arXiv 2602.02710): the gradient of log pass rate, truncated at order T or
    p-normalised; both unbiased for ``sum_k pass@k / k`` on binary rewards."""
    if p.order is None:
        valid = rewards[mask]
        if valid.numel() and bool((valid < 0).any()):
            bad = valid[valid < 0][:5].tolist()
            raise ValueError(f"maxrl (order=None) needs rewards >= 0, found {bad}")
        n = _group_sizes(mask).clamp(min=1)[:, None].to(rewards.dtype)
        mean = rewards.sum(1, keepdim=True) / n
        safe = torch.where(mean > 0, mean, 1.0)
        return torch.where((mean > 0) & mask, (rewards - mean) / safe, 0.0)
    if not torch.equal(rewards, rewards.bool().to(rewards.dtype)):
        bad = rewards[(rewards != 0) & (rewards != 1)][:5].tolist()
        raise ValueError(
            f"maxrl with order={p.order} needs binary rewards in {{0, 1}}, found {bad}; "
            f"order=None accepts rewards >= 0"
        )
    _check_orders([p.order], mask, "maxrl order")
    weights = {k: 1.0 / k for k in range(1, p.order + 1)}
    return _failure_advantages(rewards, mask, weights, success=1.0)
