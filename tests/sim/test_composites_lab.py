"""The lab takes the composite estimators exactly: combine of exchangeable terms and gated
are exchangeable, and their per-problem weights follow from their parts'."""

from __future__ import annotations

import math

import pytest
import torch

from passk.sim import problem_weight
from passk.sim.updates import advantage_table

MIX = [
    {"estimator": "passk_analytic", "weight": 0.25, "params": {"k": 4}},
    {"estimator": "pass1", "weight": 0.75},
]
P = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)


def test_combine_weight_is_the_weighted_sum_of_its_terms_weights():
    m = problem_weight("combine", 12, P, terms=MIX)
    expected = 0.25 * problem_weight("passk_analytic", 12, P, k=4) + 0.75 * problem_weight(
        "pass1", 12, P
    )
    torch.testing.assert_close(m, expected, rtol=1e-10, atol=1e-12)


def test_gated_table_is_the_inner_table_times_the_headroom():
    n, k = 10, 3
    a_pos, a_neg = advantage_table("gated", n, inner="pass1", k=k)
    b_pos, b_neg = advantage_table("pass1", n)
    h = torch.tensor(
        [math.comb(n - c, k) / math.comb(n, k) for c in range(n + 1)], dtype=torch.float64
    )
    torch.testing.assert_close(a_pos, b_pos * h.double(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a_neg, b_neg * h.double(), rtol=1e-12, atol=1e-12)
    assert (a_pos[n - k + 1 :] == 0).all()  # saturated: N_neg < k


def test_qae_is_exchangeable_and_refused_composites_say_why():
    a_pos, a_neg = advantage_table("qae", 8, quantile=0.4)
    assert (a_pos[1:4] > 0).all() and (a_neg[5:8] < 0).all()
    random_term = [{"estimator": "passk_bootstrap", "params": {"k": 2}}]
    with pytest.raises(ValueError, match=r"not exchangeable|batch-level"):
        advantage_table("combine", 6, terms=random_term)


def test_stochastic_mode_seeds_a_combine_with_a_random_term_each_step():
    from passk.seeds import derive_seed
    from passk.sim.dynamics import Phase, phase_params

    boot = Phase("combine", {"terms": [{"estimator": "passk_bootstrap", "params": {"k": 2}}]})
    assert phase_params(boot, 3, 7)["seed"] == derive_seed(3, "sim-estimator", 7)
    assert "seed" not in phase_params(Phase("combine", {"terms": MIX}), 3, 7)
