"""The pass@k family: analytic, full, bootstrap, exceeding, combination, adaptive (§1.2-1.6).

>>> import torch
>>> from passk.core.advantages import compute_advantages
>>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
>>> compute_advantages("passk_analytic", r, k=2)  # the easier group gets less push
tensor([[ 1.0000, -0.3333, -0.3333, -0.3333],
        [ 0.4472,  0.4472, -0.4472, -0.4472]])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from passk.core._checks import check_eps, check_k
from passk.core.advantages._group import zscore
from passk.core.advantages.baselines import Pass1Params, pass1_advantage
from passk.core.advantages.registry import register_estimator

__all__ = [
    "AdaptiveParams",
    "BootstrapParams",
    "ExceedParams",
    "FullParams",
    "Pass1MatchedParams",
    "PassKParams",
    "exceed_scale_default",
    "passk_analytic_values",
]


# --------------------------------------------------------------------------- 1.4 analytic


@dataclass(frozen=True)
class PassKParams:
    """Group size ``k`` of Pass@k training; ``eps`` is added to the group-reward std."""

    k: int = 4
    eps: float = 0.0

    def __post_init__(self) -> None:
        check_k(self.k)
        check_eps(self.eps)


def passk_analytic_values(
    n: Tensor, n_pos: Tensor, k: int, eps: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Analytic Pass@k advantages ``(A_pos, A_neg)`` for groups of n responses, n_pos correct.

    With ``q = C(N_neg, k) / C(N, k) = prod_{i<k} (N_neg - i) / (N - i)`` (computed in log
    space), ``rho = 1 - q`` and ``sigma = sqrt(q (1 - q))``:
    ``A_pos = q / (sigma + eps)`` and ``A_neg = -(N_pos / N_neg) A_pos``, which equals the
    paper's ``(1 - rho - C(N_neg-1, k-1) / C(N-1, k-1)) / sigma`` and makes every group
    sum to zero. Degenerate groups (N_pos = 0, N_pos = N, or N_neg < k) give 0.

    >>> a_pos, a_neg = passk_analytic_values(torch.tensor([32.0]), torch.tensor([8.0]), k=4)
    >>> round(a_pos.item(), 3), round(a_neg.item(), 3)
    (0.648, -0.216)
    """
    n = n.to(torch.float64)
    n_pos = n_pos.to(torch.float64)
    n_neg = n - n_pos
    live = (n_pos > 0) & (n_neg >= k)
    # log C(N_neg, k) - log C(N, k) = lf[N_neg] - lf[N_neg - k] - lf[N] + lf[N - k] with
    # lf[m] = log m!, gathered from one small table instead of lgamma on every group
    n_max = int(n.max()) if n.numel() else 0
    lf = torch.lgamma(torch.arange(n_max + 1, dtype=torch.float64, device=n.device) + 1)
    i_n, i_neg = n.long(), n_neg.long()
    log_q = lf[i_neg] - lf[(i_neg - k).clamp(min=0)] - lf[i_n] + lf[(i_n - k).clamp(min=0)]
    log_q = torch.where(live, log_q, -1.0)  # any finite value; dead groups are zeroed below
    log_one_minus_q = torch.log(-torch.expm1(log_q))
    log_sigma = 0.5 * (log_q + log_one_minus_q)
    # q can underflow for large k (C(N_neg, k) << C(N, k)); stay in log space until the end
    if eps == 0:
        a_pos = (log_q - log_sigma).exp()
    else:
        a_pos = (log_q - torch.log(log_sigma.exp() + eps)).exp()
    a_neg = -a_pos * n_pos / n_neg.clamp(min=1)
    zero = torch.zeros_like(a_pos)
    return torch.where(live, a_pos, zero), torch.where(live, a_neg, zero)


@register_estimator("passk_analytic", params=PassKParams, binary_only=True, native_dtype=True)
def passk_analytic_advantage(rewards: Tensor, mask: Tensor, p: PassKParams) -> Tensor:
    """Analytic Pass@k: each response gets its exact expected k-group advantage (§2.4).

    With 0/1 rewards it is GRPO's advantage times a weight of the group's number of
    correct responses, ``A = w(N_pos) * A_pass1`` with ``w = q / sqrt(q (1 - q))`` over
    ``(1 - N_pos/N) / sqrt(N_pos/N (1 - N_pos/N))`` (``q = C(N_neg, k) / C(N, k)``; 0 once
    ``N_neg < k``). It changes only how much each prompt counts, never the direction
    within a prompt: its effect on exploration can only come through parameters that
    prompts share (docs/mechanism.md; ``passk.sim``).

    >>> r = torch.tensor([[1.0] + [0.0] * 15, [1.0] * 8 + [0.0] * 8], dtype=torch.float64)
    >>> w = passk_analytic_advantage(r, r >= 0, PassKParams(k=4)) / pass1_advantage(
    ...     r, r >= 0, Pass1Params())
    >>> [round(x, 3) for x in w[:, 0].tolist()]  # N = 16, k = 4: 1 and 8 correct
    [0.447, 0.2]
    """
    n = mask.sum(1, dtype=torch.int32).to(torch.float64)  # [G]
    # counts are exact in float32 (up to 2^24); half types would round them, so widen those
    acc = torch.float32 if rewards.dtype in (torch.float16, torch.bfloat16) else None
    n_pos = rewards.sum(1, dtype=acc).to(torch.float64)  # [G]; masked entries are 0
    a_pos, a_neg = passk_analytic_values(n, n_pos, p.k, p.eps)  # float64 per group
    a_pos, a_neg = a_pos.to(rewards.dtype)[:, None], a_neg.to(rewards.dtype)[:, None]
    # rewards are exactly 0 or 1: one fused pass gives A_neg + R (A_pos - A_neg)
    return torch.addcmul(a_neg, rewards, a_pos - a_neg)


# --------------------------------------------------------------------------- 1.2 full


@dataclass(frozen=True)
class FullParams:
    """Disjoint groups of ``k``; ``shuffle`` them with ``seed`` first (else sample order)."""

    k: int = 4
    shuffle: bool = False
    seed: int = 0
    eps: float = 0.0

    def __post_init__(self) -> None:
        check_k(self.k)
        check_eps(self.eps)


def _valid_rank(mask: Tensor, shuffle: bool, seed: int) -> Tensor:
    """Position of each valid response among its row's valid responses (0-based)."""
    if not shuffle:
        return mask.long().cumsum(1) - 1
    gen = torch.Generator().manual_seed(seed)
    keys = torch.rand(mask.shape, generator=gen, dtype=torch.float64).to(mask.device)
    keys = torch.where(mask, keys, 2.0)  # invalid entries sort last
    order = keys.argsort(1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(mask.shape[1], device=mask.device).expand_as(order))
    return rank


@register_estimator("passk_full", params=FullParams, stochastic=True)
def passk_full_advantage(rewards: Tensor, mask: Tensor, p: FullParams) -> Tensor:
    """Pass@k with full sampling: disjoint k-groups, group reward = max, remainder gets 0."""
    G, N = rewards.shape
    rank = _valid_rank(mask, p.shuffle, p.seed)  # [G, N]
    n_sub = mask.sum(1, keepdim=True) // p.k  # [G, 1]
    sub = rank // p.k
    used = mask & (sub < n_sub)  # responses that fall into a complete k-group
    slots = max(N // p.k, 1)
    sub_idx = torch.where(used, sub, 0)
    sub_reward = torch.full((G, slots), float("-inf"), dtype=rewards.dtype, device=rewards.device)
    sub_reward = sub_reward.scatter_reduce(1, sub_idx, torch.where(used, rewards, -1e300), "amax")
    sub_valid = torch.arange(slots, device=rewards.device)[None, :] < n_sub  # [G, slots]
    sub_reward = torch.where(sub_valid, sub_reward, 0.0)
    sub_adv = zscore(sub_reward, sub_valid, p.eps)  # [G, slots]
    return torch.where(used, sub_adv.gather(1, sub_idx), 0.0)


# --------------------------------------------------------------------------- 1.3 bootstrap


@dataclass(frozen=True)
class BootstrapParams:
    """``num_groups`` random k-subsets per group (default N, the group's width), seeded.

    ``chunk_elements`` bounds the temporary random-key tensor (groups x subsets x N).
    """

    k: int = 4
    num_groups: int | None = None
    seed: int = 0
    eps: float = 0.0
    chunk_elements: int = 1 << 24

    def __post_init__(self) -> None:
        check_k(self.k)
        check_eps(self.eps)
        if self.num_groups is not None and self.num_groups < 1:
            raise ValueError(f"num_groups must be >= 1 or None, got {self.num_groups}")


@register_estimator("passk_bootstrap", params=BootstrapParams, stochastic=True)
def passk_bootstrap_advantage(rewards: Tensor, mask: Tensor, p: BootstrapParams) -> Tensor:
    """Pass@k with bootstrap sampling: mean advantage of the random k-subsets containing i.

    The paper sums over subsets; the mean is the quantity whose expectation over subsets
    is the analytic advantage (a response in no subset gets 0).
    """
    G, N = rewards.shape
    M = p.num_groups or N
    gen = torch.Generator().manual_seed(p.seed)
    total = torch.zeros_like(rewards)
    count = torch.zeros_like(rewards)
    floyd = p.k * p.k <= 8 * N  # few draws per subset beat sorting N random keys
    if floyd:
        # all uniforms up front so that chunking over groups cannot change the stream
        uniforms = torch.rand((G, M, p.k), generator=gen, dtype=torch.float64).to(rewards.device)
        rows = max(1, p.chunk_elements // max(M * p.k * p.k, 1))
    else:
        rows = max(1, p.chunk_elements // max(M * N, 1))
    for start in range(0, G, rows):  # chunks over groups bound memory, not a loop per group
        r, m = rewards[start : start + rows], mask[start : start + rows]
        g = r.shape[0]
        if floyd:
            members = _floyd_subsets(m, uniforms[start : start + g])
        else:
            keys = torch.rand((g, M, N), generator=gen, dtype=torch.float32).to(r.device)
            keys = torch.where(m[:, None, :], keys, 2.0)
            members = keys.topk(p.k, dim=2, largest=False).indices  # [g, M, k] distinct valid
        sub_reward = r.gather(1, members.reshape(g, M * p.k)).reshape(g, M, p.k).amax(2)
        has = m.sum(1, keepdim=True) >= p.k  # [g, 1]
        sub_adv = zscore(sub_reward, has.expand(g, M), p.eps)  # [g, M]
        flat = members.reshape(g, M * p.k)
        contrib = sub_adv[:, :, None].expand(g, M, p.k).reshape(g, M * p.k)
        total[start : start + g].scatter_add_(1, flat, contrib)
        count[start : start + g].scatter_add_(1, flat, torch.ones_like(contrib))
    return torch.where(count > 0, total / count.clamp(min=1), 0.0)


def _floyd_subsets(mask: Tensor, uniforms: Tensor) -> Tensor:
    """Uniform random k-subsets of each row's valid positions (Floyd's algorithm).

    ``mask`` is ``[g, N]``, ``uniforms`` ``[g, M, k]`` in [0, 1); returns positions
    ``[g, M, k]``, distinct within a subset. Step j draws t in [0, n - k + j]; if t was
    already taken it takes n - k + j instead, which keeps every k-subset equally likely.
    """
    g, M, k = uniforms.shape
    n = mask.sum(1)  # [g]
    valid_pos = (~mask).to(torch.int8).argsort(dim=1, stable=True)  # valid positions first
    chosen = torch.zeros((g, M, k), dtype=torch.long, device=mask.device)
    for j in range(k):
        upper = (n - k + j).clamp(min=0)[:, None]  # [g, 1]
        t = torch.minimum((uniforms[:, :, j] * (upper + 1)).long(), upper)  # [g, M]
        taken = (chosen[:, :, :j] == t[:, :, None]).any(2)
        chosen[:, :, j] = torch.where(taken, upper, t)
    return valid_pos.gather(1, chosen.reshape(g, M * k)).reshape(g, M, k)


# --------------------------------------------------------------------------- 1.6 implicit


def exceed_scale_default(n_pos: Tensor, log_base: float = math.e) -> Tensor:
    """The Exceeding-Pass@k weight ``f(N_pos) = 4 / (10 log(N_pos + 0.5))`` (eq. 17).

    The printed equation is garbled; this is its most likely reading. The log base is
    not stated: natural log by default, ``log_base`` changes it. Only used where
    N_pos >= 1 (groups with N_pos = 0 have zero advantage anyway).
    """
    return 4.0 / (10.0 * torch.log(n_pos + 0.5) / math.log(log_base))


@dataclass(frozen=True)
class ExceedParams:
    """``A' = f(N_pos) * A_passk``; ``f`` maps N_pos ``[G]`` to a weight ``[G]``."""

    k: int = 4
    eps: float = 0.0
    f: Callable[[Tensor], Tensor] | None = None
    log_base: float = math.e

    def __post_init__(self) -> None:
        check_k(self.k)
        check_eps(self.eps)
        if self.log_base <= 0 or self.log_base == 1:
            raise ValueError(f"log_base must be > 0 and != 1, got {self.log_base}")


@register_estimator("passk_exceed", params=ExceedParams, binary_only=True)
def passk_exceed_advantage(rewards: Tensor, mask: Tensor, p: ExceedParams) -> Tensor:
    """Exceeding Pass@k: the analytic advantage reweighted by f(N_pos) toward harder groups."""
    n_pos = rewards.sum(1)
    scale = p.f(n_pos) if p.f is not None else exceed_scale_default(n_pos, p.log_base)
    scale = torch.where(n_pos > 0, scale.to(rewards.dtype), 0.0)
    base = passk_analytic_advantage(rewards, mask, PassKParams(k=p.k, eps=p.eps))
    return base * scale[:, None]


@register_estimator("passk_combination", params=PassKParams, binary_only=True)
def passk_combination_advantage(rewards: Tensor, mask: Tensor, p: PassKParams) -> Tensor:
    """Combination (eq. 18): ``(N_pos/N) A_passk + (1 - N_pos/N) A_pass1`` per group."""
    acc = rewards.sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)
    a_k = passk_analytic_advantage(rewards, mask, p)
    a_1 = pass1_advantage(rewards, mask, Pass1Params(eps=p.eps))
    return acc * a_k + (1 - acc) * a_1


@dataclass(frozen=True)
class AdaptiveParams:
    """Entropy-gated choice per group: ``entropy`` ``[G]`` is each prompt's mean token entropy
    (token-mean per response, then mean over its responses). Groups strictly above the
    ``quantile`` of the batch's entropies use Pass@1, the others analytic Pass@k.
    """

    k: int = 4
    entropy: Tensor | None = None
    quantile: float = 0.5
    eps: float = 0.0

    def __post_init__(self) -> None:
        check_k(self.k)
        check_eps(self.eps)
        if not 0 <= self.quantile <= 1:
            raise ValueError(f"quantile must be in [0, 1], got {self.quantile}")


@register_estimator("passk_adaptive", params=AdaptiveParams, binary_only=True, needs=("entropy",))
def passk_adaptive_advantage(rewards: Tensor, mask: Tensor, p: AdaptiveParams) -> Tensor:
    """Entropy-adaptive: high-entropy prompts exploit with Pass@1, the rest explore with Pass@k."""
    ent = torch.as_tensor(p.entropy, device=rewards.device).to(torch.float64).reshape(-1)
    if ent.shape[0] != rewards.shape[0]:
        raise ValueError(
            f"entropy must have one value per group ({rewards.shape[0]}), got {ent.shape[0]}"
        )
    if not torch.isfinite(ent).all():
        raise ValueError("entropy must be finite")
    high = ent > torch.quantile(ent, p.quantile)  # [G]
    a_k = passk_analytic_advantage(rewards, mask, PassKParams(k=p.k, eps=p.eps))
    a_1 = pass1_advantage(rewards, mask, Pass1Params(eps=p.eps))
    return torch.where(high[:, None], a_1, a_k)


# --------------------------------------------------------------------------- step-size control


@dataclass(frozen=True)
class Pass1MatchedParams:
    """``k``: the analytic Pass@k whose total ``|A|`` the Pass@1 advantages are scaled to."""

    k: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")


@register_estimator("pass1_matched", params=Pass1MatchedParams, binary_only=True)
def pass1_matched_advantage(rewards: Tensor, mask: Tensor, p: Pass1MatchedParams) -> Tensor:
    """Step-size control: GRPO's direction with analytic Pass@k's total ``|A|`` per batch.

    ``A = A_pass1 * sum|A_passk| / sum|A_pass1|`` over the batch (0 when Pass@1 has no
    signal). Trained against Pass@k, it separates what Pass@k changes in *where* the push
    goes from how large the update is: both arms move by the same total advantage.
    """
    a1 = pass1_advantage(rewards, mask, Pass1Params())
    ak = passk_analytic_advantage(rewards, mask, PassKParams(k=p.k))
    total1 = a1.abs().sum()
    if total1 == 0:
        return torch.zeros_like(rewards)
    return a1 * (ak.abs().sum() / total1)
