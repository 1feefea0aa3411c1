r"""``countdown_modes``: reach a target with three numbers, in a common and a rare mode.

Three numbers from 1-9 (``max_number`` lowers the 9) and a target; the answer is an expression that uses each number
exactly once with ``+``, ``-``, ``*`` and parentheses, verified by evaluating it. Every
problem carries a *mode* (``meta["source"]``, so reports break every metric down by it):

* ``common``: the target is ``a + b + c``. The all-addition template solves it (other
  expressions may too).
* ``rare``: the target is ``x * y - z`` for some order of the numbers, and no expression
  made of additions and subtractions alone reaches it (no ``±a ± b ± c``): a
  multiplication is needed, which the common template never has.

This is the structure under which Pass@1 training can lose coverage (docs/mechanism.md): a
common strategy that solves most problems and a rarer one that alone solves the rest.
``rare_fraction`` sets their mix in every draw (default 0.25). Train and test are split
by the multiset of the three numbers, so no set of numbers appears in both splits.

**Reward.** The expression is the content of the last ``\boxed{}`` (else the last run of
digits, operators and parentheses in the text). It is parsed, never executed: only
integers 1-9, ``+``, ``-``, ``*`` and parentheses (``×`` and an ``x`` between digits read
as ``*``); no unary minus, no division. ``correct`` iff it uses exactly the problem's
numbers and evaluates to the target; reward = correct. ``info["template"]`` names the
expression's shape (``sum``, ``additive``, ``product_minus``, ``product_plus``,
``product``, ``other``): the task's readout of which strategy a sample used.

>>> task = CountdownModesTask()
>>> test = task.problems("test", 8)
>>> sorted({p.meta["source"] for p in test}), sum(p.meta["source"] == "rare" for p in test)
(['common', 'rare'], 2)
>>> p = next(p for p in test if p.meta["source"] == "rare")
>>> x, y, z = p.meta["solution"]
>>> task.score(p, f"\\boxed{{{x}*{y}-{z}}}").correct
True
"""

from __future__ import annotations

import ast
import itertools
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from passk.tasks.base import Problem, Score, check_options, option_error
from passk.tasks.extract import last_boxed
from passk.tasks.registry import register_task
from passk.tasks.splits import check_split, split_of

__all__ = ["CountdownModesTask", "classify_expression", "parse_expression"]

DEFAULT_TEMPLATE = (
    "Using the numbers {numbers} exactly once each, and only +, - and *, write an expression "
    "equal to {target}. Put the expression in \\boxed{{}}."
)
# worked examples with numbers outside 1-9, so they can never be a problem of the task
EXAMPLES = (
    ("10, 11 and 12", 33, "10 + 11 + 12"),
    ("10, 12 and 11", 109, "10 * 12 - 11"),
    ("11, 12 and 13", 36, "11 + 12 + 13"),
    ("13, 10 and 12", 118, "13 * 10 - 12"),
)
_EXPRESSION_RUN = re.compile(r"[\d\s+\-*()]*\d[\d\s+\-*()]*")
_TIMES = re.compile(r"(?<=[\d)])\s*[x×·]\s*(?=[\d(])")


def parse_expression(text: str) -> tuple[int, list[int], str]:
    """``(value, numbers used, shape)`` of an expression of integers, ``+ - *`` and parentheses.

    Raises ``ValueError`` for anything else (names, calls, division, unary minus, numbers
    of several digits are allowed but never match a problem).

    >>> parse_expression("(3 + 4) * 2")
    (14, [3, 4, 2], 'other')
    >>> parse_expression("7*8-5")
    (51, [7, 8, 5], 'product_minus')
    >>> parse_expression("2 / 1")
    Traceback (most recent call last):
    ValueError: not allowed in an answer: Div
    """
    text = _TIMES.sub("*", text.replace("−", "-")).strip()
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ValueError(f"not an expression: {text!r}") from None
    numbers: list[int] = []

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            numbers.append(node.value)
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            return left * right
        name = type(node.op).__name__ if isinstance(node, ast.BinOp) else type(node).__name__
        raise ValueError(f"not allowed in an answer: {name}")

    result = value(tree)
    return result, numbers, classify_expression(tree)


def classify_expression(tree: ast.AST) -> str:
    """The shape of a parsed expression (see the module docstring)."""
    ops = [type(n.op) for n in ast.walk(tree) if isinstance(n, ast.BinOp)]
    if ops and all(op is ast.Add for op in ops):
        return "sum"
    if ops and all(op in (ast.Add, ast.Sub) for op in ops):
        return "additive"
    if isinstance(tree, ast.BinOp) and len(ops) == 2:
        mult = [side for side in (tree.left, tree.right) if isinstance(side, ast.BinOp)]
        if mult and isinstance(mult[0].op, ast.Mult) and isinstance(tree.left, ast.BinOp):
            if isinstance(tree.op, ast.Sub):
                return "product_minus"
            if isinstance(tree.op, ast.Add):
                return "product_plus"
    if ops and all(op is ast.Mult for op in ops):
        return "product"
    return "other"


def _additive_values(nums: tuple[int, int, int]) -> set[int]:
    """Every value of ``±a ± b ± c``: what additions and subtractions alone can reach."""
    return {
        sum(s * v for s, v in zip(signs, nums)) for signs in itertools.product((1, -1), repeat=3)
    }


@lru_cache(maxsize=4)
def _space(
    max_number: int,
) -> tuple[tuple[tuple[int, int, int], int, str, tuple[int, int, int]], ...]:
    """Every problem: (sorted numbers, target, mode, one solution as (x, y, z) or the numbers)."""
    out = []
    for nums in itertools.combinations_with_replacement(range(1, max_number + 1), 3):
        out.append((nums, sum(nums), "common", nums))
        additive = _additive_values(nums)
        seen: set[int] = set()
        for x, y, z in itertools.permutations(nums):
            t = x * y - z
            if t > 0 and t not in additive and t not in seen:
                seen.add(t)
                out.append((nums, t, "rare", (x, y, z)))
    return tuple(out)


@register_task("countdown_modes")
@dataclass(frozen=True)
class CountdownModesTask:
    """Three numbers 1-9 to a target; common (a + b + c) and rare (x * y - z only) modes."""

    rare_fraction: float = 0.25
    test_fraction: float = 0.2
    shots: int = 0
    max_number: int = 9
    template: str = DEFAULT_TEMPLATE

    name: ClassVar[str] = "countdown_modes"

    def __post_init__(self) -> None:
        check_options(self)
        if not 0.0 <= self.rare_fraction <= 1.0:
            raise option_error(self, "rare_fraction", self.rare_fraction, "a number in [0, 1]")
        if not 0.0 < self.test_fraction < 1.0:
            raise option_error(self, "test_fraction", self.test_fraction, "a number in (0, 1)")
        if not 2 <= self.max_number <= 9:
            raise option_error(self, "max_number", self.max_number, "an integer in 2..9")
        if not 0 <= self.shots <= len(EXAMPLES):
            raise option_error(self, "shots", self.shots, f"an integer in 0..{len(EXAMPLES)}")
        try:
            self.template.format(numbers="1, 2 and 3", target=6)
        except (KeyError, IndexError, ValueError):
            raise option_error(
                self, "template", self.template, "a text with {numbers} and {target} only"
            ) from None

    @property
    def _salt(self) -> str:
        return f"passk/{self.name}"

    def _prompt(self, numbers: str, target: int) -> str:
        question = self.template.format(numbers=numbers, target=target)
        if not self.shots:
            return question
        worked = [
            f"{self.template.format(numbers=n, target=t)}\n\\boxed{{{e}}}"
            for n, t, e in EXAMPLES[: self.shots]
        ]
        return "Examples:\n\n" + "\n\n".join(worked) + "\n\nNow:\n" + question

    def _problem(self, nums: tuple[int, int, int], target: int, mode: str, solution) -> Problem:
        numbers = f"{nums[0]}, {nums[1]} and {nums[2]}"
        return Problem(
            id=f"{self.name}/{mode}/{nums[0]}{nums[1]}{nums[2]}={target}",
            prompt=self._prompt(numbers, target),
            answer=str(target),
            meta={
                "numbers": list(nums),
                "target": target,
                "source": mode,
                "solution": list(solution),
            },
        )

    def split_of(self, problem: Problem) -> str:
        key = ",".join(map(str, problem.meta["numbers"]))
        return split_of(key, salt=self._salt, test_fraction=self.test_fraction)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """``n`` problems of ``split``, ``round(n * rare_fraction)`` of them rare, in a seeded
        order; fewer where a mode's pool is too small for that mix (the mix is kept)."""
        check_split(split)
        rng = random.Random(f"{self._salt}:{seed}:{split}")
        pools: dict[str, list] = {"common": [], "rare": []}
        for nums, target, mode, solution in _space(self.max_number):
            key = ",".join(map(str, nums))
            if split_of(key, salt=self._salt, test_fraction=self.test_fraction) == split:
                pools[mode].append((nums, target, mode, solution))
        # the largest draw that keeps the mix when a mode's pool is smaller than asked
        f = self.rare_fraction
        most = min(
            n,
            len(pools["common"]) / (1 - f) if f < 1 else n,
            len(pools["rare"]) / f if f > 0 else n,
        )
        n_rare = round(int(most) * f)
        n_common = min(int(most) - n_rare, len(pools["common"]))
        chosen = rng.sample(pools["rare"], n_rare) + rng.sample(pools["common"], n_common)
        rng.shuffle(chosen)
        return [self._problem(*item) for item in chosen]

    def score(self, problem: Problem, completion: str) -> Score:
        text = last_boxed(completion)
        rule = "boxed"
        if text is None:
            runs = [m.group(0) for m in _EXPRESSION_RUN.finditer(_TIMES.sub("*", completion))]
            runs = [r for r in runs if re.search(r"[+\-*]", r)]
            text, rule = (runs[-1], "last_expression") if runs else (None, "none")
        if text is None:
            return Score(reward=0.0, correct=False, extracted=None, info={"rule": rule})
        try:
            value, used, shape = parse_expression(text)
        except ValueError as e:
            return Score(
                reward=0.0,
                correct=False,
                extracted=text.strip(),
                info={"rule": rule, "template": "invalid", "refused": str(e)},
            )
        correct = (
            sorted(used) == sorted(problem.meta["numbers"]) and value == problem.meta["target"]
        )
        return Score(
            reward=float(correct),
            correct=correct,
            extracted=re.sub(r"\s+", "", text),
            info={"rule": rule, "template": shape, "value": value},
        )
