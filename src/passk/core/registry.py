"""One name -> value table with the library's single set of rules, used by every registry.

Advantage estimators, policy losses, tasks, task prefixes and rewards all register through a
:class:`Registry`, so they share one duplicate rule and one error for an unknown name:

- a name is taken once: registering anything else under a taken name is a ``ValueError``
  (an extension cannot silently replace a built-in);
- re-registering the *same* value is a no-op, where "same" is the identical object, or an
  equal frozen dataclass spec (same function, same params type, same flags), so a module
  executed twice does not break its own registrations;
- an unknown name raises ``ValueError`` listing the valid ones, sorted.

>>> r = Registry("colour")
>>> r.register("red", 1)
1
>>> r.register("red", 1)  # the same value again: harmless
1
>>> "red" in r, r.names()
(True, ['red'])
>>> r.register("red", 2)
Traceback (most recent call last):
ValueError: colour 'red' is already registered
>>> r.get("blue")
Traceback (most recent call last):
ValueError: unknown colour 'blue'; valid: red
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

V = TypeVar("V")


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    # Specs are rebuilt on every decoration; equal frozen specs describe the same thing.
    return (
        type(a) is type(b)
        and dataclasses.is_dataclass(a)
        and not isinstance(a, type)
        and type(a).__dataclass_params__.frozen  # type: ignore[attr-defined]
        and a == b
    )


class Registry(Generic[V]):
    """A table of named values; ``kind`` ("policy loss", "task", ...) words its errors."""

    def __init__(self, kind: str) -> None:
        if not kind:
            raise ValueError("a Registry needs a kind, e.g. 'policy loss'")
        self.kind = kind
        self._table: dict[str, V] = {}

    def register(self, name: str, value: V) -> V:
        """Add ``value`` under ``name`` and return it; a taken name is a ``ValueError``
        unless ``value`` is the same as the one registered (then nothing changes)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty str, got {name!r}")
        old = self._table.get(name)
        if name in self._table:
            if _same(old, value):
                return value
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._table[name] = value
        return value

    def decorator(self, name: str) -> Callable[[V], V]:
        """``@registry.decorator(name)``: register the decorated object, return it unchanged."""

        def deco(value: V) -> V:
            return self.register(name, value)

        return deco

    def unregister(self, name: str) -> V:
        """Remove and return the value under ``name`` (for tests and plugin teardown)."""
        value = self.get(name)
        del self._table[name]
        return value

    def get(self, name: str) -> V:
        """The value under ``name``; an unknown name raises ``ValueError`` listing the valid ones."""
        try:
            return self._table[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            valid = ", ".join(self.names()) or "(none registered)"
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._table)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._table
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
