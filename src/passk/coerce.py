"""One reading of type hints for values that come from YAML or JSON.

The training config (:mod:`passk.train.config`) and task options (:mod:`passk.tasks.base`)
both check a plain value against a dataclass field's annotation and convert it where the
annotation says so (a list becomes a tuple, an integer a float). Both use :func:`coerce`;
:func:`describe` words what a hint accepts, for error messages.

>>> coerce([1, 2], tuple[float, ...], "ks")
(1.0, 2.0)
>>> coerce("1e-6", float, "optim.lr", lenient_numbers=True)  # YAML reads 1e-6 as a string
1e-06
>>> coerce("fast", int | Literal["auto"], "rollout.batch_size")
Traceback (most recent call last):
ValueError: rollout.batch_size must be an integer or 'auto', got 'fast'
>>> describe(tuple[str, ...] | None)
'a list of strings or null'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["coerce", "describe"]

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURALS = {str: "strings", int: "integers", float: "numbers"}


def describe(hint: Any) -> str:
    """What ``hint`` accepts, in words (``"an integer or null"``, ``"a list of strings"``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis and args[0] in _PLURALS:
            return f"a list of {_PLURALS[args[0]]}"
        return "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    return _NAMES.get(hint) or getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def coerce(
    value: Any,
    hint: Any,
    path: str,
    *,
    lenient_numbers: bool = False,
    build: Callable[[type, dict[str, Any], str], Any] | None = None,
) -> Any:
    """``value`` as the annotation ``hint`` asks, or a ``ValueError`` naming ``path``.

    Integers become floats for ``float``, lists become tuples for ``tuple[...]``, a
    ``Literal`` lists its choices, a union tries each member. ``lenient_numbers`` (YAML
    configs) also reads a number written as a string for ``float`` and an integral float
    for ``int``. A dataclass hint is built from a mapping with ``build(cls, mapping,
    path)`` when given (nested config sections), else the value must be an instance.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise ValueError(f"{path} must be null, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"{path}={value!r} is not valid; valid: {', '.join(map(str, args))}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, path, lenient_numbers=lenient_numbers, build=build)
            except ValueError as e:
                errors.append(str(e))
        if len(errors) == 1:
            raise ValueError(errors[0])
        raise ValueError(f"{path} must be {describe(hint)}, got {value!r}")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if build is None:
            raise ValueError(f"{path} must be {describe(hint)}, got {value!r}")
        if not isinstance(value, dict):
            raise ValueError(f"{path or 'config'} must be a mapping, got {value!r}")
        return build(hint, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{path} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                coerce(v, args[0], f"{path}.{i}", lenient_numbers=lenient_numbers, build=build)
                for i, v in enumerate(value)
            )
        if not args:
            return tuple(value)
        if len(value) != len(args):
            raise ValueError(f"{path} must have {len(args)} items, got {value!r}")
        return tuple(
            coerce(v, a, f"{path}.{i}", lenient_numbers=lenient_numbers, build=build)
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{path} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{path} must be true or false, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if lenient_numbers and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{path} must be a number, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if lenient_numbers and isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{path} must be an integer, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{path} must be a string, got {value!r}")
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise ValueError(f"{path} must be {describe(hint)}, got {value!r}")
    return value  # an annotation this reader does not know: accepted as is
