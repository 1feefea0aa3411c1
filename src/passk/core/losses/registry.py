"""The policy-loss registry: :class:`PolicyLossSpec`, register/get/list.

This module sits below the loss families (:mod:`.ppo`, :mod:`.sequence`,
:mod:`.covariance`) and imports none of them; the package ``__init__`` imports them all, so
``import passk.core.losses`` registers every built-in loss.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from passk.core._masked import Metrics
from passk.core.registry import Registry

__all__ = [
    "POLICY_LOSSES",
    "PolicyLossFn",
    "PolicyLossSpec",
    "get_policy_loss",
    "list_policy_losses",
    "register_policy_loss",
]

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


POLICY_LOSSES: Registry[PolicyLossSpec] = Registry("policy loss")


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
        >>> import torch
        >>> spec = get_policy_loss("doc_scaled_pg")
        >>> spec.compute(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2),
        ...              spec.make_params({"scale": 2.0}))[0]
        tensor([[-0., -0.]])
        >>> _ = POLICY_LOSSES.unregister("doc_scaled_pg")
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
        POLICY_LOSSES.register(name, PolicyLossSpec(name, fn, params, frozenset(needs)))
        return fn

    return deco


def get_policy_loss(name: str) -> PolicyLossSpec:
    """The spec registered as ``name``; an unknown name lists the valid ones.

    >>> import passk.core.losses  # registers the built-in losses
    >>> get_policy_loss("simko").needs >= {"entropy", "topk_logp"}
    True
    """
    return POLICY_LOSSES.get(name)


def list_policy_losses() -> list[str]:
    """Registered policy-loss names, sorted."""
    return POLICY_LOSSES.names()
