"""maj@k: the exact computation against enumeration of every k-subset, and the sampled
fallback against the exact value."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.core.majority import (
    answer_classes,
    maj_at_k,
    maj_at_k_brute_force,
    maj_at_k_per_problem,
    maj_at_k_values,
)


def _random_problem(rng: random.Random, n: int, values: int, p_none: float):
    answers = [None if rng.random() < p_none else rng.randrange(values) for _ in range(n)]
    correct = [a == 0 for a in answers]
    return answers, correct


@pytest.mark.parametrize("n", range(1, 11))
def test_exact_equals_enumeration_of_every_subset(n):
    rng = random.Random(n)
    for _ in range(12):
        answers, correct = _random_problem(rng, n, rng.randint(1, 5), rng.choice([0, 0.2, 0.5]))
        exact = maj_at_k_values(answers, correct, method="exact")
        assert exact.method == "exact" and exact.ks == tuple(range(1, n + 1))
        for k, value in zip(exact.ks, exact.values):
            assert value == pytest.approx(maj_at_k_brute_force(answers, correct, k), abs=1e-12)


@pytest.mark.parametrize(
    ("answers", "correct", "k", "expected"),
    [
        (["a", "b"], [True, False], 2, 0.5),  # a tie of two: the correct one wins half
        (["a", "b", "c"], [True, False, False], 3, 1 / 3),  # three-way tie
        (["a", "a", "b", "b"], [True, True, False, False], 4, 0.5),
        ([None, None, "a"], [False, False, True], 1, 1 / 3),  # None never wins...
        ([None, None, "a"], [False, False, True], 2, 2 / 3),  # ...but takes seats
        ([None, None], [True, True], 2, 0.0),  # no answer at all votes wrong
        (["a", "a", "b"], [True, True, False], 3, 1.0),
        (["a", "b", "b"], [True, False, False], 3, 0.0),
    ],
)
def test_worked_values(answers, correct, k, expected):
    assert maj_at_k(answers, correct, k) == pytest.approx(expected, abs=1e-12)
    assert maj_at_k_brute_force(answers, correct, k) == pytest.approx(expected, abs=1e-12)


def test_several_correct_answers_split_their_votes_and_flags_average_within_an_answer():
    # "0.5" and "1/2" both correct: separate candidates, either winning counts
    answers = ["0.5", "1/2", "3", "3"]
    correct = [True, True, False, False]
    for k in range(1, 5):
        assert maj_at_k(answers, correct, k) == pytest.approx(
            maj_at_k_brute_force(answers, correct, k), abs=1e-12
        )
    assert maj_at_k(answers, correct, 4) == 0.0  # "3" has two votes, the others one each
    # flags that disagree within one answer: the answer counts with its correct fraction
    assert answer_classes(["x", "x", "y"], [True, False, False]) == ([2, 1], [0.5, 0.0], 0)
    assert maj_at_k(["x", "x", "y"], [True, False, False], 3) == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=1, max_size=9),
    st.data(),
)
def test_exact_matches_enumeration_property(answers, data):
    correct = [data.draw(st.booleans()) if a is not None else False for a in answers]
    exact = maj_at_k_values(answers, correct, method="exact")
    for k, value in zip(exact.ks, exact.values):
        assert value == pytest.approx(maj_at_k_brute_force(answers, correct, k), abs=1e-12)
        assert 0.0 <= value <= 1.0


def test_permutation_invariance_and_full_subset():
    rng = random.Random(3)
    answers, correct = _random_problem(rng, 40, 6, 0.1)
    order = list(range(40))
    rng.shuffle(order)
    a = maj_at_k_values(answers, correct)
    b = maj_at_k_values([answers[i] for i in order], [correct[i] for i in order])
    assert np.allclose(a.values, b.values, atol=1e-12)
    # k = n: the whole set votes, deterministic up to the tie-break
    counts, q, _ = answer_classes(answers, correct)
    top = max(counts)
    expected = sum(qa for m, qa in zip(counts, q) if m == top) / counts.count(top)
    assert a.values[-1] == pytest.approx(expected, abs=1e-12)
    # k = 1: a random sample's answer, correct with probability c / n
    assert a.values[0] == pytest.approx(sum(correct) / 40, abs=1e-12)


def test_sampled_fallback_agrees_with_exact_within_its_standard_error():
    rng = random.Random(7)
    answers, correct = _random_problem(rng, 60, 8, 0.15)
    ks = [1, 3, 8, 20, 60]
    exact = maj_at_k_values(answers, correct, ks, method="exact")
    sampled = maj_at_k_values(answers, correct, ks, method="sample", num_subsets=4000, seed=1)
    assert sampled.method == "sample"
    for e, v, se in zip(exact.values, sampled.values, sampled.stderr):
        assert abs(v - e) <= 5 * se + 1e-12
    again = maj_at_k_values(answers, correct, ks, method="sample", num_subsets=4000, seed=1)
    assert again == sampled  # seeded
    # auto falls back to sampling when the exact work estimate is over budget
    auto = maj_at_k_values(answers, correct, ks, max_exact_work=1.0, num_subsets=200)
    assert auto.method == "sample" and all(se >= 0 for se in auto.stderr)
    assert maj_at_k_values(answers, correct, ks).method == "exact"


def test_n_256_every_k_is_exact_and_fast():
    rng = random.Random(0)
    # many distinct answers: 1 correct answer among ~100 wrong ones, a few None
    answers = [rng.choice([0] * 30 + list(range(1, 100))) for _ in range(250)] + [None] * 6
    correct = [a == 0 for a in answers]
    t0 = time.perf_counter()
    res = maj_at_k_values(answers, correct)  # k = 1..256
    elapsed = time.perf_counter() - t0
    assert res.method == "exact" and len(res.values) == 256
    assert elapsed < 20  # typically 0.05 s; generous for a loaded machine
    assert res.values[0] == pytest.approx(sum(correct) / 256, abs=1e-12)
    sampled = maj_at_k_values(answers, correct, [4, 16, 64], method="sample", num_subsets=3000)
    for k, v, se in zip(sampled.ks, sampled.values, sampled.stderr):
        assert abs(v - res.values[k - 1]) <= 5 * se + 1e-3  # se = 0 when no subset lost


def test_large_n_stays_finite_and_in_range():
    rng = random.Random(1)
    answers, correct = _random_problem(rng, 1500, 3, 0.0)
    res = maj_at_k_values(answers, correct, [1, 750, 1500], method="exact")
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in res.values)
    assert res.values[0] == pytest.approx(sum(correct) / 1500, abs=1e-10)


def test_per_problem_leaves_out_problems_with_fewer_than_k_samples():
    values, errors, methods = maj_at_k_per_problem(
        [["a", "a"], ["a", "b", "b", "b"]], [[True, True], [True, False, False, False]], [1, 2, 4]
    )
    assert values.shape == (2, 3) and math.isnan(values[0, 2])
    assert values[0, :2].tolist() == pytest.approx([1.0, 1.0])
    assert values[1, 2] == 0.0 and methods == ["exact", "exact"] and (errors == 0).all()


def test_bad_input():
    with pytest.raises(ValueError, match=r"k must be in 1\.\.n=2"):
        maj_at_k(["a", "b"], [True, False], 3)
    with pytest.raises(ValueError, match="2 answers but 1 correctness flags"):
        maj_at_k(["a", "b"], [True], 1)
    with pytest.raises(ValueError, match="method"):
        maj_at_k(["a"], [True], 1, method="vote")
