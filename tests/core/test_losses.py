"""Policy losses: golden values, gradients, masking, chunked entropy, SimKO, DPH-RL."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.core.aggregate import aggregate_loss
from passk.core.losses import (
    DPH_GENERATORS,
    dph_divergence_loss,
    dph_generator,
    entropy_from_logits,
    entropy_loss,
    get_policy_loss,
    kl_penalty,
    kl_penalty_loss,
    list_policy_losses,
    logprobs_and_entropy,
    ppo_clip_loss,
    register_policy_loss,
    simko_entropy_weights,
    simko_loss,
)

NAN, INF = float("nan"), float("inf")
D = torch.float64


def _ln(*xs: float) -> torch.Tensor:
    return torch.log(torch.tensor([xs], dtype=D))


# ---------------------------------------------------------------------------------------------
# PPO clip
# ---------------------------------------------------------------------------------------------

# (ratio, advantage, expected loss, expected d loss / d logp) with eps 0.2 / 0.28
PPO_CASES = [
    (1.10, 1.0, -1.10, -1.10),  # inside the range: -A r, grad -A r
    (1.50, 1.0, -1.28, 0.0),  # A > 0 above 1 + eps_high: clipped, no gradient
    (0.50, 1.0, -0.50, -0.50),  # A > 0 below 1 - eps_low: pessimistic term is unclipped
    (0.50, -1.0, 0.80, 0.0),  # A < 0 below 1 - eps_low: clipped
    (1.50, -2.0, 3.00, 3.00),  # A < 0 above 1 + eps_high: unclipped (no dual clip)
    (4.00, -1.0, 4.00, 4.00),  # A < 0 far above: unbounded without dual clip
    (1.00, 0.0, 0.00, 0.00),  # zero advantage
]


def test_ppo_clip_each_regime_golden() -> None:
    ratio, adv, want, want_grad = (
        torch.tensor([[c[i] for c in PPO_CASES]], dtype=D) for i in range(4)
    )
    logp = torch.log(ratio).requires_grad_(True)
    loss, m = ppo_clip_loss(logp, torch.zeros_like(logp), adv, torch.ones_like(logp))
    loss.sum().backward()
    torch.testing.assert_close(loss.detach(), want)
    torch.testing.assert_close(logp.grad, want_grad)
    n = len(PPO_CASES)
    assert m["actor/clip_frac_high"].item() == pytest.approx(1 / n)
    assert m["actor/clip_frac_low"].item() == pytest.approx(1 / n)
    assert m["actor/clip_frac"].item() == pytest.approx(2 / n)
    assert m["actor/dual_clip_frac"].item() == 0.0
    assert m["actor/ratio_max"].item() == pytest.approx(4.0)
    assert m["actor/ratio_min"].item() == pytest.approx(0.5)
    assert m["actor/ratio_mean"].item() == pytest.approx(ratio.mean().item())
    r = ratio[0]
    assert m["actor/approx_kl"].item() == pytest.approx((r - 1 - r.log()).mean().item())
    assert all(not v.requires_grad and v.ndim == 0 for v in m.values())


def test_ppo_dual_clip_golden() -> None:
    ratio = torch.tensor([[4.0, 2.0, 4.0, 0.5]], dtype=D)
    adv = torch.tensor([[-1.0, -1.0, 1.0, -1.0]], dtype=D)
    logp = torch.log(ratio).requires_grad_(True)
    loss, m = ppo_clip_loss(logp, torch.zeros_like(logp), adv, torch.ones_like(logp), dual_clip=3.0)
    loss.sum().backward()
    # r=4, A=-1: capped at -A c = 3 (no grad); r=2: 2 (below c); A>0 unaffected: -1.28; r=0.5: 0.8
    torch.testing.assert_close(loss.detach(), torch.tensor([[3.0, 2.0, -1.28, 0.8]], dtype=D))
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 2.0, 0.0, 0.0]], dtype=D))
    assert m["actor/dual_clip_frac"].item() == pytest.approx(0.25)


def test_ppo_decoupled_bounds() -> None:
    logp = _ln(1.3, 1.35)
    loss, _ = ppo_clip_loss(
        logp, torch.zeros_like(logp), torch.ones(1), torch.ones(1, 2), eps_low=0.2, eps_high=0.4
    )  # ProRL
    torch.testing.assert_close(loss, torch.tensor([[-1.3, -1.35]], dtype=D))
    loss, _ = ppo_clip_loss(
        logp, torch.zeros_like(logp), torch.ones(1), torch.ones(1, 2), eps_low=0.2, eps_high=0.2
    )  # symmetric PPO
    torch.testing.assert_close(loss, torch.tensor([[-1.2, -1.2]], dtype=D))


def test_ppo_advantage_broadcast() -> None:
    g = torch.Generator().manual_seed(0)
    logp, old = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    adv = torch.randn(3, generator=g)
    mask = torch.rand(3, 5, generator=g) < 0.7
    a, ma = ppo_clip_loss(logp, old, adv, mask)
    b, mb = ppo_clip_loss(logp, old, adv[:, None].expand(3, 5), mask)
    assert torch.equal(a, b)
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def _garbage_batch(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 6
    logp = -torch.rand(B, T, generator=g, dtype=D) * 3
    old = logp + 0.3 * torch.randn(B, T, generator=g, dtype=D)
    adv = torch.randn(B, T, generator=g, dtype=D)
    mask = torch.rand(B, T, generator=g) < 0.6
    mask[0] = False  # one fully masked row
    return logp, old, adv, mask


def _poison(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    m = mask if mask.ndim == x.ndim else mask[..., None].expand_as(x)
    vals = torch.tensor([NAN, INF, -INF, 1e30], dtype=x.dtype)
    y[~m] = vals.repeat(int((~m).sum()) // 4 + 1)[: int((~m).sum())]
    return y


def test_ppo_masked_garbage_stays_out() -> None:
    logp, old, adv, mask = _garbage_batch()
    clean_leaf = logp.clone().requires_grad_(True)
    clean, mc = ppo_clip_loss(clean_leaf, old, adv, mask, dual_clip=3.0)
    aggregate_loss(clean, mask, "token-mean").backward()

    dirty_leaf = _poison(logp, mask).requires_grad_(True)
    dirty, md = ppo_clip_loss(
        dirty_leaf, _poison(old, mask), _poison(adv, mask), mask, dual_clip=3.0
    )
    aggregate_loss(dirty, mask, "token-mean").backward()

    assert torch.equal(dirty, clean)
    assert (dirty[~mask] == 0).all()
    assert torch.equal(dirty_leaf.grad, clean_leaf.grad)
    assert (dirty_leaf.grad[~mask] == 0).all()
    for k in mc:
        assert torch.equal(md[k], mc[k]), k


def test_ppo_metrics_with_no_valid_token_are_zero() -> None:
    z = torch.zeros(2, 3)
    _, m = ppo_clip_loss(z, z, torch.ones(2), torch.zeros(2, 3))
    assert all(v.item() == 0.0 for v in m.values())


def test_ppo_extreme_log_ratio_is_finite() -> None:
    logp = torch.tensor([[200.0, -200.0]], requires_grad=True)
    loss, _ = ppo_clip_loss(logp, torch.zeros(1, 2), torch.tensor([[-1.0, 1.0]]), torch.ones(1, 2))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logp.grad).all()


def test_ppo_bad_input() -> None:
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"eps_low.*-0.1"):
        ppo_clip_loss(z, z, z, z, eps_low=-0.1)
    with pytest.raises(ValueError, match=r"eps_high.*-1"):
        ppo_clip_loss(z, z, z, z, eps_high=-1)
    with pytest.raises(ValueError, match=r"dual_clip.*0.5"):
        ppo_clip_loss(z, z, z, z, dual_clip=0.5)
    with pytest.raises(ValueError, match=r"old_logp.*\(2, 4\)"):
        ppo_clip_loss(z, torch.zeros(2, 4), z, z)
    with pytest.raises(ValueError, match=r"advantages.*\(3,\)"):
        ppo_clip_loss(z, z, torch.zeros(3), z)


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
    logp, ref, _, mask = _garbage_batch(2)
    leaf = _poison(logp, mask).requires_grad_(True)
    kl, m = kl_penalty_loss(leaf, _poison(ref, mask), mask, kind="k3")
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


# ---------------------------------------------------------------------------------------------
# SimKO
# ---------------------------------------------------------------------------------------------


def _simko_batch(seed: int = 0, B: int = 4, T: int = 10, K: int = 3):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=D) * 2
    old = logp + 0.05 * torch.randn(B, T, generator=g, dtype=D)  # ratios inside the clip range
    topk = -torch.rand(B, T, K, generator=g, dtype=D).sort(-1).values * 2
    topk_old = topk + 0.1 * torch.randn(B, T, K, generator=g, dtype=D)
    entropy = torch.rand(B, T, generator=g, dtype=D) * 3
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 7:] = False
    correct = torch.tensor([True, True, False, False])[:B]
    top1 = torch.rand(B, T, generator=g) < 0.6
    adv = torch.where(correct, 1.0, -0.5).to(D)
    return {
        "logp": logp,
        "old_logp": old,
        "advantages": adv,
        "mask": mask,
        "topk_logp": topk,
        "topk_old_logp": topk_old,
        "entropy": entropy,
        "correct": correct,
        "sampled_is_top1": top1,
    }


def _call_simko(b: dict, **kw):
    b = dict(b)
    return simko_loss(
        b.pop("logp"), b.pop("old_logp"), b.pop("advantages"), b.pop("mask"), **b, **kw
    )


def test_simko_entropy_weights_quantile() -> None:
    ent = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0]])
    mask = torch.ones_like(ent, dtype=torch.bool)
    mask[0, -1] = False  # the masked 100 must not shift the quantile
    w = simko_entropy_weights(ent, mask, tau=0.8)  # quantile of 0..9 = 7.2
    assert w.tolist() == [[0.0] * 8 + [1.0, 1.0, 0.0]]
    assert simko_entropy_weights(torch.ones(2, 5), torch.ones(2, 5)).sum() == 0  # ties: none
    assert simko_entropy_weights(torch.ones(1, 3), torch.zeros(1, 3)).sum() == 0  # empty row


def test_simko_value_equals_ppo_when_no_boost() -> None:
    b = _simko_batch()
    b["correct"] = torch.ones(4, dtype=torch.bool)
    b["old_logp"] = b["logp"] + torch.linspace(-1.5, 1.5, 10, dtype=D)  # every clip regime
    loss, m = _call_simko(b, dual_clip=3.0)
    assert m["actor/clip_frac"] > 0
    ref, mref = ppo_clip_loss(b["logp"], b["old_logp"], b["advantages"], b["mask"], dual_clip=3.0)
    assert torch.equal(loss, ref)  # bit-identical, not just close
    assert m["simko/mixed_frac"] > 0
    for k in mref:
        assert torch.equal(m[k], mref[k]), k
    # and with incorrect responses but lam = 1 the boost path is a no-op too
    loss1, _ = _call_simko(_simko_batch(), lam=1.0)
    b0 = _simko_batch()
    assert torch.equal(
        loss1, ppo_clip_loss(b0["logp"], b0["old_logp"], b0["advantages"], b0["mask"])[0]
    )


def test_simko_gradient_spread_over_topk() -> None:
    b = _simko_batch(1)
    alpha, K = 0.01, 3
    logp = b["logp"].clone().requires_grad_(True)
    topk = b["topk_logp"].clone().requires_grad_(True)
    b2 = {**b, "logp": logp, "topk_logp": topk}
    loss, _ = _call_simko(b2, alpha=alpha)
    loss.sum().backward()

    w = simko_entropy_weights(b["entropy"], b["mask"])
    corr = b["correct"][:, None].expand_as(w)
    mixed = (w > 0) & corr & b["mask"]
    ratio = torch.exp(b["logp"] - b["old_logp"])
    assert ((ratio > 0.8) & (ratio < 1.28)).all()  # every token unclipped: closed forms apply
    adv = b["advantages"][:, None].expand_as(w)
    # plain PPO gradient of -A r is -A r; the mixed share alpha w moves to the top-K
    aw = torch.where(mixed, alpha, 0.0)
    want_logp = torch.where(b["mask"], -adv * ratio * (1 - aw), 0.0)
    boost = (~corr) & b["sampled_is_top1"] & (w > 0)
    want_logp = torch.where(boost, want_logp * 1.1, want_logp)
    torch.testing.assert_close(logp.grad, want_logp)
    want_topk = (-adv * ratio * aw / K)[..., None].expand(-1, -1, K)
    torch.testing.assert_close(topk.grad, want_topk)
    assert torch.equal(topk.grad.ne(0).any(-1), mixed)  # nonzero exactly where w=1, correct
    # total gradient mass is that of plain PPO
    torch.testing.assert_close(
        (logp.grad + topk.grad.sum(-1))[~boost], (-adv * ratio * b["mask"])[~boost]
    )


def test_simko_shared_logits_sums_contributions() -> None:
    # logp and top-K gathered from the same logits: the sampled (top-1) token gets
    # (1 - alpha) + alpha / K of the PPO gradient, the other top-K tokens alpha / K each.
    logits = torch.tensor([[[3.0, 2.0, 1.0, 0.0, -1.0]] * 5], dtype=D)
    entropy = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]], dtype=D)  # last token high-entropy
    leaf = logits.clone().requires_grad_(True)
    logq = torch.log_softmax(leaf, -1)
    logp = logq[..., 0]
    topk = logq.topk(3, -1).values
    old = logp.detach().clone()
    loss, _ = simko_loss(
        logp, old, torch.ones(1, dtype=D), torch.ones(1, 5),
        topk_logp=topk, topk_old_logp=topk.detach().clone(), entropy=entropy,
        correct=torch.tensor([True]), sampled_is_top1=torch.ones(1, 5, dtype=torch.bool),
        alpha=0.3,
    )  # fmt: skip
    loss.sum().backward()
    base = torch.log_softmax(logits, -1)
    p = base.exp()[0, 0]
    onehot = torch.eye(5, dtype=D)
    d = lambda i: onehot[i] - p  # noqa: E731  d logq_i / d logits
    plain = -d(0)
    mixed = -(0.7 * d(0) + 0.1 * (d(0) + d(1) + d(2)))
    torch.testing.assert_close(leaf.grad[0, 0], plain)
    torch.testing.assert_close(leaf.grad[0, 4], mixed)


def test_simko_lambda_on_incorrect_top1_high_entropy() -> None:
    b = _simko_batch(2)
    loss, m = _call_simko(b, lam=1.1)
    ppo, _ = ppo_clip_loss(b["logp"], b["old_logp"], b["advantages"], b["mask"])
    w = simko_entropy_weights(b["entropy"], b["mask"])
    boost = (~b["correct"][:, None]) & b["sampled_is_top1"] & (w > 0) & b["mask"]
    assert boost.any() and (~boost & b["mask"]).any()
    torch.testing.assert_close(loss[boost], 1.1 * ppo[boost])
    assert torch.equal(loss[~boost], ppo[~boost])
    assert m["simko/boost_frac"].item() == pytest.approx(
        boost.sum().item() / b["mask"].sum().item()
    )


def test_simko_masked_garbage_stays_out() -> None:
    b = _simko_batch(3)
    mask = b["mask"]
    clean_leaf = b["logp"].clone().requires_grad_(True)
    clean, mc = _call_simko({**b, "logp": clean_leaf})
    clean.sum().backward()
    dirty = {k: (_poison(v, mask) if k in ("old_logp", "topk_logp", "topk_old_logp", "entropy") else v)
             for k, v in b.items()}  # fmt: skip
    dirty_leaf = _poison(b["logp"], mask).requires_grad_(True)
    dirty["logp"] = dirty_leaf
    out, md = _call_simko(dirty)
    out.sum().backward()
    assert torch.equal(out, clean)
    assert torch.equal(dirty_leaf.grad, clean_leaf.grad)
    for k in mc:
        assert torch.equal(md[k], mc[k]), k


def test_simko_bad_input() -> None:
    b = _simko_batch()
    with pytest.raises(ValueError, match="K must be in"):
        _call_simko(b, K=4)
    with pytest.raises(ValueError, match="topk_logp must be"):
        _call_simko({**b, "topk_logp": b["topk_logp"][:, :3]})
    with pytest.raises(ValueError, match="topk_old_logp shape"):
        _call_simko({**b, "topk_old_logp": b["topk_old_logp"][..., :2]})
    with pytest.raises(ValueError, match="correct must have shape"):
        _call_simko({**b, "correct": b["correct"][:2]})
    with pytest.raises(ValueError, match=r"alpha.*2"):
        _call_simko(b, alpha=2.0)
    with pytest.raises(ValueError, match=r"tau.*1.5"):
        _call_simko(b, tau=1.5)
    loss_k2, _ = _call_simko(b, K=2)  # first K columns used
    loss_k2b, _ = _call_simko({**b, "topk_logp": b["topk_logp"][..., :2],
                               "topk_old_logp": b["topk_old_logp"][..., :2]})  # fmt: skip
    assert torch.equal(loss_k2, loss_k2b)


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
    got = dph_generator(_ln(2.0, 0.5, 1.0)[0], kind, alpha=0.2)
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
    logp, ref, _, mask = _garbage_batch(6)
    logp[1, :] = 500.0  # huge log u: clamped, finite
    leaf = _poison(logp, mask).requires_grad_(True)
    loss, m = dph_divergence_loss(leaf, _poison(ref, mask), mask, kind=kind)
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


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def test_policy_loss_registry() -> None:
    assert {"ppo_clip", "simko"} <= set(list_policy_losses())
    spec = get_policy_loss("simko")
    b = _simko_batch()
    extra = {k: b[k] for k in spec.needs}
    loss, _ = spec.fn(b["logp"], b["old_logp"], b["advantages"], b["mask"], **extra)
    assert torch.equal(loss, _call_simko(b)[0])
    with pytest.raises(ValueError, match=r"'ppo'.*ppo_clip"):
        get_policy_loss("ppo")
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("ppo_clip")(simko_loss)


def test_half_precision_inputs_are_computed_in_float32() -> None:
    logp = torch.tensor([[0.25, -0.25, 0.0]], dtype=torch.bfloat16, requires_grad=True)
    old = torch.zeros(1, 3, dtype=torch.bfloat16)
    loss, m = ppo_clip_loss(logp, old, torch.ones(1), torch.ones(1, 3))
    assert loss.dtype == torch.float32 and m["actor/ratio_mean"].dtype == torch.float32
    r = torch.exp(logp.detach().float())
    want = torch.maximum(-r, -r.clamp(0.8, 1.28))
    torch.testing.assert_close(loss, want)
    loss.sum().backward()
    assert logp.grad.dtype == torch.bfloat16
    assert kl_penalty(logp, old).dtype == torch.float32
    assert dph_divergence_loss(logp, old, torch.ones(1, 3))[0].dtype == torch.float32


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
