"""Chunked log-probs and entropy from logits, and the entropy bonus as a loss.

One kernel (:class:`_ChunkedLogpEntropy`) computes, from ``[N, V]`` logits, the entropy
and optionally the log-prob of given token ids, chunk by chunk in float32 (float64 for
float64 input), so no ``[N, V]`` float32 intermediate is ever held, in forward or backward.
:func:`logprobs_and_entropy` and :func:`entropy_from_logits` are its two doors;
:func:`entropy_loss` turns a ``[B, T]`` entropy into a per-token loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from passk.core._masked import Metrics, _check_2d, _compute_dtype, _fill, _masked_mean

__all__ = ["entropy_from_logits", "entropy_loss", "logprobs_and_entropy"]


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
