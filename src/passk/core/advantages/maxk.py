"""max@k for continuous rewards (PKPO, arXiv 2505.15201): exact subset-max statistics.

``maxk_analytic`` gives each response the exact mean, over the k-subsets containing it,
of the z-scored subset max; ``pkpo_loo`` is PKPO's leave-one-out estimator. Both run in
O(N log N) per group from sorted ranks, with rewards shifted by the group max so that
they stay exact at N = 4096.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from passk.core._checks import check_eps, check_k
from passk.core.advantages._group import log_binom
from passk.core.advantages.registry import register_estimator


def _rank_table(offset: int, b: int, width: int, device: torch.device) -> Tensor:
    """``log C(r - offset, b)`` for r = 0..width, to gather by rank instead of calling lgamma
    on every ``[G, N]`` element."""
    r = torch.arange(width + 1, dtype=torch.float64, device=device)
    return log_binom(r - offset, torch.full_like(r, float(b)))


def _sorted_ranks(rewards: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sort each row ascending with invalid entries first.

    Returns sorted values ``[G, N]``, the permutation, 1-based ranks among the valid
    entries of each sorted position (<= 0 for invalid ones), and valid counts ``[G, 1]``.
    """
    keyed = torch.where(mask, rewards, float("-inf"))
    values, order = keyed.sort(dim=1, stable=True)
    n = mask.sum(1, keepdim=True).to(torch.float64)
    pos = torch.arange(1, rewards.shape[1] + 1, dtype=torch.float64, device=rewards.device)
    rank = pos[None, :] - (rewards.shape[1] - n)
    return torch.where(rank > 0, values, 0.0), order, rank, n


def _maxk_shifted(rewards: Tensor, mask: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Statistics of ``max`` over all k-subsets of each group's valid rewards.

        ``s_i`` is the average subset max over the C(n-1, k-1) subsets that contain response i;
        mean and std are over all C(n, k)
    subsets. O(N log N) per group: with rewards sorted ascending (rank r, 1-based),
        ``P(max = g_(r)) = C(r-1, k-1) / C(n, k)`` and
        ``s_(r) = [C(r-1, k-1) g_(r) + sum_{j>r} C(j-2, k-2) g_(j)] / C(n-1, k-1)``
        (ties broken by position give identical values to tied responses).
        Inputs are float64 with masked entries ignored.

        Returns ``(s - top, mean - top, std, top)`` with ``top[G, 1]`` the group's largest
        reward: the weighted sums run over ``g - top``, so the large weight that sits on
        the top values adds exact zeros instead of rounding error, and ``s - mean`` keeps its
        relative precision even when it is many orders of magnitude below the rewards.
    """
    values, order, rank, n = _sorted_ranks(rewards, mask)
    live = rank > 0
    idx = rank.clamp(min=0).long()
    width = rewards.shape[1]
    kk = torch.full_like(n, float(k))
    # weight of g_(r) as the subset max, over all subsets and over those containing r
    log_max_at = _rank_table(1, k - 1, width, rewards.device)[idx]  # log C(r-1, k-1)
    log_all = log_max_at - log_binom(n, kk)
    log_own = log_max_at - log_binom(n - 1, kk - 1)
    log_other = _rank_table(2, k - 2, width, rewards.device)[idx] - log_binom(n - 1, kk - 1)
    w_all = torch.where(live, log_all.exp(), 0.0)
    w_own = torch.where(live, log_own.exp(), 0.0)
    w_other = torch.where(live, log_other.exp(), 0.0)
    top = values[:, -1:]  # [G, 1] largest valid value (invalid entries sort first)
    values = torch.where(live, values - top, 0.0)
    mean = (w_all * values).sum(1)  # [G], relative to top
    var = (w_all * (values - mean[:, None]).square()).sum(1)
    # suffix sums over j > r of C(j-2, k-2) g_(j)
    term = w_other * values
    suffix = term.flip(1).cumsum(1).flip(1) - term
    s_sorted = w_own * values + suffix
    s = torch.empty_like(s_sorted).scatter_(1, order, s_sorted)
    # all subset maxima are equal iff the k-th smallest valid value equals the largest one
    kth = values.gather(1, (rewards.shape[1] - n.long() + k - 1).clamp(0, rewards.shape[1] - 1))
    constant = (kth.squeeze(1) >= values[:, -1]) | (n.squeeze(1) < k)
    std = torch.where(constant, 0.0, var.clamp(min=0).sqrt())
    return s, mean, std, top


def maxk_subset_stats(rewards: Tensor, mask: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Exact statistics of ``max`` over all k-subsets of each group's valid rewards.

    Returns ``(s[G, N], mean[G], std[G])``: ``s_i`` is the average of the subset max over
    the C(n-1, k-1) subsets that contain response i; mean and std are over all C(n, k)
    subsets. See :func:`_maxk_shifted` for the formulas.
    """
    s, mean, std, top = _maxk_shifted(rewards, mask, k)
    return s + top, mean + top.squeeze(1), std


@dataclass(frozen=True)
class MaxKParams:
    """Group size ``k`` for max@k over continuous rewards; ``eps`` added to the std."""

    k: int = 4
    eps: float = 0.0

    def __post_init__(self) -> None:
        check_k(self.k)
        check_eps(self.eps)


@register_estimator("maxk_analytic", params=MaxKParams)
def maxk_analytic_advantage(rewards: Tensor, mask: Tensor, p: MaxKParams) -> Tensor:
    """Exact mean over the k-subsets containing i of the z-scored subset max (continuous)."""
    s, mean, std, _ = _maxk_shifted(rewards, mask, p.k)
    degenerate = std == 0
    adv = (s - mean[:, None]) / torch.where(degenerate, 1.0, std + p.eps)[:, None]
    return torch.where(degenerate[:, None], 0.0, adv)


@dataclass(frozen=True)
class PKPOParams:
    """PKPO leave-one-out (``loo-1``) estimator options.

    ``normalize=False`` returns the PKPO quantity itself,
    ``(1 / C(N, k)) * sum_{I contains i} (max_I g - max_{I minus i} g)``.
    ``normalize=True`` rescales it to the analytic scale: multiplied by ``N / k`` (an
    average over the subsets containing i instead of a sum over all subsets) and
    divided by the std of the subset max (0 for degenerate groups).
    For k = 1 the set ``I minus i`` is empty; its max is taken as the mean of the other
    responses (the RLOO baseline), the natural k = 1 limit.
    """

    k: int = 4
    normalize: bool = False
    eps: float = 0.0

    def __post_init__(self) -> None:
        check_k(self.k)
        check_eps(self.eps)


@register_estimator("pkpo_loo", params=PKPOParams)
def pkpo_loo_advantage(rewards: Tensor, mask: Tensor, p: PKPOParams) -> Tensor:
    """PKPO max@k with the leave-one-out baseline: non-negative, low variance (arXiv 2505.15201).

    With sorted rank r: ``sum_{I contains i} (max_I - max_{I minus i}) =
    C(r-1, k-1) g_(r) - sum_{j<r} C(j-1, k-2) g_(j)``, computed with a prefix sum.
    """
    n_valid = mask.sum(1, keepdim=True).to(torch.float64)
    if p.k == 1:
        others = (rewards.sum(1, keepdim=True) - rewards) / (n_valid - 1).clamp(min=1)
        adv = torch.where(n_valid > 1, rewards - others, 0.0) / n_valid
    else:
        values, order, rank, n = _sorted_ranks(rewards, mask)
        live = rank > 0
        idx = rank.clamp(min=0).long()
        width = rewards.shape[1]
        log_norm = log_binom(n, torch.full_like(n, float(p.k)))
        log_own = _rank_table(1, p.k - 1, width, rewards.device)[idx] - log_norm
        log_low = _rank_table(1, p.k - 2, width, rewards.device)[idx] - log_norm
        w_own = torch.where(live, log_own.exp(), 0.0)
        w_low = torch.where(live, log_low.exp(), 0.0)
        # prefix over j < r of C(j-1, k-2) g_(j): shift the inclusive cumsum by one
        lower = (w_low * values).cumsum(1) - w_low * values
        adv_sorted = w_own * values - lower
        adv = torch.empty_like(adv_sorted).scatter_(1, order, adv_sorted)
        # all-equal groups are exactly 0 (removing i never changes a subset max); the
        # closed form would leave rounding residue there
        big = torch.finfo(rewards.dtype).max
        equal = torch.where(mask, rewards, -big).amax(1) <= torch.where(mask, rewards, big).amin(1)
        adv = torch.where(equal[:, None], 0.0, adv)
    if p.normalize:
        _, _, std = maxk_subset_stats(rewards, mask, p.k)
        scale = n_valid / p.k / torch.where(std == 0, 1.0, std + p.eps)[:, None]
        adv = torch.where((std == 0)[:, None], 0.0, adv * scale)
    return adv
