"""The one forward pass of passk: per-token log-probs (and more) of given responses.

:func:`forward_logprobs` serves the behaviour and reference passes (no grad), the policy
update (with grad; top-K log-probs for SimKO) and evaluation. It varies the outputs it
returns, never the computation, so every caller sees the same numbers:

- the decoder runs on the sequence, but the LM head only at response positions, a chunk
  of ``chunk_size`` tokens at a time (SmolLM2: 49k logits per position);
- ``final_logit_softcapping`` of the model config is applied to those logits (Gemma 2);
- log-prob and entropy come from the chunked kernel
  :func:`passk.core.entropy.logprobs_and_entropy` (softmax recomputed in backward);
  top-K log-probs are gathered logits minus the log-normaliser that the kernel's log-prob
  implies (``lse = z_y - logp_y``), so no ``[n, V]`` log-softmax is ever built.

With ``share_prefix`` the rows that answer one prompt (identical prompt ids) run the
prompt once: its keys and values are expanded to every row, and only the response
tokens run per row; gradients flow through the shared prefix, so loss and gradients
equal the unshared pass up to float rounding.

Sequence layout (what :class:`~passk.rollout.batch.Rollouts` gives): the prompt is
left-padded, the response right-padded, and the response fills the last T columns, so
the logits for response token t come from position ``S - T - 1 + t``.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Protocol

import torch
from torch import Tensor
from transformers import DynamicCache

from passk.core.entropy import logprobs_and_entropy

OUTPUTS = frozenset({"logp", "entropy", "topk_logp", "topk_ids", "sampled_is_top1"})
_TOPK_OUTPUTS = frozenset({"topk_logp", "topk_ids"})


class ResponseBatch(Protocol):
    """What the forward reads: a :class:`~passk.rollout.batch.Rollouts` has it all."""

    @property
    def input_ids(self) -> Tensor: ...  # [B, S] prompt (left-padded) + response (right-padded)

    @property
    def attention_mask(self) -> Tensor: ...  # [B, S]

    @property
    def response_mask(self) -> Tensor: ...  # [B, T], the response is the last T columns


def _position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding, exactly as in the sampling loop. [B, S] -> [B, S]."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# decoder: hidden states at the positions that predict the response tokens
# ---------------------------------------------------------------------------------------------


def _full_hidden(model: Any, input_ids: Tensor, attention_mask: Tensor, T: int) -> Tensor:
    """The decoder on whole sequences ``[b, S]``; hidden states predicting the last T tokens."""
    S = input_ids.shape[1]
    out = model.get_decoder()(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=_position_ids(attention_mask),
        use_cache=False,
    )
    return out.last_hidden_state[:, S - T - 1 : S - 1]  # [b, T, H]


def distinct_prompts(prompt_ids: Tensor, prompt_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Rows holding each distinct prompt ``[U]`` and each row's prompt ``[b]`` (in 0..U-1).

    Prompts are compared on their real tokens and padding (values at padding don't count).
    """
    key = torch.where(prompt_mask.bool(), prompt_ids, -1)  # [b, P]
    uniq, inverse = torch.unique(key, dim=0, return_inverse=True)  # [U, P], [b]
    b = len(inverse)
    # any row of a prompt holds it (their ids are equal): scatter picks one
    first = torch.zeros(len(uniq), dtype=torch.long, device=inverse.device)
    first.scatter_(0, inverse, torch.arange(b, device=inverse.device))
    return first, inverse


def _shared_hidden(
    model: Any,
    prompt_ids: Tensor,  # [b, P], P >= 2
    prompt_mask: Tensor,  # [b, P] long
    response_ids: Tensor,  # [b, T]
    response_mask: Tensor,  # [b, T] long
    first: Tensor,  # [U] a row holding each distinct prompt
    inverse: Tensor,  # [b] each row's distinct prompt
) -> Tensor | None:
    """Hidden states ``[b, T, H]`` predicting the response, each distinct prompt run once.

    The prefix pass runs ``prompt[:, :-1]`` of the U distinct prompts with a KV cache
    (keeping its graph); the cache is expanded to the b rows with the public
    ``Cache.batch_select_indices`` (an index, so backward sums the rows' gradients into
    the prefix) and the row pass runs the last prompt token followed by the response
    without its last token, T tokens per row. None when the model's cache has
    sliding-window layers (their cache keeps only the window): the caller then runs the
    full sequences.
    """
    cache = DynamicCache(config=model.config)
    if any(cache.is_sliding):
        return None
    pre_mask = prompt_mask[first, :-1]  # [U, P - 1]
    decoder = model.get_decoder()
    cache_arg = _cache_kwarg(decoder)
    decoder(
        input_ids=prompt_ids[first, :-1],
        attention_mask=pre_mask,
        position_ids=_position_ids(pre_mask),
        use_cache=True,
        **{cache_arg: cache},
    )
    cache.batch_select_indices(inverse)  # [U, heads, P - 1, d] -> [b, heads, P - 1, d]
    row_ids = torch.cat([prompt_ids[:, -1:], response_ids[:, :-1]], dim=1)  # [b, T]
    row_mask = torch.cat([prompt_mask[:, -1:], response_mask[:, :-1]], dim=1)  # [b, T]
    T = row_ids.shape[1]
    start = prompt_mask.sum(1, keepdim=True) - 1  # [b, 1] position of the last prompt token
    out = decoder(
        input_ids=row_ids,
        attention_mask=torch.cat([prompt_mask[:, :-1], row_mask], dim=1),  # [b, P - 1 + T]
        position_ids=(start + torch.arange(T, device=start.device)).clamp(min=0),  # [b, T]
        use_cache=True,
        **{cache_arg: cache},
    )
    return out.last_hidden_state  # [b, T, H]


def _cache_kwarg(decoder: Any) -> str:
    """The decoder's name for the cache argument: ``cache`` (transformers >= 5.2x) or
    ``past_key_values`` (older; the newer still accept it, with a deprecation warning)."""
    params = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


# ---------------------------------------------------------------------------------------------
# LM head, chunk by chunk
# ---------------------------------------------------------------------------------------------


def _head_outputs(
    model: Any,
    hidden: Tensor,  # [n, H]
    labels: Tensor,  # [n]
    *,
    temperature: float,
    need: frozenset[str],
    topk_ids: Tensor | None,  # [n, K] tokens to gather, or None: the current top tokens
    topk_width: int,
    chunk_size: int,
) -> dict[str, Tensor]:
    """The requested outputs at ``n`` response positions; ``[n]`` or ``[n, K]`` each."""
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    want_topk = bool(need & _TOPK_OUTPUTS)
    parts: dict[str, list[Tensor]] = {k: [] for k in need}
    for s in range(0, hidden.shape[0], chunk_size):
        logits = head(hidden[s : s + chunk_size])  # [c, V]
        if softcap:
            logits = torch.tanh(logits.float() / softcap) * softcap
        y = labels[s : s + chunk_size]  # [c]
        lp, ent = logprobs_and_entropy(
            logits,
            y,
            chunk_size=chunk_size,
            temperature=temperature,
            with_entropy="entropy" in need,
        )
        lp = lp.float()
        parts.setdefault("logp", []).append(lp)
        if ent is not None:
            parts["entropy"].append(ent.float())
        if want_topk or "sampled_is_top1" in need:
            raw = logits.detach()
            if "sampled_is_top1" in need:
                parts["sampled_is_top1"].append(raw.argmax(-1) == y)
            if want_topk:
                if topk_ids is None:
                    idx = raw.topk(topk_width, dim=-1).indices  # [c, K], top-1 first
                else:
                    idx = topk_ids[s : s + chunk_size]
                # log p_k = z_k - lse and lse = z_y - log p_y: gathers only, and the
                # gradient (e_k - p) / temperature flows through the kernel's log-prob
                z_k = logits.gather(-1, idx).float() / temperature  # [c, K]
                z_y = logits.gather(-1, y[:, None]).float() / temperature  # [c, 1]
                parts.setdefault("topk_logp", []).append(z_k - z_y + lp[:, None])
                parts.setdefault("topk_ids", []).append(idx)
    return {k: torch.cat(v) for k, v in parts.items() if k in need or k == "logp"}


def forward_logprobs(
    model: Any,
    batch: ResponseBatch,
    *,
    temperature: float = 1.0,
    need: frozenset[str] = frozenset({"logp"}),
    topk_ids: Tensor | None = None,
    topk_width: int = 3,
    chunk_size: int = 512,
    share_prefix: bool = False,
) -> dict[str, Tensor]:
    """Per-token outputs of the batch's responses under ``model``, with autograd if enabled.

    Args:
        batch: a :class:`~passk.rollout.batch.Rollouts` (or anything with ``input_ids``
            ``[B, S]``, ``attention_mask`` ``[B, S]`` and ``response_mask`` ``[B, T]``,
            the response being the last T columns; ``prompt_ids``/``prompt_mask``/
            ``response_ids`` too for ``share_prefix``).
        temperature: logits are divided by it (the sampling temperature gives the
            pre-top-p sampling distribution; 1.0 the model's own).
        need: outputs to return, among ``logp`` ``[B, T]``, ``entropy`` ``[B, T]``,
            ``topk_logp`` and ``topk_ids`` ``[B, T, K]`` (top-1 first) and
            ``sampled_is_top1`` ``[B, T]`` bool.
        topk_ids: ``[B, T, K]`` tokens whose log-probs ``topk_logp`` gathers (the behaviour
            policy's top tokens); None: the current top ``topk_width`` tokens.
        chunk_size: response positions per LM-head chunk (memory ``chunk_size x vocab``).
        share_prefix: run each distinct prompt once and expand its KV cache to its rows.

    Returns float32 tensors on the model's device (``topk_ids`` long, ``sampled_is_top1``
    bool), 0 at padding.

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> from passk.rollout.batch import Rollouts
    >>> _ = torch.manual_seed(0)
    >>> cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    >>> model = LlamaForCausalLM(cfg).eval()
    >>> r = Rollouts.from_sequences([[3, 4, 5]] * 2 + [[6, 7]], [[8, 9], [10], [11, 12]],
    ...                             group=[0, 0, 1])
    >>> a = forward_logprobs(model, r, need=frozenset({"logp", "topk_logp"}))
    >>> b = forward_logprobs(model, r, need=frozenset({"logp", "topk_logp"}), share_prefix=True)
    >>> a["logp"].shape, a["topk_logp"].shape, torch.allclose(a["logp"], b["logp"], atol=1e-5)
    (torch.Size([3, 2]), torch.Size([3, 2, 3]), True)
    """
    need = frozenset(need)
    if not need <= OUTPUTS:
        raise ValueError(f"unknown outputs {sorted(need - OUTPUTS)}; valid: {sorted(OUTPUTS)}")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    device = next(model.parameters()).device
    rmask = batch.response_mask.to(device).bool()  # [B, T]
    B, T = rmask.shape
    if topk_ids is not None:
        assert topk_ids.shape[:2] == (B, T), f"topk_ids {tuple(topk_ids.shape)} vs ({B}, {T})"
        topk_width = topk_ids.shape[-1]
    hidden = None
    prompt_ids = getattr(batch, "prompt_ids", None)
    if share_prefix and prompt_ids is not None and prompt_ids.shape[1] >= 2 and B > 1:
        prompt_ids = prompt_ids.to(device)
        prompt_mask = batch.prompt_mask.to(device).long()  # type: ignore[attr-defined]
        first, inverse = distinct_prompts(prompt_ids, prompt_mask)
        if len(first) < B:  # something to share
            hidden = _shared_hidden(
                model,
                prompt_ids,
                prompt_mask,
                batch.response_ids.to(device),  # type: ignore[attr-defined]
                rmask.long(),
                first,
                inverse,
            )
    if hidden is None:
        ids, attn = batch.input_ids.to(device), batch.attention_mask.to(device).long()
        assert attn.shape == ids.shape and 0 < T < ids.shape[1]
        hidden = _full_hidden(model, ids, attn, T)
    labels = batch.input_ids[:, -T:].to(device)  # [B, T]
    flat = _head_outputs(
        model,
        hidden[rmask],
        labels[rmask],
        temperature=temperature,
        need=need,
        topk_ids=None if topk_ids is None else topk_ids.to(device)[rmask],
        topk_width=topk_width,
        chunk_size=chunk_size,
    )
    out: dict[str, Tensor] = {}
    for name in need:
        x = flat[name]
        dtype = {"topk_ids": torch.long, "sampled_is_top1": torch.bool}.get(name, torch.float32)
        full = torch.zeros((B, T, *x.shape[1:]), dtype=dtype, device=device)
        out[name] = full.masked_scatter(rmask.reshape(B, T, *[1] * (x.ndim - 1)), x.to(dtype))
    return out


@torch.no_grad()
def forward_logprobs_batched(
    model: Any,
    batch: Any,
    *,
    micro_batch_size: int,
    autocast: torch.dtype | None = None,
    **kwargs: Any,
) -> dict[str, Tensor]:
    """:func:`forward_logprobs` without gradients, ``micro_batch_size`` rows at a time.

    ``batch`` needs ``rows(index)`` (a :class:`~passk.rollout.batch.Rollouts`): each
    micro-batch is trimmed to the columns it uses, so results do not depend on the
    micro-batch size beyond float rounding. Rows of a group are kept together (prefix
    sharing). ``kwargs`` go to :func:`forward_logprobs`; ``topk_ids`` ``[B, T, K]`` is
    split with the rows. Returns CPU tensors ``[B, T, ...]``.
    """
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    B, T = batch.response_mask.shape
    device = next(model.parameters()).device
    topk_ids = kwargs.pop("topk_ids", None)
    result: dict[str, Tensor] = {}
    for index in micro_batch_rows(batch, micro_batch_size):
        mb = batch.rows(index)
        t = mb.response_mask.shape[1]
        ids = None if topk_ids is None else topk_ids[index, :t]
        with autocast_context(device, autocast):
            out = forward_logprobs(model, mb, topk_ids=ids, **kwargs)
        for name, x in out.items():
            if name not in result:
                result[name] = torch.zeros((B, T, *x.shape[2:]), dtype=x.dtype)
            result[name][index, :t] = x.cpu()
    return result


def micro_batch_rows(batch: Any, size: int) -> list[Tensor]:
    """Row indices of micro-batches of at most ``size`` rows, each group's rows together.

    Groups (rows with one ``group`` id; every row its own group when the batch has no
    ``group``) are ordered by prompt length, and inside a group rows by response length;
    micro-batches are then cut from that order, so a group of ``size`` rows or fewer
    shares one micro-batch (one prefix pass) whenever its start allows, and little compute
    goes to padding. The update does not depend on the grouping (explicit normaliser).
    """
    rmask = batch.response_mask
    B, T = rmask.shape
    prompt_len = batch.attention_mask[:, : batch.attention_mask.shape[1] - T].sum(1)  # [B]
    resp_len = rmask.sum(1)  # [B]
    group = getattr(batch, "group", None)
    group = torch.arange(B) if group is None else group.cpu()
    _, g = torch.unique(group, return_inverse=True)  # [B] dense group ids
    G = int(g.max()) + 1 if B else 0
    g_prompt = torch.zeros(G, dtype=torch.long).scatter_reduce(
        0, g, prompt_len.cpu().long(), reduce="amax", include_self=False
    )
    g_resp = torch.zeros(G, dtype=torch.long).scatter_reduce(
        0, g, resp_len.cpu().long(), reduce="amax", include_self=False
    )
    # group rank: by prompt length, then longest response, then id; rows by response length
    g_rank = torch.empty(G, dtype=torch.long)
    g_rank[torch.argsort(g_prompt * (T + 1) * (G + 1) + g_resp * (G + 1) + torch.arange(G))] = (
        torch.arange(G)
    )
    key = g_rank[g] * (T + 1) + resp_len.cpu().long()
    order = torch.argsort(key, stable=True)
    return list(order.split(size))
