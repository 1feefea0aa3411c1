"""The lab's exact expected update against brute force, Monte Carlo and the identities it rests on."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import passk
from passk.sim import (
    advantage_table,
    binomial_pmf,
    expected_logit_update,
    problem_weight,
    sampled_logit_update,
)

# every exchangeable estimator of the registry, with params that exercise it
EXCHANGEABLE = [
    ("pass1", {}),
    ("pass1", {"std": "none"}),
    ("passk_analytic", {"k": 2}),
    ("passk_analytic", {"k": 3}),
    ("passk_combination", {"k": 2}),
    ("passk_exceed", {"k": 2}),
    ("passk_mixture", {"weights": {1: 0.5, 2: 0.5}}),
    ("maxrl", {}),
    ("maxk_analytic", {"k": 2}),
    ("pkpo_loo", {"k": 2}),
    ("rloo", {}),
    ("rs_grpo", {}),
    ("w_reinforce", {}),
]


def _group_advantages(name: str, rewards: list[float], params: dict) -> torch.Tensor:
    return passk.compute_advantages(name, torch.tensor([rewards], dtype=torch.float64), **params)[0]


def _brute_force(logits: torch.Tensor, solves: torch.Tensor, name: str, n: int, params: dict):
    """Sum over all S^n draw sequences of P(sequence) * (1/n) sum_i A_i (e_{s_i} - pi)."""
    out = torch.zeros_like(logits, dtype=torch.float64)
    for x in range(logits.shape[0]):
        pi = logits[x].double().softmax(-1)
        s_count = pi.numel()
        for seq in itertools.product(range(s_count), repeat=n):
            prob = math.prod(pi[s].item() for s in seq)
            rewards = [float(solves[x, s]) for s in seq]
            adv = _group_advantages(name, rewards, params)
            for i, s in enumerate(seq):
                onehot = torch.zeros(s_count, dtype=torch.float64)
                onehot[s] = 1.0
                out[x] += prob * adv[i].item() * (onehot - pi) / n
    return out


@pytest.mark.parametrize(("name", "params"), EXCHANGEABLE)
def test_expected_update_equals_enumeration_of_every_draw_sequence(name, params):
    logits = torch.tensor([[0.3, -0.7, 1.1], [1.5, 0.0, -0.4]], dtype=torch.float64)
    solves = torch.tensor([[True, False, True], [False, True, False]])
    exact = expected_logit_update(logits, solves, name, 4, **params)
    brute = _brute_force(logits, solves, name, 4, params)
    torch.testing.assert_close(exact, brute, rtol=1e-10, atol=1e-12)


def test_expected_update_by_hand_two_strategies():
    # n = 2, pi = (1/2, 1/2), A solves: only the mixed groups (prob 1/2) carry signal,
    # GRPO gives (+1, -1), the update is ((e_A - pi) - (e_B - pi)) / 2 = (1/2, -1/2)
    out = expected_logit_update([[0.0, 0.0]], torch.tensor([[True, False]]), "pass1", 2)
    assert out.tolist() == [[0.25, -0.25]]


def test_expected_update_against_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -2.0]], dtype=torch.float64)
    solves = torch.tensor([[True, False, False], [False, True, True]])
    draws = 20_000
    for name, params in [("pass1", {}), ("passk_analytic", {"k": 4}), ("maxrl", {})]:
        exact = expected_logit_update(logits, solves, name, 16, **params)
        for x in range(2):
            idx = torch.full((draws,), x)
            g = sampled_logit_update(logits, solves, idx, name, 16, gen, **params)
            mean, se = g.mean(0), g.std(0) / math.sqrt(draws)
            assert ((mean - exact[x]).abs() <= 4 * se + 1e-12).all(), (name, x, mean, exact[x], se)


def _paper_pass1_pos(n: int, c: int) -> float:
    q = c / n
    return (1 - q) / math.sqrt(q * (1 - q))


def _paper_passk(n: int, c: int, k: int) -> tuple[float, float]:
    """Analytic Pass@k's advantages of a correct and a wrong response (arXiv 2508.10751,
    §2.4): ``(1 - rho) / sigma`` and ``(1 - rho - C(N_neg-1, k-1) / C(N-1, k-1)) / sigma``."""
    neg = n - c
    rho = 1 - math.comb(neg, k) / math.comb(n, k)
    sigma = math.sqrt(rho * (1 - rho))
    return (1 - rho) / sigma, (
        1 - rho - math.comb(neg - 1, k - 1) / math.comb(n - 1, k - 1)
    ) / sigma


def _paper_passk_pos(n: int, c: int, k: int) -> float:
    return _paper_passk(n, c, k)[0]


@pytest.mark.parametrize(("n", "k"), [(4, 2), (8, 3), (16, 4), (16, 8), (32, 4), (32, 16)])
def test_passk_analytic_is_pass1_times_a_per_group_weight(n, k):
    """A_passk = w(N_pos) * A_pass1 in every 0/1 group, w from the paper's formula."""
    rewards = (torch.arange(n)[None, :] < torch.arange(n + 1)[:, None]).double()
    a1 = passk.compute_advantages("pass1", rewards)
    ak = passk.compute_advantages("passk_analytic", rewards, k=k)
    for c in range(n + 1):
        live = c > 0 and n - c >= k
        w = _paper_passk_pos(n, c, k) / _paper_pass1_pos(n, c) if live else 0.0
        torch.testing.assert_close(ak[c], w * a1[c], rtol=1e-9, atol=1e-12)
        if live:  # and both values are the paper's
            pos, neg = _paper_passk(n, c, k)
            # the paper's form of A_neg cancels (1 - rho against a ratio): compare loosely
            assert math.isclose(ak[c, 0].item(), pos, rel_tol=1e-9)
            assert math.isclose(ak[c, -1].item(), neg, rel_tol=1e-6, abs_tol=1e-12)


def test_collinearity_weights_at_n16_k4():
    """The weights quoted in docs/methods.md (N = 16, k = 4)."""
    weights = {1: 0.447, 4: 0.353, 8: 0.200, 12: 0.041, 13: 0.0, 15: 0.0}
    for c, w in weights.items():
        got = _paper_passk_pos(16, c, 4) / _paper_pass1_pos(16, c) if 16 - c >= 4 else 0.0
        assert round(got, 3) == w


def _registered_exchangeable() -> list[str]:
    names = []
    for name in passk.list_estimators():
        params = {"weights": {1: 0.5, 2: 0.5}} if name == "passk_mixture" else {}
        try:
            advantage_table(name, 6, **params)
        except ValueError:
            continue
        names.append(name)
    return names


def test_registry_split_into_exchangeable_and_refused():
    admitted = set(_registered_exchangeable())
    assert {
        "pass1",
        "passk_analytic",
        "maxrl",
        "passk_mixture",
        "rloo",
        "w_reinforce",
        "rs_grpo",
    } <= admitted
    refused = {"pass1_matched", "passk_full", "passk_bootstrap", "unlikeliness", "passk_adaptive"}
    assert not refused & admitted


@pytest.mark.parametrize(
    ("name", "params", "reason"),
    [
        ("pass1_matched", {"k": 2}, "batch-level"),
        ("reinforce_pp", {}, "batch-level"),
        ("pass1", {"std": "batch"}, "batch-level"),
        ("passk_full", {}, "stochastic"),
        ("passk_bootstrap", {}, "stochastic"),
        ("unlikeliness", {}, "per-response inputs"),
        ("passk_adaptive", {}, "per-response inputs"),
    ],
)
def test_refused_estimators_say_why(name, params, reason):
    with pytest.raises(ValueError, match=reason):
        expected_logit_update([[0.0, 0.0]], torch.tensor([[True, False]]), name, 4, **params)


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="2-D"):
        expected_logit_update([0.0, 0.0], torch.tensor([True, False]), "pass1", 4)
    with pytest.raises(ValueError, match="bool"):
        expected_logit_update([[0.0, 0.0]], torch.tensor([[1, 0]]), "pass1", 4)
    with pytest.raises(ValueError, match="group size n"):
        expected_logit_update([[0.0, 0.0]], torch.tensor([[True, False]]), "pass1", 0)
    with pytest.raises(ValueError, match="k=5 is larger"):
        expected_logit_update([[0.0, 0.0]], torch.tensor([[True, False]]), "passk_analytic", 4, k=5)


@settings(max_examples=40, deadline=None)
@given(
    logits=st.lists(st.floats(-4, 4), min_size=4, max_size=4),
    solves=st.lists(st.booleans(), min_size=4, max_size=4).filter(lambda s: 0 < sum(s) < 4),
    n=st.integers(2, 12),
)
def test_single_context_updates_of_every_estimator_are_parallel(logits, solves, n):
    """One problem: every exchangeable estimator's update is a multiple of dp/dlogits
    (cosine 1 for the zero-sum ones), so a homogeneous task cannot separate them."""
    lg = torch.tensor([logits], dtype=torch.float64)
    sv = torch.tensor([solves])
    pi = lg.softmax(-1)
    p = (pi * sv).sum()
    grad_p = pi * sv - p * pi  # d p / d logits
    for name in _registered_exchangeable():
        params = {"weights": {1: 0.5, 2: 0.5}} if name == "passk_mixture" else {}
        if "k" in {
            f.name for f in __import__("dataclasses").fields(passk.get_estimator(name).params)
        }:
            params["k"] = min(2, n)
        upd = expected_logit_update(lg, sv, name, n, **params)[0]
        if upd.norm() < 1e-12 or grad_p.norm() < 1e-9:
            continue
        cos = float(upd @ grad_p[0] / (upd.norm() * grad_p[0].norm()))
        assert abs(abs(cos) - 1) < 1e-9, (name, cos)
        a_pos, a_neg = advantage_table(name, n, **params)
        c = torch.arange(n + 1, dtype=torch.float64)
        if (
            torch.allclose(
                c * a_pos + (n - c) * a_neg, torch.zeros(n + 1, dtype=torch.float64), atol=1e-9
            )
            and (a_pos[1:-1] >= 0).all()
        ):
            assert cos > 0, (name, cos)


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.0, 1.0), n=st.integers(1, 40))
def test_binomial_pmf_is_a_distribution_with_mean_np(p, n):
    pmf = binomial_pmf(n, torch.tensor(p, dtype=torch.float64))
    assert abs(float(pmf.sum()) - 1) < 1e-12
    assert abs(float(pmf @ torch.arange(n + 1, dtype=torch.float64)) - n * p) < 1e-9 * max(1, n)


def test_problem_weight_of_pkpo_is_the_pass_at_k_gradient():
    """PKPO's leave-one-out estimator is unbiased for the gradient of pass@k, so its
    per-problem weight is k (1 - p)^(k - 1) up to one constant (1 / n)."""
    # (beyond p = 0.9 the weight is below 1e-9 and rounding dominates the ratio)
    p = torch.linspace(0.02, 0.9, 23, dtype=torch.float64)
    for n, k in [(8, 2), (16, 4), (32, 8)]:
        ratio = problem_weight("pkpo_loo", n, p, k=k) / (k * (1 - p) ** (k - 1))
        torch.testing.assert_close(ratio, torch.full_like(p, 1 / n), rtol=1e-5, atol=0)


def test_problem_weight_reproduces_the_update():
    logits = torch.tensor([[0.2, -0.3, 1.0, 0.0]], dtype=torch.float64)
    solves = torch.tensor([[True, False, False, True]])
    pi = logits.softmax(-1)
    p = (pi * solves).sum(-1)
    for name, params in EXCHANGEABLE:
        m = problem_weight(name, 8, p, **params)
        torch.testing.assert_close(
            expected_logit_update(logits, solves, name, 8, **params),
            m[:, None] * (pi * solves - p[:, None] * pi),
            rtol=1e-10,
            atol=1e-12,
        )
