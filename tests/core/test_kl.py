"""KL penalty estimators: golden values, sign convention, clamp, masking."""

from __future__ import annotations

import math

import pytest
import torch
from loss_inputs import D, garbage_batch, poison

from passk.core.kl import kl_penalty, kl_penalty_loss

# ---------------------------------------------------------------------------------------------
# KL estimators
# ---------------------------------------------------------------------------------------------

LN2 = math.log(2.0)


@pytest.mark.parametrize(
    ("kind", "at_plus", "at_minus"),
    [
        ("k1", LN2, -LN2),
        ("k2", 0.5 * LN2**2, 0.5 * LN2**2),
        ("k3", 0.5 + LN2 - 1, 2 - LN2 - 1),
        ("low_var_kl", 0.5 + LN2 - 1, 2 - LN2 - 1),
    ],
)
def test_kl_golden(kind: str, at_plus: float, at_minus: float) -> None:
    # logp - ref_logp = +ln 2 (policy twice as likely as the reference) and -ln 2.
    got = kl_penalty(torch.tensor([LN2, -LN2], dtype=D), torch.zeros(2, dtype=D), kind)
    torch.testing.assert_close(got, torch.tensor([at_plus, at_minus], dtype=D))


@pytest.mark.parametrize("kind", ["k1", "k3"])
def test_kl_sign_convention_unbiased_for_kl_policy_to_ref(kind: str) -> None:
    # E_{y ~ pi}[estimator] = KL(pi || ref) exactly, by enumeration over the vocabulary.
    g = torch.Generator().manual_seed(1)
    logpi = torch.log_softmax(torch.randn(7, generator=g, dtype=D), -1)
    logref = torch.log_softmax(torch.randn(7, generator=g, dtype=D), -1)
    est = (logpi.exp() * kl_penalty(logpi, logref, kind, clamp=None)).sum()
    exact = (logpi.exp() * (logpi - logref)).sum()
    torch.testing.assert_close(est, exact)


def test_kl_gradient_pushes_towards_reference() -> None:
    logp = torch.tensor([0.5, -0.5], dtype=D, requires_grad=True)
    kl_penalty(logp, torch.zeros(2, dtype=D), "k3").sum().backward()
    torch.testing.assert_close(logp.grad, 1 - torch.exp(-logp.detach()))  # d/dlogr k3
    assert logp.grad[0] > 0 > logp.grad[1]


def test_kl_clamp() -> None:
    logp = torch.tensor([5.0, -15.0, 50.0], dtype=D, requires_grad=True)
    kl = kl_penalty(logp, torch.zeros(3, dtype=D), "k3")
    kl.sum().backward()
    assert kl.tolist() == pytest.approx([math.exp(-5) + 4, 10.0, 10.0])  # e^15 - 16 -> 10
    assert kl_penalty(logp, torch.zeros(3), "k1", clamp=12.0).tolist() == [5.0, -12.0, 12.0]
    assert logp.grad.tolist() == pytest.approx([1 - math.exp(-5), 0.0, 0.0])
    assert torch.isfinite(kl_penalty(logp, torch.zeros(3), "k3", clamp=None)).all()


def test_kl_loss_masked_garbage() -> None:
    logp, ref, _, mask = garbage_batch(2)
    leaf = poison(logp, mask).requires_grad_(True)
    kl, m = kl_penalty_loss(leaf, poison(ref, mask), mask, kind="k3")
    kl.sum().backward()
    clean, mc = kl_penalty_loss(logp, ref, mask, kind="k3")
    assert torch.equal(kl, clean) and torch.equal(m["actor/kl"], mc["actor/kl"])
    assert torch.isfinite(leaf.grad).all() and (leaf.grad[~mask] == 0).all()


def test_kl_bad_input() -> None:
    with pytest.raises(ValueError, match=r"'k4'.*k1, k2, k3"):
        kl_penalty(torch.zeros(2), torch.zeros(2), "k4")
    with pytest.raises(ValueError, match="shape"):
        kl_penalty(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"clamp.*-1"):
        kl_penalty(torch.zeros(2), torch.zeros(2), clamp=-1)
