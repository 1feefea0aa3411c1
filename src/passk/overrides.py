"""``key.path=value`` overrides of a YAML tree, as ``--set`` takes them.

Values are parsed as YAML (``optim.lr=1e-5``, ``algorithm.params={k: 8}``); a path walks
mappings by key and lists by index, creating missing mappings. ``passk train`` (its
config) and ``passk simulate`` (its simulation file) read overrides with this one module.

>>> tree = {"optim": {"lr": 1e-6}, "arms": [{"k": 4}]}
>>> apply_overrides(tree, ["optim.lr=0.5", "arms.0.k=8", "log.samples=2"])
{'optim': {'lr': 0.5}, 'arms': [{'k': 8}], 'log': {'samples': 2}}
>>> apply_overrides({}, ["no-equals-sign"])
Traceback (most recent call last):
ValueError: override 'no-equals-sign' must look like key.path=value
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

__all__ = ["add_set_argument", "apply_overrides", "parse_override", "set_path"]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> ``(["a", "b"], value parsed as YAML)``."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} must look like key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"override {text!r}: the value is not valid YAML ({problem})") from None
    return key.strip().split("."), value


def set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``tree[k1][k2]... = value`` (list nodes indexed by integer keys)."""
    node: Any = tree
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[_index(node, key, keys[: i + 1])]
            continue
        nxt = node.get(key)
        if nxt is None:
            nxt = node[key] = {}
        if not isinstance(nxt, dict | list):
            raise ValueError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[: i + 1])} is a value")
        node = nxt
    if isinstance(node, list):
        node[_index(node, keys[-1], keys)] = value
    else:
        node[keys[-1]] = value


def _index(node: list[Any], key: str, path: list[str]) -> int:
    try:
        i = int(key)
        node[i]
    except (ValueError, IndexError):
        raise ValueError(
            f"cannot set {'.'.join(path)}: {key!r} is not an index of a list of {len(node)}"
        ) from None
    return i


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply every ``key.path=value`` of ``overrides`` to ``tree`` in order; return it."""
    for text in overrides:
        keys, value = parse_override(text)
        set_path(tree, keys, value)
    return tree


def add_set_argument(parser: Any, help: str) -> None:
    """The ``--set KEY=VALUE`` option (repeatable, into ``args.overrides``) of a command."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )
