"""The one door to transformers' KV cache: make one, pass it, select, trim and merge rows.

Continuous batching needs to drop rows from a cache, cut columns that no live row
attends to, and stack two caches of different widths. transformers has a public call for
the first (``Cache.batch_select_indices``) but none for the other two, so this module
also reads and writes the per-layer ``keys``/``values`` tensors (``[B, H, S, D]``) of
plain ``DynamicLayer`` caches. That layout is checked before use
(:func:`can_merge`); any other cache (sliding-window, quantised, offloaded, an untested
transformers version) is only filled by the model and row-selected, and the sampler
falls back to static batches, saying so once.

Written for transformers ``TRANSFORMERS_MIN <= version < TRANSFORMERS_BELOW`` and
tested with 5.24. From 5.x the model takes the cache as ``cache=`` (``past_key_values=``
is deprecated, to be removed in 5.40); :func:`cache_kwargs` passes it under the name the
model's ``forward`` declares, and the model updates the cache object in place, so its
output's cache attribute is never read.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
from torch import Tensor

TRANSFORMERS_MIN = (4, 56)
"""First version whose ``DynamicCache`` holds a list of ``DynamicLayer`` (``.layers``)."""
TRANSFORMERS_BELOW = (5, 40)
"""First version not known to work: ``past_key_values=`` goes and the layout may change."""

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _version_tuple(version: str) -> tuple[int, int]:
    """``"5.24.0.dev0"`` -> ``(5, 24)``.

    >>> _version_tuple("5.24.0"), _version_tuple("4.56.0.dev0")
    ((5, 24), (4, 56))
    """
    major, minor = [*version.split("."), "0"][:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def version_supported(version: str | None = None) -> bool:
    """Whether ``version`` (default: the installed transformers) is in the range written for.

    >>> version_supported("5.24.0"), version_supported("4.55.2"), version_supported("5.40.0")
    (True, False, False)
    """
    if version is None:
        import transformers

        version = transformers.__version__
    return TRANSFORMERS_MIN <= _version_tuple(version) < TRANSFORMERS_BELOW


def new_cache(model: Any) -> Any:
    """An empty :class:`DynamicCache` for ``model``, laid out from its config."""
    from transformers import DynamicCache

    config = getattr(model, "config", None)
    try:
        return DynamicCache(config=config) if config is not None else DynamicCache()
    except TypeError:  # a version whose DynamicCache takes no config
        return DynamicCache()


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """``{"cache": cache, "use_cache": True}``, or ``past_key_values=`` where the model's
    ``forward`` has no ``cache`` parameter (transformers before 5). A wrapper whose own
    ``forward`` takes ``**kwargs`` (a peft model) is asked about the model it wraps."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(target.forward).parameters
    except (TypeError, ValueError):
        params = {}
    name = "cache" if "cache" in params else "past_key_values"
    return {name: cache, "use_cache": True}


def _layers(cache: Any) -> list[Any] | None:
    """The ``DynamicLayer``s of a plain, filled dynamic cache, or None for anything else."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or getattr(cache, "offloading", False):
        return None
    for layer in layers:
        # exactly DynamicLayer: subclasses (sliding window, quantised) keep other state
        if type(layer) is not DynamicLayer:
            return None
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if not isinstance(keys, Tensor) or not isinstance(values, Tensor) or keys.dim() != 4:
            return None
    return list(layers)


def can_merge(cache: Any) -> bool:
    """Whether :func:`merge` and column trimming work on ``cache`` (else: static batches).

    Warns once per reason when the answer is no.
    """
    if not version_supported():
        import transformers

        _warn_once(
            "version",
            f"passk.rollout.kv_cache was written for transformers >= "
            f"{'.'.join(map(str, TRANSFORMERS_MIN))}, < {'.'.join(map(str, TRANSFORMERS_BELOW))}; "
            f"transformers {transformers.__version__} is installed, so sampling falls back "
            "to static batches (slower, same samples)",
        )
        return False
    if _layers(cache) is None:
        _warn_once(
            f"type:{type(cache).__name__}",
            f"the model's KV cache ({type(cache).__name__}) is not a plain DynamicCache; "
            "sampling falls back to static batches (slower, same samples)",
        )
        return False
    return True


def select_rows(cache: Any, index: Tensor, *, drop_columns: int = 0) -> Any:
    """Keep rows ``index`` ``[A']`` of ``cache`` (in place), and drop its first
    ``drop_columns`` positions when it is mergeable. Returns the cache."""
    layers = _layers(cache) if drop_columns else None
    if layers is None:
        if drop_columns:
            raise ValueError(f"cannot drop {drop_columns} columns of a {type(cache).__name__}")
        cache.batch_select_indices(index)
        return cache
    for layer in layers:  # one gather per tensor: [A, H, S, D] -> [A', H, S - c, D]
        layer.keys = layer.keys[index, :, drop_columns:]
        layer.values = layer.values[index, :, drop_columns:]
    return cache


def width(cache: Any) -> int:
    """Positions held per row (the cache's sequence length)."""
    return int(cache.get_seq_length())


def merge(a: Any, mask_a: Tensor, b: Any, mask_b: Tensor) -> tuple[Any, Tensor]:
    """Stack ``b``'s rows under ``a``'s: ``a``, grown in place, and the mask ``[A + B', L]``.

    Leading columns masked in every row of ``a`` (or of ``b``) are dropped, then the
    narrower one is left-padded with zero keys/values at mask 0, which attention
    ignores; position ids are per row, so padding does not shift RoPE. Both caches must
    pass :func:`can_merge`. Layer by layer, so only one layer's old tensors are alive
    next to the new ones (building a fresh ``DynamicCache(ddp_cache_data=...)`` would
    hold the whole cache three times over).
    """
    la, lb = _layers(a), _layers(b)
    if la is None or lb is None or len(la) != len(lb):
        raise ValueError(f"cannot merge a {type(a).__name__} with a {type(b).__name__}")
    # columns masked in every row of a part are cut on the way (the copy is made anyway)
    da, db = leading_dead_columns(mask_a), leading_dead_columns(mask_b)
    mask_a, mask_b = mask_a[:, da:], mask_b[:, db:]
    wa, wb = mask_a.shape[1], mask_b.shape[1]
    L = max(wa, wb)

    def pad(x: Tensor, dead: int, by: int) -> Tensor:  # [B, H, S, D] -> [B, H, S - dead + by, D]
        x = x[:, :, dead:]
        return x if by == 0 else torch.cat([x.new_zeros(*x.shape[:2], by, x.shape[3]), x], dim=2)

    for x, y in zip(la, lb):
        x.keys = torch.cat([pad(x.keys, da, L - wa), pad(y.keys, db, L - wb)])
        x.values = torch.cat([pad(x.values, da, L - wa), pad(y.values, db, L - wb)])
        y.keys = y.values = None  # ``b`` is spent: free its memory as we go
    mask = torch.cat(
        [
            torch.cat([mask_a.new_zeros(mask_a.shape[0], L - wa), mask_a], dim=1),
            torch.cat([mask_b.new_zeros(mask_b.shape[0], L - wb), mask_b], dim=1),
        ]
    )
    return a, mask


def leading_dead_columns(mask: Tensor) -> int:
    """Leading columns of ``mask`` ``[A, L]`` that are 0 in every row.

    >>> leading_dead_columns(torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]]))
    1
    """
    alive = mask.any(0)  # [L]
    return int(alive.float().argmax()) if alive.any() else mask.shape[1]


__all__ = [
    "TRANSFORMERS_BELOW",
    "TRANSFORMERS_MIN",
    "cache_kwargs",
    "can_merge",
    "leading_dead_columns",
    "merge",
    "new_cache",
    "select_rows",
    "version_supported",
    "width",
]
