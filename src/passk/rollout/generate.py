"""Batched sampling of N responses per prompt with a KV cache.

Our own loop instead of ``model.generate`` so that we control, and record, the exact
distribution each token is drawn from, and so that finished sequences leave the batch
(their rows are dropped from the KV cache) instead of being padded to the longest one.

**The recorded log-probabilities.** Token ``y_t`` is drawn from the *sampling
distribution*: ``softmax(logits / temperature)``, restricted to the top-p nucleus (the
smallest set of most likely tokens whose probability reaches ``top_p``; the most likely
token is always in it) and renormalised. ``Rollouts.logprobs[b, t]`` is
``log`` of that renormalised probability of the token that was drawn. With
``temperature == 1`` and ``top_p == 1`` it is the model's own log-probability, so it
equals :func:`passk.rollout.logprobs.recompute_logprobs` up to numerics; with
``top_p < 1`` it is larger (the nucleus mass was renormalised to 1). ``temperature == 0``
means greedy decoding; the distribution is then a point mass and the log-prob is 0.
``Rollouts.entropy`` (when asked for) is the entropy of ``softmax(logits / temperature)``
*before* the top-p cut (at temperature 1 when greedy), i.e. the policy entropy that
training logs report.

**Determinism.** Every sequence draws its uniforms from its own ``torch.Generator``
seeded by :func:`passk.seeds.derive_seed` (run seed, prompt key, sample index), and tokens are
picked by inverse-CDF sampling with those uniforms. A sequence's randomness therefore
does not depend on the batch it lands in; results are bit-identical for the same seed
and batch size, and agree across batch sizes up to floating-point differences of the
padded forward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from passk.rollout.batch import Rollouts
from passk.seeds import derive_seed


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: temperature (0 = greedy), nucleus top-p, and the response budget."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def chat_prompt_ids(tokenizer: Any, prompt: str, system_prompt: str | None = None) -> list[int]:
    """Token ids of ``prompt`` as a user turn in the tokenizer's chat template.

    Falls back to the raw prompt when the tokenizer has no chat template.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = prompt
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids from the tokenizer and the model's generation config, deduplicated."""
    ids: list[int] = []
    candidates: list[Any] = [tokenizer.eos_token_id]
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        candidates.append(gen.eos_token_id)
    for c in candidates:
        for i in c if isinstance(c, (list, tuple)) else [c]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    if not ids:
        raise ValueError("the tokenizer defines no eos_token_id; cannot tell when to stop")
    return ids


def _sample_tokens(
    logits: Tensor, uniforms: Tensor, params: SamplingParams, with_entropy: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Draw one token per row by inverse-CDF sampling.

    logits: [B, V]; uniforms: [B] in [0, 1). Returns tokens [B] long, their log-probs
    under the sampling distribution [B] float32, and entropies [B] (or None).
    """
    logits = logits.float()
    greedy = params.temperature == 0
    logp = torch.log_softmax(logits if greedy else logits / params.temperature, dim=-1)  # [B, V]
    entropy = -(logp.exp() * logp).sum(-1) if with_entropy else None
    if greedy:
        tokens = logp.argmax(-1)
        return tokens, torch.zeros_like(tokens, dtype=torch.float32), entropy
    if params.top_p < 1.0:
        sorted_logp, order = logp.sort(dim=-1, descending=True)  # [B, V]
        probs = sorted_logp.exp()
        # keep a token while the mass before it is below top_p: the top token always stays
        keep = (probs.cumsum(-1) - probs) < params.top_p
        probs = probs * keep
        cdf = probs.cumsum(-1)  # [B, V]
        total = cdf[:, -1:]
        idx = torch.searchsorted(cdf, uniforms.unsqueeze(1) * total, right=True)
        idx = torch.minimum(idx, keep.sum(-1, keepdim=True) - 1)  # float round-off at the top
        tokens = order.gather(1, idx).squeeze(1)
        logprob = sorted_logp.gather(1, idx).squeeze(1) - total.squeeze(1).log()
        return tokens, logprob, entropy
    probs = logp.exp()
    cdf = probs.cumsum(-1)
    idx = torch.searchsorted(cdf, uniforms.unsqueeze(1) * cdf[:, -1:], right=True)
    idx = idx.clamp(max=logits.shape[-1] - 1)
    # round-off can land on a zero-probability tail token: take the argmax instead
    zero = probs.gather(1, idx) == 0
    idx = torch.where(zero, logp.argmax(-1, keepdim=True), idx)
    tokens = idx.squeeze(1)
    return tokens, logp.gather(1, idx).squeeze(1), entropy


def _prefill(
    model: Any, prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[Any, Tensor, Tensor, Tensor]:
    """Left-padded prompt forward, each distinct prompt once, cache rows repeated per prompt.

    Returns (cache [B, ...], last-position logits [B, V], attention mask [B, W] long,
    next position ids [B]).
    """
    unique: dict[tuple[int, ...], int] = {}
    row_to_unique = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
    width = max(len(p) for p in unique)
    ids = torch.full((len(unique), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(unique), width), dtype=torch.long)
    for i, p in enumerate(unique):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [U, W]
    kwargs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    try:  # logits for the last position only: the 49k-wide prompt logits are wasted work
        out = model(**kwargs, use_cache=True, logits_to_keep=1)
    except TypeError:  # architectures without logits_to_keep
        out = model(**kwargs, use_cache=True)
    select = torch.tensor(row_to_unique, device=device)
    cache = out.past_key_values
    cache.batch_select_indices(select)  # [U, ...] -> [B, ...]
    return cache, out.logits[:, -1][select], mask[select], positions[select, -1] + 1


def _kv_layers(cache: Any) -> list[Any] | None:
    """The per-layer K/V holders of a plain dynamic cache, or None if it is anything else
    (sliding-window, quantised, legacy tuples): those are not merged, only filled once."""
    layers = getattr(cache, "layers", None)
    if not layers:
        return None
    for layer in layers:
        if type(layer).__name__ != "DynamicLayer" or not hasattr(layer, "keys"):
            return None
    return list(layers)


def _merge_caches(a: Any, attn_a: Tensor, b: Any, attn_b: Tensor) -> tuple[Any, Tensor]:
    """Stack cache ``b``'s rows under ``a``'s, left-padding the shorter one with masked zeros.

    Padded positions have attention mask 0, so their (zero) keys and values are never
    attended to; positions ids are per row, so padding does not shift RoPE.
    """
    la, lb = _kv_layers(a), _kv_layers(b)
    assert la is not None and lb is not None
    La, Lb = attn_a.shape[1], attn_b.shape[1]
    L = max(La, Lb)

    def pad(x: Tensor, by: int) -> Tensor:  # x: [B, H, S, D] -> [B, H, S + by, D]
        return x if by == 0 else torch.cat([x.new_zeros(*x.shape[:2], by, x.shape[3]), x], dim=2)

    for x, y in zip(la, lb):
        x.keys = torch.cat([pad(x.keys, L - La), pad(y.keys, L - Lb)], dim=0)
        x.values = torch.cat([pad(x.values, L - La), pad(y.values, L - Lb)], dim=0)
    attn = torch.cat(
        [
            torch.cat([attn_a.new_zeros(attn_a.shape[0], L - La), attn_a], dim=1),
            torch.cat([attn_b.new_zeros(attn_b.shape[0], L - Lb), attn_b], dim=1),
        ],
        dim=0,
    )
    return a, attn


@torch.no_grad()
def sample_stream(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    params: SamplingParams,
    *,
    stop_ids: Sequence[int],
    pad_id: int,
    batch_size: int = 16,
    with_entropy: bool = False,
    on_done: Callable[[int, dict[str, Tensor]], None] | None = None,
) -> dict[str, Tensor]:
    """Sample one response per (prompt ids, seed), at most ``batch_size`` rows at a time.

    Continuous batching: rows leave the KV cache as soon as they stop, and waiting
    sequences are pre-filled and join the running batch once a quarter of the slots are
    free, so short answers do not wait for the longest one. (With a cache type that
    cannot be merged, new sequences join only when the batch has emptied.) Identical
    prompts joining together are pre-filled once. ``on_done(i, out)`` is called when
    sequence ``i`` has finished; row ``i`` of the tensors in ``out`` (the dict that is
    finally returned) is then final.

    Returns CPU tensors ``tokens``, ``logprobs`` (and ``entropy``) ``[N, T]`` with
    T = max_new_tokens, ``lengths`` ``[N]`` and ``truncated`` ``[N]``.
    """
    N, T = len(prompts), params.max_new_tokens
    assert len(seeds) == N and batch_size >= 1
    device = next(model.parameters()).device
    stop = torch.tensor(list(stop_ids), device=device)
    tokens = torch.full((N, T), pad_id, dtype=torch.long)
    logprobs = torch.zeros((N, T), dtype=torch.float32)
    entropy = torch.zeros((N, T), dtype=torch.float32) if with_entropy else None
    lengths = torch.zeros(N, dtype=torch.long)
    truncated = torch.zeros(N, dtype=torch.bool)
    uniforms = torch.empty((N, T), dtype=torch.float32)
    result = {"tokens": tokens, "logprobs": logprobs, "lengths": lengths, "truncated": truncated}
    if entropy is not None:
        result["entropy"] = entropy

    pending = 0  # sequences [pending, N) have not started
    rows = torch.zeros(0, dtype=torch.long)  # [A] sequence index of each cache row
    cache: Any = None
    logits = attn = next_pos = None  # [A, V], [A, L], [A]
    refill_at = max(1, batch_size // 4)  # free slots that trigger a refill

    def admit(count: int) -> tuple[Any, Tensor, Tensor, Tensor, Tensor]:
        nonlocal pending
        new = torch.arange(pending, pending + count)
        for i in new.tolist():
            uniforms[i] = torch.rand(T, generator=torch.Generator().manual_seed(int(seeds[i])))
        pending += count
        c, lg, am, npos = _prefill(model, [prompts[i] for i in new.tolist()], pad_id, device)
        return c, lg, am, npos, new

    while pending < N or len(rows):
        free = batch_size - len(rows)
        if pending < N and (not len(rows) or (free >= refill_at and _kv_layers(cache))):
            c, lg, am, npos, new = admit(min(free, N - pending))
            if len(rows):
                cache, attn = _merge_caches(cache, attn, c, am)
                logits = torch.cat([logits, lg])
                next_pos = torch.cat([next_pos, npos])
                rows = torch.cat([rows, new])
            else:
                cache, logits, attn, next_pos, rows = c, lg, am, npos, new
        t = lengths[rows]  # [A] tokens generated so far per row
        u = uniforms[rows, t].to(device)
        tok, lp, ent = _sample_tokens(logits, u, params, with_entropy)
        tokens[rows, t] = tok.cpu()
        logprobs[rows, t] = lp.cpu()
        if entropy is not None and ent is not None:
            entropy[rows, t] = ent.cpu()
        lengths[rows] = t + 1
        stopped = torch.isin(tok, stop).cpu()
        done = stopped | (t + 1 >= T)
        truncated[rows[done & ~stopped]] = True
        if done.any():
            if on_done is not None:
                for i in rows[done].tolist():
                    on_done(i, result)
            keep = ~done
            if not keep.any():
                rows = rows[keep]
                cache = None
                continue
            keep_dev = keep.to(device)
            rows = rows[keep]
            cache.batch_select_indices(keep_dev.nonzero().squeeze(1))
            attn, next_pos, tok = attn[keep_dev], next_pos[keep_dev], tok[keep_dev]
        attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], dim=1)
        out = model(
            input_ids=tok.unsqueeze(1),
            attention_mask=attn,
            position_ids=next_pos.unsqueeze(1),
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values
        logits = out.logits[:, -1]
        next_pos = next_pos + 1
    return result


def sample_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    params: SamplingParams,
    *,
    stop_ids: Sequence[int],
    pad_id: int,
    with_entropy: bool = False,
) -> dict[str, Tensor]:
    """All sequences in one static batch (:func:`sample_stream` with ``batch_size = N``)."""
    return sample_stream(
        model,
        prompts,
        seeds,
        params,
        stop_ids=stop_ids,
        pad_id=pad_id,
        batch_size=len(prompts),
        with_entropy=with_entropy,
    )


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    n: int = 1,
    params: SamplingParams | None = None,
    seed: int = 0,
    batch_size: int = 16,
    keys: Sequence[str] | None = None,
    system_prompt: str | None = None,
    with_entropy: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Rollouts:
    """Sample ``n`` responses to each prompt (chat template applied), ``batch_size`` rows at a time.

    ``keys`` identify prompts for seeding (default: their position); a sample's seed is
    ``derive_seed(seed, key, j)``, so the same problem gets the same samples whatever
    else is in the run. Sampling is continuously batched (:func:`sample_stream`), at most
    ``batch_size`` sequences at a time. ``progress`` is called with 1 as each sequence
    finishes.
    """
    params = params or SamplingParams()
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
    keys = list(keys) if keys is not None else [str(i) for i in range(len(prompts))]
    if len(keys) != len(prompts):
        raise ValueError(f"{len(keys)} keys for {len(prompts)} prompts")
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    stop_ids = stop_token_ids(model, tokenizer)
    prompt_ids = [chat_prompt_ids(tokenizer, p, system_prompt) for p in prompts]
    rows = [(i, j) for i in range(len(prompts)) for j in range(n)]
    seeds = [derive_seed(seed, keys[i], j) for i, j in rows]
    out = sample_stream(
        model,
        [prompt_ids[i] for i, _ in rows],
        seeds,
        params,
        stop_ids=stop_ids,
        pad_id=pad_id,
        batch_size=batch_size,
        with_entropy=with_entropy,
        on_done=(lambda i, out: progress(1)) if progress is not None else None,
    )
    return _assemble([out] if rows else [], prompt_ids, rows, seeds, n, pad_id, tokenizer)


def _assemble(
    parts: list[dict[str, Tensor]],
    prompt_ids: list[list[int]],
    rows: list[tuple[int, int]],
    seeds: list[int],
    n: int,
    pad_id: int,
    tokenizer: Any,
) -> Rollouts:
    B = len(rows)
    lengths = (
        torch.cat([p["lengths"] for p in parts]) if parts else torch.zeros(0, dtype=torch.long)
    )
    T = int(lengths.max()) if B else 0
    response_ids = torch.cat([p["tokens"][:, :T] for p in parts]) if parts else torch.zeros((0, 0))
    logprobs = torch.cat([p["logprobs"][:, :T] for p in parts]) if parts else torch.zeros((0, 0))
    entropy = None
    if parts and "entropy" in parts[0]:
        entropy = torch.cat([p["entropy"][:, :T] for p in parts])
    response_mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    P = max((len(prompt_ids[i]) for i, _ in rows), default=0)
    prompt = torch.full((B, P), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((B, P), dtype=torch.bool)
    for b, (i, _) in enumerate(rows):
        ids = prompt_ids[i]
        prompt[b, P - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        prompt_mask[b, P - len(ids) :] = True
    texts = [
        tokenizer.decode(response_ids[b, : int(lengths[b])].tolist(), skip_special_tokens=True)
        for b in range(B)
    ]
    return Rollouts(
        prompt_ids=prompt,
        prompt_mask=prompt_mask,
        response_ids=response_ids.long(),
        response_mask=response_mask,
        logprobs=logprobs.float(),
        lengths=lengths,
        truncated=torch.cat([p["truncated"] for p in parts])
        if parts
        else torch.zeros(0, dtype=torch.bool),
        texts=texts,
        group=torch.tensor([i for i, _ in rows], dtype=torch.long),
        n=n,
        entropy=entropy,
        seeds=list(seeds),
    )
