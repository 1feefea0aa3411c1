"""The comparison engine: hand-computed cases, the distributions against scipy, the
crossed bootstrap's variance, coverage over simulated studies with no true difference,
and transitions counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from passk.core.compare import (
    binomial_two_sided,
    compare_metrics,
    compare_values,
    cover_at_tau,
    crossed_bootstrap,
    crossed_variance,
    paired_proportion_interval,
    t_cdf,
    t_interval,
    t_quantile,
    transitions,
    wilson_interval,
)

# --- distributions ------------------------------------------------------------------------------


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 30])
def test_t_distribution_matches_scipy(df):
    stats = pytest.importorskip("scipy.stats")
    for x in (-7.0, -1.3, 0.0, 0.4, 2.2, 12.0):
        assert t_cdf(x, df) == pytest.approx(stats.t.cdf(x, df), abs=1e-12)
    for p in (0.025, 0.9, 0.975, 0.995):
        assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)


def test_t_quantiles_by_hand():
    # closed forms: df = 1 is Cauchy, tan(pi (p - 1/2)); df = 2: x = (2p - 1) sqrt(2 / (1 - (2p-1)^2))
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-10)
    q = 2 * 0.975 - 1
    assert t_quantile(0.975, 2) == pytest.approx(q * math.sqrt(2 / (1 - q * q)), rel=1e-10)
    with pytest.raises(ValueError, match="df must be a positive integer, got 0"):
        t_cdf(1.0, 0)


def test_t_interval_by_hand():
    lo, hi = t_interval([0.1, 0.3])  # mean 0.2, sd 0.1414, t(1) = 12.706
    half = 12.706204736174707 * math.sqrt(0.02) / math.sqrt(2)
    assert (lo, hi) == pytest.approx((0.2 - half, 0.2 + half))
    assert t_interval([0.5]) is None


def test_binomial_sign_test_by_hand():
    assert binomial_two_sided(1, 9) == pytest.approx(2 * (1 + 9) / 512)
    assert binomial_two_sided(5, 10) == 1.0
    assert binomial_two_sided(0, 0) == 1.0
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(3, 17), (12, 20), (0, 7)]:
        assert binomial_two_sided(k, n) == pytest.approx(stats.binomtest(k, n).pvalue)


def test_wilson_interval_by_hand():
    # 3 of 10 at 95%: centre (0.3 + z^2/20) / (1 + z^2/10), half-width z sqrt(...) / (1 + z^2/10)
    z = 1.959963984540054
    centre = (0.3 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.3 * 0.7 / 10 + z * z / 400) / (1 + z * z / 10)
    assert wilson_interval(3, 10) == pytest.approx((centre - half, centre + half))
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo < 1.0
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(11, 10)


def test_newcombe_interval_by_hand():
    # Newcombe (1998), method 10, worked by hand: a = [1]*6 + [0]*4 paired with b = [1]*9 + [0]
    a = np.array([1] * 6 + [0] * 4)
    b = np.array([1] * 9 + [0])
    both, only_a, only_b, neither = 6, 0, 3, 1
    la, ua = wilson_interval(6, 10)
    lb, ub = wilson_interval(9, 10)
    phi = (both * neither - only_a * only_b) / math.sqrt(6 * 4 * 9 * 1)
    down = math.sqrt((0.9 - lb) ** 2 - 2 * phi * (0.9 - lb) * (ua - 0.6) + (ua - 0.6) ** 2)
    up = math.sqrt((ub - 0.9) ** 2 - 2 * phi * (ub - 0.9) * (0.6 - la) + (0.6 - la) ** 2)
    assert paired_proportion_interval(a, b) == pytest.approx((0.3 - down, 0.3 + up))


# --- the crossed bootstrap ----------------------------------------------------------------------


def _study(rng, s, p, sd_seed, sd_prob, sd_noise, shift=0.0):
    return (
        shift
        + sd_seed * rng.standard_normal((s, 1))
        + sd_prob * rng.standard_normal((1, p))
        + sd_noise * rng.standard_normal((s, p))
    )


@pytest.mark.parametrize("s", [1, 3, 5])
def test_crossed_bootstrap_variance_is_the_unbiased_crossed_variance(s):
    rng = np.random.default_rng(1)
    values = _study(rng, s, 40, 0.05, 0.2, 0.3)
    lo, hi = crossed_bootstrap(values, resamples=40000, confidence=0.6827)
    # a near-normal replicate distribution: the central 68% spans about 2 standard errors
    assert (hi - lo) / 2 == pytest.approx(math.sqrt(crossed_variance(values)), rel=0.05)


def test_redrawing_sub_arrays_over_counts_the_seed_by_problem_term():
    # pure seed x problem noise: the true variance of the mean is 1 / (S P); redrawing a
    # seeds x problems sub-array gives (S-1)/S + (P-1)/P + (S-1)(P-1)/(SP) times that
    rng = np.random.default_rng(2)
    s, p = 3, 100
    naive, ours, unbiased = [], [], []
    for i in range(60):
        values = rng.standard_normal((s, p))
        draws = [
            values[np.ix_(rng.integers(0, s, s), rng.integers(0, p, p))].mean() for _ in range(300)
        ]
        naive.append(np.var(draws))
        lo, hi = crossed_bootstrap(values, resamples=4000, confidence=0.6827, seed=i)
        ours.append(((hi - lo) / 2) ** 2)
        unbiased.append(crossed_variance(values))
    expected_naive = (s - 1) / s + (p - 1) / p + (s - 1) * (p - 1) / (s * p)  # 2.32
    assert np.mean(naive) * s * p == pytest.approx(expected_naive, rel=0.1)
    assert np.mean(ours) == pytest.approx(np.mean(unbiased), rel=0.1)
    # unbiased but for its floor at 0 of the seed part: E max(0, Exp(1) - 1) = 1/e of
    # the noise's share of the seed means, over S
    assert np.mean(unbiased) * s * p == pytest.approx(1 + math.exp(-1), rel=0.15)


def test_crossed_bootstrap_refuses_bad_input():
    with pytest.raises(ValueError, match=r"finite \[seeds, problems\]"):
        crossed_bootstrap(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="resamples must be >= 1, got 0"):
        crossed_bootstrap(np.ones((2, 2)), resamples=0)


# --- two arms -----------------------------------------------------------------------------------


def test_seeds_that_disagree_strongly_give_an_interval_that_includes_zero():
    # every problem moves by the seed's own shift: +0.30, -0.20, +0.25. Over problems
    # alone (seeds averaged first) the mean +0.117 looks certain; over seeds it is not.
    p = 30
    rng = np.random.default_rng(3)
    a = np.tile(rng.uniform(0.2, 0.6, p), (3, 1))
    b = a + np.array([[0.30], [-0.20], [0.25]]) + 0.01 * rng.standard_normal((3, p))
    r = compare_values(a, b)
    assert r["diff"] == pytest.approx(0.35 / 3, abs=0.01)
    assert r["per_seed"] == pytest.approx([0.30, -0.20, 0.25], abs=0.01)
    assert r["t_ci"][0] < 0 < r["t_ci"][1]
    assert not r["distinguishable"]
    # the problems-only bootstrap of seed-averaged differences (the old sweep) excludes 0
    from passk.core.metrics import bootstrap_mean_ci

    lo, _ = bootstrap_mean_ci((b - a).mean(0)[:, None], 2000)
    assert lo[0] > 0


def test_every_seed_and_problem_agreeing_excludes_zero():
    rng = np.random.default_rng(4)
    a = rng.uniform(0.2, 0.6, (3, 30))
    b = a + 0.1 + 0.005 * rng.standard_normal((3, 30))
    r = compare_values(a, b)
    assert r["t_ci"][0] > 0 and r["boot_ci"][0] > 0
    assert r["distinguishable"] and r["training_variance_covered"]
    assert r["seeds"] == 3 and r["problems"] == 30
    assert r["a_ci"][0] < r["a"] < r["a_ci"][1]


def test_one_seed_says_training_variance_is_not_covered():
    rng = np.random.default_rng(5)
    a = rng.uniform(0.2, 0.6, (1, 30))
    r = compare_values(a, a + 0.1)
    assert r["t_ci"] is None and not r["training_variance_covered"]
    assert r["distinguishable"]  # the bootstrap alone decides, and says what it covers


def test_zero_one_values_get_score_intervals_not_a_collapsed_bootstrap():
    a = np.zeros((1, 12))
    b = np.ones((1, 12))
    r = compare_values(a, b)
    assert r["boot_method"] == "newcombe"
    assert r["boot_ci"][0] < 1.0 and r["boot_ci"][1] == 1.0
    assert r["a_ci"][0] == 0.0 and r["a_ci"][1] > 0.1  # Wilson, not (0, 0)
    same = compare_values(a, a)
    assert same["boot_ci"][0] < 0 < same["boot_ci"][1] and not same["distinguishable"]


def test_problems_without_k_samples_are_left_out():
    a = np.array([[0.2, np.nan, 0.4], [0.3, 0.5, np.nan]])
    b = a + 0.1
    r = compare_values(a, b)
    assert r["problems"] == 1 and r["diff"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no problem has a value"):
        compare_values(np.array([[np.nan]]), np.array([[0.5]]))


def test_compare_metrics_keys_and_shapes():
    rng = np.random.default_rng(6)
    a = {"pass_at_k": rng.uniform(0, 1, (2, 10, 2))}
    b = {"pass_at_k": a["pass_at_k"] + 0.05}
    out = compare_metrics(a, b, {"pass_at_k": [1, 8], "maj_at_k": [1]})
    assert list(out) == ["pass_at_k"] and list(out["pass_at_k"]) == ["1", "8"]
    assert out["pass_at_k"]["8"]["diff"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"pass_at_k: expected \[seeds, problems, 3\]"):
        compare_metrics(a, b, {"pass_at_k": [1, 2, 3]})


def _coverage(rng, studies, s, p, sd_seed, sd_prob, sd_noise, resamples=400):
    """Share of simulated studies with no true difference whose intervals hold 0."""
    t_ok = boot_ok = both_ok = 0
    for i in range(studies):
        a = _study(rng, s, p, sd_seed, sd_prob, sd_noise)
        b = a + _study(rng, s, p, sd_seed, 0.0, sd_noise)  # same problems, new runs
        r = compare_values(a, b, resamples=resamples, seed=i)
        t_in = r["t_ci"][0] <= 0 <= r["t_ci"][1]
        boot_in = r["boot_ci"][0] <= 0 <= r["boot_ci"][1]
        t_ok, boot_ok, both_ok = (
            t_ok + t_in,
            boot_ok + boot_in,
            both_ok + (not r["distinguishable"]),
        )
    return t_ok / studies, boot_ok / studies, both_ok / studies


@pytest.mark.parametrize(
    "sd_seed, sd_noise",
    [(0.05, 0.02), (0.0, 0.2)],  # training runs disagree / only evaluation noise
)
def test_coverage_over_simulated_studies_with_no_difference(sd_seed, sd_noise):
    rng = np.random.default_rng(7)
    t_cov, boot_cov, verdict = _coverage(rng, 300, 3, 40, sd_seed, 0.2, sd_noise)
    assert 0.90 <= t_cov <= 0.99  # t is exact for normal per-seed means
    assert verdict >= 0.93  # "distinguishable" no more often than ~5%
    if sd_seed == 0.0:
        assert 0.90 <= boot_cov <= 0.99


# --- transitions --------------------------------------------------------------------------------


def test_transitions_by_hand_count():
    n = np.full((2, 5), 4)
    #              p0 p1 p2 p3 p4
    c_a = np.array([[0, 0, 2, 4, 4], [0, 1, 4, 4, 0]])
    c_b = np.array([[1, 0, 0, 3, 4], [0, 2, 4, 0, 4]])
    ids = ["p0", "p1", "p2", "p3", "p4"]
    t = transitions(c_a, n, c_b, n, ids)
    # seed 0: p0 never->solved, p2 solved->never, p3 always->not always
    # seed 1: p3 solved->never and always->not always, p4 never->solved (and -> always)
    assert t["never_to_solved"] == 2 and t["per_seed"]["never_to_solved"] == [1, 1]
    assert t["solved_to_never"] == 2 and t["per_seed"]["solved_to_never"] == [1, 1]
    assert t["always_to_not_always"] == 2 and t["per_seed"]["always_to_not_always"] == [1, 1]
    assert t["not_always_to_always"] == 1 and t["per_seed"]["not_always_to_always"] == [0, 1]
    assert t["problems"]["never_to_solved"] == {"p0": 1, "p4": 1}
    assert t["problems"]["always_to_not_always"] == {"p3": 2}
    assert t["mcnemar_p_solved"] == 1.0
    # pass@1 change per problem, mean over seeds: p0 +1/8, p1 +1/8, p2 -1/4, p3 -5/8, p4 +1/2
    assert t["sign_test"] == {"better": 3, "worse": 2, "p": 1.0}
    assert t["solved"] == {"a": 6, "b": 6} and t["pairs"] == 10


def test_transitions_threshold_and_errors():
    n = np.full((1, 3), 10)
    t = transitions(np.array([[1, 5, 9]]), n, np.array([[3, 5, 10]]), n, threshold=0.1)
    # solved: c / n > 0.1; always: c / n >= 0.9
    assert t["never_to_solved"] == 1 and t["not_always_to_always"] == 0
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 0.5\), got 0.5"):
        transitions(n, n, n, n, threshold=0.5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        transitions(n + 1, n, n, n)


def test_mcnemar_counts_the_discordant_pairs():
    n = np.full((1, 10), 8)
    c_a = np.zeros((1, 10), dtype=int)
    c_b = np.array([[1] * 9 + [0]])
    t = transitions(c_a, n, c_b, n)
    assert t["never_to_solved"] == 9
    assert t["mcnemar_p_solved"] == pytest.approx(2 / 512)


def test_cover_at_tau_is_a_share_of_problems():
    c, n = np.array([[0, 2, 8, 4]]), np.full((1, 4), 8)
    cov = cover_at_tau(c, n, [0.0, 0.5])
    assert cov.shape == (1, 4, 2)
    assert cov.mean(axis=(0, 1)).tolist() == [0.75, 0.25]


def test_zero_one_values_keep_the_seed_level():
    # Cover@tau-like 0/1 values: seed 1 solved nothing more, seeds 0 and 2 everything.
    # Pooled over the 120 seed x problem pairs a score interval sits near 2/3; the seeds
    # say much less.
    a = np.zeros((3, 40))
    b = np.array([[1.0] * 40, [0.0] * 40, [1.0] * 40])
    pooled = paired_proportion_interval(a, b)
    assert pooled[0] > 0.5
    r = compare_values(a, b)
    assert r["boot_method"] == "newcombe" and r["boot_ci"][0] < 0 < r["boot_ci"][1]
    assert not r["distinguishable"]
