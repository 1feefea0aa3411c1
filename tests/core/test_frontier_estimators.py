"""passk_mixture, maxrl, rs_grpo, w_reinforce, rloo, reinforce_pp, unlikeliness.

Each against its formula, against brute force over k-subsets where one exists, and the
unbiasedness claims exactly: a one-parameter Bernoulli policy (success probability p,
logit theta) has score 1 - p for a success and -p for a failure, so enumerating the N + 1
outcome counts C ~ Binomial(N, p) gives E[mean_i A_i d log pi(y_i)/d theta] exactly.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch

from passk.core.advantages import compute_advantages, eta_curve, get_estimator
from passk.core.mixtures import mixture_failure_weights


def group(n: int, c: int) -> torch.Tensor:
    r = torch.zeros(1, n, dtype=torch.float64)
    r[0, :c] = 1.0
    return r


def expected_gradient(name: str, n: int, p: float, **params) -> float:
    """E_C[(1/N) sum_i A_i score_i] for a Bernoulli(p) policy, by enumeration over C."""
    total = 0.0
    for c in range(n + 1):
        prob = math.comb(n, c) * p**c * (1 - p) ** (n - c)
        adv = compute_advantages(name, group(n, c), **params)[0]
        score = [1 - p if r > 0 else -p for r in group(n, c)[0].tolist()]
        total += prob * sum(a * s for a, s in zip(adv.tolist(), score)) / n
    return total


def mixture_target(weights: dict[int, float], p: float) -> float:
    """d/dtheta sum_k c_k pass@k = sum_k c_k k (1-p)^(k-1) p (1-p)."""
    return sum(c * k * (1 - p) ** (k - 1) * p * (1 - p) for k, c in weights.items())


# --------------------------------------------------------------------------- unbiasedness


@pytest.mark.parametrize("n", [2, 5, 8, 16])
@pytest.mark.parametrize("p", [0.03, 0.3, 0.5, 0.9])
@pytest.mark.parametrize(
    "weights",
    [{1: 1.0}, {2: 1.0}, {1: 0.5, 2: 0.25}, {1: 0.2, 3: 0.7, 5: 1.3}, {"2": 2.0, 4: 0.1}],
)
def test_mixture_is_unbiased_for_weighted_pass_at_k(n, p, weights):
    w = {int(k): v for k, v in weights.items() if int(k) <= n}
    if not w:
        pytest.skip("every k is above this N")
    got = expected_gradient("passk_mixture", n, p, weights=w)
    assert got == pytest.approx(mixture_target(w, p), abs=1e-9, rel=1e-9)


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("p", [0.02, 0.25, 0.6, 0.95])
def test_maxrl_p_normalised_is_unbiased_for_order_n_minus_1(n, p):
    target = mixture_target({k: 1.0 / k for k in range(1, n)}, p)
    assert expected_gradient("maxrl", n, p) == pytest.approx(target, abs=1e-9, rel=1e-9)


@pytest.mark.parametrize("n", [3, 8, 16])
@pytest.mark.parametrize("order", [1, 2, 3, 8])
@pytest.mark.parametrize("p", [0.05, 0.5, 0.8])
def test_maxrl_order_t_is_unbiased_for_truncated_log_pass_rate(n, order, p):
    if order > n:
        pytest.skip("order above N")
    target = mixture_target({k: 1.0 / k for k in range(1, order + 1)}, p)
    got = expected_gradient("maxrl", n, p, order=order)
    assert got == pytest.approx(target, abs=1e-9, rel=1e-9)


def test_maxrl_order_n_approaches_log_likelihood_gradient():
    # sum_{k<=N} pass@k/k -> log p as N grows: the ML gradient d log p / d theta = 1 - p
    p, n = 0.3, 64
    got = expected_gradient("maxrl", n, p, order=n)
    assert got == pytest.approx(1 - p, abs=1e-8)


# --------------------------------------------------------------------------- formulas


def brute_force_mixture(r: list[int], weights: dict[int, float]) -> list[float]:
    """A_i = N * (c_1 r_i / N - sum_{k>=2} c_k share of all-failing k-subsets holding i)."""
    n = len(r)
    adv = [weights.get(1, 0.0) * r[i] for i in range(n)]
    for k, c in weights.items():
        if k < 2:
            continue
        subsets = list(itertools.combinations(range(n), k))
        for i in range(n):
            failing = sum(1 for s in subsets if i in s and all(r[j] == 0 for j in s))
            adv[i] -= n * c * failing / len(subsets)
    return adv


@pytest.mark.parametrize(
    "r", [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 0, 0, 1, 0], [1, 1, 1, 1], [0, 1, 0, 0, 0, 0, 0]]
)
@pytest.mark.parametrize("weights", [{2: 1.0}, {1: 0.3, 3: 0.5}, {1: 1.0, 2: 0.5, 4: 0.25}])
def test_mixture_matches_brute_force_over_subsets(r, weights):
    w = {k: c for k, c in weights.items() if k <= len(r)}
    got = compute_advantages("passk_mixture", torch.tensor([r], dtype=torch.float64), weights=w)
    assert got[0].tolist() == pytest.approx(brute_force_mixture(r, w), abs=1e-12)


@pytest.mark.parametrize("n", [4, 9, 33])
def test_maxrl_order_n_failure_weight_closed_form(n):
    # sum_{k=2..f} C(f-1,k-1)/C(N-1,k-1) = (f-1)/(N-f+1): the full series in closed form
    for c in range(1, n):
        f = n - c
        adv = compute_advantages("maxrl", group(n, c), order=n)[0]
        assert float(adv[0]) == pytest.approx(1.0)
        assert float(adv[-1]) == pytest.approx(-(f - 1) / (n - f + 1), rel=1e-12)


def test_maxrl_order_matches_official_maclaurin_weights_by_hand():
    # N = 4, order 3: success 1/N -> A = 1; failure -(1/N) sum_{k=2..min(3,f)} C(f-1,k-1)/C(3,k-1)
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # f = 3: C(2,1)/C(3,1) + C(2,2)/C(3,2) = 2/3 + 1/3
    assert compute_advantages("maxrl", r, order=3)[0].tolist() == pytest.approx([1, -1, -1, -1])
    assert compute_advantages("maxrl", r, order=2)[0].tolist() == pytest.approx(
        [1, -2 / 3, -2 / 3, -2 / 3]
    )
    assert compute_advantages("maxrl", r, order=1)[0].tolist() == pytest.approx([1, 0, 0, 0])


def test_maxrl_p_normalised_values_and_zero_groups():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.5, 1.0, 0.0, 0.5]])
    a = compute_advantages("maxrl", r)
    assert a[0].tolist() == pytest.approx([3.0, -1.0, -1.0, -1.0])
    assert a[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert a[2].tolist() == pytest.approx([0.0, 1.0, -1.0, 0.0])  # dense rewards >= 0


def test_mixture_is_stable_to_n_4096():
    n = 4096
    w = {1: 0.5, 64: 0.25, 1024: 0.125, 4096: 0.125}
    counts = torch.tensor([0, 1, 7, 100, 2048, 4095, 4096])
    r = (torch.arange(n)[None, :] < counts[:, None]).double()
    a = compute_advantages("passk_mixture", r, weights=w)
    assert torch.isfinite(a).all()
    for g, c in enumerate(counts.tolist()):
        f = n - c
        want = -sum(
            cw * k * float(Fraction(math.comb(f - 1, k - 1), math.comb(n - 1, k - 1)))
            for k, cw in w.items()
            if k >= 2 and f >= k
        )
        if f > 0:
            assert float(a[g, -1]) == pytest.approx(want, rel=1e-9, abs=1e-300)
        if c > 0:
            assert float(a[g, 0]) == 0.5


def test_mixture_failure_weights_compute_each_pair_once():
    n = torch.tensor([8, 8, 8, 5])
    f = torch.tensor([3, 3, 8, 5])
    out = mixture_failure_weights(n, f, {2: 1.0})
    assert out[0] == out[1]
    assert float(out[2]) == pytest.approx(-2 * 7 / 7)  # f = N: every pair fails
    assert float(out[3]) == pytest.approx(-2.0)


def test_rs_grpo_formula_limits_and_singletons():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.5]], dtype=torch.float64)
    for beta in (0.5, 2.0, 8.0):
        e = torch.exp(beta * r)
        want = (e / e.mean(1, keepdim=True) - 1) / beta
        assert torch.allclose(compute_advantages("rs_grpo", r, beta=beta), want, atol=1e-12)
    small = compute_advantages("rs_grpo", r, beta=1e-6)
    assert torch.allclose(small, r - r.mean(1, keepdim=True), atol=1e-5)
    # huge beta: no overflow, the best response keeps a positive push
    big = compute_advantages("rs_grpo", r * 100, beta=50.0)
    assert torch.isfinite(big).all() and big[0, 0] > 0
    assert compute_advantages("rs_grpo", torch.tensor([[1.0]])).item() == 0.0


def test_w_reinforce_nsr_and_psr():
    r = torch.tensor([[1.0, 0.0, 1.0]])
    assert compute_advantages("w_reinforce", r)[0].tolist() == pytest.approx([0.1, -1.0, 0.1])
    nsr = compute_advantages("w_reinforce", r, positive_weight=0.0)
    psr = compute_advantages("w_reinforce", r, positive_weight=1.0, negative_weight=0.0)
    assert nsr[0].tolist() == [0.0, -1.0, 0.0]
    assert psr[0].tolist() == [1.0, 0.0, 1.0]


def test_rloo_and_reinforce_pp():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.2, 0.4, 0.9, 0.1]], dtype=torch.float64)
    want = torch.stack(
        [torch.stack([r[g, i] - (r[g].sum() - r[g, i]) / 3 for i in range(4)]) for g in range(2)]
    )
    assert torch.allclose(compute_advantages("rloo", r), want)
    centred = r - r.mean(1, keepdim=True)
    flat = centred.flatten()
    whitened = (centred - flat.mean()) / torch.sqrt(flat.var(unbiased=True) + 1e-8)
    assert torch.allclose(compute_advantages("reinforce_pp", r), whitened)
    assert compute_advantages("reinforce_pp", torch.ones(3, 4)).abs().sum() == 0


def test_unlikeliness_matches_the_official_recipe_by_hand():
    r = torch.tensor([[1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    seq_logp = torch.tensor([[-0.5, -2.0, -1.0, -3.0]])
    # ascending log-prob ranks: [3, 1, 2, 0] / 4; r' = r (1 - 0.25 rank / 4)
    shaped = [1 - 0.25 * 0.75, 1 - 0.25 * 0.25, 0.0, 1.0]
    mean = sum(shaped) / 4
    std = math.sqrt(sum((s - mean) ** 2 for s in shaped) / 3)
    want = [(s - mean) / (std + 1e-6) for s in shaped]
    got = compute_advantages("unlikeliness", r, seq_logp=seq_logp)
    assert got[0].tolist() == pytest.approx(want, rel=1e-9)
    # the least likely correct sample gets the most advantage among the correct ones
    assert got[0, 3] > got[0, 1] > got[0, 0]


def test_unlikeliness_needs_seq_logp_of_the_right_shape():
    r = torch.tensor([[1.0, 0.0]])
    with pytest.raises(ValueError, match="needs parameter"):
        compute_advantages("unlikeliness", r)
    with pytest.raises(ValueError, match="seq_logp must have"):
        compute_advantages("unlikeliness", r, seq_logp=torch.zeros(1, 3))
    assert "seq_logp" in get_estimator("unlikeliness").needs


# --------------------------------------------------------------------------- ragged groups


@pytest.mark.parametrize(
    "name,params",
    [
        ("passk_mixture", {"weights": {1: 0.5, 3: 1.0}}),
        ("maxrl", {}),
        ("maxrl", {"order": 3}),
        ("rs_grpo", {}),
        ("w_reinforce", {}),
        ("rloo", {}),
    ],
)
def test_ragged_group_equals_the_group_alone(name, params):
    full = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True, False, False]])
    padded = full.clone()
    padded[0, 4:] = float("nan")
    ragged = compute_advantages(name, padded, mask, **params)
    alone = compute_advantages(name, full[:, :4], **params)
    assert torch.allclose(ragged[:, :4], alone)
    assert ragged[0, 4:].tolist() == [0.0, 0.0]


def test_unlikeliness_ragged_equals_alone():
    r = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    logp = torch.tensor([[-1.0, -2.0, -0.5, 9.0]])
    mask = torch.tensor([[True, True, True, False]])
    ragged = compute_advantages("unlikeliness", r, mask, seq_logp=logp)
    alone = compute_advantages("unlikeliness", r[:, :3], seq_logp=logp[:, :3])
    assert torch.allclose(ragged[:, :3], alone) and ragged[0, 3] == 0


# --------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("passk_mixture", {"weights": {0: 1.0}}, "integer >= 1, got 0"),
        ("passk_mixture", {"weights": {5: 1.0}}, r"k=5 is larger .* valid: 1 <= k <= 4"),
        ("passk_mixture", {"weights": {2: -0.5}}, r"weights\[2\] must be a finite number >= 0"),
        ("passk_mixture", {"weights": {2: 0.0}}, "at least one c_k > 0"),
        ("passk_mixture", {}, "non-empty mapping"),
        ("maxrl", {"order": 0}, "order must be an integer >= 1, got 0"),
        ("maxrl", {"order": 5}, r"k=5 is larger .* valid: 1 <= k <= 4"),
        ("rs_grpo", {"beta": 0.0}, r"beta must be > 0 \(2.0 in the paper\), got 0.0"),
        ("rs_grpo", {"beta": -1.0}, "beta must be > 0"),
        ("w_reinforce", {"positive_weight": -0.1}, "must be >= 0"),
        ("w_reinforce", {"positive_weight": 0, "negative_weight": 0}, "cannot both be 0"),
        ("unlikeliness", {"seq_logp": torch.zeros(1, 4), "beta": 2.0}, r"beta must be in \[0, 1\]"),
    ],
)
def test_bad_parameters_name_the_value_and_what_is_valid(name, params, match):
    with pytest.raises(ValueError, match=match):
        compute_advantages(name, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), **params)


def test_binary_and_sign_requirements():
    dense = torch.tensor([[0.5, 0.0]])
    with pytest.raises(ValueError, match="binary"):
        compute_advantages("passk_mixture", dense, weights={1: 1.0})
    with pytest.raises(ValueError, match="order=None accepts rewards >= 0"):
        compute_advantages("maxrl", dense, order=2)
    with pytest.raises(ValueError, match="needs rewards >= 0"):
        compute_advantages("maxrl", torch.tensor([[-1.0, 1.0]]))


# --------------------------------------------------------------------------- eta curves


@pytest.mark.parametrize(
    "name,params",
    [
        ("passk_mixture", {"weights": {1: 0.5, 4: 0.5}}),
        ("maxrl", {}),
        ("maxrl", {"order": 4}),
        ("rs_grpo", {}),
        ("w_reinforce", {}),
        ("rloo", {}),
        ("reinforce_pp", {}),
    ],
)
def test_binary_estimators_report_eta_curves(name, params):
    acc, eta = eta_curve(name, 8, **params)
    assert acc.shape == eta.shape == (9,)
    assert torch.isfinite(eta).all() and eta.max() > 0
    if name == "reinforce_pp":  # batch-whitened: each eta point is its group alone
        return
    groups = torch.stack([group(8, c)[0] for c in range(9)])
    assert torch.allclose(eta, compute_advantages(name, groups, **params).abs().sum(1))


def test_maxrl_eta_concentrates_on_hard_prompts():
    # p-normalised: eta = 2 f (failures), largest at low accuracy; GRPO's peaks at 0.5
    _, eta = eta_curve("maxrl", 8)
    assert eta[1:8].tolist() == pytest.approx([2 * (8 - c) for c in range(1, 8)])
    _, eta1 = eta_curve("pass1", 8)
    assert int(eta.argmax()) == 1 and int(eta1.argmax()) == 4


def test_pass1_matched_has_pass1_direction_and_passk_size():
    g = torch.Generator().manual_seed(0)
    r = (torch.rand(64, 16, generator=g) < torch.rand(64, 1, generator=g)).double()
    a = compute_advantages("pass1_matched", r, k=4)
    a1 = compute_advantages("pass1", r)
    ak = compute_advantages("passk_analytic", r, k=4)
    assert float(a.abs().sum()) == pytest.approx(float(ak.abs().sum()), rel=1e-12)
    ratio = a[a1 != 0] / a1[a1 != 0]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))  # one positive scale per batch
    assert float(ratio[0]) > 0
    assert compute_advantages("pass1_matched", torch.ones(2, 4), k=2).abs().sum() == 0
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        compute_advantages("pass1_matched", r, k=0)
