"""The one forward pass: equals a naive full-logits computation (values and gradients, with
and without logit softcapping), chunk sizes agree, prefix sharing changes nothing."""

from __future__ import annotations

import pytest
import torch

from passk.rollout.batch import Rollouts
from passk.rollout.generate import SamplingParams, generate
from passk.rollout.logprobs import forward_logprobs, forward_logprobs_batched

ALL = frozenset({"logp", "entropy", "topk_logp", "topk_ids", "sampled_is_top1"})


def _softcap_model(vocab: int):
    """A tiny Gemma 2: final_logit_softcapping small enough to change every logit."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(3)
    cfg = Gemma2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        final_logit_softcapping=2.0,
        sliding_window=64,
        pad_token_id=0,
        attn_implementation="eager",
    )
    model = Gemma2ForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)  # logits of several units: the cap bends them
    return model.eval()


def _grouped_batch(vocab: int, seed: int = 0) -> Rollouts:
    """Three prompts (lengths 1, 4, 7: left padding) x 3 responses of ragged lengths."""
    g = torch.Generator().manual_seed(seed)
    prompts, responses, group = [], [], []
    for i, p_len in enumerate((4, 1, 7)):
        prompt = torch.randint(3, vocab, (p_len,), generator=g).tolist()
        for _ in range(3):
            r_len = int(torch.randint(1, 9, (1,), generator=g))
            prompts.append(prompt)
            responses.append(torch.randint(3, vocab, (r_len,), generator=g).tolist())
            group.append(i)
    return Rollouts.from_sequences(prompts, responses, group=group, n=3)


def _naive(model, batch: Rollouts, temperature: float, K: int = 3) -> dict[str, list]:
    """One unpadded sequence at a time through ``model(...).logits`` (softcap included)."""
    out: dict[str, list] = {k: [] for k in ALL}
    for b in range(len(batch)):
        ids = batch.input_ids[b][batch.attention_mask[b]].unsqueeze(0)
        L = int(batch.lengths[b])
        logits = model(input_ids=ids).logits[0, -L - 1 : -1].float() / temperature  # [L, V]
        logsm = torch.log_softmax(logits, -1)
        y = ids[0, -L:]
        out["logp"].append(logsm.gather(1, y[:, None]).squeeze(1))
        out["entropy"].append(-(logsm.exp() * logsm).sum(-1))
        top = logsm.topk(K, -1)
        out["topk_logp"].append(top.values)
        out["topk_ids"].append(top.indices)
        out["sampled_is_top1"].append(top.indices[:, 0] == y)
    return out


@pytest.mark.parametrize("softcap", [False, True], ids=["llama", "gemma2-softcap"])
@pytest.mark.parametrize("share", [False, True], ids=["full", "shared"])
def test_matches_naive_full_logits_values_and_gradients(softcap, share, tiny_model, tiny_tokenizer):
    vocab = len(tiny_tokenizer)
    model = _softcap_model(vocab) if softcap else tiny_model
    batch = _grouped_batch(vocab)
    temperature = 0.7
    weights = torch.randn(len(batch), batch.response_mask.shape[1], 3)

    def loss_of(out_logp, out_ent, out_topk):
        return (
            (out_logp * weights[..., 0]).sum()
            + (out_ent * weights[..., 1]).sum()
            + (out_topk * weights).sum()
        )

    model.zero_grad()
    got = forward_logprobs(
        model, batch, temperature=temperature, need=ALL, chunk_size=5, share_prefix=share
    )
    mask = batch.response_mask
    loss_of(got["logp"], got["entropy"], got["topk_logp"]).backward()
    got_grads = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    ref = _naive(model, batch, temperature)
    total = 0.0
    for b in range(len(batch)):
        L = int(batch.lengths[b])
        w = weights[b, :L]
        total = total + (ref["logp"][b] * w[:, 0]).sum() + (ref["entropy"][b] * w[:, 1]).sum()
        total = total + (ref["topk_logp"][b] * w).sum()
        for name in ALL:
            torch.testing.assert_close(
                got[name][b, :L], ref[name][b].to(got[name].dtype), atol=2e-5, rtol=1e-5
            )
            assert not got[name][b, L:].any()  # 0 at padding
    total.backward()
    for p, g in zip(model.parameters(), got_grads):
        scale = float(p.grad.abs().max()) + 1e-6  # rounding grows with the sums of big terms
        torch.testing.assert_close(g, p.grad, atol=1e-5 * scale, rtol=1e-4)
    assert mask.sum() > 0 and any(g.abs().sum() > 0 for g in got_grads)
    model.zero_grad()


def test_chunk_sizes_agree_and_given_topk_ids_are_gathered(tiny_model, tiny_tokenizer):
    batch = _grouped_batch(len(tiny_tokenizer), seed=2)
    with torch.no_grad():
        runs = [forward_logprobs(tiny_model, batch, need=ALL, chunk_size=c) for c in (1, 7, 512)]
        ids = runs[0]["topk_ids"].flip(-1)  # gather fixed tokens (reversed order)
        fixed = forward_logprobs(tiny_model, batch, need=ALL, topk_ids=ids, chunk_size=3)
    for other in runs[1:]:
        for name in ALL:
            torch.testing.assert_close(other[name], runs[0][name], atol=1e-5, rtol=1e-5)
    mask = batch.response_mask
    assert torch.equal(fixed["topk_ids"][mask], ids[mask])
    torch.testing.assert_close(fixed["topk_logp"], runs[0]["topk_logp"].flip(-1))


def test_prefix_sharing_on_a_real_sampled_batch(tiny_model_eos, tiny_tokenizer):
    prompts = ["a", "a much longer prompt than the first one", "mid length"]
    r = generate(
        tiny_model_eos,
        tiny_tokenizer,
        prompts,
        n=3,
        params=SamplingParams(max_new_tokens=20),
        seed=4,
    )
    need = frozenset({"logp", "entropy"})
    with torch.no_grad():
        full = forward_logprobs(tiny_model_eos, r, need=need)
        shared = forward_logprobs(tiny_model_eos, r, need=need, share_prefix=True)
    for name in need:
        torch.testing.assert_close(shared[name], full[name], atol=1e-5, rtol=1e-5)
    # the sampler's own log-probs (temperature 1, top_p 1) are the model's
    mask = r.response_mask
    torch.testing.assert_close(full["logp"][mask], r.logprobs[mask], atol=1e-4, rtol=1e-4)


def test_batched_forward_is_micro_batch_and_chunk_invariant(tiny_model_eos, tiny_tokenizer):
    prompts = ["a", "a much longer prompt than the first one", "mid length"]
    r = generate(
        tiny_model_eos,
        tiny_tokenizer,
        prompts,
        n=3,
        params=SamplingParams(max_new_tokens=20),
        seed=4,
    )
    need = frozenset({"logp", "entropy"})
    ref = forward_logprobs_batched(tiny_model_eos, r, micro_batch_size=len(r), need=need)
    for mb, chunk in [(1, 1024), (2, 7), (4, 1)]:
        out = forward_logprobs_batched(
            tiny_model_eos, r, micro_batch_size=mb, chunk_size=chunk, need=need
        )
        torch.testing.assert_close(out["logp"], ref["logp"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["entropy"], ref["entropy"], atol=1e-5, rtol=1e-5)


def test_unknown_output_is_an_error(tiny_model, tiny_tokenizer):
    batch = _grouped_batch(len(tiny_tokenizer))
    with pytest.raises(ValueError, match="unknown outputs"):
        forward_logprobs(tiny_model, batch, need=frozenset({"logits"}))
