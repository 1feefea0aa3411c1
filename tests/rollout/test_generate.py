"""Sampling loop: recorded log-probs, determinism, greedy/top-p, stop handling."""

from __future__ import annotations

import warnings

import pytest
import torch

from passk.rollout import kv_cache
from passk.rollout.generate import (
    AUTO_BATCH_CAP,
    SamplingParams,
    _sample_tokens,
    auto_batch_size,
    chat_prompt_ids,
    generate,
    kv_bytes_per_token,
)
from passk.rollout.logprobs import forward_logprobs_batched

PROMPTS = ["hi", "What is 7 * 8? Put the answer in a box.", "12 + 30 ="]


def _sample(model, tok, **kw):
    params = SamplingParams(
        temperature=kw.pop("temperature", 1.0),
        top_p=kw.pop("top_p", 1.0),
        max_new_tokens=kw.pop("max_new_tokens", 24),
    )
    return generate(model, tok, PROMPTS, n=kw.pop("n", 4), params=params, **kw)


def _recompute(model, r, *, temperature=1.0, with_entropy=False):
    """The trainer's own forward pass over a sampled batch: ``(logp, entropy | None)``."""
    need = frozenset({"logp", "entropy"} if with_entropy else {"logp"})
    out = forward_logprobs_batched(model, r, micro_batch_size=8, temperature=temperature, need=need)
    return out["logp"], out.get("entropy")


def test_recomputed_logprobs_match_sampling_at_temperature_one(tiny_model_eos, tiny_tokenizer):
    r = _sample(tiny_model_eos, tiny_tokenizer, seed=5, batch_size=5, with_entropy=True)
    assert r.lengths.min() < r.lengths.max(), "want ragged lengths to exercise padding"
    assert (~r.truncated).any() and r.truncated.any()
    lp, ent = _recompute(tiny_model_eos, r, with_entropy=True)
    mask = r.response_mask
    torch.testing.assert_close(lp[mask], r.logprobs[mask], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ent[mask], r.entropy[mask], atol=1e-4, rtol=1e-4)
    assert (lp[~mask] == 0).all() and (r.logprobs[~mask] == 0).all()


def test_temperature_scaled_recompute_matches_sampling(tiny_model, tiny_tokenizer):
    r = _sample(tiny_model, tiny_tokenizer, seed=1, temperature=0.7, n=2)
    lp, _ = _recompute(tiny_model, r, temperature=0.7)
    torch.testing.assert_close(lp, r.logprobs, atol=1e-4, rtol=1e-4)


def test_layout_and_stop_tokens(tiny_model_eos, tiny_tokenizer):
    r = _sample(tiny_model_eos, tiny_tokenizer, seed=0, max_new_tokens=16)
    B = len(PROMPTS) * 4
    assert len(r) == B and r.response_ids.shape[0] == B
    assert r.group.tolist() == [i // 4 for i in range(B)]
    for b in range(B):
        L = int(r.lengths[b])
        assert r.response_mask[b].sum() == L
        if r.truncated[b]:
            assert L == 16 and int(r.response_ids[b, L - 1]) != 2
        else:
            assert int(r.response_ids[b, L - 1]) == 2  # EOS kept as the last response token
    # the prompt is left-padded and ends with the generation prompt
    ids = chat_prompt_ids(tiny_tokenizer, PROMPTS[0])
    assert r.prompt_ids[0, -len(ids) :].tolist() == ids
    assert r.prompt_mask[0].sum() == len(ids)


def test_deterministic_under_seed_and_batch_size(tiny_model_eos, tiny_tokenizer):
    a = _sample(tiny_model_eos, tiny_tokenizer, seed=11, batch_size=4)
    b = _sample(tiny_model_eos, tiny_tokenizer, seed=11, batch_size=4)
    c = _sample(tiny_model_eos, tiny_tokenizer, seed=11, batch_size=12)
    d = _sample(tiny_model_eos, tiny_tokenizer, seed=12, batch_size=4)
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    assert torch.equal(a.logprobs, b.logprobs)
    assert a.texts == c.texts  # per-sequence seeds: batch composition does not matter
    assert a.texts != d.texts


def test_samples_of_a_problem_do_not_depend_on_other_prompts(tiny_model, tiny_tokenizer):
    p = SamplingParams(max_new_tokens=12)
    alone = generate(tiny_model, tiny_tokenizer, [PROMPTS[1]], n=3, params=p, keys=["q"])
    mixed = generate(
        tiny_model, tiny_tokenizer, [PROMPTS[0], PROMPTS[1]], n=3, params=p, keys=["x", "q"]
    )
    assert alone.texts == mixed.texts[3:]


def test_greedy_and_tiny_top_p_agree(tiny_model, tiny_tokenizer):
    greedy = _sample(tiny_model, tiny_tokenizer, temperature=0.0, n=2)
    assert (greedy.logprobs == 0).all()
    assert greedy.texts[0] == greedy.texts[1]  # no randomness left
    nucleus1 = _sample(tiny_model, tiny_tokenizer, top_p=1e-6, n=2, seed=5)
    assert torch.equal(nucleus1.response_ids, greedy.response_ids)
    assert nucleus1.logprobs.abs().max() < 1e-6  # nucleus of one token


def test_top_p_logprobs_are_renormalised(tiny_model, tiny_tokenizer):
    r = _sample(tiny_model, tiny_tokenizer, top_p=0.5, seed=2)
    lp, _ = _recompute(tiny_model, r)
    m = r.response_mask
    assert (r.logprobs[m] >= lp[m] - 1e-5).all()
    assert (r.logprobs[m] > lp[m] + 1e-3).any()


def test_sample_tokens_follows_distribution():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7]])).repeat(20000, 1)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    tokens, lp, _ = _sample_tokens(logits, u, SamplingParams(), False)
    freq = torch.bincount(tokens, minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.015, rtol=0)
    torch.testing.assert_close(lp, logits[0, tokens], atol=1e-6, rtol=0)
    tokens, lp, _ = _sample_tokens(logits, u, SamplingParams(top_p=0.8), False)
    freq = torch.bincount(tokens, minlength=3).float() / 20000
    # nucleus {0.7, 0.2}: renormalised to 7/9 and 2/9, token 0 never drawn
    torch.testing.assert_close(freq, torch.tensor([0.0, 2 / 9, 7 / 9]), atol=0.015, rtol=0)
    assert torch.allclose(lp[tokens == 2], torch.log(torch.tensor(7 / 9)), atol=1e-5)


def test_sampling_params_validation():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)


def test_continuous_batching_refills_and_matches_static(
    monkeypatch, tiny_model_eos, tiny_tokenizer
):
    merges = []
    real_admit = kv_cache.Slots.admit

    def spy(self, new, live_mask, new_mask):
        merges.append(new_mask.shape)
        return real_admit(self, new, live_mask, new_mask)

    monkeypatch.setattr(kv_cache.Slots, "admit", spy)
    params = SamplingParams(max_new_tokens=24)
    stream = generate(tiny_model_eos, tiny_tokenizer, PROMPTS, n=4, params=params, batch_size=3)
    assert merges, "finished rows should have been refilled into the slots"
    static = generate(tiny_model_eos, tiny_tokenizer, PROMPTS, n=4, params=params, batch_size=12)
    assert stream.texts == static.texts
    assert stream.stats["rollout/static_fallback"] == 0.0
    torch.testing.assert_close(stream.logprobs, static.logprobs, atol=1e-4, rtol=1e-4)
    lp, _ = _recompute(tiny_model_eos, stream)
    torch.testing.assert_close(lp, stream.logprobs, atol=1e-4, rtol=1e-4)


def test_in_place_cache_and_concatenating_cache_sample_the_same(
    monkeypatch, tiny_model_eos, tiny_tokenizer
):
    # the same long stream through the slots and through transformers' concatenating
    # cache (rows gathered, caches merged: the benchmark's baseline); both refill
    from passk.rollout.generate import sample_stream, stop_token_ids

    calls = {"merge": 0, "admit": 0}
    real_merge, real_admit = kv_cache.merge, kv_cache.Slots.admit

    def merge(*a):
        calls["merge"] += 1
        return real_merge(*a)

    def admit(self, *a):
        calls["admit"] += 1
        return real_admit(self, *a)

    monkeypatch.setattr(kv_cache, "merge", merge)
    monkeypatch.setattr(kv_cache.Slots, "admit", admit)
    ids = [chat_prompt_ids(tiny_tokenizer, p) for p in PROMPTS] * 16
    kw = dict(
        seeds=list(range(len(ids))),
        params=SamplingParams(max_new_tokens=24),
        stop_ids=stop_token_ids(tiny_model_eos, tiny_tokenizer),
        pad_id=tiny_tokenizer.eos_token_id,
        batch_size=5,
    )
    slots = sample_stream(tiny_model_eos, ids, **kw)
    assert calls == {"merge": 0, "admit": calls["admit"]} and calls["admit"] > 0
    concat = sample_stream(tiny_model_eos, ids, **kw, in_place=False)
    assert calls["merge"] > 0
    assert torch.equal(slots["tokens"], concat["tokens"])
    assert torch.equal(slots["lengths"], concat["lengths"])
    torch.testing.assert_close(slots["logprobs"], concat["logprobs"], atol=1e-5, rtol=1e-5)


def _widths(model):
    """Attention-mask widths of every forward pass of ``model``, recorded by a hook."""
    widths: list[int] = []

    def hook(module, args, kwargs):
        widths.append(int(kwargs["attention_mask"].shape[1]))

    return widths, model.register_forward_pre_hook(hook, with_kwargs=True)


def test_cache_width_stays_bounded_over_a_long_stream(tiny_model_eos, tiny_tokenizer):
    # 96 sequences through 4 slots: merges left-pad new rows to the running width, so
    # without cutting dead columns the width grows with the length of the whole stream
    params = SamplingParams(max_new_tokens=24)
    widths, handle = _widths(tiny_model_eos)
    try:
        stream = generate(
            tiny_model_eos, tiny_tokenizer, PROMPTS, n=32, params=params, seed=4, batch_size=4
        )
    finally:
        handle.remove()
    longest_prompt = max(len(chat_prompt_ids(tiny_tokenizer, p)) for p in PROMPTS)
    assert max(widths) <= longest_prompt + params.max_new_tokens
    assert stream.stats["rollout/max_width"] <= longest_prompt + params.max_new_tokens
    static = generate(
        tiny_model_eos, tiny_tokenizer, PROMPTS, n=32, params=params, seed=4, batch_size=96
    )
    assert stream.texts == static.texts
    torch.testing.assert_close(stream.logprobs, static.logprobs, atol=1e-4, rtol=1e-4)


def test_unmergeable_cache_falls_back_to_static_batches(
    monkeypatch, tiny_model_eos, tiny_tokenizer
):
    from transformers.cache_utils import DynamicLayer

    class OtherLayer(DynamicLayer):  # any layer type but the plain one, e.g. sliding window
        pass

    real_new_cache = kv_cache.new_cache

    def odd_cache(model):
        cache = real_new_cache(model)
        cache.layers = [OtherLayer() for _ in cache.layers]
        return cache

    monkeypatch.setattr(kv_cache, "new_cache", odd_cache)
    monkeypatch.setattr(kv_cache, "_warned", set())
    merges = []
    monkeypatch.setattr(kv_cache, "merge", lambda *a: merges.append(1))
    params = SamplingParams(max_new_tokens=24)
    with pytest.warns(RuntimeWarning, match="static batches") as record:
        fallback = generate(
            tiny_model_eos, tiny_tokenizer, PROMPTS, n=4, params=params, batch_size=3
        )
        generate(tiny_model_eos, tiny_tokenizer, PROMPTS, n=4, params=params, batch_size=3)
    assert len([w for w in record if "static batches" in str(w.message)]) == 1  # once
    assert not merges
    assert fallback.stats["rollout/static_fallback"] == 1.0
    monkeypatch.undo()
    static = generate(tiny_model_eos, tiny_tokenizer, PROMPTS, n=4, params=params, batch_size=12)
    assert fallback.texts == static.texts
    torch.testing.assert_close(fallback.logprobs, static.logprobs, atol=1e-4, rtol=1e-4)
    assert static.stats["rollout/static_fallback"] == 0.0


def test_generate_emits_no_deprecation_warning(tiny_model_eos, tiny_tokenizer):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate(
            tiny_model_eos,
            tiny_tokenizer,
            PROMPTS,
            n=4,
            batch_size=3,
            params=SamplingParams(max_new_tokens=24),
        )
    assert not [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]


def test_samples_in_eval_mode_and_restores_the_mode(tiny_model, tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**(tiny_model.config.to_dict() | {"attention_dropout": 0.5}))
    model = LlamaForCausalLM(config)
    model.load_state_dict(tiny_model.state_dict())
    params = SamplingParams(max_new_tokens=16)
    model.eval()
    reference = generate(model, tiny_tokenizer, PROMPTS, n=2, params=params, seed=1)
    model.train()
    model.model.layers[0].eval()  # a submodule's own mode is restored too
    in_train = generate(model, tiny_tokenizer, PROMPTS, n=2, params=params, seed=1)
    assert model.training and model.model.layers[1].training
    assert not model.model.layers[0].training
    assert in_train.texts == reference.texts
    torch.testing.assert_close(in_train.logprobs, reference.logprobs, atol=1e-5, rtol=1e-5)


def test_auto_batch_size(tiny_model, tiny_tokenizer):
    per_token = kv_bytes_per_token(tiny_model)
    assert per_token == 2 * 2 * 2 * 8 * 4  # k and v, 2 layers, 2 kv heads, head dim 8, fp32
    assert auto_batch_size(tiny_model, 10_000, 128, memory_bytes=2**40) == AUTO_BATCH_CAP
    assert auto_batch_size(tiny_model, 7, 128, memory_bytes=2**40) == 7
    assert auto_batch_size(tiny_model, 10_000, 128, memory_bytes=1) == 1
    small = auto_batch_size(tiny_model, 10_000, 128, memory_bytes=2**22)
    large = auto_batch_size(tiny_model, 10_000, 1024, memory_bytes=2**22)
    assert 1 < large < small < AUTO_BATCH_CAP  # longer rows, fewer of them
    assert 1 <= auto_batch_size(tiny_model, 10_000, 128) <= AUTO_BATCH_CAP  # real memory
    with pytest.raises(ValueError, match="max_len"):
        auto_batch_size(tiny_model, 4, 0)
    r = generate(
        tiny_model,
        tiny_tokenizer,
        PROMPTS,
        n=2,
        batch_size="auto",
        params=SamplingParams(max_new_tokens=8),
    )
    assert len(r) == 6


@pytest.mark.parametrize("bad", [0, -3, "big", 2.5])
def test_generate_rejects_bad_batch_size(tiny_model, tiny_tokenizer, bad):
    with pytest.raises(ValueError, match=f"batch_size.*{bad!r}"):
        generate(tiny_model, tiny_tokenizer, PROMPTS, batch_size=bad)


def test_lora_model_samples_in_eval_mode_without_deprecation_warnings(tiny_model, tiny_tokenizer):
    peft = pytest.importorskip("peft")
    import copy

    base = copy.deepcopy(tiny_model)
    config = peft.LoraConfig(  # random B (not zeros), so dropout would change the samples
        r=4, lora_alpha=8, lora_dropout=0.5, target_modules=["q_proj"], init_lora_weights=False
    )
    model = peft.get_peft_model(base, config)
    params = SamplingParams(max_new_tokens=12)
    model.eval()
    reference = generate(model, tiny_tokenizer, PROMPTS, n=2, params=params, batch_size=3)
    model.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        in_train = generate(model, tiny_tokenizer, PROMPTS, n=2, params=params, batch_size=3)
    assert not [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert model.training
    assert in_train.texts == reference.texts
