"""The update with mini-batch-global token selections (Clip-Cov, KL-Cov, forking tokens): the
same gradients for any micro-batch size, no pre-pass when nothing needs one, the on-policy
KL-Cov warning."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

import passk.train.update as update
from passk.rollout.batch import Rollouts
from passk.train.config import DPHConfig, LossConfig, OptimConfig
from passk.train.update import behaviour_pass, needs_topk, policy_update


def _batch(vocab: int, G: int = 4, N: int = 3, seed: int = 0) -> Rollouts:
    """G prompts of different lengths x N ragged responses, random advantages."""
    g = torch.Generator().manual_seed(seed)
    prompts, responses, group = [], [], []
    for i in range(G):
        prompt = torch.randint(3, vocab, (1 + 2 * i,), generator=g).tolist()
        for _ in range(N):
            r_len = int(torch.randint(2, 10, (1,), generator=g))
            prompts.append(prompt)
            responses.append(torch.randint(3, vocab, (r_len,), generator=g).tolist())
            group.append(i)
    r = Rollouts.from_sequences(prompts, responses, group=group, n=N)
    r.advantages = torch.randn(len(r), generator=g)
    r.correct = r.advantages > 0
    return r


def _run(model, batch, loss: LossConfig, optim: OptimConfig, seed: int = 7):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)  # changes are the gradients themselves
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
    metrics = policy_update(
        model,
        opt,
        sched,
        b,
        loss=loss,
        optim=optim,
        dph=DPHConfig(),
        temperature=1.0,
        autocast=None,
        generator=torch.Generator().manual_seed(seed),
    )
    return model, metrics


CASES = {
    "clip_cov": dict(
        policy_loss="clip_cov",
        params={"clip_cov_ratio": 0.1, "clip_cov_lb": 0.5, "clip_cov_ub": 50.0},
    ),
    "kl_cov": dict(policy_loss="kl_cov", params={"kl_cov_ratio": 0.1, "ppo_kl_coef": 1.0}),
    "forking": dict(entropy_mask_top=0.2),
    "forking_gspo": dict(
        policy_loss="gspo", aggregation="seq-mean-token-mean", entropy_mask_top=0.3
    ),
    "forking_clip_cov": dict(
        policy_loss="clip_cov",
        params={"clip_cov_ratio": 0.1, "clip_cov_lb": 0.5, "clip_cov_ub": 50.0},
        entropy_mask_top=0.5,
        entropy_coef=0.01,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_micro_batch_size_does_not_change_the_update(case, tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    loss = LossConfig(**CASES[case])
    runs = []
    # kl_cov: |log r| has a full-size gradient sign(log r) at float noise, so its first pass
    # must see old_logp == logp exactly: two epochs over one mini-batch (the behaviour pass then
    # runs the very micro-batches of the update); the second epoch is off-policy
    layout = dict(ppo_epochs=2) if case == "kl_cov" else dict(mini_batches=2)
    for mbs, share in ((1, False), (5, True), (len(batch), True)):
        optim = OptimConfig(**layout, micro_batch_size=mbs, share_prefix=share)
        runs.append(_run(tiny_model, batch, loss, optim))
    (m1, met1) = runs[0]
    for m, met in runs[1:]:
        for (name, p1), (_, p) in zip(m1.named_parameters(), m.named_parameters()):
            torch.testing.assert_close(p, p1, atol=2e-6, rtol=1e-5, msg=name)
        assert met["actor/grad_norm"] == pytest.approx(met1["actor/grad_norm"], rel=1e-4)
        for key in ("actor/cov_selected_frac", "actor/entropy_mask_frac", "actor/kl_cov_penalty"):
            if key in met1:
                assert met[key] == pytest.approx(met1[key], rel=1e-5, abs=1e-9), key
    assert any(not torch.equal(a, b) for a, b in zip(tiny_model.parameters(), m1.parameters()))
    if "cov" in case:
        assert met1["actor/cov_selected_frac"] > 0
    if case == "kl_cov":  # off-policy in the second epoch: the penalty acts
        assert met1["actor/kl_cov_penalty"] > 0
    if "entropy_mask_top" in CASES[case]:
        rho = CASES[case]["entropy_mask_top"]
        assert met1["actor/entropy_mask_frac"] == pytest.approx(rho, abs=0.05)


def test_selection_is_not_per_micro_batch(tiny_model, tiny_tokenizer, monkeypatch):
    # each mini-batch's selection is made once, on all its rows, and sliced
    batch = _batch(len(tiny_tokenizer))
    calls = []
    real = update.mini_batch_selections

    def spy(model, mini, *args, **kwargs):
        needs, keep = real(model, mini, *args, **kwargs)
        calls.append((len(mini), keep))
        return needs, keep

    monkeypatch.setattr(update, "mini_batch_selections", spy)
    optim = OptimConfig(mini_batches=2, micro_batch_size=1)
    _, met = _run(tiny_model, batch, LossConfig(entropy_mask_top=0.25), optim)
    assert [n for n, _ in calls] == [6, 6]
    kept = sum(int(k.sum()) for _, k in calls)
    valid = int(batch.response_mask.sum())
    assert met["actor/entropy_mask_frac"] == pytest.approx(kept / valid, rel=1e-6)


def test_no_pre_pass_without_a_global_selection(tiny_model, tiny_tokenizer, monkeypatch):
    batch = _batch(len(tiny_tokenizer))
    calls = []
    monkeypatch.setattr(update, "forward_logprobs_batched", lambda *a, **k: calls.append(1) or {})
    for loss in (LossConfig(), LossConfig(policy_loss="gspo"), LossConfig(entropy_mask_top=0)):
        _, met = _run(tiny_model, batch, loss, OptimConfig(micro_batch_size=4))
        assert "actor/entropy_mask_frac" not in met and "actor/cov_selected_frac" not in met
    assert calls == []


def test_a_full_entropy_mask_is_no_mask(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer), seed=2)
    optim = OptimConfig(micro_batch_size=4)
    a, _ = _run(tiny_model, batch, LossConfig(), optim)
    b, met = _run(tiny_model, batch, LossConfig(entropy_mask_top=1.0), optim)
    assert met["actor/entropy_mask_frac"] == 1.0
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-7, rtol=0)


def test_the_clip_cov_draw_follows_the_update_seed(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer), seed=3)
    loss = LossConfig(**CASES["clip_cov"])
    optim = OptimConfig(micro_batch_size=4)
    a, _ = _run(tiny_model, batch, loss, optim, seed=11)
    b, _ = _run(tiny_model, batch, loss, optim, seed=11)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_kl_cov_on_policy_warns_once(tiny_model, tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(update, "_warned", set())
    batch = _batch(len(tiny_tokenizer), G=2)
    loss = LossConfig(policy_loss="kl_cov")
    with pytest.warns(UserWarning, match=r"identically 0 .*optim.mini_batches > 1"):
        _, met = _run(tiny_model, batch, loss, OptimConfig(micro_batch_size=3))
    assert met["actor/kl_cov_penalty"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(tiny_model, batch, loss, OptimConfig(micro_batch_size=3))  # once only
        _run(tiny_model, batch, loss, OptimConfig(mini_batches=2))  # off-policy: no warning
    assert math.isfinite(met["actor/grad_norm"])
