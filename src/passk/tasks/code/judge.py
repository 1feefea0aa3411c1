"""Test planning and judging: the part of verification that runs in the trusted parent.

Each test string is planned once (:func:`plan_test`):

* **lifted** (the tamper-proof path): a single ``assert`` whose calls to the entrypoint
  can be cut out. The sandbox only evaluates those calls (``add(2, 3)``) and reports their
  values as plain data; the parent evaluates the rest of the assertion (``_ == 5``) on the
  decoded values. The expected values never enter the sandbox, and a value comes back as
  data (no object, no ``__eq__``), so the only way to pass is to return the right value.
* **in-sandbox**: anything else (several statements, comprehensions over the entrypoint,
  helper names the parent does not know). The sandbox runs the test and reports
  ``{"ok": nonce}``. The nonce defeats blind forgery (printing a fake report, exiting
  early) but not a candidate that searches its own interpreter's memory for it; see
  ``docs/code_sandbox.md``.

>>> plan = plan_test("assert add(2, 3) == 5", "add")
>>> plan.calls, plan.lifted
(('add(2, 3)',), True)
>>> judge_values(plan, [["i", "5"]])
True
>>> judge_values(plan, [["f", float.hex(5.0)]])  # 5.0 == 5 as in Python
True
>>> plan_test("assert all(add(x, 0) == x for x in range(3))", "add").lifted
False
"""

from __future__ import annotations

import ast
import functools
import math
from dataclasses import dataclass
from types import CodeType
from typing import Any

PLACEHOLDER = "__passk_v{}"

# Names the parent lets a lifted assertion use: pure functions of plain data.
_SAFE_BUILTINS: dict[str, Any] = {
    name: getattr(__import__("builtins"), name)
    for name in [
        "abs",
        "all",
        "any",
        "bool",
        "bytes",
        "complex",
        "dict",
        "divmod",
        "enumerate",
        "float",
        "frozenset",
        "int",
        "isinstance",
        "len",
        "list",
        "max",
        "min",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
    ]
}
_SAFE_MODULES: dict[str, Any] = {"math": math}
_NODES = (
    ast.Expression, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.IfExp, ast.Constant,
    ast.Name, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Call, ast.Attribute, ast.Subscript,
    ast.Slice, ast.keyword, ast.Load, ast.operator, ast.cmpop, ast.boolop, ast.unaryop,
    ast.JoinedStr, ast.FormattedValue,
)  # fmt: skip
# Calls whose cost is bounded by the size of their (tainted) arguments: every safe builtin
# except those whose cost grows with an argument's value (bytes(10**9), range(10**12)).
_LINEAR_CALLS = frozenset(_SAFE_BUILTINS) - {"bytes", "range"}
_LINEAR_MATH = frozenset(
    ["isclose", "isfinite", "isinf", "isnan", "fabs", "floor", "ceil", "trunc", "copysign"]
)
_BIG_OPS = (ast.Mult, ast.Pow, ast.LShift)
# Names bound inside these would be invisible to a lifted call's arguments.
_SCOPES = (
    ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr,
    ast.Await, ast.Yield, ast.YieldFrom,
)  # fmt: skip


@dataclass(frozen=True)
class TestPlan:
    """How one test string is checked.

    ``calls`` are the entrypoint calls the sandbox evaluates (lifted tests); ``check`` is
    the remaining assertion expression with the calls replaced by ``__passk_v{j}``, compiled
    for the parent; ``source`` is the test as given (run in the sandbox when not lifted);
    ``invalid`` is set when the test itself does not parse (it can never pass).
    """

    source: str
    calls: tuple[str, ...] = ()
    check: CodeType | None = None
    invalid: str | None = None

    @property
    def lifted(self) -> bool:
        return self.check is not None


class _Lift(ast.NodeTransformer):
    def __init__(self, entrypoint: str) -> None:
        self.entrypoint = entrypoint
        self.calls: list[str] = []

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id == self.entrypoint:
            self.calls.append(ast.unparse(node))
            return ast.Name(id=PLACEHOLDER.format(len(self.calls) - 1), ctx=ast.Load())
        return self.generic_visit(node)


def _parent_safe(expr: ast.Expression, n_calls: int) -> bool:
    """Whether the parent may evaluate ``expr`` on candidate-chosen (size-capped) values.

    Test text is trusted, but the reported values are not: any operation whose cost grows
    with a value's magnitude rather than its size (``x ** v``, ``[0] * v``, ``range(v)``,
    ``s.ljust(v)``, ``math.factorial(v)``) is refused on a placeholder, and such a test runs
    in the sandbox instead.
    """
    ph = {PLACEHOLDER.format(j) for j in range(n_calls)}
    names = set(_SAFE_BUILTINS) | set(_SAFE_MODULES) | ph

    def tainted(node: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id in ph for n in ast.walk(node))

    for node in ast.walk(expr):
        if not isinstance(node, _NODES):
            return False
        if isinstance(node, ast.Name) and node.id not in names:
            return False
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return False
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BIG_OPS) and tainted(node):
            return False
        if isinstance(node, ast.Call):
            args_tainted = any(tainted(a) for a in [*node.args, *node.keywords])
            f = node.func
            if isinstance(f, ast.Name):
                ok = f.id in _SAFE_BUILTINS and (not args_tainted or f.id in _LINEAR_CALLS)
            elif (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.value.id == "math"
            ):
                ok = not args_tainted or f.attr in _LINEAR_MATH
            else:  # a method of a value: only with trusted arguments
                ok = isinstance(f, ast.Attribute) and not args_tainted
            if not ok:
                return False
    return True


@functools.lru_cache(maxsize=65536)
def plan_test(test: str, entrypoint: str) -> TestPlan:
    """Plan one assertion string for ``entrypoint`` (cached: tests repeat across a group)."""
    try:
        module = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return TestPlan(test, invalid=f"test does not parse: {type(e).__name__}")
    body = module.body
    if len(body) != 1 or not isinstance(body[0], ast.Assert):
        return TestPlan(test)
    if any(isinstance(n, _SCOPES) for n in ast.walk(body[0].test)):
        return TestPlan(test)
    lift = _Lift(entrypoint)
    expr = ast.Expression(body=lift.visit(body[0].test))
    ast.fix_missing_locations(expr)
    if not lift.calls or not _parent_safe(expr, len(lift.calls)):
        return TestPlan(test)
    return TestPlan(test, calls=tuple(lift.calls), check=compile(expr, "<check>", "eval"))


def decode(v: Any, depth: int = 0) -> Any:
    """Tagged JSON from the sandbox -> plain Python data; raises ValueError on anything else.

    >>> decode(["l", [["i", "-a"], "x", None, ["t", [["f", "0x1.8p+0"]]]]])
    [-10, 'x', None, (1.5,)]
    """
    if depth > 110:
        raise ValueError("value nested too deeply")
    if v is None or isinstance(v, (bool, str)):
        return v
    if not isinstance(v, list) or not v or not isinstance(v[0], str):
        raise ValueError("malformed value")
    tag, d = v[0], depth + 1
    if tag == "i" and len(v) == 2 and isinstance(v[1], str):
        return int(v[1], 16)
    if tag == "f" and len(v) == 2 and isinstance(v[1], str):
        return float.fromhex(v[1])
    if tag == "c" and len(v) == 3 and isinstance(v[1], str) and isinstance(v[2], str):
        return complex(float.fromhex(v[1]), float.fromhex(v[2]))
    if tag in ("b", "B") and len(v) == 2 and isinstance(v[1], str):
        raw = bytes.fromhex(v[1])
        return raw if tag == "b" else bytearray(raw)
    if len(v) != 2 or not isinstance(v[1], list):
        raise ValueError("malformed value")
    items = v[1]
    if tag == "l":
        return [decode(x, d) for x in items]
    if tag == "t":
        return tuple(decode(x, d) for x in items)
    if tag == "S":
        return {decode(x, d) for x in items}
    if tag == "F":
        return frozenset(decode(x, d) for x in items)
    if tag == "d":
        out = {}
        for pair in items:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("malformed dict item")
            out[decode(pair[0], d)] = decode(pair[1], d)
        return out
    raise ValueError(f"unknown value tag {tag!r}")


def judge_values(plan: TestPlan, values: Any) -> bool:
    """Evaluate a lifted test's check on the reported values; False on any problem."""
    if plan.check is None or not isinstance(values, list) or len(values) != len(plan.calls):
        return False
    try:
        scope: dict[str, Any] = {"__builtins__": _SAFE_BUILTINS, **_SAFE_MODULES}
        for j, v in enumerate(values):
            scope[PLACEHOLDER.format(j)] = decode(v)
        return bool(eval(plan.check, scope))
    except Exception:  # a wrong type, an unhashable set member, a bad comparison: fail
        return False


def describe_values(values: Any, limit: int = 120) -> str:
    """Short text of reported values for an error message (never raises)."""
    try:
        shown = ", ".join(repr(decode(v)) for v in values)
    except Exception:
        return "an invalid report"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
