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


def can_merge(cache: Any, *, warn: bool = True) -> bool:
    """Whether :func:`merge`, :class:`Slots` and column trimming work on ``cache`` (else:
    static batches).

    Warns once per reason when the answer is no, unless ``warn`` is False.
    """
    if not warn:
        return version_supported() and _layers(cache) is not None
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


_SLOT_LAYER: type | None = None


def _slot_layer_class() -> type:
    """The layer class of :class:`Slots`, built on first use as a subclass of the installed
    transformers' ``DynamicLayer`` (importing this module does not import transformers)."""
    global _SLOT_LAYER
    if _SLOT_LAYER is not None:
        return _SLOT_LAYER
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):
        """One layer of a :class:`Slots` cache: ``keys``/``values`` are the views
        ``buf[:rows, :, start:end]`` of buffers ``[R, H, C, D]``; ``update`` writes the new
        positions in place (where ``DynamicLayer`` concatenates, a copy of the whole layer
        per decoding step) and asks its :class:`Slots` for room when the columns run out.
        The written columns become live when the sampler calls :meth:`Slots.advance`."""

        def __init__(self, owner: Slots, keys: Tensor, values: Tensor) -> None:
            super().__init__()
            self.owner, self.kbuf, self.vbuf = owner, keys, values
            self.device = keys.device
            self.is_initialized = True
            self.view()

        def view(self) -> None:
            o = self.owner
            self.keys = self.kbuf[: o.rows, :, o.start : o.end]
            self.values = self.vbuf[: o.rows, :, o.start : o.end]

        def update(
            self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any
        ) -> tuple[Tensor, Tensor]:
            o, n = self.owner, key_states.shape[-2]
            if key_states.shape[0] != o.rows:
                raise ValueError(f"{key_states.shape[0]} rows of keys for {o.rows} live slots")
            if o.end + n > self.kbuf.shape[2]:
                o.make_room(n)
            self.kbuf[: o.rows, :, o.end : o.end + n] = key_states
            self.vbuf[: o.rows, :, o.end : o.end + n] = value_states
            o.written = n
            # the live columns plus the new ones; ``Slots.advance`` makes them live
            return (
                self.kbuf[: o.rows, :, o.start : o.end + n],
                self.vbuf[: o.rows, :, o.start : o.end + n],
            )

    _SLOT_LAYER = SlotLayer
    return SlotLayer


def _pair(like: Tensor, rows: int, columns: int) -> tuple[Tensor, Tensor]:
    """Zeroed key and value buffers ``[rows, H, columns, D]`` shaped like ``like``, in one
    allocation: twice the size, so that a large cache's buffers are above the C allocator's
    mmap threshold and go back to the system when freed, instead of fragmenting its heap."""
    _, H, _, D = like.shape
    k, v = like.new_zeros(2, rows, H, columns, D).unbind(0)
    return k, v


class Slots:
    """A KV cache for continuous batching that writes in place instead of reallocating.

    ``DynamicCache`` grows every layer by concatenation, a copy of the whole cache per
    decoding step, and continuous batching adds a gather per departure and a merge per
    refill: a stream of allocations of slowly changing sizes that the C allocator does
    not give back, so a long stream's memory climbs. Here every layer's keys and values
    live in buffers ``[R, H, C, D]`` (R = the most rows the batch holds) allocated once
    and grown rarely: live rows are ``[0, rows)``, live columns ``[start, end)``.

    - a decoding step writes one column in place (:meth:`advance` after the forward);
    - a departure moves the last live rows into the freed slots (a copy of as many rows as
      departed, not of the cache) and returns the new row order for the caller's own
      per-row tensors;
    - cutting columns no live row attends to moves ``start``: free;
    - a refill copies the new rows' pre-filled keys into free slots, right-aligned to the
      live columns; the columns of a row left of its own prompt hold stale finite values
      under mask 0, which attention weighs by exactly 0;
    - when the columns run out, the live block moves to column 0 or, when that leaves
      fewer than ``slack`` free, into wider buffers (``C`` grows by a quarter at least).

    ``limit``, when given, is the widest the live block can become (the sampler's longest
    prompt plus ``max_new_tokens``): the buffers then never grow past ``limit + slack``.
    ``cache`` (the ``DynamicCache`` handed to the model) keeps the object identity; its
    layers are replaced by slot layers. Only caches :func:`can_merge` accepts are taken.
    """

    def __init__(
        self, cache: Any, capacity: int, *, slack: int = 16, limit: int | None = None
    ) -> None:
        layers = _layers(cache)
        if layers is None:
            raise ValueError(f"cannot take over a {type(cache).__name__} (see can_merge)")
        if capacity < 1 or slack < 1:
            raise ValueError(f"capacity and slack must be >= 1, got {capacity}, {slack}")
        self.cache, self.capacity, self.slack, self.limit = cache, capacity, slack, limit
        self.rows = self.start = self.end = self.written = 0
        cls = _slot_layer_class()
        self.layers: list[Any] = []
        for layer in layers:
            B, _, W, _ = layer.keys.shape
            if capacity < B:
                raise ValueError(f"{B} rows do not fit {capacity} slots")
            k, v = _pair(layer.keys, capacity, W + slack)
            self.layers.append(cls(self, k, v))
        self.cache.layers = list(self.layers)
        # the filled rows become slots [0, B), columns [0, W)
        self.start, self.end = 0, W
        self._write_rows(layers, B, W)

    @property
    def columns(self) -> int:
        """Column capacity ``C`` of the buffers."""
        return int(self.layers[0].kbuf.shape[2])

    def width(self) -> int:
        """Live columns, ``end - start``."""
        return self.end - self.start

    def _move(self, end: int, columns: int, capacity: int | None = None) -> None:
        """Move the live block to columns ``[end - width, end)`` of buffers ``columns`` wide
        (and ``capacity`` rows: default, as many as now)."""
        w, s0, e0 = self.width(), self.start, self.end
        self.start, self.end = end - w, end
        capacity = self.capacity if capacity is None else capacity
        self.capacity = capacity
        A = self.rows
        for layer in self.layers:
            old = (layer.kbuf, layer.vbuf)
            if columns != old[0].shape[2] or capacity != old[0].shape[0]:
                new = _pair(old[0], capacity, columns)
                for o, n in zip(old, new):
                    n[:A, :, end - w : end] = o[:A, :, s0:e0]
                layer.kbuf, layer.vbuf = new
            elif end != e0:
                for buf in old:  # in place, in chunks no wider than the shift: no overlap
                    step = abs(end - e0)
                    starts = range(0, w, step) if end < e0 else reversed(range(0, w, step))
                    for j in starts:
                        c = min(step, w - j)
                        buf[:A, :, end - w + j : end - w + j + c] = buf[:A, :, s0 + j : s0 + j + c]
            del old
            # its views were the last hold on the old buffers: one layer's old and new
            # buffers are alive at once, not the whole cache twice over
            layer.view()

    def make_room(self, n: int) -> None:
        """At least ``n`` free columns after ``end``: move to column 0, or widen."""
        w, C = self.width(), self.columns
        need = w + n + self.slack
        if need <= C:
            self._move(w, C)
        elif self.limit is None:
            self._move(w, max(need, C + C // 4))
        else:  # never wider than the widest live block can be, plus the slack
            self._move(w, max(need, min(C + C // 4, self.limit + self.slack)))

    def shrink(self) -> None:
        """Buffers of as many rows as are live: for a batch that only drains from now on,
        so that its memory falls with its rows as a concatenating cache's does."""
        if self.rows < self.capacity:
            self._move(self.end, self.columns, max(self.rows, 1))

    def advance(self) -> None:
        """Make the columns the model's last forward wrote live (call after each forward)."""
        self.end += self.written
        self.written = 0
        for layer in self.layers:
            layer.view()

    def cut(self, columns: int) -> None:
        """Drop the first ``columns`` live columns (no live row attends to them)."""
        if not 0 <= columns <= self.width():
            raise ValueError(f"cannot cut {columns} of {self.width()} columns")
        self.start += columns
        for layer in self.layers:
            layer.view()

    def drop(self, keep: Tensor) -> Tensor:
        """Free the slots of rows where ``keep`` ``[rows]`` is False.

        Returns ``order`` ``[kept]``: new row ``i`` holds what was row ``order[i]``; index
        the caller's per-row tensors with it. The last kept rows move into the freed
        slots below them; the others stay where they are.
        """
        keep = keep.to("cpu", torch.bool)
        if keep.shape != (self.rows,):
            raise ValueError(f"keep has shape {tuple(keep.shape)}, want ({self.rows},)")
        a = int(keep.sum())
        order = torch.arange(a)
        holes = (~keep[:a]).nonzero().squeeze(1)  # freed slots that stay live
        movers = a + keep[a:].nonzero().squeeze(1)  # kept rows beyond the new end
        if len(holes):
            order[holes] = movers
            device = self.layers[0].kbuf.device
            h, m = holes.to(device), movers.to(device)
            s, e = self.start, self.end
            for layer in self.layers:
                layer.kbuf[h, :, s:e] = layer.kbuf[m, :, s:e]
                layer.vbuf[h, :, s:e] = layer.vbuf[m, :, s:e]
        self.rows = a
        for layer in self.layers:
            layer.view()
        return order

    def admit(self, new: Any, live_mask: Tensor | None, new_mask: Tensor) -> Tensor:
        """Copy the rows of the filled cache ``new`` into free slots under the live ones.

        ``live_mask`` ``[rows, width]`` (None when no row is live) and ``new_mask``
        ``[B, W]`` are the attention masks; returns the mask of all rows, ``[rows + B, L]``
        with L the wider of the two (after cutting the leading columns that are 0 in every
        new row). ``new`` is spent.
        """
        layers = _layers(new)
        if layers is None or len(layers) != len(self.layers):
            raise ValueError(f"cannot admit the rows of a {type(new).__name__}")
        if self.rows == 0:
            self.start = self.end  # nothing live: no column to keep
        if live_mask is None:
            live_mask = new_mask.new_zeros(self.rows, self.width())
        if live_mask.shape != (self.rows, self.width()):
            raise ValueError(
                f"live mask {tuple(live_mask.shape)} for {self.rows} rows x {self.width()} columns"
            )
        dead = leading_dead_columns(new_mask)
        new_mask = new_mask[:, dead:]
        B, W = new_mask.shape
        if self.rows + B > self.capacity:
            raise ValueError(f"{self.rows} + {B} rows do not fit {self.capacity} slots")
        L = max(self.width(), W)
        if self.end < L or self.end + 1 > self.columns:  # room left of end, and one column
            self._move(L, max(self.columns, L + self.slack))
        if self.start > self.end - L:
            self.start = self.end - L
        self._write_rows(layers, B, W, skip=dead)
        w = self.width()
        return torch.cat(
            [
                torch.cat(
                    [live_mask.new_zeros(live_mask.shape[0], w - live_mask.shape[1]), live_mask], 1
                ),
                torch.cat([new_mask.new_zeros(B, w - W), new_mask], 1),
            ]
        )

    def _write_rows(self, layers: list[Any], B: int, W: int, *, skip: int = 0) -> None:
        """Write ``B`` rows of ``layers``' keys/values (from column ``skip``, ``W`` wide) into
        slots ``[rows, rows + B)``, ending at column ``end``; frees them from ``layers``."""
        r, e = self.rows, self.end
        for slot, layer in zip(self.layers, layers):
            slot.kbuf[r : r + B, :, e - W : e] = layer.keys[:, :, skip:]
            slot.vbuf[r : r + B, :, e - W : e] = layer.values[:, :, skip:]
            layer.keys = layer.values = None
        self.rows += B
        for slot in self.layers:
            slot.view()


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
    "Slots",
    "cache_kwargs",
    "can_merge",
    "leading_dead_columns",
    "merge",
    "new_cache",
    "select_rows",
    "version_supported",
    "width",
]
