"""One policy update: PPO epochs over mini-batches, micro-batched, with an explicit normaliser.

The batch is a :class:`~passk.rollout.batch.Rollouts` whose training fields the trainer has
set (``advantages``, and ``correct``, ``old_logp``, ``ref_logp``, ``old_topk_*`` where
needed). Each mini-batch is one optimizer step; it is split into micro-batches of
``optim.micro_batch_size`` rows whose gradients accumulate, and every micro-batch divides
by the normaliser of its whole mini-batch (:func:`passk.core.aggregate.global_normalizer`),
so the update does not depend on the micro-batch size. The policy loss is a registered
spec (:func:`passk.core.policy_losses.get_policy_loss`) with its own validated params; the
extra inputs it ``needs`` come from the providers in :data:`NEED_PROVIDERS`. With
``optim.share_prefix`` a group's rows share one micro-batch and its prompt runs once
(:func:`passk.rollout.logprobs.forward_logprobs`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from passk.core.aggregate import aggregate_loss, global_normalizer
from passk.core.divergences import dph_divergence_loss
from passk.core.entropy import entropy_loss
from passk.core.kl import kl_penalty_loss
from passk.core.policy_losses import PolicyLossSpec, get_policy_loss
from passk.rollout.batch import Rollouts
from passk.rollout.logprobs import (
    autocast_context,
    forward_logprobs,
    forward_logprobs_batched,
    micro_batch_rows,
)

# Top tokens gathered when a loss needs them (SimKO uses the first K <= this).
TOPK_WIDTH = 3


def _need(value: Tensor | None, name: str) -> Tensor:
    if value is None:
        raise ValueError(f"the policy loss needs batch.{name}, which the trainer did not set")
    return value


# need name -> fn(forward outputs, micro-batch) giving the keyword tensor
NEED_PROVIDERS: dict[str, Callable[[dict[str, Tensor], Rollouts], Tensor]] = {
    "entropy": lambda out, mb: out["entropy"].detach(),
    "correct": lambda out, mb: _need(mb.correct, "correct").to(out["logp"].device),
    "topk_logp": lambda out, mb: out["topk_logp"],
    "topk_old_logp": lambda out, mb: (
        out["topk_logp"].detach()
        if mb.old_topk_logp is None
        else mb.old_topk_logp.to(out["logp"].device)
    ),
    "sampled_is_top1": lambda out, mb: out["sampled_is_top1"],
}

# needs that the forward provides through its top-K outputs
_TOPK_NEEDS = frozenset({"topk_logp", "topk_old_logp", "sampled_is_top1"})


def needs_topk(policy_loss: str | PolicyLossSpec) -> bool:
    """Whether the policy loss needs the forward's top-K outputs (and the behaviour's)."""
    spec = get_policy_loss(policy_loss) if isinstance(policy_loss, str) else policy_loss
    return bool(spec.needs & _TOPK_NEEDS)


def _forward_outputs(spec: PolicyLossSpec) -> frozenset[str]:
    """What the update's forward returns: log-prob, entropy (metric, bonus), top-K if needed."""
    out = {"logp", "entropy"}
    if needs_topk(spec):
        out |= {"topk_logp", "topk_ids", "sampled_is_top1"}
    return frozenset(out)


@torch.no_grad()
def behaviour_pass(
    model: Any,
    batch: Rollouts,
    *,
    micro_batch_size: int,
    temperature: float,
    autocast: torch.dtype | None,
    topk: bool,
    share_prefix: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Log-probs ``[B, T]`` (and top-K ids/log-probs ``[B, T, K]``) of ``batch`` under
    ``model`` before the update (behaviour policy, or the reference); CPU tensors."""
    need = {"logp"} | ({"topk_ids", "topk_logp"} if topk else set())
    out = forward_logprobs_batched(
        model,
        batch,
        micro_batch_size=micro_batch_size,
        autocast=autocast,
        temperature=temperature,
        need=frozenset(need),
        topk_width=TOPK_WIDTH,
        share_prefix=share_prefix,
    )
    return out["logp"], out.get("topk_ids"), out.get("topk_logp")


class MetricSum:
    """Token-weighted means of per-micro-batch metrics (``*_max``/``*_min``: extremes)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor | float] = {}
        self.weights: dict[str, float] = {}

    def add(self, metrics: dict[str, Tensor], weight: float) -> None:
        # tensors are summed as tensors: one .item() per key at the end, not per micro-batch
        for key, value in metrics.items():
            v = value.detach().float() if isinstance(value, Tensor) else float(value)
            if key.endswith("_max"):
                old = self.sums.get(key)
                self.sums[key] = v if old is None else torch.maximum(torch.as_tensor(old), v)
                self.weights[key] = 1.0
            elif key.endswith("_min"):
                old = self.sums.get(key)
                self.sums[key] = v if old is None else torch.minimum(torch.as_tensor(old), v)
                self.weights[key] = 1.0
            else:
                self.sums[key] = self.sums.get(key, 0.0) + v * weight
                self.weights[key] = self.weights.get(key, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {k: float(self.sums[k]) / self.weights[k] for k in self.sums if self.weights[k] > 0}


def _mini_batches(n_rows: int, optim: Any, generator: torch.Generator) -> Iterator[Tensor]:
    for _ in range(optim.ppo_epochs):
        if optim.mini_batches > 1:
            rows = torch.randperm(n_rows, generator=generator)
        else:
            rows = torch.arange(n_rows)
        yield from rows.tensor_split(optim.mini_batches)


def policy_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: Rollouts,
    *,
    loss: Any,
    optim: Any,
    dph: Any,
    temperature: float,
    autocast: torch.dtype | None,
    generator: torch.Generator,
    dph_batch: Rollouts | None = None,
) -> dict[str, float]:
    """PPO epochs over ``batch``; returns metrics (means over micro-batches, token-weighted).

    Args:
        batch: the step's responses with ``advantages`` set (``old_logp`` None: the current
            policy, detached, i.e. on-policy; ``ref_logp`` needed when ``loss.kl_coef > 0``).
        loss, optim, dph: the config sections ``LossConfig``, ``OptimConfig``, ``DPHConfig``.
        temperature: the sampling temperature (the ratio's distribution).
        autocast: compute dtype of the forward/backward (None: the weights' dtype).
        generator: draws the mini-batch permutations.
        dph_batch: stored reference samples with ``ref_logp`` (the DPH term, when
            ``dph.generator`` is set).

    A mini-batch whose loss or gradient norm is not finite is skipped (no optimizer
    step) and counted in ``update/skipped_steps``. The model is left in the train/eval
    mode it came in.
    """
    spec = get_policy_loss(loss.policy_loss)
    loss_params = spec.make_params(loss.params)
    outputs = _forward_outputs(spec)
    if batch.advantages is None:
        raise ValueError("policy_update needs batch.advantages")
    if loss.kl_coef > 0 and batch.ref_logp is None:
        raise ValueError("loss.kl_coef > 0 needs batch.ref_logp (the reference log-probs)")
    share = bool(optim.share_prefix)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    metrics = MetricSum()
    skipped = steps = 0
    grad_norms: list[float] = []
    t_model = t_optim = 0.0  # forward + backward; clipping + optimizer step
    was_training = model.training
    model.train()
    try:
        for mb_rows in _mini_batches(len(batch), optim, generator):
            mini = batch.rows(mb_rows)
            mask = mini.response_mask
            norm = global_normalizer(
                mask, loss.aggregation, max_len=mask.shape[1], constant=loss.aggregation_constant
            )
            optimizer.zero_grad(set_to_none=True)
            finite = True
            size = optim.micro_batch_size
            for index in micro_batch_rows(mini, size):
                t0 = time.perf_counter()
                mb = mini.rows(index)
                rmask = mb.response_mask.to(device)
                with autocast_context(device, autocast):
                    out = forward_logprobs(
                        model,
                        mb,
                        temperature=temperature,
                        need=outputs,
                        topk_ids=mb.old_topk_ids,
                        topk_width=TOPK_WIDTH,
                        share_prefix=share,
                    )
                logp = out["logp"]
                old = logp.detach() if mb.old_logp is None else mb.old_logp.to(device)
                extra = {need: NEED_PROVIDERS[need](out, mb) for need in spec.needs}
                assert mb.advantages is not None
                total, m = spec.compute(
                    logp, old, mb.advantages.to(device), rmask, loss_params, **extra
                )
                ent_mat, ent_m = entropy_loss(out["entropy"], rmask)
                m.update(ent_m)
                if loss.entropy_coef:
                    total = total + loss.entropy_coef * ent_mat
                if loss.kl_coef > 0:
                    assert mb.ref_logp is not None
                    kl_mat, kl_m = kl_penalty_loss(
                        logp,
                        mb.ref_logp.to(device),
                        rmask,
                        kind=loss.kl_estimator,
                        clamp=loss.kl_clamp,
                    )
                    total = total + loss.kl_coef * kl_mat
                    m.update(kl_m)
                value = aggregate_loss(total, rmask, loss.aggregation, normalizer=norm)
                if not torch.isfinite(value):
                    finite = False
                    break
                value.backward()
                metrics.add(m, float(rmask.sum()))
                t_model += time.perf_counter() - t0
            if finite and dph.generator is not None and dph_batch is not None and len(dph_batch):
                t0 = time.perf_counter()
                finite = _dph_backward(
                    model, dph_batch, dph, size, temperature, autocast, share, metrics
                )
                t_model += time.perf_counter() - t0
            t0 = time.perf_counter()
            grad_norm = _grad_norm(params, optim.grad_clip) if finite else math.nan
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
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    result = metrics.means()
    result["actor/grad_norm"] = sum(grad_norms) / len(grad_norms) if grad_norms else math.nan
    result["update/optimizer_steps"] = float(steps)
    result["update/skipped_steps"] = float(skipped)
    result["time/forward_backward"] = t_model
    result["time/optimizer"] = t_optim
    return result


def _dph_backward(
    model: Any,
    ref: Rollouts,
    dph: Any,
    micro_batch_size: int,
    temperature: float,
    autocast: torch.dtype | None,
    share: bool,
    metrics: MetricSum,
) -> bool:
    """Add ``dph.coef * token-mean f(pi/pi_ref)`` over the stored reference samples."""
    if ref.ref_logp is None:
        raise ValueError("the DPH batch needs ref_logp (the reference log-probs of its samples)")
    device = next(model.parameters()).device
    norm = global_normalizer(ref.response_mask, "token-mean")
    for index in micro_batch_rows(ref, micro_batch_size):
        mb = ref.rows(index)
        assert mb.ref_logp is not None
        rmask = mb.response_mask.to(device)
        with autocast_context(device, autocast):
            out = forward_logprobs(model, mb, temperature=temperature, share_prefix=share)
        div, m = dph_divergence_loss(
            out["logp"], mb.ref_logp.to(device), rmask, kind=dph.generator, alpha=dph.alpha
        )
        value = dph.coef * aggregate_loss(div, rmask, "token-mean", normalizer=norm)
        if not torch.isfinite(value):
            return False
        value.backward()
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
