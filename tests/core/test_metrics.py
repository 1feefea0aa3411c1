"""pass@k and pass^k metrics, bounds and diversity; reward transforms and DARS allocation."""

from __future__ import annotations

import math
from itertools import combinations, pairwise

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.core.allocation import dars_extra_rollouts
from passk.core.metrics import (
    answer_diversity,
    dang_bound,
    default_ks,
    pass_at_k,
    pass_at_k_ci,
    pass_at_k_curve,
    pass_at_k_per_problem,
    pass_hat_k,
    pass_hat_k_ci,
    pass_hat_k_curve,
    problems_per_k,
    summarize_per_problem,
)
from passk.core.rewards import noisy_rewards, overlong_penalty


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of k-subsets of n samples (c correct) holding a correct one."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(samples, k))
    return sum(max(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 10))
def test_pass_at_k_equals_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_matches_exact_binomial_for_large_n():
    for n, c, k in [(10_000, 1, 1), (10_000, 3, 5000), (10_000, 9_000, 64), (4096, 17, 1024)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-10)
        t = pass_at_k(torch.tensor([n]), torch.tensor([c]), k)
        assert t.item() == pytest.approx(exact, rel=1e-10)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_tensor_and_scalar_paths_agree(args):
    n, c, k = args
    t = pass_at_k(torch.tensor([n, n]), torch.tensor([c, 0]), k)
    assert t[0].item() == pytest.approx(pass_at_k(n, c, k), rel=1e-12, abs=1e-15)
    assert t[1].item() == 0.0
    assert 0.0 <= t[0].item() <= 1.0


def test_pass_at_k_is_monotone_in_k_and_c():
    n = 64
    for c in range(0, n + 1, 7):
        vals = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert all(a <= b + 1e-15 for a, b in pairwise(vals))
    assert pass_at_k(n, 5, 1) == pytest.approx(5 / 64)


def test_pass_at_k_bad_input():
    with pytest.raises(ValueError, match="k must be in"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="c \\(correct samples\\)"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="k must be in"):
        pass_at_k(torch.tensor([4, 2]), torch.tensor([1, 1]), 3)


def test_curve_and_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64]
    assert default_ks(10) == [1, 2, 4, 8, 10]
    curve = pass_at_k_curve([16, 16, 16], [0, 4, 16])
    assert list(curve) == [1, 2, 4, 8, 16]
    assert curve[1] == pytest.approx((0 + 0.25 + 1) / 3)
    assert curve[16] == pytest.approx(2 / 3)
    per = pass_at_k_per_problem([16, 16], [4, 0], [1, 4])
    assert per.shape == (2, 2)


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    c = torch.randint(0, 17, (200,), generator=g)
    n = torch.full_like(c, 16)
    curve = pass_at_k_curve(n, c)
    ci = pass_at_k_ci(n, c, seed=1)
    for k, (lo, hi) in ci.items():
        assert lo <= curve[k] <= hi
        assert hi - lo < 0.2
    assert ci == pass_at_k_ci(n, c, seed=1)
    one = pass_at_k_ci([16], [4])
    assert one[1][0] == one[1][1]  # a single problem has no spread
    with pytest.raises(ValueError, match="confidence"):
        pass_at_k_ci(n, c, confidence=1.5)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.integers(2, 64))
def test_dang_bound_bounds_the_true_pass_at_k(rho, k):
    """For k >= 2, E[1 - (1 - rho)^k] <= 1 - ((1 - E rho)^2 + Var rho)^(k/2) (Jensen)."""
    true = sum(1 - (1 - r) ** k for r in rho) / len(rho)
    assert true <= dang_bound(rho, k) + 1e-9


def test_dang_bound_values():
    assert dang_bound([0.5, 0.5], 2) == pytest.approx(0.75)
    # mean 0.5, variance 0.25: 1 - (0.25 + 0.25)^4
    assert dang_bound([0.0, 1.0], 8) == pytest.approx(0.9375)
    with pytest.raises(ValueError):
        dang_bound([1.5], 2)


def test_answer_diversity():
    answers = [["4", "5", "5", None], ["1", "1"], ["2", "3"]]
    correct = [[True, False, False, False], [True, True], [False, False]]
    assert answer_diversity(answers, correct) == pytest.approx((2 / 3 + 1.0) / 2)
    assert math.isnan(answer_diversity([["1"]], [[True]]))
    with pytest.raises(ValueError, match="differ in length"):
        answer_diversity([["1"]], [])


def test_noisy_rewards_flip_only_zeros_at_rate_p():
    r = torch.zeros(200, 100)
    r[:, :10] = 1
    out = noisy_rewards(r, 0.3, seed=0)
    assert (out[:, :10] == 1).all()
    assert out[:, 10:].mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(out, noisy_rewards(r, 0.3, seed=0))
    mask = torch.zeros_like(r, dtype=torch.bool)
    assert torch.equal(noisy_rewards(r, 1.0, mask=mask), r)
    with pytest.raises(ValueError, match="p must be in"):
        noisy_rewards(r, 1.5)


def test_overlong_penalty():
    out = overlong_penalty(torch.tensor([0, 80, 85, 90, 200]), max_len=90, cache_len=10)
    assert out.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])
    with pytest.raises(ValueError, match="cache_len"):
        overlong_penalty(torch.tensor([1]), max_len=10, cache_len=0)


def test_dars_worked_values():
    acc = torch.tensor([0.0, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 7 / 8, 1.0])
    et = dars_extra_rollouts(acc, 8, "et")
    hw = dars_extra_rollouts(acc, 8, "hw")
    assert et.tolist()[:3] == [24, 11, 3] and hw.tolist()[:3] == [56, 24, 8]
    assert et.tolist()[4:] == [0, 0, 0] and hw.tolist()[4:] == [0, 0, 0]
    # the cap is n_max - n
    assert dars_extra_rollouts(acc, 8, "et", n_max=16).max().item() == 8
    with pytest.raises(ValueError, match="schedule"):
        dars_extra_rollouts(acc, 8, "uniform")


def test_dars_std_normalized_reaches_peak_mass():
    acc = torch.tensor([0.1, 0.2, 0.3])
    n = 8
    extra = dars_extra_rollouts(acc, n, "et", std_normalized=True, n_max=10_000)
    s = 2 * (acc * (1 - acc)).sqrt()
    total = (n + extra) * s
    assert (total >= n - 1e-9).all() and ((n + extra - 1) * s < n).all()


# --------------------------------------------------------------------------- pass^k


def brute_force_pass_hat_k(n: int, c: int, k: int) -> float:
    """Fraction of k-subsets of n samples (c correct) that are all correct."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(samples, k))
    return sum(min(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 10))
def test_pass_hat_k_equals_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected = brute_force_pass_hat_k(n, c, k)
            assert pass_hat_k(n, c, k) == pytest.approx(expected, abs=1e-12)
            t = pass_hat_k(torch.tensor([n]), torch.tensor([c]), k)
            assert t.item() == pytest.approx(expected, abs=1e-12)


def test_pass_hat_k_matches_exact_binomial_for_large_n():
    for n, c, k in [(10_000, 9_999, 1), (10_000, 9_990, 500), (4096, 4000, 64), (300, 299, 150)]:
        exact = math.comb(c, k) / math.comb(n, k)
        assert pass_hat_k(n, c, k) == pytest.approx(exact, rel=1e-10)
        t = pass_hat_k(torch.tensor([n]), torch.tensor([c]), k)
        assert t.item() == pytest.approx(exact, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_pass_hat_k_tensor_and_scalar_agree_and_bound_pass_at_k(args):
    n, c, k = args
    t = pass_hat_k(torch.tensor([n, n]), torch.tensor([c, n]), k)
    assert t[0].item() == pytest.approx(pass_hat_k(n, c, k), rel=1e-9, abs=1e-300)
    assert t[1].item() == 1.0
    # all k correct implies one correct: pass^k <= pass@1 <= pass@k
    assert pass_hat_k(n, c, k) <= c / n + 1e-12 <= pass_at_k(n, c, k) + 2e-12


def test_pass_hat_k_curve_ci_and_bad_input():
    curve = pass_hat_k_curve([4, 4], [4, 2], [1, 2, 4])
    assert curve == pytest.approx({1: 0.75, 2: (1 + 1 / 6) / 2, 4: 0.5})
    ci = pass_hat_k_ci([4, 4, 4], [4, 2, 0], [1, 4], num_resamples=200)
    for lo, hi in ci.values():
        assert 0 <= lo <= hi <= 1
    with pytest.raises(ValueError, match="k must be in"):
        pass_hat_k(4, 1, 5)
    with pytest.raises(ValueError, match="c \\(correct samples\\)"):
        pass_hat_k(4, 5, 1)


def test_ragged_problems_are_left_out_where_they_have_fewer_than_k_samples():
    n, c = [2, 8, 8], [1, 8, 0]
    per = pass_at_k_per_problem(n, c, [1, 4, 8])
    assert math.isnan(per[0, 1]) and math.isnan(per[0, 2]) and not per[1:].isnan().any()
    curve = pass_at_k_curve(n, c, [1, 4, 8])
    assert curve[1] == pytest.approx((0.5 + 1 + 0) / 3)
    assert curve[8] == pytest.approx(0.5)  # only the two n = 8 problems
    assert problems_per_k(n, [1, 2, 4, 8]) == {1: 3, 2: 3, 4: 2, 8: 2}
    hat = pass_hat_k_curve(n, c, [2, 8])
    assert hat == pytest.approx({2: 1 / 3, 8: 0.5})
    with pytest.raises(ValueError, match="exceeds every problem"):
        pass_at_k_curve(n, c, [16])
    ci = pass_at_k_ci(n, c, [1, 8], num_resamples=300, seed=2)
    assert ci == pass_at_k_ci(n, c, [1, 8], num_resamples=300, seed=2)
    assert 0 <= ci[8][0] <= 0.5 <= ci[8][1] <= 1


def test_summarize_per_problem_counts_and_drops_unreached_k():
    values = np.array([[1.0, np.nan, np.nan], [0.0, 0.5, np.nan]])
    mean, ci, count = summarize_per_problem(values, [1, 4, 8], num_resamples=50)
    assert mean == {1: 0.5, 4: 0.5} and count == {1: 2, 4: 1} and set(ci) == {1, 4}
    assert ci[4] == (0.5, 0.5)
    with pytest.raises(ValueError, match="values must be"):
        summarize_per_problem(values, [1, 4])


def test_count_matched_wrong_answer_diversity_by_hand():
    from passk.core.metrics import wrong_answer_expected_distinct, wrong_answer_pair_diversity

    # problem 1: wrong answers 5, 5, 6, None (W = 4): same-answer pairs 1 of 6 -> 5/6
    # problem 2: one wrong answer: no pair, left out (distinct / wrong would say 1.0)
    answers = [["5", "5", "6", None, "7"], ["3", "9"]]
    correct = [[False, False, False, False, True], [True, False]]
    assert wrong_answer_pair_diversity(answers, correct) == pytest.approx(5 / 6)
    assert answer_diversity(answers, correct) == pytest.approx((3 / 4 + 1.0) / 2)
    # expected distinct among 2 of the 4: 5 -> 1 - C(2,2)/C(4,2), 6 and None -> 1 - C(3,2)/6
    assert wrong_answer_expected_distinct(answers, correct, 2) == pytest.approx(5 / 6 + 2 * 0.5)
    # m = 1: always one answer; problems with fewer than m wrong responses are left out
    assert wrong_answer_expected_distinct(answers, correct, 1) == pytest.approx(1.0)
    assert math.isnan(wrong_answer_expected_distinct(answers, correct, 5))
    with pytest.raises(ValueError, match="m must be >= 1, got 0"):
        wrong_answer_expected_distinct(answers, correct, 0)


def test_pair_diversity_does_not_depend_on_the_number_of_wrong_samples():
    # the same answer distribution (two answers, equally likely) seen through 2 and
    # through 40 wrong samples: distinct / wrong falls with the count, the pair measure
    # averages to the same value (its per-problem estimate is unbiased)
    from passk.core.metrics import wrong_answer_pair_diversity

    rng = np.random.default_rng(0)

    def problems(w: int, count: int) -> tuple[list, list]:
        ans = [list(rng.choice(["a", "b"], size=w)) for _ in range(count)]
        return ans, [[False] * w for _ in range(count)]

    few, many = problems(2, 4000), problems(40, 400)
    assert wrong_answer_pair_diversity(*few) == pytest.approx(0.5, abs=0.03)
    assert wrong_answer_pair_diversity(*many) == pytest.approx(0.5, abs=0.03)
    assert answer_diversity(*few) > 0.7 and answer_diversity(*many) < 0.06
