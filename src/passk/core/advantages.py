"""Group-level advantage estimators: ``rewards[G, N] (+ mask) -> advantages[G, N]``.

Every estimator has the same signature and lives in one registry::

    @register_estimator("name", params=NameParams)
    def name_advantage(rewards, mask, p: NameParams) -> Tensor: ...

``rewards`` is ``[G, N]`` (G groups of N responses to one prompt each); ``mask`` marks the
valid responses of ragged groups. The public entry point :func:`compute_advantages`
validates the input once, computes in float64, zeroes masked entries and casts back, so
an estimator body only does the math: it receives float64 rewards whose masked entries
are already 0 and a full boolean mask.

>>> import torch
>>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
>>> compute_advantages("pass1", r)
tensor([[ 1.7321, -0.5774, -0.5774, -0.5774],
        [ 1.0000,  1.0000, -1.0000, -1.0000]])
>>> compute_advantages("passk_analytic", r, k=2)  # the easier group gets less push
tensor([[ 1.0000, -0.3333, -0.3333, -0.3333],
        [ 0.4472,  0.4472, -0.4472, -0.4472]])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from passk.core.registry import Registry

__all__ = [
    "AdaptiveParams",
    "BootstrapParams",
    "EstimatorSpec",
    "ExceedParams",
    "FullParams",
    "MaxKParams",
    "MaxRLParams",
    "MixtureParams",
    "PKPOParams",
    "Pass1MatchedParams",
    "Pass1Params",
    "PassKParams",
    "RLOOParams",
    "RSGRPOParams",
    "ReinforcePPParams",
    "UnlikelinessParams",
    "WReinforceParams",
    "compute_advantages",
    "eta_curve",
    "exceed_scale_default",
    "get_estimator",
    "list_estimators",
    "maxk_subset_stats",
    "passk_analytic_values",
    "register_estimator",
]

# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class EstimatorSpec:
    """What the trainer and the integrations need to know about an estimator.

    ``params`` is the dataclass of its keyword parameters (defaults and validation live
    there); ``needs`` names extra per-group inputs that must be passed as parameters
    (e.g. ``{"entropy"}``); ``binary_only`` estimators reject rewards outside {0, 1};
    ``uses_k`` tells whether the estimator takes a group size k (for dynamic sampling's
    "no signal" test and for k schedules); ``stochastic`` ones draw random groups.
    ``native_dtype`` estimators receive rewards in their own floating dtype instead of
    float64 (only for binary estimators whose per-response arithmetic is exact in any
    dtype: it saves two full passes over the rewards).
    """

    name: str
    fn: Callable[[Tensor, Tensor, Any], Tensor]
    params: type
    binary_only: bool = False
    needs: frozenset[str] = frozenset()
    stochastic: bool = False
    native_dtype: bool = False
    doc: str = ""

    @property
    def uses_k(self) -> bool:
        return any(f.name == "k" for f in dataclasses.fields(self.params))

    def make_params(self, **params: Any) -> Any:
        """Build and validate the parameter dataclass; unknown names raise ValueError."""
        valid = {f.name for f in dataclasses.fields(self.params)}
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ValueError(
                f"estimator {self.name!r} got unknown parameter(s) {unknown}; "
                f"valid: {sorted(valid)}"
            )
        missing = sorted(n for n in self.needs if params.get(n) is None)
        if missing:
            raise ValueError(f"estimator {self.name!r} needs parameter(s) {missing}")
        return self.params(**params)


_REGISTRY: Registry[EstimatorSpec] = Registry("advantage estimator")


def register_estimator(
    name: str,
    *,
    params: type,
    binary_only: bool = False,
    needs: tuple[str, ...] = (),
    stochastic: bool = False,
    native_dtype: bool = False,
) -> Callable[[Callable], Callable]:
    """Decorator adding ``fn(rewards[G, N], mask[G, N], params) -> [G, N]`` to the registry.

    Duplicate names are an error, so an extension cannot silently replace a built-in
    (re-registering an identical spec is a no-op; see :mod:`passk.core.registry`).
    """
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"params for {name!r} must be a dataclass type, got {params!r}")

    def deco(fn: Callable) -> Callable:
        _REGISTRY.register(
            name,
            EstimatorSpec(
                name=name,
                fn=fn,
                params=params,
                binary_only=binary_only,
                needs=frozenset(needs),
                stochastic=stochastic,
                native_dtype=native_dtype,
                doc=(fn.__doc__ or "").strip().split("\n")[0],
            ),
        )
        return fn

    return deco


def list_estimators() -> list[str]:
    """Registered estimator names, sorted."""
    return _REGISTRY.names()


def get_estimator(name: str) -> EstimatorSpec:
    """The spec registered under ``name``; an unknown name lists the valid ones."""
    return _REGISTRY.get(name)


# --------------------------------------------------------------------------- validation


def _validate(
    spec: EstimatorSpec, rewards: Tensor, mask: Tensor | None, p: Any
) -> tuple[Tensor, Tensor]:
    """Check shapes and values once; return float64 rewards (masked -> 0) and a bool mask
    (rewards keep their floating dtype for ``native_dtype`` estimators).

    Written for speed on the common path (few full-tensor passes): the value checks are
    one reduction each, and the elementwise search for the offending values only runs
    when a check fails.
    """
    if not isinstance(rewards, Tensor):
        raise ValueError(f"rewards must be a torch.Tensor [G, N], got {type(rewards).__name__}")
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be 2-D [G, N], got shape {tuple(rewards.shape)}")
    if spec.native_dtype and rewards.is_floating_point():
        r = rewards
    else:
        r = rewards.to(torch.float64 if not spec.native_dtype else torch.float32)
    ragged = mask is not None
    if mask is None:
        mask = torch.ones(rewards.shape, dtype=torch.bool, device=rewards.device)
    else:
        if not isinstance(mask, Tensor) or mask.shape != rewards.shape:
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"mask must be a tensor of shape {tuple(rewards.shape)}, got {shape}")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
        mask = mask.to(rewards.device)
        r = r.masked_fill(~mask, 0.0)
    if spec.binary_only:
        # binary iff r equals its own 0/1 indicator (NaN != 1 fails too); cheapest check
        if not torch.equal(r, r.bool().to(r.dtype)):
            if not torch.isfinite(r).all():
                bad = r[~torch.isfinite(r)]
                raise ValueError(
                    f"rewards must be finite on valid entries, found {bad[:5].tolist()}"
                )
            bad = r[(r != 0) & (r != 1)]
            raise ValueError(
                f"estimator {spec.name!r} needs binary rewards in {{0, 1}}, found "
                f"{bad[:5].tolist()}; use 'maxk_analytic' or 'pkpo_loo' for continuous rewards"
            )
    elif not torch.isfinite(r.sum()):  # NaN and inf propagate through a sum
        bad = r[~torch.isfinite(r)]
        if bad.numel():
            raise ValueError(f"rewards must be finite on valid entries, found {bad[:5].tolist()}")
    k = getattr(p, "k", None)
    if k is not None and rewards.numel() > 0:
        if ragged:
            counts = mask.sum(1, dtype=torch.int32)
            smallest = int(counts.masked_fill(counts == 0, counts.max()).min())
        else:
            smallest = rewards.shape[1]
        if smallest and k > smallest:
            raise ValueError(
                f"k={k} is larger than the smallest group ({smallest} valid responses); "
                f"valid: 1 <= k <= {smallest}"
            )
    return r, mask


def compute_advantages(
    name: str, rewards: Tensor, mask: Tensor | None = None, **params: Any
) -> Tensor:
    """Advantages ``[G, N]`` of estimator ``name`` for ``rewards[G, N]``.

    ``mask`` (bool ``[G, N]``) marks valid responses of ragged groups; masked entries get
    0 and never influence valid ones (even NaN there is ignored). Computation happens in
    float64; the result has the dtype and device of ``rewards`` (float32 for integer or
    bool rewards). ``params`` are the estimator's keyword parameters (see its dataclass,
    e.g. ``k`` for the pass@k family).
    """
    spec = get_estimator(name)
    p = spec.make_params(**params)
    ragged = mask is not None
    r, m = _validate(spec, rewards, mask, p)
    out = r if r.numel() == 0 else spec.fn(r, m, p)
    if ragged:
        out = out.masked_fill(~m, 0.0)
    dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    return out.to(dtype)


# --------------------------------------------------------------------------- helpers


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def _check_eps(eps: float) -> None:
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def _log_binom(n: Tensor, k: Tensor) -> Tensor:
    """log C(n, k) for float tensors, -inf where k < 0 or k > n."""
    valid = (k >= 0) & (k <= n)
    n_, k_ = n.clamp(min=0), k.clamp(min=0)
    out = torch.lgamma(n_ + 1) - torch.lgamma(k_ + 1) - torch.lgamma((n_ - k_).clamp(min=0) + 1)
    return torch.where(valid, out, float("-inf"))


def _zscore(values: Tensor, mask: Tensor, eps: float, std: Tensor | None = None) -> Tensor:
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


# --------------------------------------------------------------------------- 1.1 pass@1


@dataclass(frozen=True)
class Pass1Params:
    """GRPO normalisation options.

    ``eps`` is added to the std (0 by default: degenerate groups are detected exactly,
    so no guard is needed and k = 1 Pass@k equals Pass@1 to rounding).
    ``std`` is ``"group"`` (GRPO), ``"batch"`` (std of all valid rewards in the batch,
    group mean kept) or ``"none"`` (Dr.GRPO / DARS: no division).
    """

    eps: float = 0.0
    std: str = "group"

    def __post_init__(self) -> None:
        _check_eps(self.eps)
        if self.std not in ("group", "batch", "none"):
            raise ValueError(f"std must be 'group', 'batch' or 'none', got {self.std!r}")


@register_estimator("pass1", params=Pass1Params)
def pass1_advantage(rewards: Tensor, mask: Tensor, p: Pass1Params) -> Tensor:
    """GRPO z-score of each response within its group (Pass@1 training)."""
    if p.std == "group":
        return _zscore(rewards, mask, p.eps)
    n = mask.sum(1, keepdim=True).clamp(min=1)
    centred = torch.where(mask, rewards - rewards.sum(1, keepdim=True) / n, 0.0)
    if p.std == "none":
        return centred
    valid = rewards[mask]
    batch_std = valid.std(unbiased=False) if valid.numel() > 1 else valid.new_zeros(())
    if batch_std == 0:
        return torch.zeros_like(rewards)
    return centred / (batch_std + p.eps)


# --------------------------------------------------------------------------- 1.4 analytic


@dataclass(frozen=True)
class PassKParams:
    """Group size ``k`` of Pass@k training; ``eps`` is added to the group-reward std."""

    k: int = 4
    eps: float = 0.0

    def __post_init__(self) -> None:
        _check_k(self.k)
        _check_eps(self.eps)


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
    """Analytic Pass@k: each response gets its exact expected k-group advantage (§2.4)."""
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
        _check_k(self.k)
        _check_eps(self.eps)


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
    sub_adv = _zscore(sub_reward, sub_valid, p.eps)  # [G, slots]
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
        _check_k(self.k)
        _check_eps(self.eps)
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
        sub_adv = _zscore(sub_reward, has.expand(g, M), p.eps)  # [g, M]
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
        _check_k(self.k)
        _check_eps(self.eps)
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
        _check_k(self.k)
        _check_eps(self.eps)
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


# --------------------------------------------------------------------------- eta curves


def eta_curve(name: str, n: int, **params: Any) -> tuple[Tensor, Tensor]:
    """Total optimisation strength of a binary group as a function of its accuracy.

    Returns ``(accuracy[n+1], eta[n+1])`` with accuracy ``N_pos / n`` for N_pos = 0..n and
    ``eta = sum_i |A_i|`` of a group with that many correct responses (§4.1). Each group
    is evaluated on its own, so batch-coupled options (batch std) see one group.

    >>> acc, eta = eta_curve("pass1", 4)
    >>> [round(x, 4) for x in eta.tolist()]
    [0.0, 3.4641, 4.0, 3.4641, 0.0]
    """
    spec = get_estimator(name)
    if spec.needs:
        raise ValueError(
            f"estimator {name!r} needs per-group inputs {sorted(spec.needs)}; no eta curve"
        )
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    eta = torch.zeros(n + 1, dtype=torch.float64)
    for n_pos in range(n + 1):
        rewards = torch.zeros(1, n, dtype=torch.float64)
        rewards[0, :n_pos] = 1.0
        eta[n_pos] = compute_advantages(name, rewards, **params).abs().sum()
    return torch.arange(n + 1, dtype=torch.float64) / n, eta


# max@k estimators for continuous rewards live in their own module; importing it here
# registers them with every import of this one.
from passk.core.maxk import (  # noqa: E402
    MaxKParams,
    PKPOParams,
    maxk_subset_stats,
)
from passk.core.mixtures import MaxRLParams, MixtureParams  # noqa: E402
from passk.core.weighted import (  # noqa: E402
    Pass1MatchedParams,
    ReinforcePPParams,
    RLOOParams,
    RSGRPOParams,
    UnlikelinessParams,
    WReinforceParams,
)
