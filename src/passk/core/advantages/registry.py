"""The advantage-estimator registry: specs, the one validating door, eta curves.

Every estimator has the same signature and is registered by its family module::

    @register_estimator("name", params=NameParams)
    def name_advantage(rewards, mask, p: NameParams) -> Tensor: ...

``rewards`` is ``[G, N]`` (G groups of N responses to one prompt each); ``mask`` marks the
valid responses of ragged groups. :func:`compute_advantages` validates the input once,
computes in float64, zeroes masked entries and casts back, so an estimator body only does
the math: it receives float64 rewards whose masked entries are already 0 and a full
boolean mask.

This module sits below the families (:mod:`.passk_family`, :mod:`.maxk`, :mod:`.mixtures`,
:mod:`.baselines`); it imports none of them. The package ``__init__`` imports them all, so
``import passk.core.advantages`` registers every built-in estimator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from passk.core.registry import Registry

__all__ = [
    "ESTIMATORS",
    "RESPONSE_NEEDS",
    "EstimatorSpec",
    "compute_advantages",
    "eta_curve",
    "get_estimator",
    "list_estimators",
    "register_estimator",
]

#: The ``needs`` a caller can build from per-response values (each response's token mean),
#: and how: ``entropy`` becomes the group mean ``[G]``, ``seq_logp`` stays per response
#: ``[G, N]``. The trainer, the verl adapter and the TRL trainer all build them with
#: :meth:`EstimatorSpec.needs_from_responses`.
RESPONSE_NEEDS: dict[str, str] = {"entropy": "group mean", "seq_logp": "per response"}


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

    An estimator built from other estimators (``combine``, ``gated``) takes its needs,
    randomness and reward domain from the ones it is given: its ``refine`` maps the raw
    parameters to those fields, and :meth:`for_params` returns the spec as it applies to
    them. Callers that supply needs or seeds ask ``spec.for_params(params)``.
    """

    name: str
    fn: Callable[[Tensor, Tensor, Any], Tensor]
    params: type
    binary_only: bool = False
    needs: frozenset[str] = frozenset()
    stochastic: bool = False
    native_dtype: bool = False
    doc: str = ""
    refine: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None

    def for_params(self, params: Mapping[str, Any]) -> EstimatorSpec:
        """The spec as it applies to ``params``: itself, or for an estimator built from
        others, a copy whose ``needs``, ``stochastic`` and ``binary_only`` are those its
        parts give it (the static ones of the registered spec, plus theirs). Bad parts
        raise ``ValueError`` naming them."""
        if self.refine is None:
            return self
        fields = dict(self.refine(params))
        unknown = sorted(set(fields) - {"needs", "stochastic", "binary_only"})
        if unknown:
            raise TypeError(f"refine of {self.name!r} returned unknown field(s) {unknown}")
        return dataclasses.replace(
            self,
            refine=None,
            needs=self.needs | frozenset(fields.get("needs", ())),
            stochastic=self.stochastic or bool(fields.get("stochastic", False)),
            binary_only=self.binary_only or bool(fields.get("binary_only", False)),
        )

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
        needs = self.for_params(params).needs
        missing = sorted(n for n in needs if params.get(n) is None)
        if missing:
            raise ValueError(f"estimator {self.name!r} needs parameter(s) {missing}")
        return self.params(**params)

    @property
    def takes_seed(self) -> bool:
        """Whether the estimator draws random numbers from its ``seed`` parameter (callers
        pass a fresh seed per step; a deterministic estimator takes none)."""
        return self.stochastic and any(f.name == "seed" for f in dataclasses.fields(self.params))

    @property
    def default_seed(self) -> int | None:
        """The ``seed`` parameter's default (``None`` when the estimator takes no seed)."""
        for f in dataclasses.fields(self.params):
            if f.name == "seed" and self.takes_seed:
                return int(f.default)  # type: ignore[arg-type]
        return None

    def needs_from_responses(
        self, per_response: Mapping[str, Tensor], mask: Tensor
    ) -> dict[str, Tensor]:
        """The estimator's ``needs`` from per-response values in the group layout.

        ``per_response`` maps each need to ``[G, N]`` values, one per response (its token
        mean, in any floating dtype, which the result keeps); masked entries are ignored.
        See :data:`RESPONSE_NEEDS` for what each need becomes. A need missing from
        ``per_response``, or one that cannot be built from per-response values, is a
        ``ValueError`` naming it.

        >>> spec = get_estimator("passk_adaptive")
        >>> mask = torch.tensor([[True, True], [True, False]])
        >>> spec.needs_from_responses({"entropy": torch.tensor([[1.0, 3.0], [4.0, 9.0]])}, mask)
        {'entropy': tensor([2., 4.])}
        """
        out: dict[str, Tensor] = {}
        for need in sorted(self.needs):
            how = RESPONSE_NEEDS.get(need)
            if how is None:
                raise ValueError(
                    f"estimator {self.name!r} needs {need!r}, which cannot be built from "
                    f"per-response values (buildable: {sorted(RESPONSE_NEEDS)})"
                )
            value = per_response.get(need)
            if value is None:
                raise ValueError(f"estimator {self.name!r} needs per-response {need!r}")
            grid = torch.as_tensor(value, device=mask.device)
            if not grid.is_floating_point():
                grid = grid.to(torch.float64)
            if grid.shape != mask.shape:
                raise ValueError(
                    f"{need} has shape {tuple(grid.shape)}, expected one value per response "
                    f"in the group layout {tuple(mask.shape)}"
                )
            grid = grid.masked_fill(~mask, 0.0)
            if how == "group mean":  # summed in float64, returned in the values' dtype
                mean = grid.double().sum(1) / mask.sum(1).clamp(min=1)
                out[need] = mean.to(grid.dtype)  # [G]
            else:
                out[need] = grid  # [G, N]
        return out


ESTIMATORS: Registry[EstimatorSpec] = Registry("advantage estimator")


def register_estimator(
    name: str,
    *,
    params: type,
    binary_only: bool = False,
    needs: tuple[str, ...] = (),
    stochastic: bool = False,
    native_dtype: bool = False,
    refine: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator adding ``fn(rewards[G, N], mask[G, N], params) -> [G, N]`` to the registry.

    ``refine`` (estimators built from others): raw params -> ``{"needs", "stochastic",
    "binary_only"}`` of the parts (see :meth:`EstimatorSpec.for_params`).

    Duplicate names are an error, so an extension cannot silently replace a built-in
    (re-registering an identical spec is a no-op; see :mod:`passk.core.registry`).
    """
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"params for {name!r} must be a dataclass type, got {params!r}")

    def deco(fn: Callable) -> Callable:
        ESTIMATORS.register(
            name,
            EstimatorSpec(
                name=name,
                fn=fn,
                params=params,
                binary_only=binary_only,
                needs=frozenset(needs),
                stochastic=stochastic,
                native_dtype=native_dtype,
                refine=refine,
                doc=(fn.__doc__ or "").strip().split("\n")[0],
            ),
        )
        return fn

    return deco


def list_estimators() -> list[str]:
    """Registered estimator names, sorted."""
    return ESTIMATORS.names()


def get_estimator(name: str) -> EstimatorSpec:
    """The spec registered under ``name``; an unknown name lists the valid ones."""
    return ESTIMATORS.get(name)


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
    spec = get_estimator(name).for_params(params)
    p = spec.make_params(**params)
    ragged = mask is not None
    r, m = _validate(spec, rewards, mask, p)
    out = r if r.numel() == 0 else spec.fn(r, m, p)
    if ragged:
        out = out.masked_fill(~m, 0.0)
    dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    return out.to(dtype)


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
