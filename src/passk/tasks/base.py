"""The task protocol: prompt building, answer extraction and reward share one code path.

A task hands out :class:`Problem` objects and scores a completion for one of them
with :meth:`Task.score`, which returns a :class:`Score`. The trainer uses
``Score.reward`` (dense, in [0, 1]) or ``Score.correct`` (sparse, all-or-nothing),
the evaluator uses ``Score.correct`` for pass@k and ``Score.extracted`` for answer
diversity. Because both call the same method, training reward and evaluation can
never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol, get_type_hints, runtime_checkable

from passk.coerce import coerce, describe


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
        try:
            converted = coerce(value, hints[f.name], f.name)
        except ValueError:
            raise option_error(task, f.name, value, describe(hints[f.name])) from None
        if converted is not value:
            object.__setattr__(task, f.name, converted)
