"""Estimators built from other estimators: weighted sums (``combine``) and the pass@k
boundary gate (``gated``).

Each part is named by its registered estimator and validated as that estimator, so an
error names the bad part. The composite's ``needs``, randomness and reward domain are its
parts' (:meth:`~passk.core.advantages.EstimatorSpec.for_params`): callers supply the
per-response inputs (``entropy``, ``seq_logp``) to the composite, which hands each part
the ones it needs, and a seed, from which each random part gets its own.

>>> import torch
>>> from passk.core.advantages import compute_advantages
>>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
>>> terms = [{"estimator": "passk_analytic", "weight": 0.5, "params": {"k": 2}},
...          {"estimator": "pass1", "weight": 0.5}]
>>> compute_advantages("combine", r, terms=terms)  # Pass@k + GRPO, half each
tensor([[ 1.3660, -0.4553, -0.4553, -0.4553],
        [ 0.2887,  0.2887,  0.2887, -0.8660]])
>>> compute_advantages("gated", r, inner="pass1", k=2)  # the second group: pass@2 = 1
tensor([[ 0.8660, -0.2887, -0.2887, -0.2887],
        [ 0.0000,  0.0000,  0.0000,  0.0000]])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from passk.core._checks import check_k
from passk.core.advantages._group import log_binom
from passk.core.advantages.registry import (
    RESPONSE_NEEDS,
    EstimatorSpec,
    compute_advantages,
    get_estimator,
    register_estimator,
)
from passk.seeds import derive_seed

__all__ = ["CombineParams", "CombineTerm", "GatedParams", "passk_headroom"]


def _part(where: str, name: Any, params: Any) -> tuple[EstimatorSpec, dict[str, Any]]:
    """Validate one part (an estimator name and its params); return its spec as it applies
    to those params and a plain copy of them. Errors are one line starting with ``where``."""
    if not isinstance(name, str):
        raise ValueError(f"{where}: estimator must be a registered name, got {name!r}")
    try:
        spec = get_estimator(name)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValueError(f"{where} ({name}): params must be a mapping, got {params!r}")
    params = dict(params)
    try:
        spec = spec.for_params(params)
        given = sorted(set(params) & spec.needs)
        if given:
            raise ValueError(f"{given} are supplied by the caller at each step, not set in params")
        if "seed" in params and spec.takes_seed:
            raise ValueError(
                "seed is set on the composite estimator; each random part's seed is derived from it"
            )
        unsupported = sorted(spec.needs - RESPONSE_NEEDS.keys())
        if unsupported:
            raise ValueError(
                f"needs {unsupported}, which a composite cannot pass on "
                f"(it passes {sorted(RESPONSE_NEEDS)})"
            )
        spec.make_params(**params, **{need: 0.0 for need in spec.needs})
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where} ({name}): {err}") from None
    return spec, params


def _part_kwargs(
    spec: EstimatorSpec, params: Mapping[str, Any], supplied: Any, seed: int
) -> dict[str, Any]:
    """A part's keyword arguments: its params, the needs it takes, a seed if random."""
    kwargs = dict(params)
    for need in spec.needs:
        kwargs[need] = getattr(supplied, need)
    if spec.takes_seed:
        kwargs["seed"] = seed
    return kwargs


def _run(where: str, name: str, rewards: Tensor, mask: Tensor, kwargs: dict[str, Any]) -> Tensor:
    """A part's advantages on the composite's groups; its errors (a k larger than the
    smallest group, rewards outside its domain) name the part."""
    try:
        return compute_advantages(name, rewards, mask, **kwargs)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")


# --------------------------------------------------------------------------- combine


@dataclass(frozen=True)
class CombineTerm:
    """One term of ``combine``: a registered estimator, its weight and its params."""

    estimator: str
    weight: float
    params: dict[str, Any]


_TERM_KEYS = ("estimator", "weight", "params")


def _terms(raw: Any) -> tuple[tuple[CombineTerm, EstimatorSpec], ...]:
    """Parse and validate ``terms``: a non-empty list of {estimator, weight, params}."""
    if isinstance(raw, CombineTerm):
        raw = [raw]
    if isinstance(raw, Mapping | str) or not isinstance(raw, list | tuple):
        raise ValueError(
            "terms must be a non-empty list of {estimator, weight, params} mappings, "
            f"e.g. [{{estimator: pass1, weight: 0.5}}, ...], got {raw!r}"
        )
    if not raw:
        raise ValueError("terms is empty; give at least one {estimator, weight, params}")
    out = []
    for i, item in enumerate(raw):
        where = f"terms[{i}]"
        if isinstance(item, CombineTerm):
            item = {"estimator": item.estimator, "weight": item.weight, "params": item.params}
        if not isinstance(item, Mapping):
            raise ValueError(
                f"{where} must be a mapping {{estimator, weight, params}}, got {item!r}"
            )
        unknown = sorted(set(item) - set(_TERM_KEYS))
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {unknown}; valid: {list(_TERM_KEYS)}")
        if "estimator" not in item:
            raise ValueError(f"{where} has no estimator; e.g. {{estimator: pass1, weight: 1.0}}")
        weight = item.get("weight", 1.0)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise ValueError(f"{where}: weight must be a finite number > 0, got {weight!r}")
        spec, params = _part(where, item["estimator"], item.get("params"))
        out.append((CombineTerm(item["estimator"], float(weight), params), spec))
    return tuple(out)


def _combine_refine(params: Mapping[str, Any]) -> dict[str, Any]:
    specs = [spec for _, spec in _terms(params.get("terms"))]
    return {
        "needs": frozenset().union(*(s.needs for s in specs)),
        "stochastic": any(s.stochastic for s in specs),
        "binary_only": any(s.binary_only for s in specs),
    }


@dataclass(frozen=True)
class CombineParams:
    """``terms``: a list of ``{estimator, weight, params}`` (weight > 0, default 1; params
    the estimator's own). ``seed``: the base of the random terms' seeds (term i draws with
    ``derive_seed(seed, "combine", i)``). ``entropy``, ``seq_logp``: supplied by the caller
    when a term needs them, and passed on to that term."""

    terms: Any = None
    seed: int = 0
    entropy: Tensor | None = None
    seq_logp: Tensor | None = None

    def __post_init__(self) -> None:
        parsed = tuple(term for term, _ in _terms(self.terms))
        object.__setattr__(self, "terms", parsed)
        _check_seed(self.seed)


@register_estimator("combine", params=CombineParams, refine=_combine_refine)
def combine_advantage(rewards: Tensor, mask: Tensor, p: CombineParams) -> Tensor:
    """Weighted sum ``sum_i w_i A_i`` of registered estimators' advantages, each computed as
    that estimator alone on the same groups (TRL #4525: mixing advantages)."""
    out = torch.zeros_like(rewards)  # [G, N]
    for i, term in enumerate(p.terms):
        spec = get_estimator(term.estimator).for_params(term.params)
        kwargs = _part_kwargs(spec, term.params, p, derive_seed(p.seed, "combine", i))
        part = _run(f"terms[{i}] ({term.estimator})", term.estimator, rewards, mask, kwargs)
        out = out + term.weight * part
    return out


# --------------------------------------------------------------------------- gated


def passk_headroom(n: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """``1 - rho_hat = C(N - N_pos, k) / C(N, k)``: how far the unbiased pass@k estimate of
    a group of N with N_pos correct is from 1 (0 once N - N_pos < k; 0 for an empty group).

    >>> passk_headroom(torch.tensor([4.0, 4.0, 4.0]), torch.tensor([0.0, 1.0, 3.0]), 2)
    tensor([1.0000, 0.5000, 0.0000], dtype=torch.float64)
    """
    n, n_pos = n.to(torch.float64), n_pos.to(torch.float64)
    kk = torch.full_like(n, float(k))
    log_q = log_binom(n - n_pos, kk) - log_binom(n, kk)
    return torch.where(n >= k, log_q.exp(), 0.0).nan_to_num(0.0)


_GATE_WEIGHTS = ("headroom", "hard")


def _gated_refine(params: Mapping[str, Any]) -> dict[str, Any]:
    spec, _ = _part("inner", params.get("inner", "pass1"), params.get("inner_params"))
    return {"needs": spec.needs, "stochastic": spec.stochastic}


@dataclass(frozen=True)
class GatedParams:
    """``inner`` (any registered estimator taking 0/1 rewards) with ``inner_params``, gated
    per group by the pass@k headroom ``h = C(N - N_pos, k) / C(N, k) = 1 - rho_hat``.
    ``weight``: ``"headroom"`` scales the group by h, ``"hard"`` by 1; either way a group
    whose estimated pass@k ``rho_hat >= threshold`` (saturated) gets 0. ``threshold`` in
    (0, 1]: 1 cuts only the groups where every k-subset holds a success (N - N_pos < k).
    ``seed`` is passed to a random inner estimator; ``entropy``, ``seq_logp`` are supplied
    by the caller when the inner estimator needs them."""

    inner: str = "pass1"
    inner_params: Any = None
    k: int = 4
    threshold: float = 1.0
    weight: str = "headroom"
    seed: int = 0
    entropy: Tensor | None = None
    seq_logp: Tensor | None = None

    def __post_init__(self) -> None:
        check_k(self.k)
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 1:
            raise ValueError(f"threshold must be a number in (0, 1], got {t!r}")
        if self.weight not in _GATE_WEIGHTS:
            raise ValueError(f"weight must be one of {list(_GATE_WEIGHTS)}, got {self.weight!r}")
        _check_seed(self.seed)
        _, params = _part("inner", self.inner, self.inner_params)
        object.__setattr__(self, "inner_params", params)


@register_estimator("gated", params=GatedParams, binary_only=True, refine=_gated_refine)
def gated_advantage(rewards: Tensor, mask: Tensor, p: GatedParams) -> Tensor:
    """Boundary gate (after BBG, arXiv 2606.15455): the inner estimator's advantages times
    ``h = C(N - N_pos, k) / C(N, k)``, the room left to the group's unbiased pass@k estimate
    (``"hard"``: times 1), and 0 once that estimate reaches ``threshold`` (saturated)."""
    n = mask.sum(1).to(torch.float64)  # [G]
    n_pos = rewards.sum(1).to(torch.float64)  # [G]; masked entries are 0
    headroom = passk_headroom(n, n_pos, p.k)  # [G]
    open_ = headroom > 1.0 - p.threshold  # rho_hat < threshold
    w = headroom if p.weight == "headroom" else torch.ones_like(headroom)
    w = torch.where(open_, w, 0.0).to(rewards.dtype)  # [G]
    spec = get_estimator(p.inner).for_params(p.inner_params)
    kwargs = _part_kwargs(spec, p.inner_params, p, p.seed)
    inner = _run(f"inner ({p.inner})", p.inner, rewards, mask, kwargs)  # [G, N]
    return torch.where(w[:, None] > 0, inner * w[:, None], 0.0)  # a closed gate: +0, not -0
