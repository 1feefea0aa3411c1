"""Policy losses: PPO clip and SimKO golden values, gradients, masking; the spec registry."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import pytest
import torch
from loss_inputs import D, garbage_batch, ln, poison

from passk.core import policy_losses
from passk.core.aggregate import aggregate_loss
from passk.core.divergences import dph_divergence_loss
from passk.core.kl import kl_penalty
from passk.core.policy_losses import (
    PPOClipParams,
    SimKOParams,
    get_policy_loss,
    list_policy_losses,
    ppo_clip_loss,
    register_policy_loss,
    simko_entropy_weights,
    simko_loss,
)
from passk.core.registry import Registry

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
    logp = ln(1.3, 1.35)
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


def test_ppo_masked_garbage_stays_out() -> None:
    logp, old, adv, mask = garbage_batch()
    clean_leaf = logp.clone().requires_grad_(True)
    clean, mc = ppo_clip_loss(clean_leaf, old, adv, mask, dual_clip=3.0)
    aggregate_loss(clean, mask, "token-mean").backward()

    dirty_leaf = poison(logp, mask).requires_grad_(True)
    dirty, md = ppo_clip_loss(dirty_leaf, poison(old, mask), poison(adv, mask), mask, dual_clip=3.0)
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
    dirty = {k: (poison(v, mask) if k in ("old_logp", "topk_logp", "topk_old_logp", "entropy") else v)
             for k, v in b.items()}  # fmt: skip
    dirty_leaf = poison(b["logp"], mask).requires_grad_(True)
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
# registry
# ---------------------------------------------------------------------------------------------


def test_policy_loss_registry() -> None:
    assert {"ppo_clip", "simko"} <= set(list_policy_losses())
    assert get_policy_loss("ppo_clip").params is PPOClipParams
    assert get_policy_loss("ppo_clip").needs == frozenset()
    spec = get_policy_loss("simko")
    assert spec.params is SimKOParams
    assert spec.needs == {"topk_logp", "topk_old_logp", "entropy", "correct", "sampled_is_top1"}
    with pytest.raises(ValueError, match=r"unknown policy loss 'ppo'; valid: .*ppo_clip"):
        get_policy_loss("ppo")
    with pytest.raises(ValueError, match="policy loss 'ppo_clip' is already registered"):
        register_policy_loss("ppo_clip", params=SimKOParams)(simko_loss)
    with pytest.raises(ValueError, match="already registered"):  # another loss, same name
        register_policy_loss("ppo_clip", params=_ScaleParams, needs=("baseline",))(_scaled_pg)
    # the identical spec again is a no-op, and the registered one is unchanged
    register_policy_loss("ppo_clip", params=PPOClipParams)(ppo_clip_loss)
    assert get_policy_loss("ppo_clip").fn is ppo_clip_loss


def test_param_defaults_are_the_function_defaults() -> None:
    # one source of truth: the functions' keyword defaults are read from the dataclasses
    for fn, params in ((ppo_clip_loss, PPOClipParams()), (simko_loss, SimKOParams())):
        sig = inspect.signature(fn).parameters
        for f in dataclasses.fields(params):
            assert sig[f.name].default == getattr(params, f.name), (fn.__name__, f.name)
    assert PPOClipParams() == PPOClipParams(eps_low=0.2, eps_high=0.28, dual_clip=None)
    assert SimKOParams() == SimKOParams(K=None, alpha=0.01, tau=0.8, lam=1.1)


def test_make_params_unknown_keys_and_bad_values_are_named() -> None:
    ppo = get_policy_loss("ppo_clip")
    assert ppo.make_params() == PPOClipParams()
    assert ppo.make_params({"eps_high": 0.4, "dual_clip": 3.0}) == PPOClipParams(0.2, 0.4, 3.0)
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) \['eps', 'tau'\]; valid: .*eps_low"
    ):
        ppo.make_params({"eps": 0.1, "tau": 0.5, "eps_low": 0.1})
    bad = [
        ({"eps_low": 1.0}, r"eps_low must be in \[0, 1\), got 1.0"),
        ({"eps_low": -0.1}, r"eps_low must be in \[0, 1\), got -0.1"),
        ({"eps_high": -1}, r"eps_high must be >= 0, got -1"),
        ({"dual_clip": 1.0}, r"dual_clip must be > 1 .*got 1.0"),
        ({"eps_low": "0.2"}, r"eps_low must be a number, got '0.2'"),
        ({"eps_high": True}, r"eps_high must be a number, got True"),
    ]
    for mapping, match in bad:
        with pytest.raises(ValueError, match=r"policy loss 'ppo_clip': " + match):
            ppo.make_params(mapping)
    with pytest.raises(ValueError, match="must be a mapping"):
        ppo.make_params([("eps_low", 0.1)])  # type: ignore[arg-type]
    simko = get_policy_loss("simko")
    assert simko.make_params({"K": 2, "eps_high": 0.4}) == SimKOParams(eps_high=0.4, K=2)
    for mapping, match in [
        ({"K": 0}, r"K must be None or an int >= 1, got 0"),
        ({"K": 2.5}, r"K must be None or an int >= 1, got 2.5"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\], got 1.5"),
        ({"tau": -0.1}, r"tau must be in \[0, 1\], got -0.1"),
        ({"lam": -1.0}, r"lam must be >= 0, got -1.0"),
        ({"dual_clip": 0.5}, r"dual_clip must be > 1"),  # PPO's rules hold inside SimKO's params
    ]:
        with pytest.raises(ValueError, match=r"policy loss 'simko': " + match):
            simko.make_params(mapping)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PPOClipParams().eps_low = 0.3  # type: ignore[misc]


def test_compute_equals_calling_the_function() -> None:
    b = _simko_batch()
    args = (b["logp"], b["old_logp"], b["advantages"], b["mask"])
    ppo = get_policy_loss("ppo_clip")
    p = ppo.make_params({"eps_low": 0.01, "eps_high": 0.02, "dual_clip": 1.5})
    got, gm = ppo.compute(*args, p)
    want, wm = ppo_clip_loss(*args, eps_low=0.01, eps_high=0.02, dual_clip=1.5)
    assert torch.equal(got, want) and gm.keys() == wm.keys()
    assert all(torch.equal(gm[k], wm[k]) for k in gm)
    assert not torch.equal(got, ppo_clip_loss(*args)[0])  # the params reached the loss

    simko = get_policy_loss("simko")
    extra = {k: b[k] for k in simko.needs}
    p = simko.make_params({"K": 2, "alpha": 0.5, "lam": 2.0, "eps_high": 0.05})
    got, gm = simko.compute(*args, p, **extra)
    want, wm = _call_simko(b, K=2, alpha=0.5, lam=2.0, eps_high=0.05)
    assert torch.equal(got, want) and all(torch.equal(gm[k], wm[k]) for k in wm)
    assert not torch.equal(got, _call_simko(b)[0])


def test_compute_checks_needs_and_params_type() -> None:
    b = _simko_batch()
    args = (b["logp"], b["old_logp"], b["advantages"], b["mask"])
    simko = get_policy_loss("simko")
    extra = {k: b[k] for k in simko.needs}
    p = simko.make_params()
    missing = {k: v for k, v in extra.items() if k != "entropy"}
    with pytest.raises(ValueError, match=r"missing \['entropy'\], unexpected \[\]"):
        simko.compute(*args, p, **missing)
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['ref_logp'\]"):
        simko.compute(*args, p, **extra, ref_logp=b["logp"])
    ppo = get_policy_loss("ppo_clip")
    with pytest.raises(
        ValueError, match=r"'ppo_clip' needs exactly \[\].*unexpected \['entropy'\]"
    ):
        ppo.compute(*args, ppo.make_params(), entropy=b["entropy"])
    # SimKOParams is a PPOClipParams subclass, but ppo_clip takes exactly its own params
    with pytest.raises(TypeError, match="takes PPOClipParams params, got SimKOParams"):
        ppo.compute(*args, p)
    with pytest.raises(TypeError, match="takes PPOClipParams params, got dict"):
        ppo.compute(*args, {"eps_low": 0.2})


@dataclass(frozen=True)
class _ScaleParams:
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale!r}")


def _scaled_pg(logp, old_logp, advantages, mask, *, scale, baseline):
    # a non-PPO loss: -scale * A * logp, with an extra needed input
    loss = -scale * (advantages[:, None] - baseline) * logp * mask
    return loss, {"toy/scale": torch.tensor(scale)}


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    reg = Registry("policy loss")
    monkeypatch.setattr(policy_losses, "_POLICY_LOSSES", reg)
    return reg


def test_a_loss_with_its_own_params_registers_and_computes(fresh_registry: Registry) -> None:
    register_policy_loss("toy_scaled", params=_ScaleParams, needs=("baseline",))(_scaled_pg)
    assert list_policy_losses() == ["toy_scaled"] and "toy_scaled" in fresh_registry
    spec = get_policy_loss("toy_scaled")
    assert spec.param_names() == ("scale",) and spec.needs == {"baseline"}
    logp, mask = torch.full((2, 3), -1.0), torch.ones(2, 3)
    adv, base = torch.tensor([1.0, -1.0]), torch.full((2, 1), 0.5)
    loss, m = spec.compute(logp, logp, adv, mask, spec.make_params({"scale": 3.0}), baseline=base)
    torch.testing.assert_close(loss, torch.tensor([[1.5] * 3, [-4.5] * 3]))
    assert m["toy/scale"].item() == 3.0
    with pytest.raises(ValueError, match=r"'toy_scaled': scale must be > 0, got 0"):
        spec.make_params({"scale": 0})
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) \['eps_low'\]; valid: \['scale'\]"
    ):
        spec.make_params({"eps_low": 0.2})
    with pytest.raises(ValueError, match="'toy_scaled' is already registered"):
        register_policy_loss("toy_scaled", params=_ScaleParams)(_scaled_pg)


def test_register_policy_loss_rejects_bad_declarations(fresh_registry: Registry) -> None:
    @dataclass
    class Mutable:
        scale: float = 1.0

    with pytest.raises(TypeError, match="must be a dataclass type"):
        register_policy_loss("x", params=dict)
    with pytest.raises(TypeError, match="must be frozen"):
        register_policy_loss("x", params=Mutable)
    with pytest.raises(TypeError, match="needs for policy loss 'x' must be a tuple"):
        register_policy_loss("x", params=_ScaleParams, needs="entropy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\['mask', 'scale'\] used twice"):
        register_policy_loss("x", params=_ScaleParams, needs=("scale", "mask"))
    with pytest.raises(TypeError, match=r"does not accept the keyword\(s\) \['entropy'\]"):
        register_policy_loss("x", params=_ScaleParams, needs=("baseline", "entropy"))(_scaled_pg)
    with pytest.raises(TypeError, match=r"must take .*positionally"):
        register_policy_loss("x", params=_ScaleParams)(lambda logp, *, scale: (logp, {}))
    assert len(fresh_registry) == 0  # nothing half-registered


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
