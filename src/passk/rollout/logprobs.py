"""Per-token log-probabilities (and entropies) of given responses under a model.

The vocabulary projection dominates memory (SmolLM2: 49k logits per position), so the
decoder runs on the whole sequence but the LM head is applied only at response
positions, a chunk of ``chunk_tokens`` tokens at a time. :func:`recompute_logprobs`
adds micro-batching under ``torch.no_grad`` for old/reference log-probs and eval, so
peak memory is proportional to ``micro_batch_size`` (activations) plus
``chunk_tokens x vocab`` (logits), not to the batch. :func:`response_logprobs` is the
same computation for one micro-batch and keeps the graph (the trainer's current-policy
pass).

Sequence layout (what :class:`~passk.rollout.generate.Rollouts` gives): the prompt is
left-padded, the response right-padded, and the response fills the last T columns, so
the logits for response token t come from position ``S - T - 1 + t``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from passk.core.entropy import logprobs_and_entropy


def _position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding, exactly as in the sampling loop. [B, S] -> [B, S]."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _head_logprobs(
    model: Any, hidden: Tensor, labels: Tensor, temperature: float, with_entropy: bool, chunk: int
) -> tuple[Tensor, Tensor | None]:
    """LM head on ``hidden`` [N, H] in chunks; log-prob of ``labels`` [N] and entropy [N].

    The per-chunk softmax statistics come from :func:`passk.core.entropy.logprobs_and_entropy`
    (the trainer's own kernel, which recomputes the softmax in backward instead of
    storing it), so sampling-time, eval-time and training-time numbers share one
    definition.
    """
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    logps, ents = [], []
    for start in range(0, hidden.shape[0], chunk):
        logits = head(hidden[start : start + chunk])  # [c, V]
        if softcap:
            logits = torch.tanh(logits.float() / softcap) * softcap
        lp, ent = logprobs_and_entropy(
            logits,
            labels[start : start + chunk],
            chunk_size=min(chunk, 512),
            temperature=temperature,
            with_entropy=with_entropy,
        )
        logps.append(lp.float())
        if ent is not None:
            ents.append(ent.float())
    empty = hidden.new_zeros(0, dtype=torch.float32)
    logp_all = torch.cat(logps) if logps else empty
    if not with_entropy:
        return logp_all, None
    return logp_all, torch.cat(ents) if ents else empty


def response_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_mask: Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = 512,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs of the response tokens of one batch, with autograd if enabled.

    Args:
        input_ids: [B, S] prompt (left-padded) followed by response (right-padded).
        attention_mask: [B, S] 1 for real tokens.
        response_mask: [B, T] 1 for real response tokens; the response is the last T columns.
        temperature: logits are divided by it (use the sampling temperature to get the
            pre-top-p sampling distribution; 1.0 for the model's own distribution).

    Returns:
        logprobs [B, T] float32 and entropy [B, T] (or None), 0 at padding.
    """
    B, S = input_ids.shape
    T = response_mask.shape[1]
    assert attention_mask.shape == (B, S) and response_mask.shape[0] == B and 0 < T < S
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device).long()
    response_mask = response_mask.to(device).bool()
    out = model.get_decoder()(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=_position_ids(attention_mask),
        use_cache=False,
    )
    hidden = out.last_hidden_state[:, S - T - 1 : S - 1]  # [B, T, H] predicts tokens S-T..S-1
    labels = input_ids[:, S - T :]  # [B, T]
    lp, ent = _head_logprobs(
        model, hidden[response_mask], labels[response_mask], temperature, with_entropy, chunk_tokens
    )
    logprobs = torch.zeros((B, T), dtype=torch.float32, device=device)
    logprobs = logprobs.masked_scatter(response_mask, lp)
    entropy = None
    if ent is not None:
        entropy = torch.zeros((B, T), dtype=torch.float32, device=device).masked_scatter(
            response_mask, ent
        )
    return logprobs, entropy


@torch.no_grad()
def recompute_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_mask: Tensor,
    *,
    micro_batch_size: int = 8,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = 512,
) -> tuple[Tensor, Tensor | None]:
    """:func:`response_logprobs` without gradients, ``micro_batch_size`` rows at a time.

    Each micro-batch is trimmed to the columns it uses (common left padding, response
    padding beyond its longest response), so results do not depend on the micro-batch
    size beyond floating-point noise. Returns CPU tensors ``[B, T]``.

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> _ = torch.manual_seed(0)
    >>> cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    >>> model = LlamaForCausalLM(cfg).eval()
    >>> ids = torch.randint(0, 32, (3, 7))
    >>> attn = torch.ones(3, 7, dtype=torch.long)
    >>> rmask = torch.ones(3, 4, dtype=torch.bool)
    >>> a, _ = recompute_logprobs(model, ids, attn, rmask, micro_batch_size=1)
    >>> b, _ = recompute_logprobs(model, ids, attn, rmask, micro_batch_size=3)
    >>> a.shape, torch.allclose(a, b, atol=1e-5)
    (torch.Size([3, 4]), True)
    """
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    B, S = input_ids.shape
    T = response_mask.shape[1]
    response_mask = response_mask.bool()
    attention_mask = attention_mask.bool()
    logprobs = torch.zeros((B, T), dtype=torch.float32)
    entropy = torch.zeros((B, T), dtype=torch.float32) if with_entropy else None
    for start in range(0, B, micro_batch_size):
        sl = slice(start, start + micro_batch_size)
        rmask = response_mask[sl]
        t_used = int(rmask.sum(0).nonzero().max()) + 1 if rmask.any() else 0
        if t_used == 0:
            continue
        prompt_mask = attention_mask[sl, : S - T]
        used_cols = prompt_mask.any(0).nonzero()
        first = int(used_cols.min()) if len(used_cols) else S - T - 1
        first = min(first, S - T - 1)  # at least one prompt column predicts token 0
        end = S - T + t_used
        lp, ent = response_logprobs(
            model,
            input_ids[sl, first:end],
            attention_mask[sl, first:end],
            rmask[:, :t_used],
            temperature=temperature,
            with_entropy=with_entropy,
            chunk_tokens=chunk_tokens,
        )
        logprobs[sl, :t_used] = lp.cpu()
        if entropy is not None and ent is not None:
            entropy[sl, :t_used] = ent.cpu()
    return logprobs, entropy
