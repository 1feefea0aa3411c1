r"""Procedural arithmetic tasks: ``mul1``, ``add`` and ``chain``.

* ``mul1``: single-digit products a x b with a, b in 2..9: only 64 problems. The split
  is by a salted hash of "a*b" (see :mod:`passk.tasks.splits`), ranked so that exactly
  ``round(64 * test_fraction)`` problems are test (default 16 test / 48 train).
* ``add``: a + b with ``digits``-digit operands (default 3); ``digits_b`` gives b its own
  width (``digits=2, digits_b=1``: 47 + 6, 810 problems).
* ``chain``: a sum of ``terms`` numbers (default 4) of ``digits`` digits (default 2).

``add`` and ``chain`` split by the hash of the problem key (``test_fraction`` of the
problem space is test); small spaces are enumerated, large ones rejection-sampled.

**Reward.** The final answer is extracted by :func:`passk.tasks.extract.extract_number`
(boxed, "answer is", last "=", last number). ``correct`` is numeric equality with the
reference. The reward is ``(1 - format_weight) * correct + format_weight * format_ok``
where ``format_ok`` means the answer was given in ``\boxed{}`` as the prompt asks;
``format_weight`` defaults to 0 (reward = correctness). ``correct`` never depends on
the format, so pass@k is the same whatever the weight.

**Partial credit** (``partial_credit=True``, for dense-reward recipes such as max@k and
RL-Grokking's dense stage): the correctness term becomes :func:`digit_credit`, the
fraction of digit positions (aligned from the right, over the longer of the two
numbers) where the extracted answer matches the reference; exact answers get 1.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from passk.tasks.base import Problem, Score, check_options, option_error
from passk.tasks.extract import extract_number, numbers_equal
from passk.tasks.registry import register_task
from passk.tasks.splits import check_split, enumerate_split, hash_fraction, sample_split
from passk.tasks.splits import split_of as _split_of

DEFAULT_TEMPLATE = "What is {expression}? Put your final answer in \\boxed{{}}."
# spaces at most this large are enumerated rather than rejection-sampled
_ENUMERATE_LIMIT = 50_000


def digit_credit(extracted: str | None, answer: str) -> float:
    """Fraction of right-aligned digit positions that agree (0 when nothing was extracted).

    >>> digit_credit("56", "56"), digit_credit("54", "56"), digit_credit("156", "56")
    (1.0, 0.5, 0.6666666666666666)
    >>> digit_credit(None, "56"), digit_credit("-56", "56")
    (0.0, 0.0)
    """
    if extracted is None:
        return 0.0
    got, ref = extracted.strip().replace(",", ""), answer.strip()
    if not (got.isdigit() and ref.isdigit()):
        return 0.0
    width = max(len(got), len(ref))
    got, ref = got.zfill(width), ref.zfill(width)
    return sum(a == b for a, b in zip(got, ref)) / width


@dataclass(frozen=True)
class _Arithmetic:
    """Shared prompt, split and scoring logic; subclasses define the problem space."""

    format_weight: float = 0.0
    test_fraction: float = 0.2
    template: str = DEFAULT_TEMPLATE
    partial_credit: bool = False

    name: ClassVar[str] = "arithmetic"

    def __post_init__(self) -> None:
        check_options(self)  # types first: a range check on a string would be a TypeError
        if not 0.0 <= self.format_weight <= 1.0:
            raise option_error(self, "format_weight", self.format_weight, "a number in [0, 1]")
        if not 0.0 < self.test_fraction < 1.0:
            raise option_error(self, "test_fraction", self.test_fraction, "a number in (0, 1)")
        try:
            self.template.format(expression="1 + 1")
        except (KeyError, IndexError, ValueError):
            raise option_error(
                self, "template", self.template, "a text with {expression} and no other {...}"
            ) from None

    # --- problem space (subclasses) ---
    def _space_size(self) -> int:
        raise NotImplementedError

    def _all_operands(self) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def _draw(self, rng: random.Random) -> tuple[int, ...]:
        raise NotImplementedError

    def _expression(self, operands: tuple[int, ...]) -> str:
        raise NotImplementedError

    def _result(self, operands: tuple[int, ...]) -> int:
        raise NotImplementedError

    # --- shared ---
    @property
    def _salt(self) -> str:
        return f"passk/{self.name}"

    def _key(self, operands: tuple[int, ...]) -> str:
        return self._expression(operands).replace(" ", "")

    def _problem(self, operands: tuple[int, ...]) -> Problem:
        expression = self._expression(operands)
        return Problem(
            id=f"{self.name}/{self._key(operands)}",
            prompt=self.template.format(expression=expression),
            answer=str(self._result(operands)),
            meta={"operands": list(operands), "expression": expression},
        )

    def split_of(self, problem: Problem) -> str:
        """The split a problem belongs to."""
        return _split_of(
            self._key(tuple(problem.meta["operands"])),
            salt=self._salt,
            test_fraction=self.test_fraction,
        )

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """Up to ``n`` distinct problems of ``split`` in a seeded order (fewer if the split
        is smaller than ``n``)."""
        check_split(split)
        if self._space_size() <= _ENUMERATE_LIMIT:
            by_key = {self._key(ops): ops for ops in self._all_operands()}
            keys = enumerate_split(
                by_key, split, n, seed, salt=self._salt, test_fraction=self.test_fraction
            )
            return [self._problem(by_key[k]) for k in keys]
        drawn = sample_split(
            self._draw,
            lambda ops: self._key(ops),  # type: ignore[arg-type]
            split,
            n,
            seed,
            salt=self._salt,
            test_fraction=self.test_fraction,
        )
        return [self._problem(ops) for ops in drawn]  # type: ignore[arg-type]

    def score(self, problem: Problem, completion: str) -> Score:
        extracted, rule = extract_number(completion)
        correct = numbers_equal(extracted, str(problem.answer))
        format_ok = rule == "boxed"
        credit = float(correct)
        if self.partial_credit and not correct:
            credit = digit_credit(extracted, str(problem.answer))
        reward = (1.0 - self.format_weight) * credit + self.format_weight * float(format_ok)
        return Score(
            reward=reward,
            correct=correct,
            extracted=extracted,
            info={"rule": rule, "format_ok": format_ok},
        )


@register_task("mul1")
@dataclass(frozen=True)
class Mul1Task(_Arithmetic):
    """Single-digit multiplication, a x b with a, b in 2..9 (64 problems).

    >>> task = Mul1Task()
    >>> train, test = task.problems("train", 100), task.problems("test", 100)
    >>> len(train), len(test), {p.id for p in train} & {p.id for p in test}
    (48, 16, set())
    >>> task.score(test[0], f"The answer is \\\\boxed{{{test[0].answer}}}.").correct
    True
    """

    test_fraction: float = 0.25
    name: ClassVar[str] = "mul1"

    def _space_size(self) -> int:
        return 64

    def _all_operands(self) -> list[tuple[int, ...]]:
        return [(a, b) for a in range(2, 10) for b in range(2, 10)]

    def _expression(self, operands: tuple[int, ...]) -> str:
        return f"{operands[0]} * {operands[1]}"

    def _result(self, operands: tuple[int, ...]) -> int:
        return operands[0] * operands[1]

    def split_of(self, problem: Problem) -> str:
        return (
            "test" if self._key(tuple(problem.meta["operands"])) in self._test_keys() else "train"
        )

    def _test_keys(self) -> set[str]:
        # rank by hash and take exactly round(64 * test_fraction): a fixed split size
        keys = sorted(
            (self._key(ops) for ops in self._all_operands()),
            key=lambda k: hash_fraction(self._salt, k),
        )
        return set(keys[: round(len(keys) * self.test_fraction)])

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        check_split(split)
        test = self._test_keys()
        chosen = [
            ops for ops in self._all_operands() if (self._key(ops) in test) == (split == "test")
        ]
        random.Random(f"{self._salt}:{seed}:{split}").shuffle(chosen)
        return [self._problem(ops) for ops in chosen[:n]]


@register_task("add")
@dataclass(frozen=True)
class AddTask(_Arithmetic):
    """a + b with a ``digits``-digit a and a ``digits_b``-digit b (``digits_b`` defaults to
    ``digits``).

    >>> p = AddTask(digits=2).problems("test", 1, seed=3)[0]
    >>> int(p.answer) == sum(p.meta["operands"])
    True
    >>> a, b = AddTask(digits=2, digits_b=1).problems("test", 1)[0].meta["operands"]
    >>> 10 <= a <= 99 and 1 <= b <= 9
    True
    """

    digits: int = 3
    digits_b: int | None = None
    name: ClassVar[str] = "add"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.digits <= 18:
            raise option_error(self, "digits", self.digits, "an integer in 1..18")
        if self.digits_b is not None and not 1 <= self.digits_b <= 18:
            raise option_error(self, "digits_b", self.digits_b, "null or an integer in 1..18")

    def _range(self) -> range:
        return range(10 ** (self.digits - 1), 10**self.digits)

    def _range_b(self) -> range:
        d = self.digits if self.digits_b is None else self.digits_b
        return range(10 ** (d - 1), 10**d)

    def _space_size(self) -> int:
        return len(self._range()) * len(self._range_b())

    def _all_operands(self) -> list[tuple[int, ...]]:
        return [(a, b) for a in self._range() for b in self._range_b()]

    def _draw(self, rng: random.Random) -> tuple[int, ...]:
        return (rng.choice(self._range()), rng.choice(self._range_b()))

    def _expression(self, operands: tuple[int, ...]) -> str:
        return " + ".join(str(x) for x in operands)

    def _result(self, operands: tuple[int, ...]) -> int:
        return sum(operands)

    @property
    def _salt(self) -> str:
        # equal widths keep the salt (and so the split) they had before digits_b existed
        if self.digits_b is None or self.digits_b == self.digits:
            return f"passk/add/{self.digits}"
        return f"passk/add/{self.digits}x{self.digits_b}"


@register_task("chain")
@dataclass(frozen=True)
class ChainTask(AddTask):
    """A sum of ``terms`` numbers with ``digits`` digits each.

    >>> ChainTask(terms=3, digits=1).problems("train", 2)[0].prompt.startswith("What is ")
    True
    """

    terms: int = 4
    digits: int = 2
    name: ClassVar[str] = "chain"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.digits_b is not None:
            raise option_error(self, "digits_b", self.digits_b, "null (all terms have `digits`)")
        if self.terms < 2:
            raise option_error(self, "terms", self.terms, "an integer >= 2")

    def _space_size(self) -> int:
        return len(self._range()) ** self.terms

    def _all_operands(self) -> list[tuple[int, ...]]:
        import itertools

        return list(itertools.product(self._range(), repeat=self.terms))

    def _draw(self, rng: random.Random) -> tuple[int, ...]:
        r = self._range()
        return tuple(rng.choice(r) for _ in range(self.terms))

    @property
    def _salt(self) -> str:
        return f"passk/chain/{self.terms}x{self.digits}"


def task_options(task: Any) -> dict[str, Any]:
    """The dataclass fields of a task, for reports."""
    from dataclasses import asdict, is_dataclass

    return asdict(task) if is_dataclass(task) and not isinstance(task, type) else {}
