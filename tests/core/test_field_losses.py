"""Policy losses of the field (GSPO, CISPO, SAPO, Clip-Cov, KL-Cov) and the mini-batch token
selections (covariance, forking tokens): golden values and gradients, masking, determinism,
independence from micro-batch splitting, validation messages."""

from __future__ import annotations

import math

import pytest
import torch
from loss_inputs import D, garbage_batch, ln, poison

from passk.core.aggregate import aggregate_loss, global_normalizer
from passk.core.field_losses import (
    COV_SELECT,
    ClipCovParams,
    KLCovParams,
    cispo_loss,
    clip_cov_loss,
    gspo_loss,
    kl_cov_loss,
    sapo_loss,
)
from passk.core.policy_losses import get_policy_loss, list_policy_losses, ppo_clip_loss
from passk.core.token_select import (
    clip_cov_select,
    covariance_scores,
    entropy_top_mask,
    kl_cov_select,
    selection_count,
)


def _grad(fn, logp: torch.Tensor, *args, mode: str = "token-mean", **kw):
    leaf = logp.clone().requires_grad_(True)
    mask = args[2] if len(args) >= 3 else kw["mask"]
    loss, m = fn(leaf, *args, **kw)
    aggregate_loss(loss, mask, mode).backward()
    return loss.detach(), leaf.grad, m


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def test_the_field_losses_are_registered_with_their_needs() -> None:
    assert {"gspo", "cispo", "sapo", "clip_cov", "kl_cov", "ppo_clip", "simko"} <= set(
        list_policy_losses()
    )
    assert get_policy_loss("clip_cov").needs == {COV_SELECT}
    assert get_policy_loss("kl_cov").needs == {COV_SELECT}
    for name in ("gspo", "cispo", "sapo"):
        assert get_policy_loss(name).needs == frozenset()
    assert get_policy_loss("gspo").make_params().eps_low == 3e-4
    assert get_policy_loss("gspo").make_params().eps_high == 4e-4
    assert get_policy_loss("sapo").make_params().tau_neg == 1.05


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("gspo", {"eps_low": 1.5}, r"'gspo': eps_low must be in \[0, 1\), got 1.5"),
        ("gspo", {"eps_high": -1}, r"eps_high must be >= 0, got -1"),
        ("cispo", {"eps_low": 2.0}, r"eps_low must be in \[0, 1\] \(1: no lower bound\), got 2.0"),
        ("cispo", {"eps_high": "big"}, r"eps_high must be a number, got 'big'"),
        ("sapo", {"tau_neg": 0}, r"tau_neg must be > 0, got 0"),
        ("clip_cov", {"clip_cov_ratio": 0}, r"clip_cov_ratio must be in \(0, 1\], got 0"),
        ("clip_cov", {"clip_cov_lb": 5, "clip_cov_ub": 1}, r"clip_cov_lb must be < clip_cov_ub"),
        ("kl_cov", {"kl_cov_ratio": 1.5}, r"kl_cov_ratio must be in \(0, 1\], got 1.5"),
        ("kl_cov", {"ppo_kl_coef": -1.0}, r"ppo_kl_coef must be >= 0, got -1.0"),
        ("kl_cov", {"kl_coef": 1.0}, r"unknown parameter\(s\) \['kl_coef'\]; valid: "),
    ],
)
def test_validation_names_the_bad_value_and_what_is_valid(name, params, message) -> None:
    with pytest.raises(ValueError, match=message):
        get_policy_loss(name).make_params(params)


def test_a_selection_of_the_wrong_shape_is_refused() -> None:
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"cov_select has shape \(2, 2\), expected .*\(2, 3\)"):
        clip_cov_loss(z, z, torch.ones(2), torch.ones(2, 3), cov_select=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"entropy_mask_top must be in \(0, 1\], got 0"):
        entropy_top_mask(z, torch.ones(2, 3), 0)


# ---------------------------------------------------------------------------------------------
# GSPO
# ---------------------------------------------------------------------------------------------


def test_gspo_sequence_ratio_and_clip_golden() -> None:
    # row 0: log-ratios +1e-4, +3e-4 -> s = exp(2e-4) (inside 1 +- 4e-4)
    # row 1: log-ratios +1e-3 (3 tokens) -> s = exp(1e-3) > 1 + 4e-4, A > 0: clipped
    # row 2: log-ratio -1e-3 with A < 0 -> s < 1 - 3e-4: clipped; 4th column padding
    old = torch.zeros(3, 3, dtype=D)
    logp = torch.tensor([[1e-4, 3e-4, 0.0], [1e-3] * 3, [-1e-3, -1e-3, 9.0]], dtype=D)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    adv = torch.tensor([2.0, 1.0, -1.0], dtype=D)
    loss, grad, m = _grad(gspo_loss, logp, old, adv, mask, mode="seq-mean-token-mean")
    s0 = math.exp(2e-4)
    want = torch.tensor(
        [[-2 * s0, -2 * s0, 0.0], [-(1 + 4e-4)] * 3, [1 - 3e-4, 1 - 3e-4, 0.0]], dtype=D
    )
    torch.testing.assert_close(loss, want)
    # inside the clip: -A s_i / (B |y_i|); outside: 0
    want_grad = torch.tensor([[-2 * s0 / (3 * 2)] * 2 + [0.0], [0.0] * 3, [0.0] * 3], dtype=D)
    torch.testing.assert_close(grad, want_grad)
    assert m["actor/clip_frac"].item() == pytest.approx(5 / 7)  # tokens of clipped sequences
    assert m["actor/clip_frac_high"].item() == pytest.approx(3 / 7)
    assert m["actor/clip_frac_low"].item() == pytest.approx(2 / 7)
    assert m["actor/ratio_max"].item() == pytest.approx(math.exp(1e-3))


@pytest.mark.parametrize(
    ("mode", "scale"),
    [
        ("seq-mean-token-mean", lambda n_i, B, N: 1 / (B * n_i)),
        ("token-mean", lambda n_i, B, N: 1 / N),
        ("seq-mean-token-sum", lambda n_i, B, N: 1 / B),
    ],
)
def test_gspo_token_gradient_under_each_aggregation(mode, scale) -> None:
    g = torch.Generator().manual_seed(1)
    B, T = 3, 5
    old = -torch.rand(B, T, generator=g, dtype=D)
    logp = old + 1e-5 * torch.randn(B, T, generator=g, dtype=D)  # well inside the clip
    mask = torch.tensor([[1] * 5, [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    adv = torch.tensor([1.0, -2.0, 0.5], dtype=D)
    _, grad, m = _grad(gspo_loss, logp, old, adv, mask, mode=mode)
    assert m["actor/clip_frac"].item() == 0
    n = mask.sum(-1)
    s = torch.exp(((logp - old) * mask).sum(-1) / n)
    want = torch.zeros(B, T, dtype=D)
    for i in range(B):
        want[i, : n[i]] = -adv[i] * s[i] * scale(int(n[i]), B, int(mask.sum()))
    torch.testing.assert_close(grad, want)


def test_gspo_token_form_equals_the_sequence_objective() -> None:
    # the paper's sequence loss -1/B sum_i A_i s_i with s_i = exp(mean_t log r) gives the same
    # gradient as the token form aggregated with seq-mean-token-mean
    g = torch.Generator().manual_seed(2)
    old = -torch.rand(4, 6, generator=g, dtype=D)
    logp = old + 1e-4 * torch.randn(4, 6, generator=g, dtype=D)
    mask = torch.rand(4, 6, generator=g) < 0.7
    mask[:, 0] = True
    adv = torch.randn(4, generator=g, dtype=D)
    _, grad, _ = _grad(gspo_loss, logp, old, adv, mask, mode="seq-mean-token-mean", eps_low=0.5,
                       eps_high=0.5)  # fmt: skip
    leaf = logp.clone().requires_grad_(True)
    seq = torch.exp(((leaf - old) * mask).sum(-1) / mask.sum(-1))
    (-(adv * seq).mean()).backward()
    torch.testing.assert_close(grad, leaf.grad)


# ---------------------------------------------------------------------------------------------
# CISPO
# ---------------------------------------------------------------------------------------------


def test_cispo_keeps_the_gradient_where_ppo_clips_it_to_zero() -> None:
    logp = ln(1.5, 0.5, 1.1)
    old = torch.zeros_like(logp)
    adv = torch.tensor([[1.0, -1.0, 1.0]], dtype=D)
    mask = torch.ones_like(logp, dtype=torch.bool)
    _, ppo_grad, _ = _grad(ppo_clip_loss, logp, old, adv, mask, mode="seq-mean-token-sum")
    loss, grad, m = _grad(
        cispo_loss, logp, old, adv, mask, mode="seq-mean-token-sum", eps_low=0.2, eps_high=0.28
    )
    torch.testing.assert_close(ppo_grad, torch.tensor([[0.0, 0.0, -1.1]], dtype=D))
    # -A sg(clip(r)): 1.28 (truncated), 0.8 (truncated below), 1.1
    torch.testing.assert_close(grad, torch.tensor([[-1.28, 0.8, -1.1]], dtype=D))
    torch.testing.assert_close(loss, torch.tensor([[-1.28, 0.8, -1.1]], dtype=D) * logp)
    assert m["actor/clip_frac"].item() == pytest.approx(2 / 3)
    assert m["actor/is_weight_mean"].item() == pytest.approx((1.28 + 0.8 + 1.1) / 3)
    # default: no lower bound (eps_low = 1), the weight of r = 0.5 stays 0.5
    _, grad, _ = _grad(cispo_loss, logp, old, adv, mask, mode="seq-mean-token-sum")
    torch.testing.assert_close(grad, torch.tensor([[-1.28, 0.5, -1.1]], dtype=D))


# ---------------------------------------------------------------------------------------------
# SAPO
# ---------------------------------------------------------------------------------------------


def test_sapo_gate_value_and_gradient_match_the_formula() -> None:
    r = torch.tensor([[0.5, 0.9, 1.0, 1.3, 3.0, 1.2]], dtype=D)
    adv = torch.tensor([[1.0, -2.0, 1.0, -1.0, 0.5, 0.0]], dtype=D)
    logp, old = torch.log(r), torch.zeros_like(r)
    mask = torch.ones_like(r, dtype=torch.bool)
    tau_pos, tau_neg = 2.0, 3.0
    loss, grad, m = _grad(
        sapo_loss, logp, old, adv, mask, mode="seq-mean-token-sum", tau_pos=tau_pos, tau_neg=tau_neg
    )
    tau = torch.where(adv > 0, torch.tensor(tau_pos, dtype=D), torch.tensor(tau_neg, dtype=D))
    p = torch.sigmoid(tau * (r - 1))
    torch.testing.assert_close(loss, -p * 4 / tau * adv)
    torch.testing.assert_close(grad, -adv * 4 * p * (1 - p) * r)
    assert m["actor/gate_weight_mean"].item() == pytest.approx((4 * p * (1 - p)).mean().item())
    # on-policy: the plain policy gradient -A, whatever tau
    _, grad, _ = _grad(sapo_loss, old, old, adv, mask, mode="seq-mean-token-sum")
    torch.testing.assert_close(grad, -adv)


# ---------------------------------------------------------------------------------------------
# covariance selections
# ---------------------------------------------------------------------------------------------


def test_covariance_is_over_the_valid_tokens_only() -> None:
    logp = torch.tensor([[-1.0, -3.0, 99.0], [-2.0, float("nan"), -2.0]], dtype=D)
    adv = torch.tensor([1.0, -1.0], dtype=D)
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]], dtype=torch.bool)
    cov = covariance_scores(logp, adv, mask)
    # valid logp -1, -3, -2, -2 (mean -2), A 1, 1, -1, -1 (mean 0)
    torch.testing.assert_close(cov, torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]], dtype=D))


def _cov_case(seed: int = 0, B: int = 16, T: int = 24):
    g = torch.Generator().manual_seed(seed)
    logp = -3 * torch.rand(B, T, generator=g, dtype=D) - 0.1
    old = logp + 0.3 * torch.randn(B, T, generator=g, dtype=D)
    adv = 2 * torch.randn(B, generator=g, dtype=D)
    mask = torch.rand(B, T, generator=g) < 0.8
    return logp, old, adv, mask


def test_clip_cov_selects_only_unclipped_tokens_with_cov_inside_the_bounds() -> None:
    logp, old, adv, mask = _cov_case()
    kw = dict(clip_cov_ratio=0.05, clip_cov_lb=0.5, clip_cov_ub=2.0, eps_low=0.2, eps_high=0.2)
    sel = clip_cov_select(logp, old, adv, mask, generator=torch.Generator().manual_seed(3), **kw)
    cov = covariance_scores(logp, adv, mask)
    r = torch.exp(logp - old)
    a = adv[:, None].expand_as(r)
    clipped = (-a * r.clamp(0.8, 1.2)) > (-a * r)
    candidate = mask & ~clipped & (cov > 0.5) & (cov < 2.0)
    assert sel.dtype == torch.bool and sel.shape == mask.shape
    assert not (sel & ~candidate).any()
    n = int(mask.sum())
    assert int(sel.sum()) == min(max(1, int(0.05 * n)), int(candidate.sum())) > 0
    # fewer candidates than the quota: all of them
    sel_all = clip_cov_select(logp, old, adv, mask, **{**kw, "clip_cov_ratio": 1.0})
    assert torch.equal(sel_all, candidate)


def test_clip_cov_selection_is_deterministic_under_a_seed() -> None:
    logp, old, adv, mask = _cov_case(seed=1)
    kw = dict(clip_cov_ratio=0.02, clip_cov_lb=0.2, clip_cov_ub=3.0, eps_low=1.0, eps_high=1.0)

    def draw(seed: int) -> torch.Tensor:
        return clip_cov_select(
            logp, old, adv, mask, generator=torch.Generator().manual_seed(seed), **kw
        )

    assert torch.equal(draw(5), draw(5))
    assert any(not torch.equal(draw(5), draw(s)) for s in range(6, 10))


def test_kl_cov_selects_the_top_fraction_by_covariance() -> None:
    logp, _, adv, mask = _cov_case(seed=2)
    sel = kl_cov_select(logp, adv, mask, kl_cov_ratio=0.1)
    cov = covariance_scores(logp, adv, mask)
    n = int(mask.sum())
    k = max(1, int(0.1 * n))
    assert int(sel.sum()) == k and not (sel & ~mask).any()
    threshold = torch.sort(cov[mask], descending=True).values[k - 1]
    assert (cov[sel] >= threshold).all() and (cov[mask & ~sel] <= threshold).all()
    # the SPEC's 2e-4: a single token on a small batch
    one = kl_cov_select(logp, adv, mask, kl_cov_ratio=2e-4)
    assert int(one.sum()) == 1 and cov[one].item() == cov[mask].max().item()
    assert selection_count(n, 2e-4) == 1


@pytest.mark.parametrize("name", ["clip_cov", "kl_cov"])
def test_the_loss_of_a_micro_batch_is_the_mini_batch_loss_on_its_rows(name) -> None:
    logp, old, adv, mask = _cov_case(seed=3)
    spec = get_policy_loss(name)
    params = spec.make_params(
        {"clip_cov_ratio": 0.05, "clip_cov_lb": 0.2}
        if name == "clip_cov"
        else {"kl_cov_ratio": 0.05, "ppo_kl_coef": 0.5}
    )
    sel = params.select_tokens(logp, old, adv, mask, generator=torch.Generator().manual_seed(0))
    assert sel.any()
    norm = global_normalizer(mask, "token-mean")
    leaf = logp.clone().requires_grad_(True)
    full, _ = spec.compute(leaf, old, adv, mask, params, cov_select=sel)
    aggregate_loss(full, mask, "token-mean", normalizer=norm).backward()
    parts, frac = [], 0.0
    leaf2 = logp.clone().requires_grad_(True)
    for rows in torch.arange(len(logp)).split(3):
        part, m = spec.compute(leaf2[rows], old[rows], adv[rows], mask[rows], params,
                               cov_select=sel[rows])  # fmt: skip
        aggregate_loss(part, mask[rows], "token-mean", normalizer=norm).backward()
        parts.append(part.detach())
        frac += m["actor/cov_selected_frac"].item() * int(mask[rows].sum())
    torch.testing.assert_close(torch.cat(parts), full.detach())
    torch.testing.assert_close(leaf2.grad, leaf.grad)
    assert frac / int(mask.sum()) == pytest.approx(sel.sum().item() / mask.sum().item())


def test_clip_cov_removes_the_selected_tokens_only() -> None:
    logp, old, adv, mask = _cov_case(seed=4)
    p = ClipCovParams(clip_cov_ratio=0.1, clip_cov_lb=0.1, eps_low=0.2, eps_high=0.28)
    sel = p.select_tokens(logp, old, adv, mask, generator=torch.Generator().manual_seed(0))
    assert sel.any()
    loss, grad, m = _grad(clip_cov_loss, logp, old, adv, mask, cov_select=sel, eps_low=0.2,
                          eps_high=0.28)  # fmt: skip
    ppo, ppo_grad, pm = _grad(ppo_clip_loss, logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    assert (loss[sel] == 0).all() and (grad[sel] == 0).all()
    keep = mask & ~sel
    torch.testing.assert_close(loss[keep], ppo[keep])
    torch.testing.assert_close(grad[keep], ppo_grad[keep])
    assert (ppo_grad[sel] != 0).all()  # selected tokens were never PPO-clipped
    assert m["actor/cov_selected_frac"].item() == pytest.approx(
        sel.sum().item() / mask.sum().item()
    )
    assert m["actor/clip_frac"] == pm["actor/clip_frac"]


def test_kl_cov_penalises_the_selected_tokens_and_vanishes_on_policy() -> None:
    logp, old, adv, mask = _cov_case(seed=5)
    p = KLCovParams(kl_cov_ratio=0.1, ppo_kl_coef=0.7)
    sel = p.select_tokens(logp, old, adv, mask)
    loss, grad, m = _grad(kl_cov_loss, logp, old, adv, mask, cov_select=sel, ppo_kl_coef=0.7,
                          mode="seq-mean-token-sum")  # fmt: skip
    a = adv[:, None].expand_as(logp)
    r = torch.exp(logp - old)
    lr = logp - old
    want = torch.where(mask, -a * r + torch.where(sel, 0.7 * lr.abs(), 0.0), 0.0)
    torch.testing.assert_close(loss, want)
    B = len(logp)
    want_grad = torch.where(mask, (-a * r + torch.where(sel, 0.7 * lr.sign(), 0.0)) / B, 0.0)
    torch.testing.assert_close(grad, want_grad)
    assert m["actor/kl_cov_penalty"].item() == pytest.approx(
        (0.7 * lr.abs())[sel].sum().item() / mask.sum().item()
    )
    # on-policy: old = sg(logp), the penalty and its gradient are exactly 0
    leaf = logp.clone().requires_grad_(True)
    on, m_on = kl_cov_loss(leaf, leaf.detach(), adv, mask, cov_select=sel, ppo_kl_coef=0.7)
    aggregate_loss(on, mask, "seq-mean-token-sum").backward()
    torch.testing.assert_close(leaf.grad, torch.where(mask, -a / B, 0.0))
    assert m_on["actor/kl_cov_penalty"].item() == 0.0


# ---------------------------------------------------------------------------------------------
# forking tokens
# ---------------------------------------------------------------------------------------------


def test_entropy_mask_keeps_the_top_fraction_of_valid_tokens() -> None:
    g = torch.Generator().manual_seed(6)
    ent = torch.rand(8, 10, generator=g)
    mask = torch.rand(8, 10, generator=g) < 0.7
    dirty = poison(ent, mask)
    keep = entropy_top_mask(dirty, mask, 0.2)
    n = int(mask.sum())
    assert int(keep.sum()) == math.ceil(0.2 * n) and not (keep & ~mask).any()
    assert ent[keep].min() >= ent[mask & ~keep].max()
    assert torch.equal(keep, entropy_top_mask(ent, mask, 0.2))
    assert torch.equal(entropy_top_mask(ent, mask, 1.0), mask)
    # 0.2 * 15 = 3.0000000000000004: ceil must not make it 4
    assert int(entropy_top_mask(torch.rand(1, 15), torch.ones(1, 15), 0.2).sum()) == 3


def test_entropy_mask_is_global_not_per_micro_batch() -> None:
    # a micro-batch of low-entropy rows keeps none of its tokens
    ent = torch.tensor([[5.0, 6.0], [0.1, 0.2], [0.3, 0.4], [7.0, 8.0]])
    mask = torch.ones(4, 2, dtype=torch.bool)
    keep = entropy_top_mask(ent, mask, 0.5)
    assert keep[[0, 3]].all() and not keep[[1, 2]].any()


# ---------------------------------------------------------------------------------------------
# masking
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gspo", "cispo", "sapo", "clip_cov", "kl_cov"])
def test_masked_garbage_stays_out(name) -> None:
    logp, old, adv, mask = garbage_batch()
    spec = get_policy_loss(name)
    params = spec.make_params({"eps_low": 0.1, "eps_high": 0.1} if name == "gspo" else {})
    needs = {}
    if spec.needs:
        sel = torch.zeros_like(mask)
        sel[mask.nonzero()[:3].unbind(1)] = True
        needs = {COV_SELECT: sel}
    clean_leaf = logp.clone().requires_grad_(True)
    clean, mc = spec.compute(clean_leaf, old, adv, mask, params, **needs)
    aggregate_loss(clean, mask, "token-mean").backward()
    dirty_leaf = poison(logp, mask).requires_grad_(True)
    dirty_needs = {COV_SELECT: poison(needs[COV_SELECT].to(D), mask)} if needs else {}
    dirty, md = spec.compute(dirty_leaf, poison(old, mask), poison(adv, mask), mask, params,
                             **dirty_needs)  # fmt: skip
    aggregate_loss(dirty, mask, "token-mean").backward()
    assert torch.equal(dirty, clean) and (dirty[~mask] == 0).all()
    assert torch.equal(dirty_leaf.grad, clean_leaf.grad) and (dirty_leaf.grad[~mask] == 0).all()
    for k in mc:
        assert torch.equal(md[k], mc[k]), k
        assert not md[k].requires_grad and md[k].ndim == 0
    assert torch.isfinite(clean_leaf.grad).all()


def test_empty_batches_give_zero_metrics() -> None:
    z = torch.zeros(2, 3)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    assert not kl_cov_select(z, torch.ones(2), mask, kl_cov_ratio=0.5).any()
    assert not clip_cov_select(z, z, torch.ones(2), mask, clip_cov_ratio=0.5, clip_cov_lb=-1,
                               clip_cov_ub=1, eps_low=0.2, eps_high=0.2).any()  # fmt: skip
    assert not entropy_top_mask(z, mask, 0.2).any()
    for fn in (gspo_loss, cispo_loss, sapo_loss):
        loss, m = fn(z, z, torch.ones(2), mask)
        assert (loss == 0).all() and all(v.item() == 0 for v in m.values())
