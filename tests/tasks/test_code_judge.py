"""Parent-side judging: test planning, value encoding round trip, safe evaluation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passk.tasks.code import _harness
from passk.tasks.code.judge import decode, judge_values, plan_test

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**5000), max_value=10**5000)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.complex_numbers(allow_nan=False)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
        | st.frozensets(st.integers() | st.text(max_size=3), max_size=3)
    ),
    max_leaves=20,
)


@given(values)
def test_encode_decode_round_trip(v):
    back = decode(_harness._encode(v))
    assert back == v and type(back) is type(v)


def test_nan_and_inf_round_trip():
    assert math.isnan(decode(_harness._encode(float("nan"))))
    assert decode(_harness._encode(float("-inf"))) == float("-inf")


@pytest.mark.parametrize(
    "test, lifted, calls",
    [
        ("assert f(1) == 2", True, ("f(1)",)),
        ("assert 2 == f(1)", True, ("f(1)",)),
        ("assert f(f(1)) == 2", True, ("f(f(1))",)),
        ("assert f(1) == 2 and f(2) == 3", True, ("f(1)", "f(2)")),
        ("assert abs(f(1) - 2.5) < 1e-9", True, ("f(1)",)),
        ("assert math.isclose(f(1), 2.5)", True, ("f(1)",)),
        ("assert f('a').upper() == 'A'", True, ("f('a')",)),
        ("assert not f(0)", True, ("f(0)",)),
        ("assert f(1) is None", True, ("f(1)",)),
        ("assert f([3, 1]) == sorted([1, 3])", True, ("f([3, 1])",)),
        ("assert [f(x) for x in range(3)] == [0, 1, 2]", False, ()),
        ("assert g(f(1)) == 2", False, ()),  # g is unknown to the parent
        ("assert f(1) ** 2 == 4", False, ()),  # cost grows with the value
        ("assert [0] * f(1) == [0]", False, ()),
        ("assert list(range(f(1))) == [0]", False, ()),
        ("assert 'x'.ljust(f(1)) == 'x'", False, ()),
        ("assert math.factorial(f(3)) == 6", False, ()),
        ("assert f(1).__class__ is int", False, ()),
        ("x = f(1)\nassert x == 2", False, ()),
        ("assert True", False, ()),
    ],
)
def test_plan(test, lifted, calls):
    plan = plan_test(test, "f")
    assert plan.lifted is lifted and plan.calls == calls and plan.invalid is None


def test_invalid_test_is_marked():
    assert plan_test("assert f(", "f").invalid


@pytest.mark.parametrize(
    "test, reported, ok",
    [
        ("assert f(1) == 2", [["i", "2"]], True),
        ("assert f(1) == 2", [["i", "3"]], False),
        ("assert f(1) == 2", [True], False),
        ("assert f(1) == 1", [True], True),  # Python: True == 1
        ("assert f(1) == [1, 2]", [["t", [["i", "1"], ["i", "2"]]]], False),  # tuple != list
        ("assert f(1) == {1, 2}", [["S", [["i", "2"], ["i", "1"]]]], True),
        ("assert f(1) == {1: 'a'}", [["d", [[["i", "1"], "a"]]]], True),
        ("assert f(1) == 2", [], False),
        ("assert f(1) == 2", [["i", "2"], ["i", "2"]], False),
        ("assert f(1) == 2", "nonsense", False),
        ("assert f(1) == 2", [["x", "2"]], False),
        ("assert f(1) == {1}", [["S", [["l", []]]]], False),  # unhashable member
        ("assert f(1) == 2", [["l", [["l", [["l", []]]]]]], False),
    ],
)
def test_judge_values(test, reported, ok):
    assert judge_values(plan_test(test, "f"), reported) is ok


def test_decode_rejects_deep_nesting():
    v: list = ["l", []]
    for _ in range(200):
        v = ["l", [v]]
    with pytest.raises(ValueError):
        decode(v)
    assert judge_values(plan_test("assert f(1) == []", "f"), [v]) is False
