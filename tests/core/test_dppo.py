"""DPPO-TV and DPPO-KL: hand values, masking, the spec, and equality with verl's functions."""

from __future__ import annotations

import math

import pytest
import torch
from loss_inputs import D, garbage_batch, ln, poison

from passk.core.aggregate import aggregate_loss
from passk.core.losses import (
    DPPOKLParams,
    DPPOTVParams,
    dppo_kl_loss,
    dppo_tv_loss,
    get_policy_loss,
)


def test_dppo_tv_hand_values_each_side() -> None:
    # p_old -> p, A: kept iff p - p_old <= 0.15 (A > 0) or p - p_old >= -0.15 (A <= 0)
    p_old = [0.50, 0.50, 0.50, 0.50, 0.10, 0.90]
    p_new = [0.60, 0.70, 0.40, 0.30, 0.30, 0.80]
    adv = [1.0, 1.0, -1.0, -1.0, -2.0, 2.0]
    keep = [True, False, True, False, True, True]
    logp = ln(*p_new).requires_grad_(True)
    loss, m = dppo_tv_loss(logp, ln(*p_old), torch.tensor([adv], dtype=D), torch.ones(1, 6))
    r = [n / o for n, o in zip(p_new, p_old)]
    want = [-a * ri * math.log(n) if k else 0.0 for a, ri, n, k in zip(adv, r, p_new, keep)]
    torch.testing.assert_close(loss.detach(), torch.tensor([want], dtype=D))
    loss.sum().backward()
    want_grad = [-a * ri if k else 0.0 for a, ri, k in zip(adv, r, keep)]
    torch.testing.assert_close(logp.grad, torch.tensor([want_grad], dtype=D))
    assert m["actor/clip_frac"].item() == pytest.approx(2 / 6)
    assert m["actor/clip_frac_high"].item() == pytest.approx(1 / 6)
    assert m["actor/clip_frac_low"].item() == pytest.approx(1 / 6)


def test_dppo_kl_masks_only_moves_along_the_advantage() -> None:
    # 0.5 -> 0.9: binary KL 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.511 > 0.05
    kl = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl == pytest.approx(0.5108, abs=1e-4)
    logp = ln(0.9, 0.9, 0.1, 0.1).requires_grad_(True)
    old = ln(0.5, 0.5, 0.5, 0.5)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]], dtype=D)
    loss, m = dppo_kl_loss(logp, old, adv, torch.ones(1, 4))
    loss.sum().backward()
    # rose with A > 0: masked; rose with A < 0: kept; fell with A > 0: kept; fell with A < 0
    # (KL 0.5 ln 5 + 0.5 ln(0.5/0.9) = 0.511): masked
    r = torch.tensor([[1.8, 1.8, 0.2, 0.2]], dtype=D)
    keep = torch.tensor([[0.0, 1.0, 1.0, 0.0]], dtype=D)
    torch.testing.assert_close(logp.grad, -adv * r * keep)
    assert m["actor/clip_frac"].item() == pytest.approx(0.5)


def test_dppo_is_cap_truncates_the_weight_not_the_mask() -> None:
    logp = ln(0.001 * 30).requires_grad_(True)  # r = 30 but |p - p_old| tiny: inside the region
    loss, m = dppo_tv_loss(logp, ln(0.001), torch.tensor([[1.0]], dtype=D), torch.ones(1, 1))
    loss.sum().backward()
    assert logp.grad.item() == pytest.approx(-20.0)
    assert m["actor/is_capped_frac"].item() == 1.0
    loss, _ = dppo_tv_loss(logp.detach(), ln(0.001), torch.ones(1, 1), torch.ones(1, 1), is_cap=5.0)
    assert loss.item() == pytest.approx(-5.0 * math.log(0.03))


@pytest.mark.parametrize("fn", [dppo_tv_loss, dppo_kl_loss])
def test_dppo_padding_never_leaks(fn) -> None:
    logp, old, adv, mask = garbage_batch(3)
    logp = logp.clamp(max=-0.01)
    a = logp.clone().requires_grad_(True)
    b = poison(logp, mask).requires_grad_(True)
    la, ma = fn(a, old, adv, mask)
    lb, mb = fn(b, poison(old, mask), poison(adv, mask), mask)
    torch.testing.assert_close(la, lb)
    assert la[~mask].abs().sum() == 0
    la.sum().backward()
    lb.sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    assert torch.isfinite(b.grad).all()
    for k in ma:
        torch.testing.assert_close(ma[k], mb[k])


@pytest.mark.parametrize(
    ("name", "params", "defaults"),
    [("dppo_tv", DPPOTVParams, (0.15, 0.15, 20.0)), ("dppo_kl", DPPOKLParams, (0.05, 0.05, 20.0))],
)
def test_dppo_spec_defaults_and_validation(name, params, defaults) -> None:
    spec = get_policy_loss(name)
    assert spec.params is params and not spec.needs
    p = spec.make_params()
    assert (p.delta_low, p.delta_high, p.is_cap) == defaults
    with pytest.raises(ValueError, match=r"delta_high must be >= 0.*-0.1"):
        spec.make_params({"delta_high": -0.1})
    with pytest.raises(ValueError, match=r"is_cap must be > 0"):
        spec.make_params({"is_cap": 0})


# ---------------------------------------------------------------------------------------------
# equality with verl's dppo_tv / dppo_kl
# ---------------------------------------------------------------------------------------------


def _verl_config(low: float, high: float, cap: float):
    from verl.workers.config import ActorConfig

    return ActorConfig(
        strategy="fsdp",
        rollout_n=4,
        clip_ratio=0.2,
        clip_ratio_low=low,
        clip_ratio_high=high,
        clip_ratio_c=cap,
        ppo_micro_batch_size_per_gpu=1,
    )


@pytest.mark.parametrize("name", ["dppo_tv", "dppo_kl"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dppo_equals_verl_in_value_and_gradient(name: str, seed: int) -> None:
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
    g = torch.Generator().manual_seed(seed)
    B, T = 8, 7
    old = -torch.rand(B, T, generator=g, dtype=D) * 4  # probabilities from 0.02 to 1
    new = (old + 0.8 * torch.randn(B, T, generator=g, dtype=D)).clamp(max=0.0)
    adv = torch.randn(B, T, generator=g, dtype=D)
    mask = torch.rand(B, T, generator=g) > 0.25
    low, high, cap = (0.1, 0.2, 3.0) if name == "dppo_tv" else (0.03, 0.08, 3.0)
    cfg = _verl_config(low, high, cap)

    a = new.clone().requires_grad_(True)
    ref, ref_m = core_algos.get_policy_loss_fn(name)(old, a, adv, mask.to(D), "token-mean", cfg)
    (ref_grad,) = torch.autograd.grad(ref, a)

    b = new.clone().requires_grad_(True)
    spec = get_policy_loss(name)
    params = spec.make_params({"delta_low": low, "delta_high": high, "is_cap": cap})
    loss_mat, m = spec.compute(b, old, adv, mask, params)
    ours = aggregate_loss(loss_mat, mask, "token-mean")
    (grad,) = torch.autograd.grad(ours, b)

    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
    assert 0 < m["actor/clip_frac"].item() < 1  # both branches of the mask are exercised
    assert m["actor/clip_frac"].item() == pytest.approx(ref_m["actor/pg_clipfrac"])
    assert m["actor/is_capped_frac"].item() == pytest.approx(ref_m["actor/pg_clipfrac_lower"])


def test_verl_plugin_leaves_dppo_to_verls_own_losses() -> None:
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
    import passk.integrations.verl as pv

    for name in ("dppo_tv", "dppo_kl"):
        assert f"passk_{name}" not in pv.PASSK_POLICY_LOSSES
        assert f"passk_{name}" not in core_algos.POLICY_LOSS_REGISTRY
        assert not hasattr(core_algos.POLICY_LOSS_REGISTRY[name], "__passk_verl__")
