"""``combine`` (weighted sums of estimators) and ``gated`` (the pass@k boundary gate)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.core.advantages import (
    compute_advantages,
    get_estimator,
    passk_analytic_values,
    passk_headroom,
)
from passk.seeds import derive_seed

MIX = [
    {"estimator": "passk_analytic", "weight": 0.7, "params": {"k": 3}},
    {"estimator": "pass1", "weight": 0.3},
]


def _ragged(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = (torch.rand(6, 8, generator=g) < 0.4).double()
    sizes = torch.tensor([8, 5, 8, 6, 3, 7])
    mask = torch.arange(8)[None, :] < sizes[:, None]
    r[~mask] = float("nan")  # padding never matters
    return r, mask


# ---------------------------------------------------------------------------- combine


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_combine_equals_the_weighted_sum_exactly_on_ragged_groups(seed):
    r, mask = _ragged(seed)
    got = compute_advantages("combine", r, mask, terms=MIX)
    a_k = compute_advantages("passk_analytic", r, mask, k=3)
    a_1 = compute_advantages("pass1", r, mask)
    assert torch.equal(got, 0.7 * a_k + 0.3 * a_1)


def test_combine_of_one_term_is_that_estimator_and_weight_scales():
    r, mask = _ragged(3)
    for name, params in [("rloo", {}), ("qae", {"quantile": 0.3}), ("maxrl", {})]:
        one = compute_advantages("combine", r, mask, terms=[{"estimator": name, "params": params}])
        assert torch.equal(one, compute_advantages(name, r, mask, **params))
    two = compute_advantages("combine", r, mask, terms=[{"estimator": "rloo", "weight": 2.5}])
    assert torch.equal(two, 2.5 * compute_advantages("rloo", r, mask))


def test_combine_needs_are_the_union_of_its_terms():
    spec = get_estimator("combine")
    assert spec.needs == frozenset() and not spec.takes_seed
    terms = [
        {"estimator": "passk_adaptive", "params": {"k": 2}},
        {"estimator": "unlikeliness", "weight": 0.5},
        {"estimator": "passk_bootstrap", "params": {"k": 2}},
    ]
    refined = spec.for_params({"terms": terms})
    assert refined.needs == {"entropy", "seq_logp"}
    assert refined.takes_seed and refined.binary_only
    r = (torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    with pytest.raises(ValueError, match=r"needs parameter\(s\) \['entropy', 'seq_logp'\]"):
        compute_advantages("combine", r, terms=terms)
    entropy = torch.tensor([0.1, 0.9, 0.5, 0.3])
    seq = -torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    got = compute_advantages("combine", r, terms=terms, entropy=entropy, seq_logp=seq, seed=11)
    expected = (
        compute_advantages("passk_adaptive", r, k=2, entropy=entropy)
        + 0.5 * compute_advantages("unlikeliness", r, seq_logp=seq)
        + compute_advantages("passk_bootstrap", r, k=2, seed=derive_seed(11, "combine", 2))
    )
    assert torch.equal(got, expected)


def test_combine_seeds_differ_per_term_and_per_call_seed():
    r = (torch.rand(8, 8, generator=torch.Generator().manual_seed(2)) < 0.5).double()
    boot = {"estimator": "passk_bootstrap", "params": {"k": 2, "num_groups": 2}}
    terms = [boot, boot]
    a = compute_advantages("combine", r, terms=terms, seed=0)
    assert torch.equal(a, compute_advantages("combine", r, terms=terms, seed=0))
    assert not torch.equal(a, compute_advantages("combine", r, terms=terms, seed=1))
    # the two identical terms draw different subsets (one seed each)
    first = compute_advantages(
        "passk_bootstrap", r, k=2, num_groups=2, seed=derive_seed(0, "combine", 0)
    )
    assert not torch.equal(a, 2 * first)


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        (None, "terms must be a non-empty list"),
        ([], "terms is empty"),
        ({"estimator": "pass1"}, "terms must be a non-empty list"),
        ([{"estimator": "pass1"}, {"estimator": "passk_magic"}], r"terms\[1\]: unknown advantage estimator 'passk_magic'; valid: "),
        ([{"estimator": "passk_analytic", "params": {"kk": 2}}], r"terms\[0\] \(passk_analytic\): estimator 'passk_analytic' got unknown parameter\(s\) \['kk'\]"),
        ([{"estimator": "passk_analytic", "params": {"k": 0}}], r"terms\[0\] \(passk_analytic\): k must be an integer >= 1, got 0"),
        ([{"estimator": "pass1", "weight": -1}], r"terms\[0\]: weight must be a finite number > 0, got -1"),
        ([{"estimator": "pass1", "weight": math.inf}], r"terms\[0\]: weight must be a finite number > 0"),
        ([{"estimator": "pass1", "wieght": 1}], r"terms\[0\] has unknown key\(s\) \['wieght'\]"),
        ([{"weight": 1}], r"terms\[0\] has no estimator"),
        ([{"estimator": "passk_adaptive", "params": {"entropy": [1.0]}}], r"terms\[0\] \(passk_adaptive\): \['entropy'\] are supplied by the caller"),
        ([{"estimator": "passk_bootstrap", "params": {"seed": 3}}], r"terms\[0\] \(passk_bootstrap\): seed is set on the composite"),
    ],
)  # fmt: skip
def test_combine_bad_terms_are_one_line_naming_the_term(terms, message):
    with pytest.raises(ValueError, match=message) as err:
        compute_advantages("combine", torch.zeros(2, 4), terms=terms)
    assert "\n" not in str(err.value)


def test_a_term_whose_k_exceeds_the_group_is_named():
    terms = [{"estimator": "pass1"}, {"estimator": "passk_analytic", "params": {"k": 9}}]
    with pytest.raises(ValueError, match=r"^terms\[1\] \(passk_analytic\): k=9 is larger"):
        compute_advantages("combine", torch.zeros(2, 4), terms=terms)
    with pytest.raises(ValueError, match=r"^inner \(passk_analytic\): k=9 is larger"):
        compute_advantages(
            "gated", torch.zeros(2, 4), inner="passk_analytic", inner_params={"k": 9}, k=2
        )


def test_combine_of_binary_terms_refuses_graded_rewards():
    with pytest.raises(ValueError, match="needs binary rewards"):
        compute_advantages("combine", torch.full((1, 4), 0.5), terms=MIX)
    graded = [{"estimator": "rloo"}, {"estimator": "maxk_analytic", "params": {"k": 2}}]
    out = compute_advantages("combine", torch.tensor([[0.5, 0.1, 0.9, 0.2]]), terms=graded)
    assert out.abs().sum() > 0


# ---------------------------------------------------------------------------- gated


def test_headroom_is_one_minus_the_unbiased_pass_at_k():
    n, k = 8, 3
    for c in range(n + 1):
        h = passk_headroom(torch.tensor([float(n)]), torch.tensor([float(c)]), k).item()
        expected = math.comb(n - c, k) / math.comb(n, k)
        assert h == pytest.approx(expected, abs=1e-14)


def test_gated_hand_values():
    # N = 4, k = 2: c = 1 -> h = C(3,2)/C(4,2) = 1/2; c = 2 -> 1/6; c = 3 -> 0
    r = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 0, 0], [1.0, 1, 1, 0]], dtype=torch.float64)
    got = compute_advantages("gated", r, inner="pass1", k=2)
    a1 = compute_advantages("pass1", r)
    torch.testing.assert_close(got[0], a1[0] / 2)
    torch.testing.assert_close(got[1], a1[1] / 6)
    assert torch.equal(got[2], torch.zeros(4, dtype=torch.float64))
    # a threshold of 0.75 also closes the c = 2 group (rho_hat = 5/6)
    cut = compute_advantages("gated", r, inner="pass1", k=2, threshold=0.75)
    torch.testing.assert_close(cut[0], a1[0] / 2)
    assert cut[1:].abs().max() == 0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 16), k=st.integers(1, 16), seed=st.integers(0, 1000))
def test_gated_properties(n, k, seed):
    k = min(k, n)
    g = torch.Generator().manual_seed(seed)
    r = (torch.rand(5, n, generator=g) < torch.rand(5, 1, generator=g)).double()
    n_pos = r.sum(1)
    saturated = (n - n_pos) < k
    inner = compute_advantages("passk_analytic", r, k=min(2, n))
    soft = compute_advantages(
        "gated", r, inner="passk_analytic", inner_params={"k": min(2, n)}, k=k
    )
    hard = compute_advantages(
        "gated", r, inner="passk_analytic", inner_params={"k": min(2, n)}, k=k, weight="hard"
    )
    # zero weight on saturated groups (every k-subset holds a success)
    assert (soft[saturated] == 0).all() and (hard[saturated] == 0).all()
    # the open gate is the inner estimator itself ("hard") or it times the headroom
    torch.testing.assert_close(hard[~saturated], inner[~saturated], rtol=0, atol=0)
    h = passk_headroom(torch.full((5,), float(n)), n_pos, k)
    torch.testing.assert_close(soft, inner * h[:, None])


def test_gated_k1_headroom_is_the_failure_rate_and_shares_analytic_zero_set():
    r = torch.tensor([[1.0] * c + [0.0] * (8 - c) for c in range(9)], dtype=torch.float64)
    g = compute_advantages("gated", r, inner="pass1", k=1)
    a1 = compute_advantages("pass1", r)
    torch.testing.assert_close(g, a1 * (1 - r.mean(1, keepdim=True)))
    # for any k, the gate closes exactly where analytic Pass@k's weight w(N_pos) is 0
    for k in (2, 4):
        gk = compute_advantages("gated", r, inner="pass1", k=k).abs().sum(1) > 0
        a_pos, _ = passk_analytic_values(torch.full((9,), 8.0), r.sum(1), k)
        assert torch.equal(gk, a_pos > 0)


def test_gated_passes_needs_and_seed_to_its_inner_estimator():
    spec = get_estimator("gated")
    assert spec.for_params({"inner": "passk_adaptive", "inner_params": {"k": 2}}).needs == {
        "entropy"
    }
    assert spec.for_params({"inner": "passk_full", "inner_params": {"shuffle": True}}).takes_seed
    r = (torch.rand(4, 6, generator=torch.Generator().manual_seed(5)) < 0.5).double()
    ent = torch.tensor([0.3, 0.1, 0.9, 0.2])
    got = compute_advantages(
        "gated", r, inner="passk_adaptive", inner_params={"k": 2}, k=2, entropy=ent
    )
    h = passk_headroom(torch.full((4,), 6.0), r.sum(1), 2)
    torch.testing.assert_close(
        got, compute_advantages("passk_adaptive", r, k=2, entropy=ent) * h[:, None]
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"inner": "passk_magic"}, r"inner: unknown advantage estimator 'passk_magic'"),
        ({"inner": "qae", "inner_params": {"quantile": 2}}, r"inner \(qae\): quantile must be"),
        ({"threshold": 0}, r"threshold must be a number in \(0, 1\], got 0"),
        ({"threshold": 1.5}, r"threshold must be a number in \(0, 1\]"),
        ({"weight": "soft"}, r"weight must be one of \['headroom', 'hard'\], got 'soft'"),
        ({"k": 0}, "k must be an integer >= 1, got 0"),
        ({"k": 9}, "k=9 is larger than the smallest group"),
    ],
)
def test_gated_bad_params_are_one_line(params, message):
    with pytest.raises(ValueError, match=message) as err:
        compute_advantages("gated", torch.zeros(2, 4), **params)
    assert "\n" not in str(err.value)
