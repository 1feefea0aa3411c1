"""The one type-hint reader shared by the training config and task options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from passk.coerce import NonNegativeInt, PositiveInt, check_fields, coerce, describe
from passk.tasks.base import check_options


def test_config_numbers_are_lenient_task_numbers_are_not() -> None:
    assert coerce("1e-6", float, "optim.lr", lenient_numbers=True) == 1e-6
    assert coerce(4.0, int, "rollout.n", lenient_numbers=True) == 4
    with pytest.raises(ValueError, match=r"digits must be an integer, got 4.0"):
        coerce(4.0, int, "digits")
    with pytest.raises(ValueError, match=r"x must be a number, got '1e-6'"):
        coerce("1e-6", float, "x")


def test_unions_literals_and_tuples() -> None:
    assert coerce(None, int | None, "k") is None
    assert coerce([1, 2], tuple[float, ...], "ks") == (1.0, 2.0)
    with pytest.raises(ValueError, match=r"pair must have 2 items"):
        coerce([1], tuple[int, int], "pair")
    with pytest.raises(ValueError, match=r"mode='x' is not valid; valid: a, b"):
        coerce("x", Literal["a", "b"], "mode")
    assert describe(int | Literal["auto"]) == "an integer or 'auto'"
    assert describe(tuple[str, ...] | None) == "a list of strings or null"


@dataclass
class _Toy:
    name: str = "toy"
    parts: tuple[str, ...] = ("a",)
    mode: Literal["fast", "slow"] = "fast"
    scale: float = 1.0


def test_task_options_use_the_same_reader() -> None:
    t = _Toy(parts=["x", "y"], scale=2)  # type: ignore[arg-type]
    check_options(t)
    assert t.parts == ("x", "y") and t.scale == 2.0 and isinstance(t.scale, float)
    with pytest.raises(ValueError, match=r"option mode='medium' is not valid; expected 'fast'"):
        check_options(_Toy(mode="medium"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"option parts='x' is not valid; expected a list of"):
        check_options(_Toy(parts="x"))  # type: ignore[arg-type]


def test_declared_bounds_are_checked_where_the_value_is_read() -> None:
    from typing import Annotated

    from passk.coerce import NonNegativeInt, OutOfRange, PositiveFloat, Range

    assert Range(gt=0).words() == "> 0" and Range(ge=0, lt=1).words() == "in [0, 1)"
    assert Range(le=2.5).words() == "<= 2.5" and Range().words() == "any number"
    assert coerce(3, NonNegativeInt, "x") == 3 and coerce(0, NonNegativeInt, "x") == 0
    with pytest.raises(OutOfRange, match=r"^x must be >= 0, got -1$"):
        coerce(-1, NonNegativeInt, "x")
    # in a union: the right type out of its bounds says so (not "must be a number or ...")
    with pytest.raises(OutOfRange, match=r"^b must be > 0, got 0$"):
        coerce(0, Annotated[int, Range(gt=0)] | Literal["auto"], "b")
    assert coerce("auto", Annotated[int, Range(gt=0)] | Literal["auto"], "b") == "auto"
    # an optional field's message says that null is valid too
    with pytest.raises(OutOfRange, match=r"^t must be > 0 or null, got 0\.0$"):
        coerce(0.0, PositiveFloat | None, "t")
    assert coerce(None, PositiveFloat | None, "t") is None


@dataclass
class Inner:
    size: PositiveInt = 1
    flag: bool = False


@dataclass
class Outer:
    inner: Inner
    count: NonNegativeInt = 0


def test_check_fields_walks_a_dataclass_tree_with_paths() -> None:
    check_fields(Outer(Inner()))
    with pytest.raises(ValueError, match=r"^outer\.inner\.size must be > 0, got 0$"):
        check_fields(Outer(Inner(size=0)), "outer.")
    with pytest.raises(ValueError, match=r"^count must be >= 0, got -2$"):
        check_fields(Outer(Inner(), count=-2))
