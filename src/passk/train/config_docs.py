"""The config's documentation: each field's docstring, for ``passk train --help-config``.

A field's documentation is the string literal under it in its dataclass (attribute
docstrings, read from the source with :mod:`ast`), so help text lives in one place.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import textwrap
import typing

from passk.coerce import bounds_of
from passk.train.config import TrainConfig, to_plain

# ---------------------------------------------------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literals under each field of ``cls``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def describe_config(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key.path, default, doc)`` for every leaf knob, in declaration order."""
    rows = []
    docs = field_docs(cls)
    default = cls()
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            rows.extend(describe_config(hints[f.name], key + "."))
            continue
        value = to_plain(getattr(default, f.name))
        doc = docs.get(f.name, "")
        bounds = bounds_of(hints[f.name])
        if bounds is not None:  # declared on the field: passk.coerce.Range
            doc = f"{doc} (valid: {bounds.words()})"
        rows.append((key, json.dumps(value), doc))
    return rows
