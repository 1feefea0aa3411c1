r"""``mixture``: several tasks as one, in fixed proportions, with a source per problem.

A part is written ``NAME`` or ``NAME(KEY=VALUE,...)``, values read as JSON when they
parse (``add(digits=2,digits_b=1)``); ``weights`` are the parts' proportions (equal by
default). The part's text is its *source*: problem ids are ``SOURCE/ID`` and
``passk eval`` breaks every metric down by source (``by_source`` in ``eval.json``).

**Proportions are kept exactly.** ``problems(split, n)`` gives part i its largest-
remainder share of ``n``; when a part's split is smaller than its share, ``n`` shrinks
until every share fits, so a mixture is never silently dominated by its larger parts
(a mixture of ``mul1``, 48 train problems, at weight 1/4 yields at most 192 train
problems). The result is interleaved in a seeded order, so any prefix is mixed too.
``template`` is passed to every part that has none of its own.

**Splits** are the parts' own (disjoint per part, so disjoint for the mixture), and a
completion is scored by its part's :meth:`score`.

>>> t = MixtureTask(parts=("mul1", "add(digits=2)"), weights=(1, 3))
>>> test = t.problems("test", 8)
>>> sorted(p.meta["source"] for p in test)
['add(digits=2)', 'add(digits=2)', 'add(digits=2)', 'add(digits=2)', 'add(digits=2)', 'add(digits=2)', 'mul1', 'mul1']
>>> len(t.problems("train", 10_000))  # mul1 has 48 train problems: 48 / (1/4)
192
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from passk.tasks.base import Problem, Score, check_options, option_error
from passk.tasks.registry import register_task
from passk.tasks.splits import check_split

# The study mixture of docs/results.md: a spread of difficulty for the embedded model
# (pass@1 ~0.25 / ~0.3 on the first two, ~0.04 / ~0.02 on the last two); the small
# parts' test fractions give exactly 24 test problems each: 96 test, 160 train.
DEFAULT_PARTS = (
    "add(digits=1,test_fraction=0.35)",
    "mul1(test_fraction=0.375)",
    "add(digits=2)",
    "add(digits=2,digits_b=1)",
)
_PART = re.compile(r"^\s*([A-Za-z_][\w.:-]*)\s*(?:\((.*)\))?\s*$")


def parse_part(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME(KEY=VALUE,...)`` -> (name, options); a ValueError names what is wrong.

    >>> parse_part("add(digits=2,digits_b=1)")
    ('add', {'digits': 2, 'digits_b': 1})
    >>> parse_part("mul1")
    ('mul1', {})
    """
    m = _PART.match(text)
    if m is None:
        raise ValueError(f"mixture part {text!r} is not NAME or NAME(KEY=VALUE,...)")
    name, body = m.group(1), m.group(2)
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in (body or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"mixture part {text!r}: {item!r} is not KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return name, options


def _shares(n: int, weights: list[float]) -> list[int]:
    """Largest-remainder integer shares of ``n`` (ties to the earlier part)."""
    total = sum(weights)
    exact = [n * w / total for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: n - sum(shares)]:
        shares[i] += 1
    return shares


@register_task("mixture")
@dataclass(frozen=True)
class MixtureTask:
    """Several tasks in fixed proportions, a source per problem (parts: NAME(KEY=VALUE,...))."""

    parts: tuple[str, ...] = DEFAULT_PARTS
    weights: tuple[float, ...] | None = None
    template: str | None = None
    _tasks: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    name: ClassVar[str] = "mixture"

    def __post_init__(self) -> None:
        from passk.tasks.registry import get_task

        check_options(self)
        if not self.parts:
            raise option_error(self, "parts", self.parts, "a non-empty list of task names")
        if len(set(self.parts)) != len(self.parts):
            raise option_error(self, "parts", self.parts, "distinct parts")
        if self.weights is not None:
            if len(self.weights) != len(self.parts):
                raise option_error(
                    self, "weights", self.weights, f"{len(self.parts)} numbers, one per part"
                )
            if any(w <= 0 for w in self.weights):
                raise option_error(self, "weights", self.weights, "positive numbers")
        tasks = []
        for text in self.parts:
            name, options = parse_part(text)
            if name == self.name:
                raise option_error(self, "parts", text, "tasks other than mixture")
            if self.template is not None:
                options.setdefault("template", self.template)
            tasks.append(get_task(name, **options))
        object.__setattr__(self, "_tasks", tuple(tasks))

    def _weights(self) -> list[float]:
        return [1.0] * len(self.parts) if self.weights is None else list(self.weights)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """Up to ``n`` problems of ``split`` in the parts' proportions, interleaved."""
        check_split(split)
        weights = self._weights()
        while True:
            shares = _shares(n, weights)
            drawn = [t.problems(split, s, seed) if s else [] for t, s in zip(self._tasks, shares)]
            short = [i for i, (d, s) in enumerate(zip(drawn, shares)) if len(d) < s]
            if not short:
                break
            # the most limiting part bounds n; draw again (n strictly falls, so this ends)
            fit = min(len(drawn[i]) * sum(weights) / weights[i] for i in short)
            n = min(n - 1, int(fit + 1e-9))
            if n <= 0:
                return []
        out = [self._wrap(i, p) for i, ps in enumerate(drawn) for p in ps]
        random.Random(f"passk/mixture:{seed}:{split}").shuffle(out)
        return out

    def _wrap(self, i: int, p: Problem) -> Problem:
        source = self.parts[i]
        meta = dict(p.meta) | {"source": source, "part": i, "part_id": p.id}
        return Problem(id=f"{source}/{p.id}", prompt=p.prompt, answer=p.answer, meta=meta)

    def _unwrap(self, problem: Problem) -> tuple[Any, Problem]:
        i = problem.meta.get("part")
        if not isinstance(i, int) or not 0 <= i < len(self._tasks):
            raise ValueError(f"problem {problem.id!r} does not come from this mixture")
        inner = Problem(
            id=problem.meta["part_id"],
            prompt=problem.prompt,
            answer=problem.answer,
            meta=problem.meta,
        )
        return self._tasks[i], inner

    def score(self, problem: Problem, completion: str) -> Score:
        task, inner = self._unwrap(problem)
        return task.score(inner, completion)

    def split_of(self, problem: Problem) -> str:
        """The split a problem belongs to (its part's)."""
        task, inner = self._unwrap(problem)
        return task.split_of(inner)
