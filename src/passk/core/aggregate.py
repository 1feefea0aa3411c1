"""Aggregate a per-token loss matrix into a scalar with an explicit normaliser.

Every mode is a ratio ``numerator(loss_mat, mask) / normaliser(mask)`` whose
numerator is a *sum over sequences* (so it adds up across micro-batches) and
whose normaliser depends only on the whole mini-batch mask. A caller that
splits a mini-batch into micro-batches computes the normaliser once with
:func:`global_normalizer` on the full mask, passes it to every
:func:`aggregate_loss` call, and sums (or back-propagates each part, which
accumulates gradients): the result and the gradients equal the full-batch ones
exactly, up to float rounding. This is the fix for the bug where each
micro-batch is averaged on its own and the averages are averaged again
(verl#7200).

Modes (``m`` the 0/1 mask, ``L`` the loss matrix, ``S`` the sequences with at
least one valid token):

- ``"token-mean"`` (DAPO default): ``sum(m L) / sum(m)``.
- ``"seq-mean-token-mean"`` (GRPO): ``sum_{i in S} (sum_t m L / sum_t m) / |S|``.
- ``"seq-mean-token-sum"``: ``sum(m L) / |S|``.
- ``"seq-mean-token-sum-norm"`` (Dr.GRPO): each sequence's token sum divided by
  a constant ``max_len`` (default: the padded length ``T`` of the mask given to
  :func:`global_normalizer`), then the mean over sequences:
  ``sum(m L) / (|S| * max_len)``.
- ``"constant"`` (DARS and any fixed normaliser): ``sum(m L) / normalizer``;
  the normaliser must be given (e.g. the max response length).

Sequences without any valid token are not counted in ``|S|``: they are
padding, and counting them would make the loss depend on how much padding a
batch carries. All-masked inputs give 0, never NaN.

With data parallelism over W ranks whose gradients are *averaged*, compute the
normaliser over the global batch (all-reduce the sum of the per-rank values)
and multiply the per-rank loss by W.

The micro-batch pattern::

    >>> import torch
    >>> loss = torch.tensor([[1.0, 2.0, 9.0], [3.0, 9.0, 9.0], [4.0, 5.0, 6.0]])
    >>> mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    >>> full = aggregate_loss(loss, mask, "token-mean")  # (1+2+3+4+5+6) / 6
    >>> full
    tensor(3.5000)
    >>> norm = global_normalizer(mask, "token-mean")  # once, on the whole mini-batch
    >>> parts = [aggregate_loss(loss[s], mask[s], "token-mean", normalizer=norm)
    ...          for s in (slice(0, 1), slice(1, 3))]
    >>> torch.allclose(sum(parts), full)
    True
    >>> aggregate_loss(loss, mask, "seq-mean-token-mean")  # (1.5 + 3 + 5) / 3
    tensor(3.1667)
"""

from __future__ import annotations

import torch
from torch import Tensor

AGGREGATION_MODES: tuple[str, ...] = (
    "token-mean",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
    "constant",
)


def _check_mode(mode: str) -> None:
    if mode not in AGGREGATION_MODES:
        raise ValueError(
            f"unknown aggregation mode {mode!r}; valid: {', '.join(AGGREGATION_MODES)}"
        )


def _as_bool_mask(mask: Tensor, shape: torch.Size | None = None) -> Tensor:
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [B, T], got shape {tuple(mask.shape)}")
    if shape is not None and mask.shape != shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match loss_mat shape {tuple(shape)}"
        )
    return mask if mask.dtype == torch.bool else mask != 0


def global_normalizer(
    mask: Tensor,
    mode: str,
    *,
    max_len: int | None = None,
    constant: float | None = None,
) -> Tensor:
    """The denominator of ``mode`` for the whole mini-batch ``mask`` (0-d float tensor).

    Args:
        mask: ``[B, T]`` 0/1 or bool response mask of the *full* mini-batch.
        mode: one of :data:`AGGREGATION_MODES`.
        max_len: ``"seq-mean-token-sum-norm"`` only: the per-sequence constant
            (default ``T``, the padded length of ``mask``).
        constant: ``"constant"`` only, required: the fixed normaliser.

    Returns a tensor on ``mask``'s device (no host sync), so it can be
    all-reduced across ranks before use.

        >>> import torch
        >>> m = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0]])
        >>> [global_normalizer(m, md).item() for md in ("token-mean", "seq-mean-token-sum")]
        [3.0, 2.0]
        >>> global_normalizer(m, "seq-mean-token-sum-norm", max_len=8).item()
        16.0
    """
    _check_mode(mode)
    mask = _as_bool_mask(mask)
    if mode == "constant":
        if constant is None:
            raise ValueError("mode 'constant' needs constant=<positive number>, got None")
        if not constant > 0:
            raise ValueError(f"constant must be > 0, got {constant!r}")
        return torch.tensor(float(constant), device=mask.device)
    if mode == "token-mean":
        return mask.sum().to(torch.float32)
    n_seq = mask.any(dim=-1).sum().to(torch.float32)
    if mode == "seq-mean-token-sum-norm":
        length = mask.shape[-1] if max_len is None else max_len
        if not length > 0:
            raise ValueError(f"max_len must be > 0, got {max_len!r}")
        return n_seq * float(length)
    return n_seq  # seq-mean-token-mean, seq-mean-token-sum


def aggregate_numerator(loss_mat: Tensor, mask: Tensor, mode: str) -> Tensor:
    """The additive part of ``mode``: a sum over sequences, so micro-batch parts add up.

    ``loss_mat`` is ``[B, T]``; the result is float32 for half inputs (float64
    stays float64). Masked entries are replaced by 0 with
    ``torch.where`` (not multiplied), so NaN/inf there reach neither the value
    nor the gradient.

        >>> import torch
        >>> L = torch.tensor([[1.0, float("nan")], [2.0, 4.0]])
        >>> m = torch.tensor([[True, False], [True, True]])
        >>> aggregate_numerator(L, m, "token-mean"), aggregate_numerator(L, m, "seq-mean-token-mean")
        (tensor(7.), tensor(4.))
    """
    _check_mode(mode)
    if loss_mat.ndim != 2:
        raise ValueError(f"loss_mat must be 2-D [B, T], got shape {tuple(loss_mat.shape)}")
    mask = _as_bool_mask(mask, loss_mat.shape)
    # Sums in float32 at least: bf16 cannot even count past 256 exactly.
    dtype = torch.promote_types(loss_mat.dtype, torch.float32)
    masked = torch.where(mask, loss_mat, torch.zeros((), dtype=loss_mat.dtype)).to(dtype)  # [B, T]
    if mode == "seq-mean-token-mean":
        n_tok = mask.sum(dim=-1).clamp(min=1).to(dtype)  # [B]
        return (masked.sum(dim=-1) / n_tok).sum()
    return masked.sum()


def aggregate_loss(
    loss_mat: Tensor,
    mask: Tensor,
    mode: str = "token-mean",
    normalizer: float | Tensor | None = None,
    *,
    max_len: int | None = None,
) -> Tensor:
    """Reduce ``loss_mat[B, T]`` over ``mask[B, T]`` to a scalar.

    Args:
        loss_mat: ``[B, T]`` per-token loss (any float dtype; differentiable).
        mask: ``[B, T]`` 0/1 or bool; 0 marks padding / prompt tokens.
        mode: one of :data:`AGGREGATION_MODES` (see the module docstring).
        normalizer: the denominator. ``None`` computes it from this ``mask``
            (the full-batch value; ``"constant"`` then raises because it has no
            default). Pass :func:`global_normalizer` of the whole mini-batch
            when ``loss_mat`` is one micro-batch of it.
        max_len: ``"seq-mean-token-sum-norm"`` with ``normalizer=None`` only.

    A zero normaliser (nothing valid) gives 0, not NaN. The result is float32
    for half-precision ``loss_mat`` (float64 stays float64).

        >>> import torch
        >>> L, m = torch.ones(2, 4), torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
        >>> aggregate_loss(L, m, "token-mean"), aggregate_loss(L, m, "seq-mean-token-sum")
        (tensor(1.), tensor(2.))
        >>> aggregate_loss(L, m, "constant", normalizer=8.0)
        tensor(0.5000)
    """
    num = aggregate_numerator(loss_mat, mask, mode)
    if normalizer is None:
        if mode == "constant":
            raise ValueError(
                "mode 'constant' needs an explicit normalizer (e.g. the max response length)"
            )
        normalizer = global_normalizer(mask, mode, max_len=max_len)
    if isinstance(normalizer, Tensor):
        if normalizer.numel() != 1:
            raise ValueError(f"normalizer must be a scalar, got shape {tuple(normalizer.shape)}")
        norm = normalizer.reshape(()).to(device=num.device, dtype=num.dtype)
        # Guard 0 without a host sync; a zero normaliser only occurs when num is 0 too.
        return num / torch.where(norm > 0, norm, torch.ones_like(norm))
    if not normalizer >= 0:
        raise ValueError(f"normalizer must be >= 0, got {normalizer!r}")
    return num / (normalizer if normalizer > 0 else 1.0)


def response_token_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Token mean of ``values[B, T]`` over each response's valid tokens -> ``[B]`` (0 if none).

    The one per-response mean of the library (sequence log-prob, response entropy, ...):
    masked entries are replaced, not multiplied, so NaN or inf in padding never leak in.

    >>> response_token_mean(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1, 1, 0]]))
    tensor([2.])
    >>> response_token_mean(torch.tensor([[float("nan"), 4.0]]), torch.tensor([[0, 1]]))
    tensor([4.])
    """
    m = mask.to(torch.bool)
    total = torch.where(m, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return total.sum(-1) / m.sum(-1).clamp(min=1).to(values.dtype)
