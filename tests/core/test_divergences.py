"""DPH-RL f-divergence generators and the divergence loss."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_inputs import D, garbage_batch, ln, poison

from passk.core.aggregate import aggregate_loss
from passk.core.divergences import DPH_GENERATORS, dph_divergence_loss, dph_generator

LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# DPH-RL generators
# ---------------------------------------------------------------------------------------------


def _closed_form(u: torch.Tensor, kind: str, alpha: float = 0.2) -> torch.Tensor:
    if kind == "forward_kl":
        return u - torch.log(u) - 1
    if kind == "js":
        return u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2)
    return (u**alpha - alpha * u - (1 - alpha)) / (alpha * (alpha - 1))


@pytest.mark.parametrize(
    ("kind", "at2", "at_half"),
    [
        ("forward_kl", 2 - LN2 - 1, 0.5 + LN2 - 1),
        ("js", 2 * LN2 - 3 * math.log(1.5), -0.5 * LN2 - 1.5 * math.log(0.75)),
        ("alpha", (2**0.2 - 1.2) / -0.16, (0.5**0.2 - 0.9) / -0.16),
    ],
)
def test_generators_golden(kind: str, at2: float, at_half: float) -> None:
    got = dph_generator(ln(2.0, 0.5, 1.0)[0], kind, alpha=0.2)
    torch.testing.assert_close(got, torch.tensor([at2, at_half, 0.0], dtype=D))


@pytest.mark.parametrize("kind", DPH_GENERATORS)
@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 1.0])
def test_generators_zero_and_flat_at_one(kind: str, alpha: float) -> None:
    lu = torch.zeros(1, dtype=D, requires_grad=True)
    f = dph_generator(lu, kind, alpha)
    f.backward()
    assert f.item() == 0.0 and lu.grad.item() == 0.0  # f(1) = 0, f'(1) u = 0


log_u = st.one_of(st.floats(-7.0, 7.0), st.floats(-1e-6, 1e-6))


@settings(max_examples=80, deadline=None)
@given(
    log_u,
    log_u,
    st.floats(0.0, 1.0),
    st.sampled_from(DPH_GENERATORS),
    st.sampled_from([0.2, 0.5, 0.9]),
)
def test_generators_convex_nonnegative_closed_form(
    la: float, lb: float, lam: float, kind: str, alpha: float
) -> None:
    a, b = math.exp(la), math.exp(lb)
    mid = lam * a + (1 - lam) * b
    f = lambda u: dph_generator(torch.tensor([math.log(u)], dtype=D), kind, alpha).item()  # noqa: E731
    assert f(mid) <= lam * f(a) + (1 - lam) * f(b) + 1e-9 * (1 + abs(f(a)) + abs(f(b)))
    assert f(a) >= -1e-15  # exact zero at u = 1; rounding may leave -eps * |log u|
    want = _closed_form(torch.tensor([a], dtype=D), kind, alpha).item()
    assert f(a) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_alpha_limits() -> None:
    lu = torch.linspace(-3, 3, 13, dtype=D)
    torch.testing.assert_close(dph_generator(lu, "alpha", 1e-7), dph_generator(lu, "forward_kl"),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    torch.testing.assert_close(dph_generator(lu, "alpha", 1 - 1e-7), dph_generator(lu, "alpha", 1.0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    u = lu.exp()
    torch.testing.assert_close(dph_generator(lu, "alpha", 1.0), u * lu - u + 1)


def test_js_generator_gives_twice_jensen_shannon() -> None:
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(9, generator=g, dtype=D), -1)
    q = torch.softmax(torch.randn(9, generator=g, dtype=D), -1)
    m = (p + q) / 2
    jsd = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    div = (q * dph_generator((p / q).log(), "js")).sum()  # E_{y ~ ref}[f(pi / ref)]
    torch.testing.assert_close(div, 2 * jsd)


@pytest.mark.parametrize("kind", DPH_GENERATORS)
def test_dph_loss_masked_and_clamped(kind: str) -> None:
    logp, ref, _, mask = garbage_batch(6)
    logp[1, :] = 500.0  # huge log u: clamped, finite
    leaf = poison(logp, mask).requires_grad_(True)
    loss, m = dph_divergence_loss(leaf, poison(ref, mask), mask, kind=kind)
    aggregate_loss(loss, mask, "token-mean").backward()
    assert torch.isfinite(loss).all() and (loss[~mask] == 0).all()
    assert torch.isfinite(leaf.grad).all() and (leaf.grad[~mask] == 0).all()
    assert set(m) == {"dph/divergence", "dph/log_ratio_mean"}
    assert m["dph/divergence"].item() > 0


def test_dph_gradient_matches_generator_derivative() -> None:
    lu = torch.tensor([[0.7, -0.4]], dtype=D, requires_grad=True)
    loss, _ = dph_divergence_loss(
        lu, torch.zeros(1, 2, dtype=D), torch.ones(1, 2), kind="forward_kl"
    )
    loss.sum().backward()
    torch.testing.assert_close(lu.grad, torch.expm1(lu.detach()))  # d/dlog u (u - log u - 1)


def test_dph_bad_input() -> None:
    z = torch.zeros(1, 2)
    with pytest.raises(ValueError, match=r"'reverse_kl'.*forward_kl, js, alpha"):
        dph_divergence_loss(z, z, z, kind="reverse_kl")
    with pytest.raises(ValueError, match=r"alpha.*1.5"):
        dph_divergence_loss(z, z, z, kind="alpha", alpha=1.5)
    with pytest.raises(ValueError, match="ref_logp"):
        dph_divergence_loss(z, torch.zeros(2, 2), z)


def test_js_generator_accurate_near_one() -> None:
    # f(u) ~ (u - 1)^2 / 4 near u = 1; the two-branch form keeps full relative precision.
    for eps in (1e-3, 1e-6, 1e-9):
        lu = torch.tensor([math.log1p(eps)], dtype=D)
        assert dph_generator(lu, "js").item() == pytest.approx(eps**2 / 4, rel=2e-3)
    lu = torch.tensor([-30.0, -1.0, 1.0, 30.0], dtype=D, requires_grad=True)
    f = dph_generator(lu, "js")
    f.sum().backward()
    torch.testing.assert_close(f.detach(), _closed_form(lu.detach().exp(), "js"))
    u = lu.detach().exp()
    torch.testing.assert_close(lu.grad, u * torch.log(2 * u / (u + 1)))  # f'(u) * du/dlog u
