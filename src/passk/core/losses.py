"""Per-token policy losses, KL / f-divergence estimators and chunked entropy.

Every loss has the family signature ::

    fn(logp[B, T], ..., mask[B, T], **params) -> (loss_mat[B, T], metrics)

``loss_mat`` is the per-token loss to *minimise*, exactly 0 where ``mask`` is
0; ``metrics`` maps namespaced keys (``actor/clip_frac``) to detached 0-d
tensors, averaged over the valid tokens of the call. Reduce ``loss_mat`` with
:func:`passk.core.aggregate.aggregate_loss`; since aggregation is linear,
terms compose by adding loss matrices before one aggregation::

    >>> import torch
    >>> from passk.core.aggregate import aggregate_loss
    >>> B, T = 2, 3
    >>> logp = torch.full((B, T), -1.0, requires_grad=True)
    >>> old = torch.full((B, T), -1.0)
    >>> adv, mask = torch.tensor([1.0, -1.0]), torch.ones(B, T, dtype=torch.bool)
    >>> pg, m = ppo_clip_loss(logp, old, adv, mask)
    >>> ent, _ = entropy_loss(torch.full((B, T), 2.0), mask)
    >>> kl, _ = kl_penalty_loss(logp, old, mask, kind="k3")
    >>> aggregate_loss(pg + 0.001 * ent + 0.001 * kl, mask, "token-mean")
    tensor(-0.0020, grad_fn=<DivBackward0>)

Masked entries of every input are replaced before any arithmetic, so NaN or
inf in padding reach neither ``loss_mat`` nor metrics nor gradients. Half-precision
inputs are computed (and returned) in float32; gradients flow back in their dtype.

Sign conventions: ``log_ratio = logp - old_logp`` (PPO ratio ``r = exp``) and
``logr = logp - ref_logp`` for KL penalties, i.e. log(pi_theta / pi_ref) at
tokens sampled from pi_theta.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# Log-ratios are clamped to +-_LOG_RATIO_CLAMP before exp(): e^20 ~ 5e8 is far beyond any
# clip range, and it keeps float32 (and bf16) finite; gradient is 0 beyond it.
_LOG_RATIO_CLAMP = 20.0

Metrics = dict[str, Tensor]


# ---------------------------------------------------------------------------------------------
# validation and masked helpers
# ---------------------------------------------------------------------------------------------


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


def _up(x: Tensor) -> Tensor:
    """Half precision -> float32 (a bf16 ratio moves in steps of 0.008 near 1); else as is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


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


def _check_eps(eps_low: float, eps_high: float, dual_clip: float | None) -> None:
    if not 0.0 <= eps_low < 1.0:
        raise ValueError(f"eps_low must be in [0, 1), got {eps_low!r}")
    if not eps_high >= 0.0:
        raise ValueError(f"eps_high must be >= 0, got {eps_high!r}")
    if dual_clip is not None and not dual_clip > 1.0:
        raise ValueError(f"dual_clip must be > 1 (e.g. 3.0) or None, got {dual_clip!r}")


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
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = None,
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
# KL penalty estimators
# ---------------------------------------------------------------------------------------------

KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")
_KL_ALIASES = {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}


def _resolve_kl_kind(kind: str) -> str:
    if kind in KL_ESTIMATORS:
        return kind
    resolved = _KL_ALIASES.get(kind)
    if resolved is None:
        valid = [*KL_ESTIMATORS, *_KL_ALIASES]
        raise ValueError(f"unknown KL estimator {kind!r}; valid: {', '.join(valid)}")
    return resolved


def kl_penalty(
    logp: Tensor,
    ref_logp: Tensor,
    kind: str = "k3",
    clamp: float | None = 10.0,
    *,
    mask: Tensor | None = None,
) -> Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) at tokens sampled from pi_theta.

    With ``logr = logp - ref_logp`` = log(pi_theta / pi_ref) (Schulman's k1-k3):

    - ``"k1"`` (alias ``"kl"``): ``logr``; unbiased, can be negative.
    - ``"k2"`` (alias ``"mse"``): ``0.5 logr^2``; biased, low variance, >= 0.
    - ``"k3"`` (alias ``"low_var_kl"``): ``exp(-logr) + logr - 1``; unbiased,
      >= 0 (the ``r - 1 - log r`` form with ``r = pi_ref / pi_theta``).

    ``logr`` is clamped to +-20 before ``exp`` and the estimate to
    ``[-clamp, clamp]`` (ProRL v2 / verl use 10; ``None`` disables); beyond the
    clamp the gradient is 0. With ``mask`` (``[B, T]``), masked entries are 0
    and garbage there cannot reach gradients.

        >>> import torch
        >>> logr = torch.tensor([0.0, 1.0, -1.0])
        >>> [kl_penalty(logr, torch.zeros(3), k) for k in ("k1", "k2", "k3")]
        [tensor([ 0.,  1., -1.]), tensor([0.0000, 0.5000, 0.5000]), tensor([0.0000, 0.3679, 0.7183])]
    """
    kind = _resolve_kl_kind(kind)
    if logp.shape != ref_logp.shape:
        raise ValueError(
            f"logp shape {tuple(logp.shape)} != ref_logp shape {tuple(ref_logp.shape)}"
        )
    if clamp is not None and not clamp > 0:
        raise ValueError(f"clamp must be > 0 or None, got {clamp!r}")
    if mask is not None:
        mask = _check_2d(mask, logp=logp)
        logp, ref_logp = _fill(logp, mask), _fill(ref_logp, mask)
    logr = _up(logp) - _up(ref_logp)
    if kind == "k1":
        kl = logr
    elif kind == "k2":
        kl = 0.5 * logr.square()
    else:
        lr = logr.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
        kl = torch.expm1(-lr) + lr  # expm1 keeps precision near logr = 0
    if clamp is not None:
        kl = kl.clamp(-clamp, clamp)
    return kl if mask is None else _fill(kl, mask)


def kl_penalty_loss(
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    *,
    kind: str = "k3",
    clamp: float | None = 10.0,
) -> tuple[Tensor, Metrics]:
    """:func:`kl_penalty` as a loss: ``(kl[B, T], {"actor/kl": token mean})``.

    Multiply by beta (ProRL: unpublished; verl default 0.001) before adding.
    """
    kl = kl_penalty(logp, ref_logp, kind, clamp, mask=mask)
    mask = _check_2d(mask)
    return kl, {"actor/kl": _masked_mean(kl, mask)}


# ---------------------------------------------------------------------------------------------
# Entropy (chunked, float32 inside, differentiable)
# ---------------------------------------------------------------------------------------------


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _chunk_log_softmax(
    chunk: Tensor, cdt: torch.dtype, temperature: float
) -> tuple[Tensor, Tensor]:
    """chunk: [n, V] logits -> (log_softmax [n, V], p [n, V]) in ``cdt``, two [n, V] buffers.

    -inf logits (masked vocabulary) are raised to the most negative finite value,
    so their ``p = 0`` times ``log p`` is 0 rather than NaN.
    """
    y = chunk.to(cdt, copy=True)  # copy: the in-place ops below must not touch the caller's
    if temperature != 1.0:
        y.div_(temperature)
    y.clamp_(min=torch.finfo(cdt).min)
    y.sub_(torch.logsumexp(y, dim=-1, keepdim=True))
    return y, y.exp()


class _ChunkedLogpEntropy(torch.autograd.Function):
    """Entropy (and optionally log-prob of given ids) of ``[N, V]`` logits, chunk by chunk.

    Saves only the logits (already alive in the caller) and recomputes the
    softmax chunk-wise in backward, so no ``[N, V]`` float32 intermediate is
    ever held, with or without grad; per chunk, about three ``[chunk, V]``
    buffers. Gradients: ``dH/dx_j = -p_j (log p_j + H)`` and
    ``dlogp_y/dx_j = 1[j = y] - p_j`` (times ``1 / temperature``).
    First-order only (no double backward).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        logits: Tensor,  # [N, V]
        ids: Tensor | None,  # [N] long
        chunk_size: int,
        temperature: float,
    ) -> tuple[Tensor, Tensor]:
        N = logits.shape[0]
        cdt = _compute_dtype(logits.dtype)
        ent = torch.empty(N, dtype=cdt, device=logits.device)
        logp = torch.empty(N if ids is not None else 0, dtype=cdt, device=logits.device)
        with torch.no_grad():
            for s in range(0, N, chunk_size):
                e = min(s + chunk_size, N)
                logq, p = _chunk_log_softmax(logits[s:e], cdt, temperature)
                if ids is not None:
                    logp[s:e] = logq.gather(-1, ids[s:e, None]).squeeze(-1)
                ent[s:e] = -logq.mul_(p).sum(dim=-1)  # in place: logq is not needed after
        ctx.save_for_backward(logits, ids, ent)
        ctx.chunk_size, ctx.temperature = chunk_size, temperature
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None
        if ids is None:
            ctx.mark_non_differentiable(logp)
        return logp, ent

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g_logp: Tensor | None, g_ent: Tensor | None
    ) -> tuple[Tensor | None, None, None, None]:
        logits, ids, ent = ctx.saved_tensors
        if ids is None:
            g_logp = None
        if not ctx.needs_input_grad[0] or (g_logp is None and g_ent is None):
            return None, None, None, None
        N = logits.shape[0]
        cdt = _compute_dtype(logits.dtype)
        grad = torch.empty_like(logits)
        for s in range(0, N, ctx.chunk_size):
            e = min(s + ctx.chunk_size, N)
            logq, p = _chunk_log_softmax(logits[s:e], cdt, ctx.temperature)
            gl = None if g_logp is None else g_logp[s:e, None].to(cdt)  # [n, 1]
            if g_ent is not None:
                ge = g_ent[s:e, None].to(cdt)  # [n, 1]
                g = logq.add_(ent[s:e, None]).mul_(p).mul_(-ge)  # -ge p (log p + H)
                if gl is not None:
                    g.addcmul_(p, gl, value=-1.0)
            else:
                g = p.mul_(-gl)
            if gl is not None:
                g.scatter_add_(-1, ids[s:e, None], gl)
            # Rows nobody differentiates (padding) may hold NaN logits: their gradient is 0.
            unused = (ge == 0) if g_ent is not None else None
            if gl is not None:
                unused = (gl == 0) if unused is None else unused & (gl == 0)
            g.masked_fill_(unused, 0.0)
            if ctx.temperature != 1.0:
                g.div_(ctx.temperature)
            grad[s:e] = g
        return grad, None, None, None


def _check_chunking(chunk_size: int, temperature: float) -> None:
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def entropy_from_logits(
    logits: Tensor, chunk_size: int = 512, *, temperature: float = 1.0
) -> Tensor:
    """Shannon entropy (nats) of ``softmax(logits / temperature)`` over the last dim.

    ``logits[..., V] -> entropy[...]``. The leading dims are flattened to rows
    and processed ``chunk_size`` rows at a time in float32 (float64 for
    float64 input) with logsumexp, so memory beyond the logits is
    ``O(chunk_size * V)`` in forward and backward. The result has the compute
    dtype (float32 for bf16/fp16 input); it is differentiable (first order).
    ``-inf`` logits (masked vocabulary) are allowed.

        >>> import torch
        >>> entropy_from_logits(torch.zeros(2, 4))  # uniform over 4 -> log 4
        tensor([1.3863, 1.3863])
    """
    _check_chunking(chunk_size, temperature)
    if logits.ndim < 1:
        raise ValueError("logits must have a vocabulary dim [..., V]")
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    _, ent = _ChunkedLogpEntropy.apply(flat, None, chunk_size, temperature)
    return ent.reshape(lead)


def logprobs_and_entropy(
    logits: Tensor,
    token_ids: Tensor,
    *,
    chunk_size: int = 512,
    temperature: float = 1.0,
    with_entropy: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Log-prob of ``token_ids`` and the entropy, from ``logits`` in one chunked pass.

    Args:
        logits: ``[B, T, V]`` (any leading shape ``[...]``; bf16 welcome) —
            already aligned with ``token_ids`` (i.e. shifted by the caller).
        token_ids: ``[B, T]`` long, values in ``[0, V)`` everywhere (pad with a
            valid id, not -100).
        chunk_size: rows of ``V`` processed at once.
        temperature: logits are divided by it (match the sampler).
        with_entropy: ``False`` returns ``(logp, None)``; the entropy is
            computed anyway but its backward is skipped.

    Returns ``(logp[B, T], entropy[B, T] | None)`` in the compute dtype
    (float32 for half inputs); both differentiable.

        >>> import torch
        >>> logp, ent = logprobs_and_entropy(torch.zeros(1, 2, 4), torch.tensor([[0, 3]]))
        >>> logp, ent
        (tensor([[-1.3863, -1.3863]]), tensor([[1.3863, 1.3863]]))
    """
    _check_chunking(chunk_size, temperature)
    if token_ids.shape != logits.shape[:-1]:
        raise ValueError(
            f"token_ids shape {tuple(token_ids.shape)} must equal logits.shape[:-1] "
            f"{tuple(logits.shape[:-1])}"
        )
    if token_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"token_ids must be an integer tensor, got {token_ids.dtype}")
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    ids = token_ids.reshape(-1).to(torch.int64)
    logp, ent = _ChunkedLogpEntropy.apply(flat, ids, chunk_size, temperature)
    return logp.reshape(lead), (ent.reshape(lead) if with_entropy else None)


def entropy_loss(entropy: Tensor, mask: Tensor) -> tuple[Tensor, Metrics]:
    """Entropy bonus as a loss: ``(-entropy[B, T] masked, {"actor/entropy": token mean})``.

    ``loss -= c * mean entropy`` is ``aggregate_loss(pg_mat + c * ent_mat, ...)``
    (Pass@k paper baselines: c = 0.001/0.003/0.005). Use the metric to report
    the policy entropy every step even with c = 0.
    """
    mask = _check_2d(mask, entropy=entropy)
    ent = _fill(entropy, mask)
    return -ent, {"actor/entropy": _masked_mean(ent, mask)}


# ---------------------------------------------------------------------------------------------
# SimKO
# ---------------------------------------------------------------------------------------------


def simko_entropy_weights(entropy: Tensor, mask: Tensor, tau: float = 0.8) -> Tensor:
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
    K: int | None = None,
    alpha: float = 0.01,
    tau: float = 0.8,
    lam: float = 1.1,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = None,
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
# DPH-RL f-divergence generators
# ---------------------------------------------------------------------------------------------

DPH_GENERATORS: tuple[str, ...] = ("forward_kl", "js", "alpha")
_LOG2 = math.log(2.0)


def dph_generator(log_u: Tensor, kind: str = "forward_kl", alpha: float = 0.2) -> Tensor:
    """Generator ``f(u)`` of an f-divergence, evaluated from ``log u`` (elementwise).

    All three are convex with ``f(1) = 0`` and ``f'(1) = 0``, hence ``f >= 0``
    with equality only at ``u = 1``:

    - ``"forward_kl"``: ``u - log u - 1``; with ``u = pi_theta / pi_ref`` on
      samples from pi_ref, ``E[f(u)] = KL(pi_ref || pi_theta)`` (mass-covering).
    - ``"js"``: ``u log u - (u + 1) log((u + 1) / 2)``; its f-divergence is
      twice the Jensen-Shannon divergence, so bounded by ``2 log 2``.
    - ``"alpha"``: ``(u^a - a u - (1 - a)) / (a (a - 1))`` (Amari alpha family,
      with the linear term that makes ``f'(1) = 0``); ``f''(u) = u^(a-2) > 0``.
      ``a -> 0`` gives ``forward_kl``, ``a -> 1`` gives ``u log u - u + 1``
      (reverse KL); those limits are used at ``a = 0`` and ``a = 1`` exactly.

        >>> import torch
        >>> lu = torch.log(torch.tensor([1.0, 2.0]))
        >>> dph_generator(lu, "forward_kl"), dph_generator(lu, "js")
        (tensor([0.0000, 0.3069]), tensor([0.0000, 0.1699]))
    """
    if kind not in DPH_GENERATORS:
        raise ValueError(f"unknown DPH generator {kind!r}; valid: {', '.join(DPH_GENERATORS)}")
    if kind == "forward_kl" or (kind == "alpha" and alpha == 0.0):
        return torch.expm1(log_u) - log_u
    u = torch.exp(log_u)
    if kind == "js":
        # f = u log(2u / (u + 1)) + log(2 / (u + 1)). Near u = 1 write t = (u - 1) / (u + 1)
        # = tanh(log u / 2): f = u log1p(t) + log1p(-t) keeps f ~ (u - 1)^2 / 4 free of
        # cancellation; elsewhere log(2 / (u + 1)) = log 2 - softplus(log u) is exact.
        t = torch.tanh(log_u.clamp(-1.0, 1.0) / 2)
        near = u * torch.log1p(t) + torch.log1p(-t)
        sp = torch.nn.functional.softplus(log_u)
        far = u * (log_u - sp + _LOG2) + (_LOG2 - sp)
        return torch.where(log_u.abs() < 1.0, near, far)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] for the alpha generator, got {alpha!r}")
    if alpha == 1.0:
        return u * log_u - torch.expm1(log_u)
    # (a (u - 1) - (u^a - 1)) / (a (1 - a)), expm1 for precision near u = 1.
    num = alpha * torch.expm1(log_u) - torch.expm1(alpha * log_u)
    return num / (alpha * (1.0 - alpha))


def dph_divergence_loss(
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    kind: str = "forward_kl",
    alpha: float = 0.2,
    *,
    log_u_clamp: float = _LOG_RATIO_CLAMP,
) -> tuple[Tensor, Metrics]:
    """DPH-RL (arXiv 2509.07430) divergence term on stored reference samples.

    ``loss_mat = f(u_t)`` with ``u_t = pi_theta(y_t) / pi_ref(y_t) =
    exp(logp - ref_logp)``, ``log u`` clamped to ``+-log_u_clamp``, ``f`` from
    :func:`dph_generator`. Multiply by eta (0.01-0.2) and aggregate
    (token-mean in the paper).

    Args:
        logp: ``[B, T]`` current log-probs of the stored reference samples.
        ref_logp: ``[B, T]`` their stored log pi_ref.
        mask: ``[B, T]``.
        kind: ``"forward_kl" | "js" | "alpha"``; alpha: for ``"alpha"``.

    Returns ``(loss_mat[B, T], {"dph/divergence", "dph/log_ratio_mean"})``.

        >>> import torch
        >>> loss, m = dph_divergence_loss(torch.tensor([[0.0, 0.0]]), torch.zeros(1, 2),
        ...                               torch.ones(1, 2), kind="alpha")
        >>> loss
        tensor([[0., 0.]])
    """
    if kind not in DPH_GENERATORS:
        raise ValueError(f"unknown DPH generator {kind!r}; valid: {', '.join(DPH_GENERATORS)}")
    if not log_u_clamp > 0:
        raise ValueError(f"log_u_clamp must be > 0, got {log_u_clamp!r}")
    mask = _check_2d(mask, logp=logp, ref_logp=ref_logp)
    log_u = (_fill(_up(logp), mask) - _fill(_up(ref_logp), mask)).clamp(-log_u_clamp, log_u_clamp)
    loss = _fill(dph_generator(log_u, kind, alpha), mask)
    return loss, {
        "dph/divergence": _masked_mean(loss, mask),
        "dph/log_ratio_mean": _masked_mean(log_u, mask),
    }


# ---------------------------------------------------------------------------------------------
# registry of policy losses (one family signature: fn(logp, old_logp, advantages, mask, **kw))
# ---------------------------------------------------------------------------------------------

PolicyLossFn = Callable[..., tuple[Tensor, Metrics]]


@dataclass(frozen=True)
class PolicyLossSpec:
    """A registered policy loss and the extra keyword inputs the trainer must supply."""

    name: str
    fn: PolicyLossFn
    needs: frozenset[str] = frozenset()


_POLICY_LOSSES: dict[str, PolicyLossSpec] = {}


def register_policy_loss(
    name: str, needs: tuple[str, ...] = ()
) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Register ``fn(logp, old_logp, advantages, mask, **kw)`` under ``name``.

    ``needs`` names the extra keyword tensors (e.g. ``"entropy"``) the caller
    must pass. Registering a different function under a taken name is an error.
    """

    def deco(fn: PolicyLossFn) -> PolicyLossFn:
        old = _POLICY_LOSSES.get(name)
        if old is not None and old.fn is not fn:
            raise ValueError(f"policy loss {name!r} is already registered")
        _POLICY_LOSSES[name] = PolicyLossSpec(name, fn, frozenset(needs))
        return fn

    return deco


def get_policy_loss(name: str) -> PolicyLossSpec:
    """The spec registered as ``name``.

    >>> get_policy_loss("simko").needs >= {"entropy", "topk_logp"}
    True
    """
    try:
        return _POLICY_LOSSES[name]
    except KeyError:
        raise ValueError(
            f"unknown policy loss {name!r}; valid: {', '.join(sorted(_POLICY_LOSSES))}"
        ) from None


def list_policy_losses() -> list[str]:
    """Registered policy-loss names, sorted."""
    return sorted(_POLICY_LOSSES)


register_policy_loss("ppo_clip")(ppo_clip_loss)
register_policy_loss(
    "simko",
    needs=("topk_logp", "topk_old_logp", "entropy", "correct", "sampled_is_top1"),
)(simko_loss)
