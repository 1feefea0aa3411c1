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
seeded by :func:`sequence_seed` (run seed, prompt key, sample index), and tokens are
picked by inverse-CDF sampling with those uniforms. A sequence's randomness therefore
does not depend on the batch it lands in; results are bit-identical for the same seed
and batch size, and agree across batch sizes up to floating-point differences of the
padded forward passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


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


@dataclass
class Rollouts:
    """Sampled responses, flattened prompt-major: row ``b`` is sample ``b % n`` of prompt ``b // n``.

    Prompts are left-padded to a common width P and responses right-padded to T, so
    ``input_ids = cat([prompt_ids, response_ids], 1)`` is the full sequence and the
    response occupies its last T columns (what :func:`~passk.rollout.logprobs.recompute_logprobs`
    expects). Responses include their final stop token (EOS) when there is one.
    """

    prompt_ids: Tensor  # [B, P] long, left-padded with the pad id
    prompt_mask: Tensor  # [B, P] bool
    response_ids: Tensor  # [B, T] long, right-padded with the pad id
    response_mask: Tensor  # [B, T] bool
    logprobs: Tensor  # [B, T] float32, sampling-distribution log-probs, 0 at padding
    lengths: Tensor  # [B] long, number of response tokens
    truncated: Tensor  # [B] bool, True when no stop token came within max_new_tokens
    texts: list[str]  # [B] decoded responses, special tokens removed
    group: Tensor  # [B] long, index of the prompt each row answers
    n: int  # samples per prompt
    entropy: Tensor | None = None  # [B, T] float32 when requested, 0 at padding
    seeds: list[int] = field(default_factory=list)  # [B] per-sequence seeds

    def __post_init__(self) -> None:
        B, T = self.response_ids.shape
        assert self.prompt_ids.shape[0] == B and self.prompt_mask.shape == self.prompt_ids.shape
        assert self.response_mask.shape == (B, T) and self.logprobs.shape == (B, T)
        assert self.lengths.shape == (B,) and self.truncated.shape == (B,) and len(self.texts) == B

    @property
    def input_ids(self) -> Tensor:
        """Prompt and response, ``[B, P + T]``."""
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        """``[B, P + T]`` bool: real prompt and response tokens."""
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    def __len__(self) -> int:
        return len(self.texts)


def sequence_seed(seed: int, key: str, index: int) -> int:
    """A 63-bit seed for sample ``index`` of the prompt identified by ``key``.

    >>> sequence_seed(0, "mul1/7x8", 3) == sequence_seed(0, "mul1/7x8", 3)
    True
    >>> sequence_seed(0, "mul1/7x8", 3) != sequence_seed(1, "mul1/7x8", 3)
    True
    """
    digest = hashlib.blake2b(f"{seed}\x00{key}\x00{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


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


@torch.no_grad()
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
    """Sample one response for each (prompt token ids, seed) pair, all in one batch.

    Identical prompts are pre-filled once and their KV cache rows are repeated, so N
    samples of one prompt cost one prompt forward. Returns CPU tensors ``tokens``,
    ``logprobs`` (and ``entropy``) ``[B, max_new_tokens]``, ``lengths`` ``[B]``,
    ``truncated`` ``[B]``.
    """
    B, T = len(prompts), params.max_new_tokens
    assert len(seeds) == B and B > 0
    device = next(model.parameters()).device
    unique: dict[tuple[int, ...], int] = {}
    row_to_unique = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
    width = max(len(p) for p in unique)
    ids = torch.full((len(unique), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(unique), width), dtype=torch.long)
    for i, p in enumerate(unique):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [U, width]
    try:  # logits for the last position only: the 49k-wide prompt logits are wasted work
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
    except TypeError:  # architectures without logits_to_keep
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    cache = out.past_key_values
    select = torch.tensor(row_to_unique, device=device)
    cache.batch_select_indices(select)  # [U, ...] -> [B, ...], repeating shared prompts
    logits = out.logits[:, -1][select]  # [B, V]
    attn = mask[select]  # [B, width + t]
    next_pos = positions[select, -1] + 1  # [B]

    uniforms = torch.stack(
        [torch.rand(T, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    )  # [B, T]
    stop = torch.tensor(list(stop_ids), device=device)
    tokens = torch.full((B, T), pad_id, dtype=torch.long)
    logprobs = torch.zeros((B, T), dtype=torch.float32)
    entropy = torch.zeros((B, T), dtype=torch.float32) if with_entropy else None
    lengths = torch.zeros(B, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    active = torch.arange(B)  # rows still generating, in cache order
    for t in range(T):
        tok, lp, ent = _sample_tokens(logits, uniforms[active, t].to(device), params, with_entropy)
        tokens[active, t] = tok.cpu()
        logprobs[active, t] = lp.cpu()
        if entropy is not None and ent is not None:
            entropy[active, t] = ent.cpu()
        lengths[active] = t + 1
        done = torch.isin(tok, stop)  # [A]
        finished[active[done.cpu()]] = True
        if t == T - 1:
            break
        if done.any():
            keep = ~done
            if not keep.any():
                break
            active = active[keep.cpu()]
            cache.batch_select_indices(keep.nonzero().squeeze(1))
            attn, next_pos, tok = attn[keep], next_pos[keep], tok[keep]
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
    result = {"tokens": tokens, "logprobs": logprobs, "lengths": lengths, "truncated": ~finished}
    if entropy is not None:
        result["entropy"] = entropy
    return result


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
    ``sequence_seed(seed, key, j)``, so the same problem gets the same samples whatever
    else is in the run. ``progress`` is called with the number of rows finished by each
    batch.
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
    seeds = [sequence_seed(seed, keys[i], j) for i, j in rows]
    parts: list[dict[str, Tensor]] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        parts.append(
            sample_batch(
                model,
                [prompt_ids[i] for i, _ in chunk],
                seeds[start : start + batch_size],
                params,
                stop_ids=stop_ids,
                pad_id=pad_id,
                with_entropy=with_entropy,
            )
        )
        if progress is not None:
            progress(len(chunk))
    return _assemble(parts, prompt_ids, rows, seeds, n, pad_id, tokenizer)


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
