"""Loss aggregation: golden values, micro-batch invariance (value and gradient), masking."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.core.aggregate import (
    AGGREGATION_MODES,
    aggregate_loss,
    aggregate_numerator,
    global_normalizer,
)

LOSS = torch.tensor([[1.0, 2.0, 9.0, 9.0], [3.0, 9.0, 9.0, 9.0], [4.0, 5.0, 6.0, 7.0]])
MASK = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)


def _kw(mode: str) -> dict:
    return {"normalizer": 10.0} if mode == "constant" else {}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 28.0 / 7),
        ("seq-mean-token-mean", (1.5 + 3.0 + 5.5) / 3),
        ("seq-mean-token-sum", 28.0 / 3),
        ("seq-mean-token-sum-norm", 28.0 / (3 * 4)),
        ("constant", 28.0 / 10),
    ],
)
def test_golden_values(mode: str, expected: float) -> None:
    assert aggregate_loss(LOSS, MASK, mode, **_kw(mode)).item() == pytest.approx(expected)


def test_sum_norm_max_len_and_int_mask() -> None:
    got = aggregate_loss(LOSS, MASK.long(), "seq-mean-token-sum-norm", max_len=7)
    assert got.item() == pytest.approx(28.0 / 21)
    assert global_normalizer(MASK.float(), "seq-mean-token-sum-norm", max_len=7).item() == 21.0


def test_empty_rows_are_not_sequences() -> None:
    loss = torch.cat([LOSS, torch.full((2, 4), 5.0)])
    mask = torch.cat([MASK, torch.zeros(2, 4, dtype=torch.bool)])
    for mode in AGGREGATION_MODES:
        assert torch.equal(
            aggregate_loss(loss, mask, mode, **_kw(mode)),
            aggregate_loss(LOSS, MASK, mode, **_kw(mode)),
        )


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
def test_all_masked_gives_zero_not_nan(mode: str) -> None:
    loss = torch.full((2, 3), float("nan"), requires_grad=True)
    out = aggregate_loss(loss, torch.zeros(2, 3), mode, **_kw(mode))
    out.backward()
    assert out.item() == 0.0
    assert torch.equal(loss.grad, torch.zeros(2, 3))
    # same with a tensor normaliser computed from the empty mask
    if mode != "constant":
        norm = global_normalizer(torch.zeros(2, 3), mode)
        assert aggregate_loss(loss, torch.zeros(2, 3), mode, normalizer=norm).item() == 0.0


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
def test_masked_garbage_does_not_leak(mode: str) -> None:
    garbage = LOSS.clone()
    garbage[~MASK] = torch.tensor([float("nan"), float("inf"), -float("inf")]).repeat(3)[
        : int((~MASK).sum())
    ]
    garbage.requires_grad_(True)
    out = aggregate_loss(garbage, MASK, mode, **_kw(mode))
    out.backward()
    assert out.item() == pytest.approx(aggregate_loss(LOSS, MASK, mode, **_kw(mode)).item())
    assert torch.isfinite(garbage.grad).all()
    assert (garbage.grad[~MASK] == 0).all()


def test_token_mean_gradient_golden() -> None:
    loss = LOSS.clone().requires_grad_(True)
    aggregate_loss(loss, MASK, "seq-mean-token-mean").backward()
    expected = torch.tensor([[1 / 6, 1 / 6, 0, 0], [1 / 3, 0, 0, 0], [1 / 12] * 4])
    torch.testing.assert_close(loss.grad, expected)


@st.composite
def batches(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    B = draw(st.integers(1, 8))
    T = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**31 - 1))
    p_valid = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    g = torch.Generator().manual_seed(seed)
    loss = torch.randn(B, T, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(B, T, generator=g) < p_valid
    cuts = sorted(draw(st.lists(st.integers(0, B), max_size=4)))
    return loss, mask, [0, *cuts, B]


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from(AGGREGATION_MODES))
def test_micro_batch_invariance(
    batch: tuple[torch.Tensor, torch.Tensor, list[int]], mode: str
) -> None:
    loss, mask, bounds = batch
    kw = {"constant": 13.0} if mode == "constant" else {"max_len": 11}
    norm = global_normalizer(mask, mode, **kw)

    full_leaf = loss.clone().requires_grad_(True)
    # The full-batch value computes its own normaliser (except 'constant', which has none).
    if mode == "constant":
        full = aggregate_loss(full_leaf, mask, mode, normalizer=13.0)
    else:
        full = aggregate_loss(full_leaf, mask, mode, max_len=11)
    full.backward()

    split_leaf = loss.clone().requires_grad_(True)
    total = torch.zeros((), dtype=loss.dtype)
    for lo, hi in itertools.pairwise(bounds):
        part = aggregate_loss(split_leaf[lo:hi], mask[lo:hi], mode, normalizer=norm)
        part.backward()  # gradient accumulation, as a trainer does per micro-batch
        total = total + part.detach()

    torch.testing.assert_close(total, full.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split_leaf.grad, full_leaf.grad, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(batches())
def test_naive_per_micro_batch_mean_differs_but_ours_does_not(
    batch: tuple[torch.Tensor, torch.Tensor, list[int]],
) -> None:
    # The numerator is additive over any split, for every mode.
    loss, mask, bounds = batch
    for mode in AGGREGATION_MODES:
        parts = sum(
            aggregate_numerator(loss[lo:hi], mask[lo:hi], mode)
            for lo, hi in itertools.pairwise(bounds)
        )
        torch.testing.assert_close(parts, aggregate_numerator(loss, mask, mode))


def test_errors_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"'mean'.*token-mean"):
        aggregate_loss(LOSS, MASK, "mean")
    with pytest.raises(ValueError, match="constant"):
        aggregate_loss(LOSS, MASK, "constant")
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        aggregate_loss(LOSS, MASK[:, :3], "token-mean")
    with pytest.raises(ValueError, match="2-D"):
        aggregate_loss(LOSS[0], MASK[0], "token-mean")
    with pytest.raises(ValueError, match="-1"):
        aggregate_loss(LOSS, MASK, "token-mean", normalizer=-1.0)
    with pytest.raises(ValueError, match="scalar"):
        aggregate_loss(LOSS, MASK, "token-mean", normalizer=torch.ones(2))
    with pytest.raises(ValueError, match="constant must be > 0, got 0"):
        global_normalizer(MASK, "constant", constant=0)
    with pytest.raises(ValueError, match="max_len"):
        global_normalizer(MASK, "seq-mean-token-sum-norm", max_len=0)


def test_bf16_loss_is_summed_in_float32() -> None:
    loss = torch.ones(1, 1001, dtype=torch.bfloat16)
    out = aggregate_loss(loss, torch.ones(1, 1001), "constant", normalizer=1000.0)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(1.001, rel=1e-6)  # bf16 arithmetic would give 1.0
    assert aggregate_loss(LOSS.double(), MASK).dtype == torch.float64
    assert math.isclose(aggregate_loss(LOSS.half(), MASK).item(), 4.0)
