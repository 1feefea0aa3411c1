r"""Dataset-backed tasks: ``jsonl`` (any file, chosen verifier) and ``math`` (math-verify).

A JSONL file (or ``hf:ORG/NAME[:split]``, loaded with ``datasets``) has one object per
line with a prompt, an answer and optionally an id field (names configurable: e.g.
``prompt_field=problem id_field=unique_id`` for MATH-500); errors name the file and the
line, counted from 1 (blank lines count). If an object has a ``split`` field ("train"/"test") it is used;
otherwise the split is by a salted hash of the prompt (``test_fraction`` of the rows are
test). ``math`` is the same with the ``math`` verifier, over ``path`` or, without one,
a small built-in set of short-answer problems (a smoke test, not a benchmark).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from passk.tasks.base import Problem, Score, check_options, option_error
from passk.tasks.registry import register_task
from passk.tasks.splits import check_split, split_of
from passk.tasks.verifiers import VERIFIERS, get_verifier

MATH_SUFFIX = " Put your final answer in \\boxed{}."

# (prompt, answer): short problems with a unique, checkable answer
BUILTIN_MATH: list[tuple[str, str]] = [
    ("What is 1/2 + 1/3? Give the answer as a fraction.", "\\frac{5}{6}"),
    ("Solve for x: 2x + 3 = 11.", "4"),
    ("What is 15% of 80?", "12"),
    ("Simplify (x^2 - 9)/(x - 3) for x != 3.", "x+3"),
    ("What is the square root of 144?", "12"),
    ("A rectangle has sides 3 and 7. What is its area?", "21"),
    ("What is 2^10?", "1024"),
    ("Solve for y: 5y - 7 = 18.", "5"),
    ("What is 3/4 written as a decimal?", "0.75"),
    ("What is the sum of the interior angles of a triangle, in degrees?", "180"),
    ("What is 7 squared minus 4 squared?", "33"),
    ("If f(x) = 3x - 2, what is f(5)?", "13"),
    ("What is the least common multiple of 4 and 6?", "12"),
    ("What is the greatest common divisor of 18 and 24?", "6"),
    ("What is 2/3 of 27?", "18"),
    ("Solve for x: x/4 = 9.", "36"),
    ("What is 1 + 2 + 3 + ... + 10?", "55"),
    ("A car travels 60 km in 1.5 hours. What is its average speed in km/h?", "40"),
    ("What is 0.2 * 0.3?", "0.06"),
    ("What is the perimeter of a square with side 9?", "36"),
    ("Expand (x + 1)^2.", "x^2+2x+1"),
    ("What is 100 divided by 8?", "12.5"),
    ("What is the median of 3, 9, 1, 7, 5?", "5"),
    ("How many minutes are in 3.5 hours?", "210"),
    ("What is 5! (five factorial)?", "120"),
    ("Solve for x: 3(x - 2) = 12.", "6"),
    ("What is 1/8 as a decimal?", "0.125"),
    ("What is the mean of 2, 4, 6, 8?", "5"),
    ("What is 13 * 11?", "143"),
    ("What is the value of 2^3 * 3^2?", "72"),
    ("Simplify 2(a + 3) - a.", "a+6"),
    ("What is 45 + 67 - 12?", "100"),
]


def jsonl_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number from 1, parsed value)`` for each non-blank line of a JSONL file.

    A missing or unreadable file, a line that is not UTF-8 or not JSON: a ValueError
    naming the file and the line."""
    try:
        f = Path(path).open("rb")  # noqa: SIM115 (closed by the with below; open errors named)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{lineno}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
                ) from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e})") from None


def load_hf_rows(spec: str, *, task: str) -> list[tuple[int, Any]]:
    """``(row number from 1, row)`` of ``hf:ORG/NAME[:split]`` (default split ``test``),
    loaded with ``datasets`` (the hub where the network allows, else its cache)."""
    name, _, split = spec.removeprefix("hf:").partition(":")
    if not name:
        raise ValueError(
            f"task {task!r}: path {spec!r} names no dataset; expected hf:ORG/NAME[:split]"
        )
    try:
        import datasets
    except ImportError:
        raise ImportError(f"task {task!r}: path {spec!r} needs the datasets package") from None
    try:
        rows = datasets.load_dataset(name, split=split or "test")
    except Exception as e:  # no network, an unknown dataset or split
        raise ValueError(f"task {task!r}: cannot load {spec!r}: {type(e).__name__}: {e}") from None
    return [(i + 1, dict(row)) for i, row in enumerate(rows)]


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Objects of a JSONL file (blank lines skipped); errors name the line."""
    return [obj for _, obj in jsonl_lines(path)]


@register_task("jsonl")
@dataclass(frozen=True)
class JsonlTask:
    """Problems from a JSONL file (or ``hf:ORG/NAME[:split]``), scored by a named verifier
    (``exact``, ``numeric``, ``math``).

    Options: ``path``; ``prompt_field`` and ``answer_field`` (the fields holding the
    question and the reference answer, default ``prompt`` and ``answer``); ``id_field``
    (a field naming each problem, e.g. ``unique_id`` in MATH-500, so that saved samples
    keyed by the dataset's own ids find their problems; default: ``NAME/ROW``);
    ``verifier``; ``prompt_suffix``; ``test_fraction``.
    """

    path: str = ""
    verifier: str = "exact"
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    id_field: str = ""
    prompt_suffix: str = ""
    test_fraction: float = 0.2
    rows: tuple[tuple[str, str, str | None], ...] = field(default=(), repr=False)
    ids: tuple[str, ...] = field(default=(), init=False, repr=False)
    name: ClassVar[str] = "jsonl"

    def __post_init__(self) -> None:
        check_options(self)
        try:
            get_verifier(self.verifier)  # fail early on a bad name
        except ValueError:
            valid = "one of " + ", ".join(sorted(VERIFIERS))
            raise option_error(self, "verifier", self.verifier, valid) from None
        if not 0.0 < self.test_fraction < 1.0:
            raise option_error(self, "test_fraction", self.test_fraction, "a number in (0, 1)")
        if not self.rows:
            if not self.path:
                raise ValueError(f"task {self.name!r} needs path=FILE.jsonl")
            loaded, ids, seen = [], [], {}
            source = (
                load_hf_rows(self.path, task=self.name)
                if self.path.startswith("hf:")
                else jsonl_lines(self.path)
            )
            for lineno, obj in source:
                where = f"{self.path}:{lineno}"
                if not isinstance(obj, dict):
                    raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
                if self.prompt_field not in obj or self.answer_field not in obj:
                    raise ValueError(
                        f"{where}: lacks {self.prompt_field!r} or "
                        f"{self.answer_field!r} (has {sorted(obj)})"
                    )
                if self.id_field:
                    pid = obj.get(self.id_field)
                    if pid is None or isinstance(pid, (bool, dict, list)) or pid == "":
                        raise ValueError(
                            f"{where}: id_field {self.id_field!r} is missing or not a "
                            f"string/number here (has {sorted(obj)})"
                        )
                    if str(pid) in seen:
                        raise ValueError(
                            f"{where}: id {str(pid)!r} ({self.id_field}) repeats line "
                            f"{seen[str(pid)]}; ids must be unique"
                        )
                    seen[str(pid)] = lineno
                    ids.append(str(pid))
                split = obj.get("split") if obj.get("split") in ("train", "test") else None
                loaded.append((str(obj[self.prompt_field]), str(obj[self.answer_field]), split))
            object.__setattr__(self, "rows", tuple(loaded))
            object.__setattr__(self, "ids", tuple(ids))

    def _split(self, prompt: str, given: str | None) -> str:
        if given in ("train", "test"):
            return given
        return split_of(prompt, salt=f"passk/{self.name}", test_fraction=self.test_fraction)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        check_split(split)
        chosen = [
            (i, prompt, answer)
            for i, (prompt, answer, given) in enumerate(self.rows)
            if self._split(prompt, given) == split
        ]
        random.Random(f"{self.name}:{seed}:{split}").shuffle(chosen)
        return [self._problem(i) for i, _, _ in chosen[:n]]

    def _problem(self, i: int) -> Problem:
        prompt, answer, _ = self.rows[i]
        pid = self.ids[i] if self.ids else f"{self.name}/{i}"
        return Problem(id=pid, prompt=prompt + self.prompt_suffix, answer=answer)

    def all_problems(self) -> list[Problem]:
        """Every row as a problem, in file order (saved samples are looked up by id here)."""
        return [self._problem(i) for i in range(len(self.rows))]

    def score(self, problem: Problem, completion: str) -> Score:
        correct, extracted = get_verifier(self.verifier)(completion, str(problem.answer))
        return Score(reward=float(correct), correct=correct, extracted=extracted)


@register_task("math")
@dataclass(frozen=True)
class MathTask(JsonlTask):
    r"""Math answers checked symbolically by math-verify; built-in set when no ``path``.

    >>> task = MathTask()
    >>> p = task.problems("train", 1)[0]
    >>> task.score(p, f"so \\boxed{{{p.answer}}}").correct
    True
    """

    verifier: str = "math"
    prompt_suffix: str = MATH_SUFFIX
    name: ClassVar[str] = "math"

    def __post_init__(self) -> None:
        if not self.path and not self.rows:
            object.__setattr__(self, "rows", tuple((p, a, None) for p, a in BUILTIN_MATH))
        super().__post_init__()
