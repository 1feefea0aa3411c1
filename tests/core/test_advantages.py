"""Advantage estimators: golden values, brute-force enumeration, properties, bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import passk
from passk.core import advantages as adv_mod
from passk.core.advantages import (
    compute_advantages,
    eta_curve,
    get_estimator,
    list_estimators,
    maxk_subset_stats,
    passk_analytic_values,
    register_estimator,
)

BINARY_DETERMINISTIC = ["pass1", "passk_analytic", "passk_combination", "passk_exceed"]
CONTINUOUS_DETERMINISTIC = ["pass1", "maxk_analytic", "pkpo_loo"]


def _params(name: str, k: int) -> dict:
    return {} if name == "pass1" else {"k": k}


def _binary(n: int, n_pos: int) -> torch.Tensor:
    r = torch.zeros(1, n, dtype=torch.float64)
    r[0, :n_pos] = 1
    return r


# ---------------------------------------------------------------------------- brute force


def _zscore_list(values: list[float]) -> list[float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / len(values))
    if max(values) == min(values):
        return [0.0] * len(values)
    return [(v - m) / sd for v in values]


def brute_force_subset_advantage(rewards: list[float], k: int) -> list[float]:
    """Average over every k-subset containing i of the z-scored subset max."""
    n = len(rewards)
    subsets = list(combinations(range(n), k))
    adv = _zscore_list([max(rewards[j] for j in s) for s in subsets])
    out = []
    for i in range(n):
        vals = [a for s, a in zip(subsets, adv) if i in s]
        out.append(sum(vals) / len(vals))
    return out


def brute_force_pkpo_loo(rewards: list[float], k: int) -> list[float]:
    n = len(rewards)
    out = []
    for i in range(n):
        total = 0.0
        for s in combinations(range(n), k):
            if i not in s:
                continue
            rest = [rewards[j] for j in s if j != i]
            total += max(rewards[j] for j in s) - max(rest)
        out.append(total / math.comb(n, k))
    return out


def paper_formula(n: int, n_pos: int, k: int) -> tuple[float, float]:
    """Eqs. 11-15 as printed, with exact rational binomials (no cancellation error)."""
    n_neg = n - n_pos
    rho = 1 - Fraction(math.comb(n_neg, k), math.comb(n, k))
    sigma = math.sqrt(rho * (1 - rho))
    a_pos = float(1 - rho) / sigma
    a_neg = float(1 - rho - Fraction(math.comb(n_neg - 1, k - 1), math.comb(n - 1, k - 1))) / sigma
    return a_pos, a_neg


# ---------------------------------------------------------------------------- golden values


def test_golden_worked_value_n32_k4_npos8():
    a = compute_advantages("passk_analytic", _binary(32, 8), k=4)[0]
    assert a[0].item() == pytest.approx(0.648, abs=5e-4)
    assert a[-1].item() == pytest.approx(-0.216, abs=5e-4)
    a_pos, a_neg = paper_formula(32, 8, 4)
    assert a[0].item() == pytest.approx(a_pos, rel=1e-12)
    assert a[-1].item() == pytest.approx(a_neg, rel=1e-12)


@pytest.mark.parametrize("n", [2, 5, 16, 64])
def test_analytic_matches_paper_formula_everywhere(n):
    for k in range(1, n + 1):
        for n_pos in range(1, n):
            if n - n_pos < k:
                continue  # degenerate: sigma = 0 in the paper's formula
            a_pos, a_neg = passk_analytic_values(
                torch.tensor([float(n)]), torch.tensor([float(n_pos)]), k
            )
            p_pos, p_neg = paper_formula(n, n_pos, k)
            assert a_pos.item() == pytest.approx(p_pos, rel=1e-9, abs=1e-12)
            assert a_neg.item() == pytest.approx(p_neg, rel=1e-9, abs=1e-12)


def test_pass1_golden():
    a = compute_advantages("pass1", torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    # mean 0.25, population std sqrt(3)/4
    assert torch.allclose(a, torch.tensor([[3**0.5, -(3**-0.5), -(3**-0.5), -(3**-0.5)]]))


def test_pass1_options():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    none = compute_advantages("pass1", r, std="none")
    assert torch.allclose(none, r - r.mean(1, keepdim=True))
    batch = compute_advantages("pass1", r, std="batch")
    assert torch.allclose(batch, (r - r.mean(1, keepdim=True)) / r.std(unbiased=False))
    eps = compute_advantages("pass1", r, eps=0.5)
    assert torch.allclose(eps[0, 0], torch.tensor(0.75 / (3**0.5 / 4 + 0.5), dtype=torch.float64))


# ---------------------------------------------------------------------------- enumeration


@pytest.mark.parametrize("n", range(1, 9))
def test_analytic_equals_enumeration_of_every_subset(n):
    for k in range(1, n + 1):
        for n_pos in range(n + 1):
            rewards = [1.0] * n_pos + [0.0] * (n - n_pos)
            expected = brute_force_subset_advantage(rewards, k)
            got = compute_advantages("passk_analytic", _binary(n, n_pos), k=k)[0]
            assert got.tolist() == pytest.approx(expected, abs=1e-12), (n, k, n_pos)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=1, max_size=8),
    st.data(),
)
def test_maxk_equals_enumeration_with_ties(values, data):
    k = data.draw(st.integers(1, len(values)))
    expected = brute_force_subset_advantage(values, k)
    got = compute_advantages("maxk_analytic", torch.tensor([values], dtype=torch.float64), k=k)
    assert got[0].tolist() == pytest.approx(expected, abs=1e-10)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**6).map(lambda x: x / 10**6), min_size=1, max_size=8), st.data())
def test_maxk_equals_enumeration_continuous(values, data):
    k = data.draw(st.integers(1, len(values)))
    expected = brute_force_subset_advantage(values, k)
    got = compute_advantages("maxk_analytic", torch.tensor([values], dtype=torch.float64), k=k)
    assert got[0].tolist() == pytest.approx(expected, abs=1e-8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.3, 0.6, 1.0]), min_size=1, max_size=7), st.data())
def test_pkpo_loo_equals_enumeration(values, data):
    k = data.draw(st.integers(2, max(2, len(values)))) if len(values) >= 2 else 1
    r = torch.tensor([values], dtype=torch.float64)
    got = compute_advantages("pkpo_loo", r, k=k)[0]
    if k >= 2:
        assert got.tolist() == pytest.approx(brute_force_pkpo_loo(values, k), abs=1e-10)
    else:
        others = [(sum(values) - v) / max(len(values) - 1, 1) for v in values]
        exp = [(v - o) / len(values) if len(values) > 1 else 0 for v, o in zip(values, others)]
        assert got.tolist() == pytest.approx(exp, abs=1e-12)


def test_pkpo_loo_differs_from_analytic_only_by_a_baseline():
    """On binary rewards, (k/N) * (unnormalised subset-mean max) - loo equals a baseline that
    does not depend on the response's own reward: its values for a correct and a wrong
    response coincide once their own reward is swapped out of the group."""
    n, k = 7, 3
    for n_pos in range(1, n):
        r = _binary(n, n_pos)
        s, _, _ = maxk_subset_stats(r, torch.ones_like(r, dtype=torch.bool), k)
        loo = compute_advantages("pkpo_loo", r, k=k)
        baseline = k / n * s - loo  # = (1/C(N,k)) sum_{I contains i} max_{I minus i}
        for i in range(n):
            rest = [r[0, j].item() for j in range(n) if j != i]
            brute = sum(max(c) for c in combinations(rest, k - 1)) / math.comb(n, k)
            assert baseline[0, i].item() == pytest.approx(brute, abs=1e-12)


def test_pkpo_normalized_scale():
    r = torch.tensor([[0.1, 0.5, 0.9, 0.2, 0.7]], dtype=torch.float64)
    raw = compute_advantages("pkpo_loo", r, k=2)
    norm = compute_advantages("pkpo_loo", r, k=2, normalize=True)
    _, _, std = maxk_subset_stats(r, torch.ones_like(r, dtype=torch.bool), 2)
    assert torch.allclose(norm, raw * 5 / 2 / std)


def test_maxk_reduces_to_analytic_on_binary():
    g = torch.Generator().manual_seed(0)
    r = (torch.rand(200, 24, generator=g) < torch.rand(200, 1, generator=g)).double()
    for k in (1, 2, 4, 8, 24):
        a = compute_advantages("passk_analytic", r, k=k)
        m = compute_advantages("maxk_analytic", r, k=k)
        assert torch.allclose(a, m, atol=1e-10), k


def test_maxk_keeps_relative_precision_for_huge_k():
    """Where the group-reward std is ~1e-16, maxk still matches the closed form to 1e-6
    relative: its sums run over rewards shifted by the group max."""
    r = torch.zeros(1, 4096, dtype=torch.float64)
    r[0, :100] = 1
    for k in (8, 512, 2048):
        a = compute_advantages("passk_analytic", r, k=k)
        m = compute_advantages("maxk_analytic", r, k=k)
        assert (a[0, 0] > 0) and (a[0, -1] < 0)
        assert torch.allclose(m, a, rtol=1e-6, atol=0), k


def test_k1_equals_pass1():
    g = torch.Generator().manual_seed(1)
    r = (torch.rand(500, 16, generator=g) < torch.rand(500, 1, generator=g)).double()
    p1 = compute_advantages("pass1", r)
    for name in ("passk_analytic", "maxk_analytic", "passk_combination"):
        assert torch.allclose(compute_advantages(name, r, k=1), p1, atol=1e-12), name
    cont = torch.rand(50, 9, generator=g, dtype=torch.float64)
    assert torch.allclose(
        compute_advantages("maxk_analytic", cont, k=1), compute_advantages("pass1", cont)
    )


def test_bootstrap_converges_to_analytic():
    r = torch.tensor([[1.0] * 3 + [0.0] * 9], dtype=torch.float64)
    exact = compute_advantages("passk_analytic", r, k=4)
    boot = compute_advantages("passk_bootstrap", r, k=4, num_groups=40000, seed=3)
    assert torch.allclose(boot, exact, atol=0.03)
    # the error shrinks with more subsets
    few = compute_advantages("passk_bootstrap", r, k=4, num_groups=400, seed=3)
    assert (few - exact).abs().max() > (boot - exact).abs().max()


def test_bootstrap_seeded_and_sums_over_subsets():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    a = compute_advantages("passk_bootstrap", r, k=2, seed=7)
    b = compute_advantages("passk_bootstrap", r, k=2, seed=7)
    c = compute_advantages("passk_bootstrap", r, k=2, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bootstrap_chunking_does_not_change_result():
    g = torch.Generator().manual_seed(2)
    r = (torch.rand(37, 10, generator=g) < 0.4).double()
    whole = compute_advantages("passk_bootstrap", r, k=3, seed=5)
    # one row per chunk draws the same random stream in the same order
    chunked = compute_advantages("passk_bootstrap", r, k=3, seed=5, chunk_elements=10 * 10)
    assert torch.equal(whole, chunked)


def test_full_sampling_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    a = compute_advantages("passk_full", r, k=2)
    # groups (0,1) -> 1, (2,3) -> 0, (4,5) -> 0; response 6 is the remainder
    z = torch.tensor(_zscore_list([1.0, 0.0, 0.0]))
    expected = torch.tensor([[z[0], z[0], z[1], z[1], z[2], z[2], 0.0]])
    assert torch.allclose(a, expected)


def test_full_sampling_shuffle_is_seeded_permutation():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    a = compute_advantages("passk_full", r, k=4, shuffle=True, seed=11)
    b = compute_advantages("passk_full", r, k=4, shuffle=True, seed=11)
    assert torch.equal(a, b)
    # each of the two groups of four shares one value
    assert len(set(a[0].tolist())) <= 2


def test_full_sampling_ragged():
    r = torch.tensor([[1.0, 9.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0, 0.0]])
    m = torch.tensor([[True, False, True, True, True], [True] * 5])
    a = compute_advantages("passk_full", r, m, k=2)
    # row 0: valid order 0,2,3,4 -> groups (0,2)=1, (3,4)=0
    assert a[0].tolist() == pytest.approx([1.0, 0.0, 1.0, -1.0, -1.0])
    assert a[1, 4] == 0  # remainder


# ---------------------------------------------------------------------------- properties

rewards_strategy = st.integers(1, 5).flatmap(
    lambda g: st.integers(1, 10).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n), min_size=g, max_size=g
        )
    )
)


@settings(max_examples=50, deadline=None)
@given(rewards_strategy, st.data())
def test_permutation_equivariance(rows, data):
    r = torch.tensor(rows, dtype=torch.float64)
    n = r.shape[1]
    k = data.draw(st.integers(1, n))
    perm = torch.tensor(data.draw(st.permutations(list(range(n)))))
    for name in BINARY_DETERMINISTIC + CONTINUOUS_DETERMINISTIC:
        a = compute_advantages(name, r, **_params(name, k))
        b = compute_advantages(name, r[:, perm], **_params(name, k))
        assert torch.allclose(a[:, perm], b, atol=1e-12), name


@settings(max_examples=50, deadline=None)
@given(rewards_strategy, st.data())
def test_masked_values_do_not_matter(rows, data):
    r = torch.tensor(rows, dtype=torch.float64)
    G, n = r.shape
    mask = torch.tensor(
        data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=G, max_size=G))
    )
    counts = mask.sum(1)
    k = data.draw(
        st.integers(1, max(1, int(counts[counts > 0].min()) if (counts > 0).any() else 1))
    )
    garbage = torch.where(mask, r, torch.tensor(float("nan")))
    other = torch.where(mask, r, 1.0 - r)
    names = BINARY_DETERMINISTIC + CONTINUOUS_DETERMINISTIC + ["passk_full", "passk_bootstrap"]
    for name in names:
        a = compute_advantages(name, garbage, mask, **_params(name, k))
        b = compute_advantages(name, other, mask, **_params(name, k))
        assert torch.isfinite(a).all(), name
        assert torch.equal(a, b), name
        assert (a[~mask] == 0).all(), name
    # a ragged group equals the same group computed alone, without padding
    for g in range(G):
        if counts[g] < k or counts[g] == 0:
            continue
        alone = r[g][mask[g]][None]
        for name in ["passk_analytic", "maxk_analytic", "pkpo_loo", "passk_full"]:
            full = compute_advantages(name, r, mask, **_params(name, k))[g][mask[g]]
            assert torch.allclose(full, compute_advantages(name, alone, k=k)[0], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(rewards_strategy, st.data())
def test_zero_sum_groups(rows, data):
    r = torch.tensor(rows, dtype=torch.float64)
    k = data.draw(st.integers(1, r.shape[1]))
    for name in ["pass1", "passk_analytic", "maxk_analytic", "passk_combination"]:
        s = compute_advantages(name, r, **_params(name, k)).sum(1)
        assert torch.allclose(s, torch.zeros_like(s), atol=1e-9), name


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=12), st.data())
def test_maxk_zero_sum_continuous(values, data):
    k = data.draw(st.integers(1, len(values)))
    a = compute_advantages("maxk_analytic", torch.tensor([values], dtype=torch.float64), k=k)
    assert abs(a.sum().item()) < 1e-8


def test_degenerate_groups_give_zero():
    for name in BINARY_DETERMINISTIC + CONTINUOUS_DETERMINISTIC:
        for row in ([0.0] * 8, [1.0] * 8):
            a = compute_advantages(name, torch.tensor([row]), **_params(name, 4))
            assert (a == 0).all(), (name, row)
    # N_neg < k: every 4-subset of this group already holds a correct answer
    a = compute_advantages("passk_analytic", _binary(8, 6), k=4)
    assert (a == 0).all()
    cont = torch.tensor([[0.1, 0.2, 0.9, 0.9, 0.9]])  # every 4-subset holds a 0.9; 2-subsets not
    assert (compute_advantages("maxk_analytic", cont, k=4) == 0).all()
    assert (compute_advantages("maxk_analytic", cont, k=2) != 0).any()


def test_stable_for_large_groups_and_every_k():
    n = 4096
    n_pos = torch.arange(n + 1, dtype=torch.float64)
    for k in [1, 2, 3, 8, 64, 512, 2048, 4095, 4096]:
        a_pos, a_neg = passk_analytic_values(torch.full_like(n_pos, n), n_pos, k)
        assert torch.isfinite(a_pos).all() and torch.isfinite(a_neg).all(), k
        assert torch.allclose(n_pos * a_pos + (n - n_pos) * a_neg, torch.zeros_like(a_pos))
        live = (n_pos > 0) & (n - n_pos >= k)
        # tiny advantages may underflow to 0 for huge k, but never change sign
        assert (a_pos[live] >= 0).all() and (a_neg[live] <= 0).all(), k
        assert (a_pos[live][:10] > 0).all(), k
    g = torch.Generator().manual_seed(0)
    r = (torch.rand(4, n, generator=g) < torch.tensor([[0.001], [0.1], [0.5], [0.999]])).float()
    for name in ["passk_analytic", "maxk_analytic", "pkpo_loo", "passk_combination"]:
        for k in [1, 7, 256, 4096]:
            a = compute_advantages(name, r, k=k)
            assert torch.isfinite(a).all(), (name, k)
    cont = torch.rand(2, n, generator=g)
    for k in [1, 16, 1000, 4096]:
        assert torch.isfinite(compute_advantages("maxk_analytic", cont, k=k)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_dtypes_round_trip(dtype):
    r = _binary(16, 5).to(dtype)
    for name in BINARY_DETERMINISTIC + CONTINUOUS_DETERMINISTIC:
        a = compute_advantages(name, r, **_params(name, 4))
        assert a.dtype == dtype
        ref = compute_advantages(name, r.double(), **_params(name, 4))
        assert torch.allclose(a.double(), ref, atol=1e-2, rtol=1e-2)


def test_integer_and_bool_rewards_give_float32():
    r = torch.tensor([[1, 0, 0, 1]])
    assert compute_advantages("passk_analytic", r, k=2).dtype == torch.float32
    assert compute_advantages("passk_analytic", r.bool(), k=2).dtype == torch.float32


# parameters an estimator needs beyond its defaults (the others take k when they use one)
_REQUIRED_PARAMS = {
    "passk_mixture": {"weights": {1: 0.5, 2: 0.5}},
    "combine": {
        "terms": [
            {"estimator": "pass1", "weight": 0.5},
            {"estimator": "passk_analytic", "weight": 0.5, "params": {"k": 4}},
        ]
    },
    "gated": {"inner": "pass1", "k": 4},
}


def _registry_call(name: str, r: torch.Tensor) -> torch.Tensor:
    """Every registered estimator on rewards ``r`` (on their device), with the parameters
    and per-response inputs it needs, drawn on the CPU so that devices compare alike."""
    from passk.core.advantages import get_estimator

    spec = get_estimator(name)
    params = dict(_REQUIRED_PARAMS.get(name, {"k": 4} if spec.uses_k else {}))
    spec = spec.for_params(params)
    g = torch.Generator().manual_seed(1)
    per_response = {
        need: torch.rand(r.shape, generator=g, dtype=torch.float64) for need in spec.needs
    }
    mask = torch.ones(r.shape, dtype=torch.bool, device=r.device)
    per_response = {k: v.to(r.device) for k, v in per_response.items()}
    return compute_advantages(name, r, **params, **spec.needs_from_responses(per_response, mask))


def test_every_registered_estimator_runs_with_the_registry_call():
    """The arguments the device test below gives each estimator, checked where it runs."""
    r = (torch.rand(16, 8, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    for name in list_estimators():
        a = _registry_call(name, r)
        assert a.shape == r.shape and bool(torch.isfinite(a).all()), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    r = (torch.rand(64, 32, generator=g) < 0.3).float()
    for name in list_estimators():
        cpu = _registry_call(name, r)
        gpu = _registry_call(name, r.cuda())
        assert gpu.is_cuda and torch.allclose(cpu, gpu.cpu(), atol=1e-5), name


# ---------------------------------------------------------------------------- implicit designs


def test_combination_formula():
    r = _binary(10, 3)
    a_k = compute_advantages("passk_analytic", r, k=3)
    a_1 = compute_advantages("pass1", r)
    assert torch.allclose(compute_advantages("passk_combination", r, k=3), 0.3 * a_k + 0.7 * a_1)


def test_exceed_default_and_custom_f():
    r = _binary(16, 4)
    base = compute_advantages("passk_analytic", r, k=4)
    a = compute_advantages("passk_exceed", r, k=4)
    assert torch.allclose(a, base * 4 / (10 * math.log(4.5)))
    a10 = compute_advantages("passk_exceed", r, k=4, log_base=10)
    assert torch.allclose(a10, base * 4 / (10 * math.log10(4.5)))
    doubled = compute_advantages(
        "passk_exceed", r, k=4, f=lambda n_pos: torch.full_like(n_pos, 2.0)
    )
    assert torch.allclose(doubled, 2 * base)


def test_adaptive_uses_pass1_above_quantile():
    r = torch.cat([_binary(8, 2), _binary(8, 3), _binary(8, 5)])
    ent = torch.tensor([0.1, 2.0, 1.0])
    a = compute_advantages("passk_adaptive", r, k=2, entropy=ent)
    assert torch.allclose(a[1], compute_advantages("pass1", r[1:2])[0])  # above the median
    assert torch.allclose(a[0], compute_advantages("passk_analytic", r[:1], k=2)[0])
    assert torch.allclose(a[2], compute_advantages("passk_analytic", r[2:], k=2)[0])  # at median
    all_k = compute_advantages("passk_adaptive", r, k=2, entropy=ent, quantile=1.0)
    assert torch.allclose(all_k, compute_advantages("passk_analytic", r, k=2))


def test_eta_curves_have_the_paper_shapes():
    acc, eta1 = eta_curve("pass1", 32)
    assert torch.allclose(eta1, eta1.flip(0))
    assert acc[eta1.argmax()] == 0.5
    acc, eta4 = eta_curve("passk_analytic", 32, k=4)
    assert 0.15 <= acc[eta4.argmax()].item() <= 0.3
    assert (eta4[-4:] == 0).all()  # N_neg < k: nothing left to learn
    peaks = [acc[eta_curve("passk_analytic", 32, k=k)[1].argmax()].item() for k in (4, 8, 16)]
    assert peaks[0] > peaks[1] > peaks[2]
    with pytest.raises(ValueError, match="entropy"):
        eta_curve("passk_adaptive", 8, k=2)


# ---------------------------------------------------------------------------- registry & errors


def test_registry_lists_and_rejects_unknown():
    names = list_estimators()
    for expected in [
        "pass1",
        "passk_full",
        "passk_bootstrap",
        "passk_analytic",
        "maxk_analytic",
        "pkpo_loo",
        "passk_exceed",
        "passk_combination",
        "passk_adaptive",
    ]:
        assert expected in names
    with pytest.raises(ValueError, match=r"valid: .*passk_analytic"):
        compute_advantages("passk_analytical", torch.zeros(1, 4))
    assert get_estimator("passk_analytic").uses_k and not get_estimator("pass1").uses_k
    assert get_estimator("passk_adaptive").needs == {"entropy"}
    assert passk.compute_advantages is compute_advantages


def test_register_custom_estimator_and_duplicates():
    @dataclass(frozen=True)
    class P:
        scale: float = 1.0

    try:

        @register_estimator("test_scaled_reward", params=P)
        def scaled(rewards, mask, p):
            return rewards * p.scale

        out = compute_advantages("test_scaled_reward", torch.ones(1, 3), scale=2.0)
        assert torch.equal(out, torch.full((1, 3), 2.0))
        register_estimator("test_scaled_reward", params=P)(scaled)  # identical spec: no-op
        with pytest.raises(ValueError, match="advantage estimator 'pass1' is already registered"):
            register_estimator("pass1", params=P)(scaled)
        with pytest.raises(ValueError, match="'test_scaled_reward' is already registered"):
            register_estimator("test_scaled_reward", params=P, binary_only=True)(scaled)
        assert not get_estimator("test_scaled_reward").binary_only  # the first one stays
    finally:
        adv_mod._REGISTRY.unregister("test_scaled_reward")


@pytest.mark.parametrize(
    ("kwargs", "rewards", "match"),
    [
        ({"k": 0}, torch.zeros(1, 4), "k must be an integer >= 1, got 0"),
        ({"k": 5}, torch.zeros(1, 4), "k=5 is larger than the smallest group"),
        ({"k": 2}, torch.tensor([[0.5, 1.0]]), "binary rewards"),
        ({"k": 2}, torch.tensor([[float("nan"), 1.0]]), "finite"),
        ({"k": 2}, torch.tensor([[float("inf"), 1.0]]), "finite"),
        ({"k": 2}, torch.zeros(4), "2-D"),
        ({"k": 2, "kk": 3}, torch.zeros(1, 4), "unknown parameter"),
        ({"k": 2, "eps": -1.0}, torch.zeros(1, 4), "eps must be >= 0"),
    ],
)
def test_bad_input_names_the_value(kwargs, rewards, match):
    with pytest.raises(ValueError, match=match):
        compute_advantages("passk_analytic", rewards, **kwargs)


def test_bad_mask_and_missing_inputs():
    r = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="mask must be a tensor of shape"):
        compute_advantages("pass1", r, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        compute_advantages("pass1", r, torch.ones(2, 4))
    with pytest.raises(ValueError, match="needs parameter"):
        compute_advantages("passk_adaptive", r, k=2)
    with pytest.raises(ValueError, match="one value per group"):
        compute_advantages("passk_adaptive", r, k=2, entropy=torch.ones(3))
    with pytest.raises(ValueError, match="std must be"):
        compute_advantages("pass1", r, std="global")
    with pytest.raises(ValueError, match="num_groups"):
        compute_advantages("passk_bootstrap", r, k=2, num_groups=0)


def test_empty_and_fully_masked_groups():
    assert compute_advantages("passk_analytic", torch.zeros(0, 8), k=2).shape == (0, 8)
    r = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    m = torch.tensor([[False] * 3, [True] * 3])
    for name in BINARY_DETERMINISTIC + CONTINUOUS_DETERMINISTIC + ["passk_full", "passk_bootstrap"]:
        a = compute_advantages(name, r, m, **_params(name, 2))
        assert (a[0] == 0).all() and torch.isfinite(a).all(), name
