"""Log-prob recompute: micro-batch and chunk invariance, gradients, a naive reference."""

from __future__ import annotations

import torch

from passk.rollout.generate import SamplingParams, generate
from passk.rollout.logprobs import recompute_logprobs, response_logprobs


def _rollouts(model, tok):
    prompts = ["a", "a much longer prompt than the first one", "mid length"]
    return generate(model, tok, prompts, n=3, params=SamplingParams(max_new_tokens=20), seed=4)


def test_micro_batch_and_chunk_invariance(tiny_model_eos, tiny_tokenizer):
    r = _rollouts(tiny_model_eos, tiny_tokenizer)
    args = (tiny_model_eos, r.input_ids, r.attention_mask, r.response_mask)
    ref, ref_ent = recompute_logprobs(*args, micro_batch_size=len(r), with_entropy=True)
    for mb, chunk in [(1, 1024), (2, 7), (4, 1)]:
        lp, ent = recompute_logprobs(
            *args, micro_batch_size=mb, chunk_tokens=chunk, with_entropy=True
        )
        torch.testing.assert_close(lp, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ent, ref_ent, atol=1e-5, rtol=1e-5)


def test_matches_naive_full_logits(tiny_model_eos, tiny_tokenizer):
    r = _rollouts(tiny_model_eos, tiny_tokenizer)
    lp, _ = recompute_logprobs(tiny_model_eos, r.input_ids, r.attention_mask, r.response_mask)
    T = r.response_ids.shape[1]
    for b in range(len(r)):
        # one unpadded sequence at a time, full logits: the obvious computation
        ids = r.input_ids[b][r.attention_mask[b]].unsqueeze(0)
        with torch.no_grad():
            logits = tiny_model_eos(input_ids=ids).logits[0].float()
        L = int(r.lengths[b])
        logp = torch.log_softmax(logits[-L - 1 : -1], -1)
        expected = logp.gather(1, ids[0, -L:, None]).squeeze(1)
        torch.testing.assert_close(lp[b, :L], expected, atol=1e-4, rtol=1e-4)
        assert (lp[b, L:T] == 0).all()


def test_response_logprobs_has_gradients(tiny_model, tiny_tokenizer):
    r = _rollouts(tiny_model, tiny_tokenizer)
    tiny_model.zero_grad()
    lp, ent = response_logprobs(
        tiny_model,
        r.input_ids,
        r.attention_mask,
        r.response_mask,
        with_entropy=True,
        chunk_tokens=5,
    )
    loss = -(lp * r.response_mask).sum() / r.response_mask.sum() - 0.01 * ent.mean()
    loss.backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    tiny_model.zero_grad()
