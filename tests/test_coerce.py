"""The one type-hint reader shared by the training config and task options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from passk.coerce import coerce, describe
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
