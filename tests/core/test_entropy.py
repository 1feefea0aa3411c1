"""Chunked log-prob/entropy kernel: equals the naive softmax, gradients, masking."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_inputs import INF, NAN, D

from passk.core.aggregate import aggregate_loss
from passk.core.entropy import entropy_from_logits, entropy_loss, logprobs_and_entropy

LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# Entropy
# ---------------------------------------------------------------------------------------------


def _naive(logits: torch.Tensor, ids: torch.Tensor | None = None, temperature: float = 1.0):
    logq = torch.log_softmax(logits.to(D) / temperature, -1)
    ent = -(logq.exp() * logq).sum(-1)
    if ids is None:
        return ent
    return logq.gather(-1, ids[..., None]).squeeze(-1), ent


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 9),
    st.integers(2, 40),
    st.integers(1, 12),
    st.sampled_from([torch.float32, torch.bfloat16, torch.float16, D]),
    st.sampled_from([1.0, 0.7]),
    st.integers(0, 10_000),
)
def test_chunked_matches_naive(
    B: int, T: int, V: int, chunk: int, dtype: torch.dtype, temp: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, T, V, generator=g) * 4).to(dtype)
    ids = torch.randint(0, V, (B, T), generator=g)
    ref_logp, ref_ent = _naive(logits, ids, temp)  # float64 reference on the same values
    logp, ent = logprobs_and_entropy(logits, ids, chunk_size=chunk, temperature=temp)
    want_dtype = D if dtype == D else torch.float32
    assert logp.dtype == ent.dtype == want_dtype
    tol = 1e-12 if dtype == D else 2e-5
    torch.testing.assert_close(ent.to(D), ref_ent, rtol=tol, atol=tol)
    torch.testing.assert_close(logp.to(D), ref_logp, rtol=tol, atol=tol)
    only = entropy_from_logits(logits, chunk, temperature=temp)
    assert torch.equal(only, ent)


def test_entropy_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 5, generator=g, dtype=D, requires_grad=True)
    ids = torch.randint(0, 5, (2, 3), generator=g)
    assert torch.autograd.gradcheck(lambda x: entropy_from_logits(x, 2), (logits,))
    assert torch.autograd.gradcheck(
        lambda x: logprobs_and_entropy(x, ids, chunk_size=4, temperature=0.8), (logits,)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_entropy_gradient_matches_autograd_of_naive(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(3, 4, 11, generator=g) * 3).to(dtype)
    ids = torch.randint(0, 11, (3, 4), generator=g)
    w1, w2 = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)

    a = logits.clone().requires_grad_(True)
    logp, ent = logprobs_and_entropy(a, ids, chunk_size=5, temperature=1.3)
    ((w1 * logp).sum() + (w2 * ent).sum()).backward()

    b = logits.to(D).requires_grad_(True)
    logp_n, ent_n = _naive(b, ids, 1.3)
    ((w1.to(D) * logp_n).sum() + (w2.to(D) * ent_n).sum()).backward()

    assert a.grad.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(a.grad.to(D), b.grad, rtol=tol, atol=tol)


def test_entropy_masked_vocabulary_and_garbage_rows() -> None:
    logits = torch.tensor([[0.0, 0.0, -INF, -INF], [NAN, NAN, NAN, NAN], [1.0, 2.0, 3.0, 4.0]])
    leaf = logits.clone().requires_grad_(True)
    ent = entropy_from_logits(leaf, chunk_size=2)
    assert ent[0].item() == pytest.approx(LN2)
    mask = torch.tensor([True, False, True])
    loss, metrics = entropy_loss(ent[None], mask[None])
    aggregate_loss(loss, mask[None], "token-mean").backward()
    assert torch.isfinite(loss).all() and torch.isfinite(leaf.grad).all()
    assert (leaf.grad[1] == 0).all() and (leaf.grad[0, 2:] == 0).all()
    assert metrics["actor/entropy"].item() == pytest.approx((LN2 + ent[2].item()) / 2)


def test_entropy_large_vocab_smoke() -> None:
    logits = torch.randn(2, 3, 49_152, dtype=torch.bfloat16)
    ent = entropy_from_logits(logits, chunk_size=4)
    torch.testing.assert_close(ent.to(D), _naive(logits), rtol=1e-5, atol=1e-5)
    assert ent.shape == (2, 3)


def test_logprobs_without_entropy_and_bad_input() -> None:
    logits = torch.zeros(2, 3, 4, requires_grad=True)
    ids = torch.zeros(2, 3, dtype=torch.long)
    logp, ent = logprobs_and_entropy(logits, ids, with_entropy=False)
    assert ent is None
    logp.sum().backward()
    torch.testing.assert_close(logits.grad[..., 0], torch.full((2, 3), 0.75))
    with pytest.raises(ValueError, match="token_ids shape"):
        logprobs_and_entropy(logits, ids[:, :2])
    with pytest.raises(ValueError, match="integer"):
        logprobs_and_entropy(logits, ids.float())
    with pytest.raises(ValueError, match=r"chunk_size.*0"):
        entropy_from_logits(logits, 0)
    with pytest.raises(ValueError, match=r"temperature.*0"):
        entropy_from_logits(logits, temperature=0.0)
