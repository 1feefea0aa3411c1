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

A field declares its bounds in its annotation, ``Annotated[int, Range(gt=0)]`` (or the
aliases :data:`PositiveInt`, :data:`NonNegativeFloat`, ...): :func:`coerce` checks them
when it reads a value and :func:`check_fields` checks a whole dataclass tree built in
Python; cross-field rules stay with the code that owns them.

>>> coerce(0, PositiveInt, "rollout.n")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
OutOfRange: rollout.n must be > 0, got 0
>>> Range(gt=0, le=1).words(), describe(PositiveInt | None)
('in (0, 1]', 'an integer or null')
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

__all__ = [
    "NonNegativeFloat",
    "NonNegativeInt",
    "OutOfRange",
    "PositiveFloat",
    "PositiveInt",
    "Range",
    "bounds_of",
    "check_fields",
    "coerce",
    "describe",
]


class OutOfRange(ValueError):
    """A value of the right type outside its field's declared bounds (``path``: the field)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Range:
    """Bounds of a number, declared in a field's annotation: ``Annotated[float, Range(gt=0,
    le=1)]``. ``None`` leaves a side open."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def words(self) -> str:
        """The bounds as an error message states them: ``> 0``, ``in (0, 1]``."""
        low = (self.gt, "(") if self.gt is not None else (self.ge, "[")
        high = (self.lt, ")") if self.lt is not None else (self.le, "]")
        if low[0] is not None and high[0] is not None:
            return f"in {low[1]}{_num(low[0])}, {_num(high[0])}{high[1]}"
        if low[0] is not None:
            return f"{'>' if self.gt is not None else '>='} {_num(low[0])}"
        if high[0] is not None:
            return f"{'<' if self.lt is not None else '<='} {_num(high[0])}"
        return "any number"

    def holds(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )

    def check(self, value: Any, path: str, *, nullable: bool = False) -> None:
        """Raise :class:`OutOfRange` naming ``path`` when ``value`` is outside the bounds
        (``nullable``: the field also takes null, and the message says so)."""
        if not self.holds(value):
            words = self.words() + (" or null" if nullable else "")
            raise OutOfRange(f"{path} must be {words}, got {value!r}", path)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


PositiveInt = Annotated[int, Range(gt=0)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]


def bounds_of(hint: Any) -> Range | None:
    """The :class:`Range` declared in ``hint`` (also inside ``X | None``), if any."""
    if typing.get_origin(hint) is Annotated:
        return next((m for m in hint.__metadata__ if isinstance(m, Range)), None)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            found = bounds_of(arg)
            if found is not None:
                return found
    return None


def check_fields(obj: Any, prefix: str = "") -> None:
    """Check every field of the dataclass tree ``obj`` against its declared bounds (the
    fields of a config built in Python, which :func:`coerce` never saw)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value, path = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, path + ".")
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                check_fields(item, f"{path}.{i}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            bounds = bounds_of(hints[f.name])
            if bounds is not None:
                bounds.check(value, path, nullable=_nullable(hints[f.name]))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _nullable(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURALS = {str: "strings", int: "integers", float: "numbers"}


def describe(hint: Any) -> str:
    """What ``hint`` accepts, in words (``"an integer or null"``, ``"a list of strings"``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "null"
    if origin is Annotated:
        return describe(args[0])
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
    if origin is Annotated:
        value = coerce(value, args[0], path, lenient_numbers=lenient_numbers, build=build)
        for meta in hint.__metadata__:
            if isinstance(meta, Range):
                meta.check(value, path)
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
        errors: list[ValueError] = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, path, lenient_numbers=lenient_numbers, build=build)
            except ValueError as e:
                errors.append(e)
        out_of_range = [e for e in errors if isinstance(e, OutOfRange)]
        if out_of_range:  # the right type, outside its bounds: say which bounds
            first = out_of_range[0]
            if type(None) in args and first.path == path:  # this field also takes null
                raise OutOfRange(str(first).replace(", got ", " or null, got ", 1), path)
            raise first
        if len(errors) == 1:
            raise errors[0]
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
