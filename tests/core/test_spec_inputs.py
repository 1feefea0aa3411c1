"""The estimator spec owns its inputs and its seeding: one door for the trainer, verl, TRL."""

from __future__ import annotations

import pytest
import torch

from passk.core.advantages import RESPONSE_NEEDS, get_estimator, list_estimators
from passk.core.aggregate import response_token_mean


def test_takes_seed_is_exactly_the_stochastic_estimators_with_a_seed_field() -> None:
    seeded = {n for n in list_estimators() if get_estimator(n).takes_seed}
    assert seeded == {"passk_full", "passk_bootstrap"}
    assert get_estimator("passk_bootstrap").default_seed == 0
    assert get_estimator("passk_analytic").default_seed is None


def test_needs_from_responses_reduces_each_need_as_declared() -> None:
    mask = torch.tensor([[True, True, False], [True, True, True]])
    entropy = torch.tensor([[1.0, 3.0, float("nan")], [3.0, 6.0, 9.0]])  # NaN is padding
    got = get_estimator("passk_adaptive").needs_from_responses({"entropy": entropy}, mask)
    assert RESPONSE_NEEDS["entropy"] == "group mean"
    torch.testing.assert_close(got["entropy"], torch.tensor([2.0, 6.0]))
    seq = torch.tensor([[-1.0, -2.0, 7.0], [-3.0, -4.0, -5.0]], dtype=torch.float64)
    got = get_estimator("unlikeliness").needs_from_responses({"seq_logp": seq}, mask)
    assert torch.equal(got["seq_logp"], seq.masked_fill(~mask, 0.0))


def test_needs_from_responses_names_a_missing_or_misshapen_need() -> None:
    spec = get_estimator("passk_adaptive")
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"'passk_adaptive' needs per-response 'entropy'"):
        spec.needs_from_responses({}, mask)
    with pytest.raises(ValueError, match=r"entropy has shape \(3,\), expected .* \(2, 3\)"):
        spec.needs_from_responses({"entropy": torch.ones(3)}, mask)
    assert get_estimator("pass1").needs_from_responses({}, mask) == {}


def test_response_token_mean_ignores_padding_even_when_it_is_not_finite() -> None:
    values = torch.tensor([[2.0, 4.0, float("inf")], [float("nan"), 1.0, 1.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 0]])
    torch.testing.assert_close(response_token_mean(values, mask), torch.tensor([3.0, 1.0, 0.0]))
