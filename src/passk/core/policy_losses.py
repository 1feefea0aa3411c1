"""Per-token policy-gradient losses and their registry of specs.

Every policy loss has the family signature ::

    fn(logp[B, T], old_logp[B, T], advantages[B] | [B, T], mask[B, T], *, **params, **needs)
        -> (loss_mat[B, T], metrics)

``loss_mat`` is the per-token loss to *minimise*, exactly 0 where ``mask`` is 0; ``metrics``
maps namespaced keys (``actor/clip_frac``) to detached 0-d tensors, averaged over the valid
tokens of the call. Reduce ``loss_mat`` with :func:`passk.core.aggregate.aggregate_loss`;
since aggregation is linear, terms compose by adding loss matrices before one aggregation::

    >>> import torch
    >>> from passk.core.aggregate import aggregate_loss
    >>> from passk.core.entropy import entropy_loss
    >>> from passk.core.kl import kl_penalty_loss
    >>> B, T = 2, 3
    >>> logp = torch.full((B, T), -1.0, requires_grad=True)
    >>> old = torch.full((B, T), -1.0)
    >>> adv, mask = torch.tensor([1.0, -1.0]), torch.ones(B, T, dtype=torch.bool)
    >>> pg, m = ppo_clip_loss(logp, old, adv, mask)
    >>> ent, _ = entropy_loss(torch.full((B, T), 2.0), mask)
    >>> kl, _ = kl_penalty_loss(logp, old, mask, kind="k3")
    >>> aggregate_loss(pg + 0.001 * ent + 0.001 * kl, mask, "token-mean")
    tensor(-0.0020, grad_fn=<DivBackward0>)

Each loss is registered with a frozen parameter dataclass (defaults and validation live
there, nowhere else) and the names of the extra tensors it ``needs``; the trainer builds the
params once from its config and calls :meth:`PolicyLossSpec.compute`, never a loss by name::

    >>> spec = get_policy_loss("ppo_clip")
    >>> p = spec.make_params({"eps_high": 0.4})
    >>> p
    PPOClipParams(eps_low=0.2, eps_high=0.4, dual_clip=None)
    >>> loss, _ = spec.compute(logp, old, adv, mask, p)
    >>> torch.equal(loss, ppo_clip_loss(logp, old, adv, mask, eps_high=0.4)[0])
    True

Masked entries of every input are replaced before any arithmetic, so NaN or inf in padding
reach neither ``loss_mat`` nor metrics nor gradients. Half-precision inputs are computed (and
returned) in float32; gradients flow back in their dtype. ``log_ratio = logp - old_logp``
(PPO ratio ``r = exp``), clamped to +-20 before ``exp``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from passk.core._masked import (
    _LOG_RATIO_CLAMP,
    Metrics,
    _broadcast_advantages,
    _check_2d,
    _compute_dtype,
    _fill,
    _masked_max,
    _masked_mean,
    _masked_min,
    _up,
)
from passk.core.registry import Registry

__all__ = [
    "Metrics",
    "PPOClipParams",
    "PolicyLossFn",
    "PolicyLossSpec",
    "SimKOParams",
    "get_policy_loss",
    "list_policy_losses",
    "ppo_clip_loss",
    "register_policy_loss",
    "simko_entropy_weights",
    "simko_loss",
]

# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------


def _check_real(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number, got {value!r}")


def _check_eps(eps_low: float, eps_high: float, dual_clip: float | None) -> None:
    _check_real("eps_low", eps_low)
    _check_real("eps_high", eps_high)
    if not 0.0 <= eps_low < 1.0:
        raise ValueError(f"eps_low must be in [0, 1), got {eps_low!r}")
    if not eps_high >= 0.0:
        raise ValueError(f"eps_high must be >= 0, got {eps_high!r}")
    if dual_clip is not None:
        _check_real("dual_clip", dual_clip)
        if not dual_clip > 1.0:
            raise ValueError(f"dual_clip must be > 1 (e.g. 3.0) or None, got {dual_clip!r}")


def _check_simko(K: int | None, alpha: float, tau: float, lam: float) -> None:
    if K is not None and (isinstance(K, bool) or not isinstance(K, int) or K < 1):
        raise ValueError(f"K must be None or an int >= 1, got {K!r}")
    for name, value in (("alpha", alpha), ("tau", tau), ("lam", lam)):
        _check_real(name, value)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")
    if not lam >= 0.0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")


@dataclass(frozen=True)
class PPOClipParams:
    """Parameters of :func:`ppo_clip_loss` (``policy_loss = "ppo_clip"``)."""

    eps_low: float = 0.2
    """Lower clip bound: the ratio is clipped at ``1 - eps_low``; in [0, 1)."""
    eps_high: float = 0.28
    """Upper clip bound ``1 + eps_high`` (DAPO clip-higher; Pass@k/DAPO 0.28, ProRL 0.4)."""
    dual_clip: float | None = None
    """``None`` or ``c > 1``: caps the loss of ``A < 0`` tokens at ``-A c`` (3.0 is usual)."""

    def __post_init__(self) -> None:
        _check_eps(self.eps_low, self.eps_high, self.dual_clip)


@dataclass(frozen=True)
class SimKOParams(PPOClipParams):
    """Parameters of :func:`simko_loss`: PPO's clip parameters plus SimKO's own."""

    K: int | None = None
    """Top tokens that share the gradient (None: all columns of ``topk_logp``; paper: 3)."""
    alpha: float = 0.01
    """Fraction of a correct high-entropy token's gradient spread over the top-K; in [0, 1]."""
    tau: float = 0.8
    """Entropy quantile above which a token counts as high-entropy; in [0, 1]."""
    lam: float = 1.1
    """Advantage multiplier of incorrect, top-1, high-entropy tokens; >= 0."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_simko(self.K, self.alpha, self.tau, self.lam)


_PPO = PPOClipParams()
_SIMKO = SimKOParams()

# ---------------------------------------------------------------------------------------------
# PPO clip (DAPO clip-higher, dual clip)
# ---------------------------------------------------------------------------------------------


def _ppo_clip_from_ratio(
    ratio: Tensor,  # [B, T], may carry a custom gradient (SimKO)
    log_ratio: Tensor,  # [B, T], detached use only (metrics)
    adv: Tensor,  # [B, T], masked entries already 0
    mask: Tensor,  # [B, T] bool
    eps_low: float,
    eps_high: float,
    dual_clip: float | None,
    prefix: str = "actor",
) -> tuple[Tensor, Metrics]:
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)  # pessimistic bound
    if dual_clip is not None:
        # For A < 0 the unclipped term grows without bound in r; cap it at -A * c.
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip), loss)
        dual = (adv < 0) & (ratio.detach() > dual_clip) & mask
    else:
        dual = torch.zeros_like(mask)
    loss = _fill(loss, mask)

    r = ratio.detach()
    clip_high = (adv > 0) & (r > 1.0 + eps_high) & mask
    clip_low = (adv < 0) & (r < 1.0 - eps_low) & mask
    lr = log_ratio.detach()
    approx_kl = torch.expm1(lr) - lr  # k3 of KL(old || new), tokens drawn from old
    f = torch.float32
    metrics = {
        f"{prefix}/pg_loss": _masked_mean(loss, mask),
        f"{prefix}/clip_frac": _masked_mean((clip_high | clip_low).to(f), mask),
        f"{prefix}/clip_frac_high": _masked_mean(clip_high.to(f), mask),
        f"{prefix}/clip_frac_low": _masked_mean(clip_low.to(f), mask),
        f"{prefix}/dual_clip_frac": _masked_mean(dual.to(f), mask),
        f"{prefix}/approx_kl": _masked_mean(approx_kl, mask),
        f"{prefix}/ratio_mean": _masked_mean(r, mask),
        f"{prefix}/ratio_max": _masked_max(r, mask),
        f"{prefix}/ratio_min": _masked_min(r, mask),
    }
    return loss, metrics


def ppo_clip_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = _PPO.eps_low,
    eps_high: float = _PPO.eps_high,
    dual_clip: float | None = _PPO.dual_clip,
) -> tuple[Tensor, Metrics]:
    """Clipped policy-gradient loss with decoupled bounds (DAPO clip-higher) and dual clip.

    ``loss = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))`` with
    ``r = exp(logp - old_logp)`` (log-ratio clamped to +-20 before exp); with
    ``dual_clip = c`` the loss of tokens with ``A < 0`` is further capped at
    ``-A c`` (Ye et al. 2020; c = 3.0 is usual).

    Args:
        logp: ``[B, T]`` log-prob of the sampled tokens under the current policy.
        old_logp: ``[B, T]`` the same under the behaviour (rollout) policy.
        advantages: ``[B]`` (broadcast over tokens) or ``[B, T]``.
        mask: ``[B, T]`` 0/1 or bool response mask.
        eps_low, eps_high: clip range ``[1 - eps_low, 1 + eps_high]``
            (Pass@k/DAPO 0.2/0.28, ProRL 0.2/0.4).
        dual_clip: ``None`` or ``c > 1``.

    Returns ``(loss_mat[B, T], metrics)`` with ``actor/pg_loss``,
    ``actor/clip_frac{,_low,_high}`` (tokens whose clipped branch is active,
    i.e. zero gradient), ``actor/dual_clip_frac``, ``actor/approx_kl`` (k3
    estimate of KL(old || new)), ``actor/ratio_{mean,max,min}``.

        >>> import torch
        >>> logp = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
        >>> loss, m = ppo_clip_loss(logp, torch.zeros(1, 3), torch.tensor([[1.0, -1.0, 2.0]]),
        ...                         torch.ones(1, 3))
        >>> loss  # r=1.5, A=1 -> clipped at 1.28; r=0.5, A=-1 -> clipped at 0.8; r=1 -> -2
        tensor([[-1.2800,  0.8000, -2.0000]])
        >>> m["actor/clip_frac"]
        tensor(0.6667)
    """
    _check_eps(eps_low, eps_high, dual_clip)
    mask = _check_2d(mask, logp=logp, old_logp=old_logp)
    adv = _fill(_up(_broadcast_advantages(advantages, mask)), mask)
    log_ratio = _fill(_up(logp), mask) - _fill(_up(old_logp), mask)  # [B, T]
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    return _ppo_clip_from_ratio(ratio, log_ratio, adv, mask, eps_low, eps_high, dual_clip)


# ---------------------------------------------------------------------------------------------
# SimKO
# ---------------------------------------------------------------------------------------------


def simko_entropy_weights(entropy: Tensor, mask: Tensor, tau: float = _SIMKO.tau) -> Tensor:
    """``w[B, T]`` in {0, 1}: 1 where the token entropy exceeds its response's tau-quantile.

    The quantile is over the valid tokens of each row (linear interpolation,
    ``torch.nanquantile``); the comparison is strict, so a response with equal
    entropies everywhere has no high-entropy token. No gradient.

        >>> import torch
        >>> simko_entropy_weights(torch.tensor([[0.1, 0.5, 2.0, 0.3, 9.0]]),
        ...                       torch.tensor([[1, 1, 1, 1, 0]]), tau=0.5)
        tensor([[0., 1., 1., 0., 0.]])
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")
    mask = _check_2d(mask, entropy=entropy)
    ent = entropy.detach().to(_compute_dtype(entropy.dtype))
    ent = _fill(ent, mask & torch.isfinite(ent), math.nan)
    q = torch.nanquantile(ent, tau, dim=-1, keepdim=True)  # [B, 1]; NaN for empty rows
    return ((ent > q) & mask).to(ent.dtype)


def simko_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    topk_logp: Tensor,
    topk_old_logp: Tensor,
    entropy: Tensor,
    correct: Tensor,
    sampled_is_top1: Tensor,
    K: int | None = _SIMKO.K,
    alpha: float = _SIMKO.alpha,
    tau: float = _SIMKO.tau,
    lam: float = _SIMKO.lam,
    eps_low: float = _SIMKO.eps_low,
    eps_high: float = _SIMKO.eps_high,
    dual_clip: float | None = _SIMKO.dual_clip,
) -> tuple[Tensor, Metrics]:
    """SimKO (arXiv 2510.14807): PPO clip with a top-K mixed ratio and an asymmetric boost.

    With ``w_t`` = :func:`simko_entropy_weights` (tau-quantile of the
    response's token entropy), ``r_t = exp(logp - old_logp)`` and
    ``r_k = exp(topk_logp[k] - topk_old_logp[k])``:

    - correct responses: ``r~_t = (1 - alpha w_t) r_t + (alpha w_t / K)
      sum_k sg(r_t / r_k) r_k``. It has the same *value* as ``r_t`` (built as
      ``r_t + (x - sg(x))`` terms, so bit-identical), but a fraction
      ``alpha w_t`` of the gradient goes to the top-K tokens:
      ``dr~/dlogp = (1 - alpha w_t) r_t`` and
      ``dr~/dtopk_logp[k] = alpha w_t r_t / K``. When the sampled token is one
      of the top-K and both inputs are gathered from the same logits, autograd
      adds the two contributions.
    - incorrect responses: where ``sampled_is_top1`` and ``w_t = 1`` the
      advantage is multiplied by ``lam``.

    The PPO clip objective (:func:`ppo_clip_loss` rules) is then applied to
    ``r~_t``; its metrics plus ``simko/high_entropy_frac``,
    ``simko/mixed_frac``, ``simko/boost_frac`` are returned.

    Args:
        logp, old_logp: ``[B, T]`` sampled-token log-probs (current, rollout).
        advantages: ``[B]`` or ``[B, T]``.
        mask: ``[B, T]`` response mask.
        topk_logp: ``[B, T, K']`` log-probs of the top-K tokens of the current
            policy, top-1 first; K' >= K (the first K columns are used).
        topk_old_logp: ``[B, T, K']`` the rollout policy's log-probs of the
            *same* tokens.
        entropy: ``[B, T]`` token entropy (detached inside).
        correct: ``[B]`` bool, the response is correct (reward > 0).
        sampled_is_top1: ``[B, T]`` bool, the sampled token is the top-1 token.
        K: number of top tokens (None: ``topk_logp.shape[-1]``; paper: 3).
        alpha, tau, lam: paper defaults 0.01, 0.8, 1.1.
        eps_low, eps_high, dual_clip: as in :func:`ppo_clip_loss`.

    Returns ``(loss_mat[B, T], metrics)``.

        >>> import torch
        >>> B, T = 1, 5
        >>> logp = torch.zeros(B, T)
        >>> l, m = simko_loss(logp, logp, torch.tensor([1.0]), torch.ones(B, T),
        ...     topk_logp=torch.zeros(B, T, 3), topk_old_logp=torch.zeros(B, T, 3),
        ...     entropy=torch.arange(5.0)[None], correct=torch.tensor([True]),
        ...     sampled_is_top1=torch.ones(B, T, dtype=torch.bool))
        >>> l, m["simko/high_entropy_frac"]
        (tensor([[-1., -1., -1., -1., -1.]]), tensor(0.2000))
    """
    _check_eps(eps_low, eps_high, dual_clip)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if not lam >= 0.0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    mask = _check_2d(
        mask, logp=logp, old_logp=old_logp, entropy=entropy, sampled_is_top1=sampled_is_top1
    )
    B, T = mask.shape
    if topk_logp.ndim != 3 or topk_logp.shape[:2] != (B, T):
        raise ValueError(f"topk_logp must be [B, T, K]=[{B}, {T}, K], got {tuple(topk_logp.shape)}")
    if topk_old_logp.shape != topk_logp.shape:
        raise ValueError(
            f"topk_old_logp shape {tuple(topk_old_logp.shape)} != topk_logp shape "
            f"{tuple(topk_logp.shape)}"
        )
    if K is None:
        K = topk_logp.shape[-1]
    if not 1 <= K <= topk_logp.shape[-1]:
        raise ValueError(
            f"K must be in [1, {topk_logp.shape[-1]}] (topk_logp.shape[-1]), got {K!r}"
        )
    if correct.shape != (B,):
        raise ValueError(f"correct must have shape [B]=({B},), got {tuple(correct.shape)}")

    logp, old_logp, topk_logp, topk_old_logp = map(_up, (logp, old_logp, topk_logp, topk_old_logp))
    w = simko_entropy_weights(entropy, mask, tau).to(logp.dtype)  # [B, T]
    correct_t = (correct != 0)[:, None].expand(B, T)  # [B, T]
    top1 = sampled_is_top1 != 0

    log_ratio = _fill(logp, mask) - _fill(old_logp, mask)  # [B, T]
    lr = log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    ratio = torch.exp(lr)
    topk_lr = _fill(topk_logp[..., :K], mask) - _fill(topk_old_logp[..., :K], mask)  # [B, T, K]
    topk_lr = topk_lr.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    # sg(r_t / r_k) r_k, from log space so no overflow; value r_t up to rounding.
    spread = torch.exp(lr.detach()[..., None] - topk_lr.detach()) * torch.exp(topk_lr)
    a_w = torch.where(correct_t, alpha * w, torch.zeros_like(w))  # [B, T]
    # r~ = r + a_w (mean_k spread_k - r) written as r + (x - sg(x)) so the value is exactly r.
    delta = a_w * (spread.mean(dim=-1) - ratio)
    mixed = ratio + (delta - delta.detach())

    boost = (~correct_t) & top1 & (w > 0) & mask  # [B, T]
    adv = _fill(_up(_broadcast_advantages(advantages, mask)), mask)
    adv = torch.where(boost, adv * lam, adv)

    loss, metrics = _ppo_clip_from_ratio(mixed, log_ratio, adv, mask, eps_low, eps_high, dual_clip)
    f = torch.float32
    metrics["simko/high_entropy_frac"] = _masked_mean((w > 0).to(f), mask)
    metrics["simko/mixed_frac"] = _masked_mean((a_w > 0).to(f), mask)
    metrics["simko/boost_frac"] = _masked_mean(boost.to(f), mask)
    return loss, metrics


# ---------------------------------------------------------------------------------------------
# registry of policy-loss specs
# ---------------------------------------------------------------------------------------------

PolicyLossFn = Callable[..., tuple[Tensor, Metrics]]

# The positional inputs every policy loss takes; params and needs may not reuse them.
_POSITIONAL = ("logp", "old_logp", "advantages", "mask")


@dataclass(frozen=True)
class PolicyLossSpec:
    """A registered policy loss: its function, its params dataclass and the extra inputs.

    ``fn(logp, old_logp, advantages, mask, **fields(params), **needs)`` is called by
    :meth:`compute`; ``params`` is a frozen dataclass whose fields are ``fn``'s keyword
    parameters (defaults and validation live there); ``needs`` names the extra keyword
    tensors (``"entropy"``, ``"topk_logp"``, ...) the caller must supply.
    """

    name: str
    fn: PolicyLossFn
    params: type
    needs: frozenset[str] = frozenset()

    def param_names(self) -> tuple[str, ...]:
        """The params dataclass's field names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(self.params))

    def make_params(self, mapping: Mapping[str, Any] | None = None) -> Any:
        """Build (and validate) the params dataclass from ``mapping``; missing keys keep
        their defaults. Unknown keys, or values the dataclass rejects, raise ValueError
        naming the key or field and what is valid."""
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"policy loss {self.name!r} params must be a mapping of field -> value, "
                f"got {type(mapping).__name__}"
            )
        valid = self.param_names()
        unknown = sorted(str(k) for k in mapping if k not in valid)
        if unknown:
            raise ValueError(
                f"policy loss {self.name!r} got unknown parameter(s) {unknown}; "
                f"valid: {list(valid)}"
            )
        try:
            return self.params(**mapping)
        except ValueError as e:
            raise ValueError(f"policy loss {self.name!r}: {e}") from e

    def compute(
        self,
        logp: Tensor,  # [B, T]
        old_logp: Tensor,  # [B, T]
        advantages: Tensor,  # [B] or [B, T]
        mask: Tensor,  # [B, T]
        params: Any,
        **needs: Tensor,
    ) -> tuple[Tensor, Metrics]:
        """``(loss_mat[B, T], metrics)``: the loss with ``params`` (an instance of
        :attr:`params`, from :meth:`make_params`) and exactly the declared ``needs``."""
        if type(params) is not self.params:
            raise TypeError(
                f"policy loss {self.name!r} takes {self.params.__name__} params, got "
                f"{type(params).__name__}; build them with "
                f"get_policy_loss({self.name!r}).make_params(...)"
            )
        missing, extra = sorted(self.needs - needs.keys()), sorted(needs.keys() - self.needs)
        if missing or extra:
            raise ValueError(
                f"policy loss {self.name!r} needs exactly {sorted(self.needs)}; "
                f"missing {missing}, unexpected {extra}"
            )
        kwargs = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
        return self.fn(logp, old_logp, advantages, mask, **kwargs, **needs)


_POLICY_LOSSES: Registry[PolicyLossSpec] = Registry("policy loss")


def _check_signature(name: str, fn: Callable, keywords: list[str]) -> None:
    """``fn`` must accept the four inputs positionally and every params field and need by name."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust the caller
        return
    ps = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in ps.values()):
        return
    positional = [p for p in ps.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_var_pos = any(p.kind is p.VAR_POSITIONAL for p in ps.values())
    if len(positional) < len(_POSITIONAL) and not has_var_pos:
        raise TypeError(
            f"policy loss {name!r}: {getattr(fn, '__name__', fn)!r} must take "
            f"({', '.join(_POSITIONAL)}) positionally"
        )
    named = {n for n, p in ps.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [k for k in keywords if k not in named]
    if missing:
        raise TypeError(
            f"policy loss {name!r}: {getattr(fn, '__name__', fn)!r} does not accept the "
            f"keyword(s) {missing} declared by its params or needs"
        )


def register_policy_loss(
    name: str, *, params: type, needs: tuple[str, ...] = ()
) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator registering ``fn(logp, old_logp, advantages, mask, **params, **needs)``.

    ``params`` is a frozen dataclass whose fields are ``fn``'s keyword parameters;
    ``needs`` names the extra keyword tensors the caller must pass. A taken name is a
    ValueError (re-registering an identical spec is a no-op); ``fn`` is returned unchanged.

        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class ScaledParams:
        ...     scale: float = 1.0
        >>> @register_policy_loss("doc_scaled_pg", params=ScaledParams)
        ... def scaled_pg(logp, old_logp, advantages, mask, *, scale):
        ...     return -scale * advantages[:, None] * logp * mask, {}
        >>> spec = get_policy_loss("doc_scaled_pg")
        >>> spec.compute(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2),
        ...              spec.make_params({"scale": 2.0}))[0]
        tensor([[-0., -0.]])
        >>> _ = _POLICY_LOSSES.unregister("doc_scaled_pg")
    """
    if not (isinstance(params, type) and dataclasses.is_dataclass(params)):
        raise TypeError(f"params for policy loss {name!r} must be a dataclass type, got {params!r}")
    if not params.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"params for policy loss {name!r} must be frozen: @dataclass(frozen=True)")
    if isinstance(needs, str) or not all(isinstance(n, str) and n for n in needs):
        raise TypeError(f"needs for policy loss {name!r} must be a tuple of names, got {needs!r}")
    fields = [f.name for f in dataclasses.fields(params)]
    clash = sorted((set(fields) & set(needs)) | ((set(fields) | set(needs)) & set(_POSITIONAL)))
    if clash:
        raise ValueError(
            f"policy loss {name!r}: name(s) {clash} used twice among params fields, "
            f"needs and the inputs {list(_POSITIONAL)}"
        )

    def deco(fn: PolicyLossFn) -> PolicyLossFn:
        _check_signature(name, fn, [*fields, *needs])
        _POLICY_LOSSES.register(name, PolicyLossSpec(name, fn, params, frozenset(needs)))
        return fn

    return deco


def get_policy_loss(name: str) -> PolicyLossSpec:
    """The spec registered as ``name``; an unknown name lists the valid ones.

    >>> get_policy_loss("simko").needs >= {"entropy", "topk_logp"}
    True
    """
    return _POLICY_LOSSES.get(name)


def list_policy_losses() -> list[str]:
    """Registered policy-loss names, sorted."""
    return _POLICY_LOSSES.names()


register_policy_loss("ppo_clip", params=PPOClipParams)(ppo_clip_loss)
register_policy_loss(
    "simko",
    params=SimKOParams,
    needs=("topk_logp", "topk_old_logp", "entropy", "correct", "sampled_is_top1"),
)(simko_loss)

import passk.core.field_losses  # noqa: E402, F401  (registers gspo, cispo, sapo, clip_cov, kl_cov)
