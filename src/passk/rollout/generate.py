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
equals :func:`passk.rollout.logprobs.forward_logprobs` up to numerics; with
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
from typing import Any, Literal

import torch
from torch import Tensor

from passk.rollout import kv_cache
from passk.rollout.batch import Rollouts
from passk.rollout.params import SamplingParams
from passk.seeds import derive_seed


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
    cache = kv_cache.new_cache(model)
    try:  # logits for the last position only: the 49k-wide prompt logits are wasted work
        out = model(**kwargs, **kv_cache.cache_kwargs(model, cache), logits_to_keep=1)
    except TypeError:  # architectures without logits_to_keep (rejected before any layer ran)
        cache = kv_cache.new_cache(model)
        out = model(**kwargs, **kv_cache.cache_kwargs(model, cache))
    select = torch.tensor(row_to_unique, device=device)
    cache = kv_cache.select_rows(cache, select)  # [U, ...] -> [B, ...]
    return cache, out.logits[:, -1][select], mask[select], positions[select, -1] + 1


class _TrainModeOff:
    """Every submodule in eval mode (dropout off) inside, each one's own mode restored after."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.modes: list[tuple[Any, bool]] = []

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        for m, training in self.modes:
            m.training = training


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
    stats: dict[str, float] | None = None,
    in_place: bool = True,
) -> dict[str, Tensor]:
    """Sample one response per (prompt ids, seed), at most ``batch_size`` rows at a time.

    Continuous batching: rows leave the KV cache as soon as they stop, and waiting
    sequences are pre-filled and join the running batch once a quarter of the slots are
    free, so short answers do not wait for the longest one. Cache columns that no live
    row attends to any more are cut, so the cache is never wider than the longest live
    prompt plus ``max_new_tokens``, however long the stream. The cache is written in
    place (:class:`passk.rollout.kv_cache.Slots`): a decoding step copies nothing, a
    departure moves as many rows as left, so memory stays flat over a long stream
    (``in_place=False``: transformers' concatenating cache, rows gathered and caches
    merged; the same samples up to float round-off, kept as the baseline of
    ``benchmarks/generate_stream.py``). (With a cache type that
    cannot be merged, see :func:`passk.rollout.kv_cache.can_merge`, new sequences join
    only when the batch has emptied: same samples, slower.) Identical prompts joining
    together are pre-filled once. The model samples in eval mode (dropout off); each
    module's mode is restored afterwards. ``on_done(i, out)`` is called when sequence
    ``i`` has finished; row ``i`` of the tensors in ``out`` (the dict that is finally
    returned) is then final. ``stats``, when given, receives
    ``rollout/static_fallback`` (1.0 when new sequences had to wait for an empty batch)
    and ``rollout/max_width`` (the widest attention mask, in positions).

    Returns CPU tensors ``tokens``, ``logprobs`` (and ``entropy``) ``[N, T]`` with
    T = max_new_tokens, ``lengths`` ``[N]`` and ``truncated`` ``[N]``.
    """
    N, T = len(prompts), params.max_new_tokens
    if len(seeds) != N:
        raise ValueError(f"{len(seeds)} seeds for {N} prompts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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
    longest = max((len(p) for p in prompts), default=0)
    mergeable: bool | None = None  # asked of the cache the first time a refill is due
    slots: kv_cache.Slots | None = None  # the cache written in place, where the cache allows
    max_width = 0

    def admit(count: int) -> tuple[Any, Tensor, Tensor, Tensor, Tensor]:
        nonlocal pending
        new = torch.arange(pending, pending + count)
        for i in new.tolist():
            uniforms[i] = torch.rand(T, generator=torch.Generator().manual_seed(int(seeds[i])))
        pending += count
        c, lg, am, npos = _prefill(model, [prompts[i] for i in new.tolist()], pad_id, device)
        return c, lg, am, npos, new

    with _TrainModeOff(model):
        while pending < N or len(rows):
            free = batch_size - len(rows)
            if pending < N and len(rows) and free >= refill_at and mergeable is None:
                mergeable = kv_cache.can_merge(cache)
            if pending < N and (not len(rows) or (free >= refill_at and mergeable)):
                c, lg, am, npos, new = admit(min(free, N - pending))
                if (
                    in_place
                    and slots is None
                    and mergeable is None
                    and kv_cache.can_merge(c, warn=False)
                ):
                    # the first pre-fill's cache becomes the stream's slots
                    slots = kv_cache.Slots(
                        c, min(batch_size, N), slack=max(16, T // 8), limit=longest + T
                    )
                    cache, mergeable = slots.cache, True
                elif slots is not None:
                    am = slots.admit(c, attn if len(rows) else None, am)
                elif len(rows):
                    cache, am = kv_cache.merge(cache, attn, c, am)
                else:
                    cache = c
                if len(rows):
                    logits = torch.cat([logits, lg])
                    next_pos = torch.cat([next_pos, npos])
                    rows = torch.cat([rows, new])
                else:
                    logits, next_pos, rows = lg, npos, new
                attn = am
                del c, lg, am, npos
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
                # with slots, rows move into the freed slots: a new order
                order = slots.drop(keep) if slots is not None else keep.nonzero().squeeze(1)
                rows = rows[order]
                if not len(rows):
                    logits = attn = next_pos = None
                    if slots is None:
                        cache = None  # free the cache before a refill
                    continue
                order_dev = order.to(device)
                attn, next_pos, tok = attn[order_dev], next_pos[order_dev], tok[order_dev]
                # columns only the departed rows attended to: without the cut, merges
                # left-pad to a width that grows with the length of the whole stream
                dead = kv_cache.leading_dead_columns(attn) if mergeable else 0
                if slots is not None:
                    slots.cut(dead)
                    if pending == N and len(rows) <= slots.capacity // 2:
                        slots.shrink()  # draining: the freed slots will not be refilled
                else:
                    cache = kv_cache.select_rows(cache, order_dev, drop_columns=dead)
                attn = attn[:, dead:]
            attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], dim=1)
            max_width = max(max_width, attn.shape[1])
            out = model(
                input_ids=tok.unsqueeze(1),
                attention_mask=attn,
                position_ids=next_pos.unsqueeze(1),
                **kv_cache.cache_kwargs(model, cache),
            )  # updates ``cache`` in place
            if slots is not None:
                slots.advance()
            logits = out.logits[:, -1]
            del out
            next_pos = next_pos + 1
    if stats is not None:
        stats["rollout/static_fallback"] = 1.0 if mergeable is False else 0.0
        stats["rollout/max_width"] = float(max_width)
    return result


AUTO_BATCH_CAP = 256
"""Most concurrent rows :func:`auto_batch_size` picks (see its measurements)."""
AUTO_MEMORY_FRACTION = 0.5
"""Share of available memory the KV cache of an auto-sized batch may take."""


def _available_memory(device: torch.device) -> int:
    """Free bytes on ``device``: CUDA free memory, else available RAM (psutil or sysconf)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil
    except ImportError:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return int(psutil.virtual_memory().available)


def _text_config(model: Any) -> Any:
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of keys and values one token occupies in the KV cache of ``model``."""
    cfg = _text_config(model)
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    itemsize = next(model.parameters()).element_size()
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * itemsize


def auto_batch_size(
    model: Any, num_sequences: int, max_len: int, *, memory_bytes: int | None = None
) -> int:
    """Concurrent rows for sampling ``num_sequences`` sequences of up to ``max_len`` tokens.

    ``min(num_sequences, AUTO_BATCH_CAP, rows whose KV cache fits)``, at least 1. A row
    is budgeted twice its ``max_len``-token KV cache (the in-place cache's buffers keep
    spare columns and widen by copying; a cache that cannot be written in place copies
    itself at every step) plus its float32 logits three times over (the sampling
    softmax), against ``AUTO_MEMORY_FRACTION`` of ``memory_bytes`` (default: what the
    model's device has free now).

    Why large batches: a decoding step of a small model is bound by per-step overhead,
    not arithmetic, so more rows per step is nearly free. On the 2-core CPU runner the
    embedded SmolLM2-135M (bf16, 2 threads, mul1 prompts) sampled 655 tok/s at 256
    concurrent sequences against 325 tok/s at 64.

    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> m = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64,
    ...     num_hidden_layers=2, num_attention_heads=4, vocab_size=300))
    >>> auto_batch_size(m, 1000, 512, memory_bytes=2**40), auto_batch_size(m, 10, 512)
    (256, 10)
    >>> auto_batch_size(m, 1000, 512, memory_bytes=2**24)  # half of 16 MiB, ~0.5 MiB a row
    15
    """
    if num_sequences < 0:
        raise ValueError(f"num_sequences must be >= 0, got {num_sequences}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if memory_bytes is None:
        memory_bytes = _available_memory(next(model.parameters()).device)
    per_row = 2 * kv_bytes_per_token(model) * max_len + 3 * 4 * _text_config(model).vocab_size
    fits = int(AUTO_MEMORY_FRACTION * memory_bytes) // per_row
    return max(1, min(num_sequences, AUTO_BATCH_CAP, fits))


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    n: int = 1,
    params: SamplingParams | None = None,
    seed: int = 0,
    batch_size: int | Literal["auto"] = 16,
    keys: Sequence[str] | None = None,
    system_prompt: str | None = None,
    with_entropy: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Rollouts:
    """Sample ``n`` responses to each prompt (chat template applied), ``batch_size`` rows at a time.

    ``keys`` identify prompts for seeding (default: their position); a sample's seed is
    ``derive_seed(seed, key, j)``, so the same problem gets the same samples whatever
    else is in the run. Sampling is continuously batched (:func:`sample_stream`), at most
    ``batch_size`` sequences at a time (``"auto"``: :func:`auto_batch_size`), with the
    model in eval mode. ``progress`` is called with 1 as each sequence finishes.
    ``Rollouts.stats`` holds the sampler facts ``rollout/static_fallback`` and
    ``rollout/max_width``.
    """
    params = params or SamplingParams()
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if batch_size != "auto" and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {batch_size!r}")
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
    if batch_size == "auto":
        longest = max((len(p) for p in prompt_ids), default=0)
        batch_size = auto_batch_size(model, len(rows), longest + params.max_new_tokens)
    stats: dict[str, float] = {}
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
        stats=stats,
    )
    return _assemble(out, prompt_ids, rows, seeds, n, pad_id, tokenizer, stats)


def _assemble(
    out: dict[str, Tensor],
    prompt_ids: list[list[int]],
    rows: list[tuple[int, int]],
    seeds: list[int],
    n: int,
    pad_id: int,
    tokenizer: Any,
    stats: dict[str, float],
) -> Rollouts:
    """The sampler's ``[B, max_new_tokens]`` tensors cut to the longest response, plus prompts."""
    B = len(rows)
    lengths = out["lengths"]  # [B]
    T = int(lengths.max()) if B else 0
    # contiguous copies: downstream code may .view() them, and the [B, max_new_tokens]
    # buffers can go
    response_ids = out["tokens"][:, :T].contiguous()  # [B, T]
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
        response_ids=response_ids,
        response_mask=response_mask,
        logprobs=out["logprobs"][:, :T].contiguous(),
        lengths=lengths,
        truncated=out["truncated"],
        texts=texts,
        group=torch.tensor([i for i, _ in rows], dtype=torch.long),
        n=n,
        entropy=out["entropy"][:, :T].contiguous() if "entropy" in out else None,
        seeds=list(seeds),
        stats=stats,
    )
