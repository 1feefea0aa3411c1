"""One policy update does not depend on the micro-batch size; the top-k forward agrees with
the chunked log-prob path; metrics are token-weighted means."""

from __future__ import annotations

import copy

import pytest
import torch

from passk.train.update import (
    UpdateBatch,
    UpdateSettings,
    behaviour_pass,
    micro_batches,
    policy_forward,
    policy_update,
)


def _batch(vocab: int, B: int = 10, P: int = 6, T: int = 9, seed: int = 0) -> UpdateBatch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (B, P + T), generator=g)
    prompt_len = torch.randint(2, P + 1, (B,), generator=g)
    resp_len = torch.randint(1, T + 1, (B,), generator=g)
    attn = torch.zeros(B, P + T, dtype=torch.bool)
    rmask = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        attn[b, P - prompt_len[b] : P] = True
        attn[b, P : P + resp_len[b]] = True
        rmask[b, : resp_len[b]] = True
    ids[~attn] = 0
    return UpdateBatch(
        input_ids=ids,
        attention_mask=attn,
        response_mask=rmask,
        advantages=torch.randn(B, generator=g),
        correct=torch.rand(B, generator=g) > 0.5,
    )


def _run(model, batch, settings, *, ref=None):
    model = copy.deepcopy(model)
    # SGD: parameter changes are the (clipped) gradients themselves; Adam's first step is
    # ~lr * sign(g), which turns float rounding in near-zero gradients into lr-sized noise
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    b = copy.copy(batch)
    if settings.ppo_epochs > 1 or settings.mini_batches > 1:
        b.old_logp, b.old_topk_ids, b.old_topk_logp = behaviour_pass(
            model, b, settings, topk=settings.policy_loss == "simko"
        )
    if ref is not None:
        b.ref_logp = ref
    gen = torch.Generator().manual_seed(7)
    metrics = policy_update(model, opt, sched, b, settings, generator=gen)
    return model, metrics


CASES = [
    dict(aggregation="token-mean"),
    dict(aggregation="seq-mean-token-mean", entropy_coef=0.01),
    dict(aggregation="seq-mean-token-sum-norm", kl_coef=0.1),
    dict(aggregation="token-mean", ppo_epochs=2, mini_batches=2),
    dict(aggregation="token-mean", policy_loss="simko", policy_loss_params=(("K", 3),)),
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_update_is_micro_batch_invariant(case, tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    ref = None
    if case.get("kl_coef"):
        ref = torch.randn(batch.response_mask.shape) * 0.1 - 3.0
    results = []
    for mbs in (1, 3, 10):
        s = UpdateSettings(micro_batch_size=mbs, grad_clip=1.0, **case)
        results.append(_run(tiny_model, batch, s, ref=ref))
    (m1, met1), *others = results
    for m, met in others:
        for (name, p1), (_, p) in zip(m1.named_parameters(), m.named_parameters()):
            torch.testing.assert_close(p, p1, atol=2e-6, rtol=1e-5, msg=name)
        assert met["actor/grad_norm"] == pytest.approx(met1["actor/grad_norm"], rel=1e-4)
        assert met["actor/pg_loss"] == pytest.approx(met1["actor/pg_loss"], rel=1e-4, abs=1e-7)
    moved = any(not torch.equal(p0, p1) for p0, p1 in zip(tiny_model.parameters(), m1.parameters()))
    assert moved
    expected_steps = case.get("ppo_epochs", 1) * case.get("mini_batches", 1)
    assert met1["update/optimizer_steps"] == expected_steps


def test_topk_forward_matches_the_chunked_path(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer), seed=1)
    mb = batch.rows(torch.arange(len(batch)))
    plain = policy_forward(tiny_model, mb, 0.7)
    topk = policy_forward(tiny_model, mb, 0.7, topk=True)
    mask = mb.response_mask
    torch.testing.assert_close(topk["logp"][mask], plain["logp"][mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(topk["entropy"][mask], plain["entropy"][mask], atol=1e-4, rtol=1e-4)
    top1 = topk["topk_logp"][..., 0]
    assert bool((top1[mask] >= topk["logp"][mask] - 1e-6).all())  # top-1 is the most likely
    assert torch.equal(topk["sampled_is_top1"][mask], (topk["logp"] >= top1 - 1e-6)[mask])


def test_micro_batches_group_rows_by_length(tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer), B=9)
    parts = micro_batches(batch, 4)
    assert sorted(torch.cat(parts).tolist()) == list(range(9))
    assert [len(p) for p in parts] == [4, 4, 1]
    lengths = batch.attention_mask.sum(1)
    flat = lengths[torch.cat(parts)]
    assert bool((flat[1:] >= flat[:-1]).all())


def test_non_finite_loss_skips_the_optimizer_step(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    batch.advantages[0] = float("nan")
    model, metrics = _run(tiny_model, batch, UpdateSettings(micro_batch_size=4))
    assert metrics["update/skipped_steps"] == 1 and metrics["update/optimizer_steps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(tiny_model.parameters(), model.parameters()))
