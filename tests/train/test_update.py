"""One policy update: micro-batch invariant, prefix sharing changes nothing, metrics are
token-weighted means, non-finite steps are skipped, the model's mode is restored."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from passk.rollout.batch import Rollouts
from passk.rollout.logprobs import micro_batch_rows
from passk.train.config import DPHConfig, LossConfig, OptimConfig
from passk.train.update import behaviour_pass, needs_topk, policy_update


def _batch(vocab: int, G: int = 4, N: int = 3, seed: int = 0) -> Rollouts:
    """G prompts of different lengths (1..6 tokens: left padding) x N ragged responses."""
    g = torch.Generator().manual_seed(seed)
    prompts, responses, group = [], [], []
    for i in range(G):
        p_len = 1 + (i * 5) // max(G - 1, 1)
        prompt = torch.randint(3, vocab, (p_len,), generator=g).tolist()
        for _ in range(N):
            r_len = int(torch.randint(1, 10, (1,), generator=g))
            prompts.append(prompt)
            responses.append(torch.randint(3, vocab, (r_len,), generator=g).tolist())
            group.append(i)
    r = Rollouts.from_sequences(prompts, responses, group=group, n=N)
    B = len(r)
    r.advantages = torch.randn(B, generator=g)
    r.correct = torch.rand(B, generator=g) > 0.5
    return r


def _run(model, batch, loss, optim, *, ref=None, dph_batch=None, dph=None):
    model = copy.deepcopy(model)
    # SGD: parameter changes are the (clipped) gradients themselves; Adam's first step is
    # ~lr * sign(g), which turns float rounding in near-zero gradients into lr-sized noise
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    b = copy.copy(batch)
    if optim.ppo_epochs > 1 or optim.mini_batches > 1:
        b.old_logp, b.old_topk_ids, b.old_topk_logp = behaviour_pass(
            model,
            b,
            micro_batch_size=optim.micro_batch_size,
            temperature=1.0,
            autocast=None,
            topk=needs_topk(loss.policy_loss),
            share_prefix=optim.share_prefix,
        )
    if ref is not None:
        b.ref_logp = ref
    gen = torch.Generator().manual_seed(7)
    metrics = policy_update(
        model,
        opt,
        sched,
        b,
        loss=loss,
        optim=optim,
        dph=dph or DPHConfig(),
        temperature=1.0,
        autocast=None,
        generator=gen,
        dph_batch=dph_batch,
    )
    return model, metrics


CASES = [
    dict(aggregation="token-mean"),
    dict(aggregation="seq-mean-token-mean", entropy_coef=0.01),
    dict(aggregation="seq-mean-token-sum-norm", kl_coef=0.1),
    dict(aggregation="token-mean", ppo_epochs=2, mini_batches=2),
    dict(aggregation="token-mean", policy_loss="simko", params={"K": 3}),
]
OPTIM_KEYS = {"ppo_epochs", "mini_batches"}


def _sections(case: dict, **optim) -> tuple[LossConfig, OptimConfig]:
    loss = LossConfig(**{k: v for k, v in case.items() if k not in OPTIM_KEYS})
    o = OptimConfig(grad_clip=1.0, **{k: v for k, v in case.items() if k in OPTIM_KEYS}, **optim)
    return loss, o


def _assert_same_update(a, b, *, atol=2e-6):
    (m1, met1), (m, met) = a, b
    for (name, p1), (_, p) in zip(m1.named_parameters(), m.named_parameters()):
        torch.testing.assert_close(p, p1, atol=atol, rtol=1e-5, msg=name)
    assert met["actor/grad_norm"] == pytest.approx(met1["actor/grad_norm"], rel=1e-4)
    assert met["actor/pg_loss"] == pytest.approx(met1["actor/pg_loss"], rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("share", [True, False], ids=["shared", "unshared"])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_update_is_micro_batch_invariant(case, share, tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    ref = None
    if case.get("kl_coef"):
        ref = torch.randn(batch.response_mask.shape) * 0.1 - 3.0
    results = []
    for mbs in (1, 3, 5, 12):  # 5: micro-batches split groups of 3
        loss, optim = _sections(case, micro_batch_size=mbs, share_prefix=share)
        results.append(_run(tiny_model, batch, loss, optim, ref=ref))
    for other in results[1:]:
        _assert_same_update(results[0], other)
    m1, met1 = results[0]
    moved = any(not torch.equal(p0, p1) for p0, p1 in zip(tiny_model.parameters(), m1.parameters()))
    assert moved
    expected_steps = case.get("ppo_epochs", 1) * case.get("mini_batches", 1)
    assert met1["update/optimizer_steps"] == expected_steps


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_prefix_sharing_gives_the_unshared_update(case, tiny_model, tiny_tokenizer, monkeypatch):
    import passk.rollout.logprobs as forward

    shared_rows = []
    real = forward._shared_hidden

    def counting(model, prompt_ids, *args):
        hidden = real(model, prompt_ids, *args)
        shared_rows.append(0 if hidden is None else len(prompt_ids))
        return hidden

    monkeypatch.setattr(forward, "_shared_hidden", counting)
    batch = _batch(len(tiny_tokenizer), seed=3)
    ref = torch.randn(batch.response_mask.shape) * 0.1 - 3.0 if case.get("kl_coef") else None
    runs = []
    for share in (False, True):
        loss, optim = _sections(case, micro_batch_size=4, share_prefix=share)
        runs.append(_run(tiny_model, batch, loss, optim, ref=ref))
        assert bool(shared_rows) == share  # the shared path ran, and only when asked
    _assert_same_update(runs[0], runs[1])
    assert sum(shared_rows) >= len(batch) * case.get("ppo_epochs", 1) // 2
    assert runs[0][1]["actor/entropy"] == pytest.approx(runs[1][1]["actor/entropy"], rel=1e-5)


def test_dph_term_moves_the_model_and_shares_prefixes(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    batch.advantages = torch.zeros(len(batch))  # only the DPH term moves the model
    ref = _batch(len(tiny_tokenizer), G=2, seed=5)
    ref.ref_logp = torch.where(ref.response_mask, torch.tensor(-2.0), 0.0)
    dph = DPHConfig(generator="forward_kl", coef=0.5)
    runs = []
    for share in (False, True):
        loss, optim = _sections({}, micro_batch_size=4, share_prefix=share)
        runs.append(_run(tiny_model, batch, loss, optim, dph_batch=ref, dph=dph))
    _assert_same_update(runs[0], runs[1])
    model, metrics = runs[1]
    assert metrics["dph/divergence"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(tiny_model.parameters(), model.parameters()))


def test_micro_batches_keep_groups_together_and_order_by_length(tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer), G=4, N=3)
    perm = torch.randperm(len(batch), generator=torch.Generator().manual_seed(1))
    batch = batch.rows(perm)  # groups scattered over the rows
    parts = micro_batch_rows(batch, 3)
    assert sorted(torch.cat(parts).tolist()) == list(range(len(batch)))
    assert [len(p) for p in parts] == [3, 3, 3, 3]
    for p in parts:
        assert len(set(batch.group[p].tolist())) == 1  # one group, one prefix pass
    prompt_len = batch.prompt_mask.sum(1)
    firsts = torch.stack([prompt_len[p[0]] for p in parts])
    assert bool((firsts[1:] >= firsts[:-1]).all())  # groups by prompt length
    for p in parts:
        lengths = batch.response_mask[p].sum(1)
        assert bool((lengths[1:] >= lengths[:-1]).all())


def test_non_finite_loss_skips_the_optimizer_step(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    batch.advantages[0] = float("nan")
    loss, optim = _sections({}, micro_batch_size=4)
    model, metrics = _run(tiny_model, batch, loss, optim)
    assert metrics["update/skipped_steps"] == 1 and metrics["update/optimizer_steps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(tiny_model.parameters(), model.parameters()))


@pytest.mark.parametrize("fails", [False, True], ids=["ok", "raises"])
def test_update_restores_the_models_mode(fails, tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    loss, optim = _sections({}, micro_batch_size=4)
    if fails:
        batch.correct = None
        loss = dataclasses.replace(loss, policy_loss="simko")  # needs correct: raises
    model = copy.deepcopy(tiny_model).eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    kwargs = dict(
        loss=loss,
        optim=optim,
        dph=DPHConfig(),
        temperature=1.0,
        autocast=None,
        generator=torch.Generator().manual_seed(0),
    )
    if fails:
        with pytest.raises(ValueError, match="correct"):
            policy_update(model, opt, sched, batch, **kwargs)
    else:
        policy_update(model, opt, sched, batch, **kwargs)
    assert not model.training
    assert not any(m.training for m in model.modules())


def test_kl_without_reference_log_probs_is_an_error(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    loss, optim = _sections({"kl_coef": 0.1}, micro_batch_size=4)
    with pytest.raises(ValueError, match="ref_logp"):
        _run(tiny_model, batch, loss, optim)


def test_policy_loss_params_are_validated(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    loss, optim = _sections({"params": {"eps_lo": 0.1}}, micro_batch_size=4)
    with pytest.raises(ValueError, match="eps_lo"):
        _run(tiny_model, batch, loss, optim)


@pytest.mark.parametrize("mini_batches", [1, 2])
def test_update_norm_is_the_weight_change(mini_batches, tiny_model, tiny_tokenizer):
    """``update/delta_norm`` is ||theta_after - theta_before|| of each optimizer step (one
    step: the whole change; two: the mean of the two steps' norms, each <= their sum)."""
    batch = _batch(len(tiny_tokenizer))
    loss, optim = _sections({}, micro_batch_size=4, mini_batches=mini_batches)
    model = copy.deepcopy(tiny_model)
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    gen = torch.Generator().manual_seed(7)
    kwargs = dict(loss=loss, optim=optim, dph=DPHConfig(), temperature=1.0, autocast=None)
    metrics = policy_update(model, opt, sched, batch, generator=gen, track_update=True, **kwargs)
    moved = sum(
        float((p.detach() - s).double().pow(2).sum()) for p, s in zip(model.parameters(), start)
    )
    norm = sum(float(p.detach().double().pow(2).sum()) for p in model.parameters())
    assert metrics["update/optimizer_steps"] == mini_batches
    if mini_batches == 1:
        assert metrics["update/delta_norm"] == pytest.approx(moved**0.5, rel=1e-9)
        assert metrics["update/delta_rel"] == pytest.approx((moved / norm) ** 0.5, rel=1e-9)
    else:
        assert moved**0.5 <= 2 * metrics["update/delta_norm"] + 1e-12
    assert metrics["update/delta_norm"] > 0
    # Adam's first step moves each weight with a gradient by ~lr: the norm is ~lr*sqrt(size)
    size = sum(p.numel() for p in model.parameters())
    assert metrics["update/delta_norm"] <= 1e-3 * size**0.5 * 1.01
    off = policy_update(model, opt, sched, batch, generator=gen, **kwargs)
    assert "update/delta_norm" not in off and "update/delta_rel" not in off
