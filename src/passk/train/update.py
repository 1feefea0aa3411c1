"""One policy update: PPO epochs over mini-batches, micro-batched, with an explicit normaliser.

The batch is a flat list of responses (``[B, ...]`` tensors). Each mini-batch is one
optimizer step; it is split into micro-batches of ``micro_batch_size`` rows whose
gradients accumulate, and every micro-batch divides by the normaliser of its whole
mini-batch (:func:`passk.core.aggregate.global_normalizer`), so the update does not
depend on the micro-batch size. Policy losses come from the registry
(:func:`passk.core.policy_losses.get_policy_loss`); the extra inputs a loss ``needs`` are
computed by the providers in :data:`NEED_PROVIDERS`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from passk.core.aggregate import aggregate_loss, global_normalizer
from passk.core.divergences import dph_divergence_loss
from passk.core.entropy import entropy_from_logits, entropy_loss
from passk.core.kl import kl_penalty_loss
from passk.core.policy_losses import get_policy_loss
from passk.rollout.logprobs import _position_ids, response_logprobs

# Top tokens gathered when a loss needs them (SimKO uses the first K <= this).
TOPK_WIDTH = 3


@dataclass
class UpdateBatch:
    """The responses of one step, prompt left-padded and response right-padded."""

    input_ids: Tensor  # [B, S] long
    attention_mask: Tensor  # [B, S] bool
    response_mask: Tensor  # [B, T] bool, the last T columns of input_ids
    advantages: Tensor  # [B] float32
    correct: Tensor  # [B] bool
    old_logp: Tensor | None = None  # [B, T] behaviour log-probs (None: current, detached)
    ref_logp: Tensor | None = None  # [B, T] reference log-probs (KL penalty)
    old_topk_ids: Tensor | None = None  # [B, T, TOPK_WIDTH] behaviour policy's top tokens
    old_topk_logp: Tensor | None = None  # [B, T, TOPK_WIDTH] their behaviour log-probs

    def __post_init__(self) -> None:
        B, S = self.input_ids.shape
        T = self.response_mask.shape[1]
        assert self.attention_mask.shape == (B, S) and self.response_mask.shape == (B, T)
        assert self.advantages.shape == (B,) and self.correct.shape == (B,)
        for t in (self.old_logp, self.ref_logp):
            assert t is None or t.shape == (B, T)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, index: Tensor) -> UpdateBatch:
        """The sub-batch of rows ``index``, trimmed to the columns those rows use."""

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        rmask = self.response_mask[index]
        S, T = self.input_ids.shape[1], self.response_mask.shape[1]
        t_used = max(int(rmask.any(0).nonzero().max()) + 1 if rmask.any() else 1, 1)
        prompt_cols = self.attention_mask[index, : S - T].any(0).nonzero()
        first = min(int(prompt_cols.min()) if len(prompt_cols) else S - T - 1, S - T - 1)
        end = S - T + t_used

        def resp(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index][:, :t_used]

        return UpdateBatch(
            input_ids=self.input_ids[index, first:end],
            attention_mask=self.attention_mask[index, first:end],
            response_mask=rmask[:, :t_used],
            advantages=self.advantages[index],
            correct=self.correct[index],
            old_logp=resp(self.old_logp),
            ref_logp=resp(self.ref_logp),
            old_topk_ids=resp(self.old_topk_ids),
            old_topk_logp=resp(self.old_topk_logp),
        )


@dataclass
class DPHBatch:
    """Stored reference samples of near-perfect prompts with their reference log-probs."""

    input_ids: Tensor  # [B, S]
    attention_mask: Tensor  # [B, S] bool
    response_mask: Tensor  # [B, T] bool
    ref_logp: Tensor  # [B, T]


@dataclass(frozen=True)
class UpdateSettings:
    """What the update needs from the config (plain values; see TrainConfig for docs)."""

    policy_loss: str = "ppo_clip"
    policy_loss_params: tuple[tuple[str, Any], ...] = ()
    eps_low: float = 0.2
    eps_high: float = 0.28
    dual_clip: float | None = None
    aggregation: str = "token-mean"
    aggregation_constant: float | None = None
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    kl_clamp: float | None = 10.0
    entropy_coef: float = 0.0
    dph_generator: str | None = None
    dph_alpha: float = 0.2
    dph_coef: float = 0.0
    temperature: float = 1.0
    ppo_epochs: int = 1
    mini_batches: int = 1
    micro_batch_size: int = 8
    grad_clip: float = 1.0
    autocast: torch.dtype | None = None


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _topk_forward(
    model: Any, mb: UpdateBatch, temperature: float, topk_ids: Tensor | None
) -> dict[str, Tensor]:
    """Sampled-token log-probs, entropy and the top-k tokens' log-probs in one forward.

    Materialises the response positions' full log-softmax (memory ``tokens x vocab``),
    which only losses that need top-k log-probs pay for. ``topk_ids`` (``[b, t, K]``)
    fixes which tokens to gather (the behaviour policy's top tokens); None takes the
    current top tokens.
    """
    device = next(model.parameters()).device
    ids, attn = mb.input_ids.to(device), mb.attention_mask.to(device).long()
    rmask = mb.response_mask.to(device)
    S, T = ids.shape[1], rmask.shape[1]
    hidden = model.get_decoder()(
        input_ids=ids, attention_mask=attn, position_ids=_position_ids(attn), use_cache=False
    ).last_hidden_state[:, S - T - 1 : S - 1]  # [b, t, H]
    logits = model.get_output_embeddings()(hidden[rmask]).float() / temperature  # [n, V]
    logsm = torch.log_softmax(logits, dim=-1)
    labels = ids[:, S - T :][rmask]  # [n]
    lp = logsm.gather(-1, labels[:, None]).squeeze(-1)
    ent = entropy_from_logits(logits)
    top1 = logsm.detach().argmax(-1)
    if topk_ids is None:
        idx = logsm.detach().topk(TOPK_WIDTH, dim=-1).indices  # [n, K]
    else:
        idx = topk_ids.to(device)[rmask]
    tk = logsm.gather(-1, idx)  # [n, K]

    def scatter(x: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        out = torch.zeros(shape, dtype=dtype, device=device)
        out[rmask] = x.to(dtype)
        return out

    b = ids.shape[0]
    return {
        "logp": scatter(lp, (b, T), torch.float32),
        "entropy": scatter(ent, (b, T), torch.float32),
        "topk_logp": scatter(tk, (b, T, idx.shape[-1]), torch.float32),
        "topk_ids": scatter(idx, (b, T, idx.shape[-1]), torch.long),
        "sampled_is_top1": scatter(top1 == labels, (b, T), torch.bool),
    }


def policy_forward(
    model: Any, mb: UpdateBatch, temperature: float, *, topk: bool = False
) -> dict[str, Tensor]:
    """Current-policy ``logp`` and ``entropy`` ``[b, t]`` (with graph); top-k fields if asked."""
    if topk:
        return _topk_forward(model, mb, temperature, mb.old_topk_ids)
    logp, ent = response_logprobs(
        model,
        mb.input_ids,
        mb.attention_mask,
        mb.response_mask,
        temperature=temperature,
        with_entropy=True,
    )
    assert ent is not None
    return {"logp": logp, "entropy": ent}


# need name -> fn(forward outputs, micro-batch, old_logp) giving the keyword tensor
NEED_PROVIDERS: dict[str, Callable[[dict[str, Tensor], UpdateBatch], Tensor]] = {
    "entropy": lambda out, mb: out["entropy"].detach(),
    "correct": lambda out, mb: mb.correct.to(out["logp"].device),
    "topk_logp": lambda out, mb: out["topk_logp"],
    "topk_old_logp": lambda out, mb: (
        out["topk_logp"].detach()
        if mb.old_topk_logp is None
        else mb.old_topk_logp.to(out["logp"].device)
    ),
    "sampled_is_top1": lambda out, mb: out["sampled_is_top1"],
}


def needs_topk(policy_loss: str) -> bool:
    """Whether the registered policy loss needs the top-k forward (:func:`_topk_forward`)."""
    return bool(get_policy_loss(policy_loss).needs & _TOPK_NEEDS)


_TOPK_NEEDS = frozenset({"topk_logp", "topk_old_logp", "sampled_is_top1"})


@torch.no_grad()
def behaviour_pass(
    model: Any, batch: UpdateBatch, s: UpdateSettings, *, topk: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Log-probs (and top-k ids/log-probs) of the batch under ``model`` before the update."""
    B, T = batch.response_mask.shape
    logp = torch.zeros(B, T)
    ids = torch.zeros(B, T, TOPK_WIDTH, dtype=torch.long) if topk else None
    tlp = torch.zeros(B, T, TOPK_WIDTH) if topk else None
    device = next(model.parameters()).device
    for index in micro_batches(batch, s.micro_batch_size):
        mb = batch.rows(index)
        with autocast_context(device, s.autocast):
            out = policy_forward(model, mb, s.temperature, topk=topk)
        t = mb.response_mask.shape[1]
        logp[index, :t] = out["logp"].float().cpu()
        if ids is not None and tlp is not None:
            ids[index, :t] = out["topk_ids"].cpu()
            tlp[index, :t] = out["topk_logp"].float().cpu()
    return logp, ids, tlp


def micro_batches(batch: UpdateBatch, size: int) -> list[Tensor]:
    """Row indices of micro-batches of ``size`` rows, grouped by sequence length.

    Rows of similar length share a micro-batch, so little compute goes to padding; the
    update itself does not depend on the grouping (explicit normaliser).
    """
    prompt_len = batch.attention_mask[:, : -batch.response_mask.shape[1]].sum(1)
    total = prompt_len + batch.response_mask.sum(1)  # [B]
    order = torch.argsort(total, stable=True)
    return list(order.split(size))


class MetricSum:
    """Token-weighted means of per-micro-batch metrics."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, metrics: dict[str, Tensor], weight: float) -> None:
        for key, value in metrics.items():
            v = float(value)
            if key.endswith("_max"):
                self.sums[key] = max(self.sums.get(key, -math.inf), v)
                self.weights[key] = 1.0
            elif key.endswith("_min"):
                self.sums[key] = min(self.sums.get(key, math.inf), v)
                self.weights[key] = 1.0
            else:
                self.sums[key] = self.sums.get(key, 0.0) + v * weight
                self.weights[key] = self.weights.get(key, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def _mini_batches(n_rows: int, s: UpdateSettings, generator: torch.Generator) -> Iterator[Tensor]:
    for _ in range(s.ppo_epochs):
        order = torch.randperm(n_rows, generator=generator) if s.mini_batches > 1 else None
        rows = torch.arange(n_rows) if order is None else order
        yield from rows.tensor_split(s.mini_batches)


def policy_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: UpdateBatch,
    s: UpdateSettings,
    *,
    generator: torch.Generator,
    dph: DPHBatch | None = None,
    on_micro_batch: Callable[[], None] | None = None,
) -> dict[str, float]:
    """PPO epochs over ``batch``; returns metrics (means over micro-batches, token-weighted).

    A mini-batch whose loss or gradient norm is not finite is skipped (no optimizer
    step) and counted in ``update/skipped_steps``.
    """
    spec = get_policy_loss(s.policy_loss)
    topk = needs_topk(s.policy_loss)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    metrics = MetricSum()
    skipped = steps = 0
    grad_norms: list[float] = []
    t_model = t_optim = 0.0  # forward + backward; clipping + optimizer step
    model.train()
    for mb_rows in _mini_batches(len(batch), s, generator):
        mini = batch.rows(mb_rows)
        mask = mini.response_mask
        norm = global_normalizer(
            mask, s.aggregation, max_len=mask.shape[1], constant=s.aggregation_constant
        )
        optimizer.zero_grad(set_to_none=True)
        finite = True
        for index in micro_batches(mini, s.micro_batch_size):
            t0 = time.perf_counter()
            mb = mini.rows(index)
            rmask = mb.response_mask.to(device)
            with autocast_context(device, s.autocast):
                out = policy_forward(model, mb, s.temperature, topk=topk)
            logp = out["logp"]
            old = logp.detach() if mb.old_logp is None else mb.old_logp.to(device)
            extra = {need: NEED_PROVIDERS[need](out, mb) for need in spec.needs}
            pg, m = spec.fn(
                logp,
                old,
                mb.advantages.to(device),
                rmask,
                eps_low=s.eps_low,
                eps_high=s.eps_high,
                dual_clip=s.dual_clip,
                **extra,
                **dict(s.policy_loss_params),
            )
            total = pg
            ent_mat, ent_m = entropy_loss(out["entropy"], rmask)
            m.update(ent_m)
            if s.entropy_coef:
                total = total + s.entropy_coef * ent_mat
            if s.kl_coef and mb.ref_logp is not None:
                kl_mat, kl_m = kl_penalty_loss(
                    logp, mb.ref_logp.to(device), rmask, kind=s.kl_estimator, clamp=s.kl_clamp
                )
                total = total + s.kl_coef * kl_mat
                m.update(kl_m)
            loss = aggregate_loss(total, rmask, s.aggregation, normalizer=norm)
            if not torch.isfinite(loss):
                finite = False
                break
            loss.backward()
            metrics.add(m, float(rmask.sum()))
            t_model += time.perf_counter() - t0
            if on_micro_batch is not None:
                on_micro_batch()
        if finite and dph is not None and s.dph_generator is not None and len(dph.ref_logp):
            t0 = time.perf_counter()
            finite = _dph_backward(model, dph, s, device, metrics)
            t_model += time.perf_counter() - t0
        t0 = time.perf_counter()
        grad_norm = _grad_norm(params, s.grad_clip) if finite else math.nan
        if not math.isfinite(grad_norm):
            optimizer.zero_grad(set_to_none=True)
            skipped += 1
            t_optim += time.perf_counter() - t0
            continue
        grad_norms.append(grad_norm)
        optimizer.step()
        scheduler.step()
        steps += 1
        t_optim += time.perf_counter() - t0
    optimizer.zero_grad(set_to_none=True)
    result = metrics.means()
    result["actor/grad_norm"] = sum(grad_norms) / len(grad_norms) if grad_norms else math.nan
    result["update/optimizer_steps"] = float(steps)
    result["update/skipped_steps"] = float(skipped)
    result["time/forward_backward"] = t_model
    result["time/optimizer"] = t_optim
    return result


def _dph_backward(
    model: Any, dph: DPHBatch, s: UpdateSettings, device: torch.device, metrics: MetricSum
) -> bool:
    """Add ``dph_coef * token-mean f(pi/pi_ref)`` over the stored reference samples."""
    ref = UpdateBatch(
        input_ids=dph.input_ids,
        attention_mask=dph.attention_mask,
        response_mask=dph.response_mask,
        advantages=torch.zeros(len(dph.input_ids)),
        correct=torch.ones(len(dph.input_ids), dtype=torch.bool),
        ref_logp=dph.ref_logp,
    )
    norm = global_normalizer(ref.response_mask, "token-mean")
    for index in micro_batches(ref, s.micro_batch_size):
        mb = ref.rows(index)
        rmask = mb.response_mask.to(device)
        with autocast_context(device, s.autocast):
            out = policy_forward(model, mb, s.temperature)
        assert mb.ref_logp is not None
        div, m = dph_divergence_loss(
            out["logp"],
            mb.ref_logp.to(device),
            rmask,
            kind=s.dph_generator or "forward_kl",
            alpha=s.dph_alpha,
        )
        loss = s.dph_coef * aggregate_loss(div, rmask, "token-mean", normalizer=norm)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        metrics.add(m, float(rmask.sum()))
    return True


def _grad_norm(params: list[Tensor], clip: float) -> float:
    """Total gradient norm (before clipping); clips in place when ``clip`` > 0."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    max_norm = clip if clip > 0 else math.inf
    norm = torch.nn.utils.clip_grad_norm_(grads, max_norm, error_if_nonfinite=False)
    return float(norm)
