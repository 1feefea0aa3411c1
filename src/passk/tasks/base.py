"""The task protocol: prompt building, answer extraction and reward share one code path.

A task hands out :class:`Problem` objects and scores a completion for one of them
with :meth:`Task.score`, which returns a :class:`Score`. The trainer uses
``Score.reward`` (dense, in [0, 1]) or ``Score.correct`` (sparse, all-or-nothing),
the evaluator uses ``Score.correct`` for pass@k and ``Score.extracted`` for answer
diversity. Because both call the same method, training reward and evaluation can
never disagree.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, Union, get_args, get_origin, get_type_hints, runtime_checkable


@dataclass(frozen=True)
class Problem:
    """One prompt with its reference.

    ``prompt`` is the user message (the chat template is applied by the rollout code);
    ``answer`` is whatever the task's scorer needs (a string for arithmetic, tests for
    code); ``meta`` carries task-specific extras (difficulty, entrypoint, ...).
    """

    id: str
    prompt: str
    answer: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """The verdict on one completion.

    ``reward`` is the dense reward in [0, 1] (partial credit where the task has it,
    otherwise equal to ``float(correct)``); ``correct`` is the all-or-nothing verdict
    used for pass@k; ``extracted`` is the final answer as parsed from the completion
    (None when none was found); ``error`` is a short text when scoring failed.
    """

    reward: float
    correct: bool
    extracted: str | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """What every task provides."""

    name: str

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """``n`` problems of ``split`` ("train" or "test"); splits are disjoint."""
        ...

    def score(self, problem: Problem, completion: str) -> Score:
        """Score one completion; must not raise on any string."""
        ...


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if get_origin(hint) is tuple:
        args = get_args(hint)
        plural = {str: "strings", int: "integers", float: "numbers"}
        if args and args[-1] is Ellipsis and args[0] in plural:
            return f"a list of {plural[args[0]]}"
        return "a list"
    if get_origin(hint) is dict or hint is dict:
        return "a JSON object"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``hint``, and the value converted (an int for
    a float, a JSON list for a tuple)."""
    if hint is Any:
        return True, value
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        for arg in args:
            ok, converted = _conform(value, arg)
            if ok:
                return True, converted
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        if args and args[-1] is Ellipsis:
            items = [_conform(v, args[0]) for v in value]
            return all(ok for ok, _ in items), tuple(v for _, v in items)
        return True, tuple(value)
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value


def option_error(task: Any, key: str, value: Any, valid: str) -> ValueError:
    """The one message for a bad task option: the task, the option, its value, what is valid.

    >>> str(option_error("add", "digits", "abc", "an integer in 1..18"))
    "task 'add': option digits='abc' is not valid; expected an integer in 1..18"
    """
    name = task if isinstance(task, str) else getattr(task, "name", type(task).__name__)
    return ValueError(f"task {name!r}: option {key}={value!r} is not valid; expected {valid}")


def check_options(task: Any) -> None:
    """Check a dataclass task's options against their type annotations (before any range
    check compares them); a JSON list becomes a tuple and an integer a float where the
    annotation says so. A wrong type is a ValueError from :func:`option_error`."""
    hints = get_type_hints(type(task))
    for f in fields(task):
        if not f.init or f.name not in hints:
            continue
        value = getattr(task, f.name)
        ok, converted = _conform(value, hints[f.name])
        if not ok:
            raise option_error(task, f.name, value, _describe(hints[f.name]))
        if converted is not value:
            object.__setattr__(task, f.name, converted)
