"""countdown_modes: the modes hold by brute force, splits are disjoint by numbers, scoring."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from passk.tasks import get_task
from passk.tasks.countdown import CountdownModesTask, parse_expression


def _all_expressions(nums):
    """Every expression over the three numbers with + - * and any parenthesisation."""
    ops = "+-*"
    for a, b, c in itertools.permutations(nums):
        for o1, o2 in itertools.product(ops, repeat=2):
            yield f"({a}{o1}{b}){o2}{c}"
            yield f"{a}{o1}({b}{o2}{c})"


@pytest.fixture(scope="module")
def every_problem():
    task = CountdownModesTask()
    return task.problems("train", 10_000) + task.problems("test", 10_000)


def test_modes_hold_by_brute_force(every_problem):
    for p in every_problem:
        nums, target = p.meta["numbers"], p.meta["target"]
        reachable = {}
        for expr in _all_expressions(nums):
            value, used, shape = parse_expression(expr)
            assert sorted(used) == sorted(nums)
            reachable.setdefault(value, set()).add(shape)
        assert target in reachable, p.id
        if p.meta["source"] == "common":
            assert target == sum(nums)
            assert "sum" in reachable[target]
        else:
            assert target != sum(nums)
            assert not reachable[target] & {"sum", "additive"}, p.id  # needs a product
            x, y, z = p.meta["solution"]
            assert x * y - z == target


def test_splits_are_disjoint_by_numbers_and_keep_the_mix():
    task = CountdownModesTask()
    train, test = task.problems("train", 10_000), task.problems("test", 10_000)
    numbers = lambda ps: {tuple(p.meta["numbers"]) for p in ps}  # noqa: E731
    assert not numbers(train) & numbers(test)
    assert len({p.id for p in train + test}) == len(train) + len(test)
    for ps in (train, test, task.problems("train", 40)):
        counts = Counter(p.meta["source"] for p in ps)
        assert counts["rare"] == round(len(ps) * 0.25)
    assert len(task.problems("train", 40)) == 40
    assert all(task.split_of(p) == "test" for p in test)


def test_seeded_order_and_rare_fraction():
    task = CountdownModesTask(rare_fraction=0.5)
    assert [p.id for p in task.problems("train", 20, seed=1)] == [
        p.id for p in task.problems("train", 20, seed=1)
    ]
    assert [p.id for p in task.problems("train", 20, seed=1)] != [
        p.id for p in task.problems("train", 20, seed=2)
    ]
    assert Counter(p.meta["source"] for p in task.problems("train", 20))["rare"] == 10


@pytest.mark.parametrize(
    ("completion", "correct", "template"),
    [
        ("So \\boxed{7*8-5}", True, "product_minus"),
        ("\\boxed{8 × 7 - 5}", True, "product_minus"),
        ("\\boxed{(7*8)-5}", True, "product_minus"),
        ("\\boxed{7*8+5}", False, "product_plus"),
        ("\\boxed{7+8+5}", False, "sum"),
        ("\\boxed{7*8-5-0}", False, "other"),  # a number that is not the problem's
        ("\\boxed{7*7-5}", False, "product_minus"),  # 7 twice, 8 never
        ("\\boxed{56/1-5}", False, "invalid"),
        ("\\boxed{-5+7*8}", False, "invalid"),  # unary minus
        ("\\boxed{__import__('os')}", False, "invalid"),
        ("The answer is 7 * 8 - 5.", True, "product_minus"),  # no box: the last expression
    ],
)
def test_score(completion, correct, template):
    task = CountdownModesTask()
    problem = task._problem((5, 7, 8), 51, "rare", (7, 8, 5))
    score = task.score(problem, completion)
    assert score.correct is correct
    assert score.reward == float(correct)
    assert score.info["template"] == template


def test_no_answer():
    task = CountdownModesTask()
    problem = task._problem((5, 7, 8), 20, "common", (5, 7, 8))
    score = task.score(problem, "I do not know.")
    assert (score.correct, score.extracted, score.info["rule"]) == (False, None, "none")


def test_registered_with_options_and_shots():
    task = get_task("countdown_modes", shots=2, max_number=6)
    p = task.problems("test", 4)[0]
    assert p.prompt.startswith("Examples:") and "\\boxed{10 * 12 - 11}" in p.prompt
    assert max(max(p.meta["numbers"]) for p in task.problems("train", 1000)) <= 6
    for bad in ({"rare_fraction": 1.5}, {"shots": 9}, {"max_number": 12}, {"template": "{x}"}):
        with pytest.raises(ValueError, match="countdown_modes"):
            get_task("countdown_modes", **bad)
