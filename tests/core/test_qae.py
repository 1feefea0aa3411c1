"""QAE (arXiv 2509.22611): hand values, the official code's formula, the 0/1 regimes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.core.advantages import compute_advantages, group_quantile


def test_hand_values_binary_quantile_04_n6():
    # N = 6, K = 0.4: position h = 0.4 * 5 = 2 (an integer: no fractional baseline)
    r = torch.tensor(
        [[1.0, 0, 0, 0, 0, 0], [1.0, 1, 1, 0, 0, 0], [1.0, 1, 1, 1, 0, 0]], dtype=torch.float64
    )
    a = compute_advantages("qae", r, quantile=0.4)
    # c = 1: b = 0, std = sqrt(1/6 * 5/6 * 6/5) = sqrt(1/6); A_pos = 1 / (sqrt(1/6) + 1e-6)
    assert a[0, 0].item() == pytest.approx(1 / (math.sqrt(1 / 6) + 1e-6), rel=1e-12)
    assert a[0, 1:].abs().max() == 0
    # c = 3: sorted 0 0 0 1 1 1, position 2 -> b = 0: only positive
    std3 = math.sqrt(6 * 0.25 / 5)
    assert a[1, :3].tolist() == pytest.approx([1 / (std3 + 1e-6)] * 3, rel=1e-12)
    assert a[1, 3:].abs().max() == 0
    # c = 4: sorted 0 0 1 1 1 1, position 2 -> b = 1: only the wrong ones, negative
    std4 = math.sqrt((4 * (1 / 3) ** 2 + 2 * (2 / 3) ** 2) / 5)
    assert a[2, :4].abs().max() == 0
    assert a[2, 4:].tolist() == pytest.approx([-1 / (std4 + 1e-6)] * 2, rel=1e-12)


def test_fractional_baseline_gives_both_signs():
    # N = 4, K = 0.5: h = 1.5; c = 2 -> sorted 0 0 1 1, b = 0 + 0.5 * (1 - 0) = 0.5
    r = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    a = compute_advantages("qae", r, quantile=0.5, std="none")
    assert a.tolist() == [[0.5, 0.5, -0.5, -0.5]]


def test_matches_the_official_formula_with_torch_quantile():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(7, 9, generator=g, dtype=torch.float64)
    r[2] = (r[2] > 0.5).double()
    for q in (0.1, 0.4, 0.75):
        got = compute_advantages("qae", r, quantile=q)
        base = torch.quantile(r, q, dim=1, keepdim=True)
        expected = (r - base) / (r.std(dim=1, keepdim=True) + 1e-6)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_ragged_groups_use_only_their_valid_responses():
    r = torch.tensor([[0.2, 0.9, 0.5, 7.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    got = compute_advantages("qae", r, mask, quantile=0.3)
    alone = compute_advantages("qae", r[:1, :3], quantile=0.3)
    torch.testing.assert_close(got[0, :3], alone[0])
    assert got[0, 3] == 0
    assert group_quantile(r, mask, 0.5)[0, 0].item() == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 24), c=st.integers(0, 24), q=st.floats(0.01, 0.99))
def test_binary_regimes(n, c, q):
    c = min(c, n)
    r = torch.tensor([[1.0] * c + [0.0] * (n - c)], dtype=torch.float64)
    a = compute_advantages("qae", r, quantile=q)[0]
    pos, neg = a[:c], a[c:]
    h = q * (n - 1)  # the quantile's position among the sorted rewards, as computed
    if c in (0, n):
        assert a.abs().max() == 0
    elif h <= n - c - 1:  # c <= (1 - K)(N - 1), hard: only the correct responses move
        assert (pos > 0).all() and (neg == 0).all()
    elif h >= n - c:  # c >= (1 - K)(N - 1) + 1, easy: only the wrong ones, pushed down
        assert (pos == 0).all() and (neg < 0).all()
    else:  # the one fractional-baseline count
        assert (pos > 0).all() and (neg < 0).all()


def test_regime_boundary_exactly_as_torch_quantile():
    # 0.3 * 10 rounds to 3.0000000000000004: c = 7 of 11 gets a baseline just above 0,
    # as torch.quantile gives it (the official code's baseline)
    r = torch.tensor([[1.0] * 7 + [0.0] * 4], dtype=torch.float64)
    base = torch.quantile(r, 0.3, dim=1, keepdim=True)
    got = compute_advantages("qae", r, quantile=0.3, std="none")
    assert torch.equal(got, r - base)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), q=st.floats(0.05, 0.95))
def test_permutation_equivariant_and_shift_invariant(seed, q):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(3, 6, generator=g, dtype=torch.float64)
    perm = torch.randperm(6, generator=g)
    a = compute_advantages("qae", r, quantile=q)
    torch.testing.assert_close(compute_advantages("qae", r[:, perm], quantile=q), a[:, perm])
    torch.testing.assert_close(compute_advantages("qae", r + 3.0, quantile=q), a)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, True, "0.4", float("nan")])
def test_quantile_out_of_range_is_one_clear_line(bad):
    with pytest.raises(ValueError, match=r"quantile must be a number in \(0, 1\)") as e:
        compute_advantages("qae", torch.zeros(1, 4), quantile=bad)
    assert "\n" not in str(e.value)


def test_group_of_one_and_std_option():
    assert compute_advantages("qae", torch.tensor([[1.0]])).item() == 0
    with pytest.raises(ValueError, match="std must be 'group' or 'none'"):
        compute_advantages("qae", torch.zeros(1, 4), std="batch")
