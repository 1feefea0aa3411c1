"""Names of a package imported on first use (PEP 562), so that importing the package, as
every ``passk`` command does, pays only for the modules a command really uses.

>>> ns = {}
>>> getter = lazy_getattr("demo", {"sqrt": "math"}, ns)
>>> getter("sqrt")(9.0), "sqrt" in ns  # imported, then cached in the namespace
(3.0, True)
>>> getter("cbrt")
Traceback (most recent call last):
AttributeError: module 'demo' has no attribute 'cbrt'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps each name to the module
    that defines it; the first access imports that module and caches the value in
    ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
