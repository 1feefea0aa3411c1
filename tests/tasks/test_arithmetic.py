"""Arithmetic tasks: disjoint seeded splits, scoring, format reward, real-output extraction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.tasks import get_task
from passk.tasks.arithmetic import AddTask, ChainTask, Mul1Task
from passk.tasks.extract import extract_number, normalize_number

GOLDEN = Path(__file__).parent.parent / "golden" / "arithmetic_extraction.jsonl"


def test_mul1_split_is_exact_and_disjoint():
    task = Mul1Task()
    train = task.problems("train", 1000)
    test = task.problems("test", 1000)
    assert len(train) == 48 and len(test) == 16
    assert not {p.id for p in train} & {p.id for p in test}
    assert len({p.id for p in train + test}) == 64
    assert all(task.split_of(p) == "test" for p in test)
    # the split does not depend on the sampling seed, only the order does
    assert {p.id for p in task.problems("test", 100, seed=9)} == {p.id for p in test}
    assert [p.id for p in task.problems("test", 5, seed=9)] != [p.id for p in test[:5]]


@pytest.mark.parametrize(
    "task", [AddTask(digits=1), AddTask(digits=3), ChainTask(terms=3, digits=2), ChainTask()]
)
def test_procedural_splits_are_disjoint_and_seeded(task):
    train = task.problems("train", 200, seed=0)
    test = task.problems("test", 200, seed=0)
    assert not {p.id for p in train} & {p.id for p in test}
    assert len({p.id for p in train}) == len(train)  # distinct within a split
    assert all(task.split_of(p) == "train" for p in train)
    assert [p.id for p in task.problems("test", 20, seed=0)] == [p.id for p in test[:20]]
    assert task.problems("test", 20, seed=1) != task.problems("test", 20, seed=0)
    for p in train[:20]:
        assert int(p.answer) == sum(p.meta["operands"])
        assert str(p.meta["operands"][0]) in p.prompt


def test_add_digits_and_registry_options():
    task = get_task("add", digits=5)
    p = task.problems("test", 3)[0]
    assert all(10_000 <= x <= 99_999 for x in p.meta["operands"])
    assert len(get_task("chain", terms=6).problems("train", 1)[0].meta["operands"]) == 6
    with pytest.raises(ValueError, match="digits"):
        AddTask(digits=0)
    with pytest.raises(ValueError, match="split"):
        task.problems("validation", 3)


def test_scoring_and_format_weight():
    task = Mul1Task(format_weight=0.2)
    p = next(p for p in task.problems("train", 48) if p.meta["operands"] == [7, 8])
    boxed = task.score(p, r"7 times 8 is \boxed{56}")
    plain = task.score(p, "7 * 8 = 56.")
    wrong = task.score(p, r"\boxed{54}")
    assert boxed.correct and boxed.reward == pytest.approx(1.0)
    assert plain.correct and plain.reward == pytest.approx(0.8)
    assert not wrong.correct and wrong.reward == pytest.approx(0.2)
    assert wrong.extracted == "54"
    assert task.score(p, "").reward == 0.0 and task.score(p, "").extracted is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{56}", "56"),
        (r"The answer is $\boxed{1,234}$.", "1234"),
        ("The answer is: 42.", "42"),
        ("**Answer:** 42", "42"),
        ("The answer is 7 * 8 = 56", "56"),
        ("7 x 8 = 56", "56"),
        ("So we get 3 + 4 = 7, then 7 + 5 = 12.", "12"),
        ("The total = 1,000,000", "1000000"),
        ("5 * 7 equals 35. As you know, 35 is the answer.", "35"),
        ("2 + 2 + 21 = 36 + 24", None),  # no backtracking to "3" before "6 + 24"
        ("170", "170"),
        ("+437", "437"),
        (r"\boxed{denoted: (5 * 8)}", None),  # an expression in the box, not an answer
        ("= -12.50", "-12.5"),
        (r"\boxed{7 \times 8 = 56}", "56"),
        ("Result: 56.0", None),  # no rule: a bare trailing number is not a commitment
        ("I have 12 apples and 3 pears", None),
        ("nothing", None),
    ],
)
def test_extraction_rules(text, expected):
    assert extract_number(text)[0] == expected


@given(st.integers(min_value=-(10**12), max_value=10**12))
@settings(max_examples=200, deadline=None)
def test_numbers_with_thousands_separators_roundtrip(x):
    assert normalize_number(f"{x:,}") == str(x)
    assert extract_number(rf"so the answer is \boxed{{{x:,}}}.")[0] == str(x)
    assert extract_number(f"... = {x}.")[0] == str(x)


def _golden_rows() -> list[dict]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]


def test_golden_table_of_real_model_outputs():
    """Outputs of the embedded SmolLM2-135M, each with the answer a careful reader extracts."""
    rows = _golden_rows()
    assert len(rows) >= 24
    failures = [
        (r["output"][-120:], r["expected"], extract_number(r["output"])[0])
        for r in rows
        if extract_number(r["output"])[0] != r["expected"]
    ]
    assert not failures, failures
    task = get_task("mul1")
    for r in rows:
        if r["task"] == "mul1":
            p = next(
                p
                for p in task.problems("train", 64) + task.problems("test", 64)
                if p.id == r["problem"]
            )
            assert task.score(p, r["output"]).correct == (r["expected"] == p.answer)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("add", {"digits": "abc"}, r"task 'add': option digits='abc' is not valid; expected an integer"),
        ("add", {"digits": 2.5}, r"option digits=2.5 is not valid; expected an integer"),
        ("add", {"digits": True}, r"option digits=True is not valid; expected an integer"),
        ("chain", {"terms": "x"}, r"task 'chain': option terms='x' is not valid"),
        ("chain", {"terms": 1}, r"option terms=1 is not valid; expected an integer >= 2"),
        ("mul1", {"format_weight": "x"}, r"option format_weight='x' is not valid; expected a number"),
        ("mul1", {"test_fraction": 1}, r"option test_fraction=1.0 is not valid; expected a number in \(0, 1\)"),
        ("mul1", {"partial_credit": "yes"}, r"option partial_credit='yes' is not valid; expected true or false"),
        ("mul1", {"template": "{x}"}, r"option template='\{x\}' is not valid; expected a text with \{expression\}"),
        ("mul1", {"template": 3}, r"option template=3 is not valid; expected a string"),
        ("add", {"digitz": 3}, r"task 'add': unknown option digitz=3; valid: .*digits"),
    ],
)  # fmt: skip
def test_bad_options_name_the_option_its_value_and_what_is_valid(name, options, message):
    with pytest.raises(ValueError, match=message):
        get_task(name, **options)


def test_numeric_options_accept_json_numbers():
    assert get_task("add", format_weight=1).format_weight == 1.0  # an int where a float goes
    assert get_task("chain", terms=3, digits=1, partial_credit=True).terms == 3
