"""One policy update: PPO epochs over mini-batches, micro-batched, with an explicit normaliser.

The batch is a :class:`~passk.rollout.batch.Rollouts` whose training fields the trainer has
set (``advantages``, and ``correct``, ``old_logp``, ``ref_logp``, ``old_topk_*`` where
needed). Each mini-batch is one optimizer step; it is split into micro-batches of
``optim.micro_batch_size`` rows whose gradients accumulate, and every micro-batch divides
by the normaliser of its whole mini-batch (:func:`passk.core.aggregate.global_normalizer`),
so the update does not depend on the micro-batch size. The policy loss is a registered
spec (:func:`passk.core.losses.get_policy_loss`) with its own validated params; the
extra inputs it ``needs`` come from the providers in :data:`NEED_PROVIDERS`. With
``optim.share_prefix`` a group's rows share one micro-batch and its prompt runs once
(:func:`passk.rollout.logprobs.forward_logprobs`).

Token selections that are global over a mini-batch (Clip-Cov / KL-Cov's covariance
selection, the need :data:`~passk.core.losses.COV_SELECT`; the forking-token mask of
``loss.entropy_mask_top``, arXiv 2506.01939) come from a no-grad pre-pass over the
mini-batch's micro-batches (the same micro-batches as the gradient pass, so the same
current-policy log-probs and entropies), computed once on the whole mini-batch and sliced
per micro-batch: the update stays independent of the micro-batch size. Without them, there
is no pre-pass.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from passk.core.aggregate import aggregate_loss, global_normalizer
from passk.core.divergences import dph_divergence_loss
from passk.core.entropy import entropy_loss
from passk.core.kl import kl_penalty_loss
from passk.core.losses import COV_SELECT, PolicyLossSpec, get_policy_loss
from passk.core.token_select import entropy_top_mask
from passk.rollout.batch import Rollouts
from passk.rollout.logprobs import (
    autocast_context,
    forward_logprobs,
    forward_logprobs_batched,
    micro_batch_rows,
)
from passk.seeds import derive_seed

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

# needs computed once per mini-batch by ``params.select_tokens`` (then sliced per micro-batch)
MINI_BATCH_NEEDS = frozenset({COV_SELECT})

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=3)


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


@torch.no_grad()
def mini_batch_selections(
    model: Any,
    mini: Rollouts,
    spec: PolicyLossSpec,
    loss_params: Any,
    *,
    entropy_mask_top: float | None,
    micro_batch_size: int,
    temperature: float,
    autocast: torch.dtype | None,
    share_prefix: bool,
    generator: torch.Generator,
) -> tuple[dict[str, Tensor], Tensor | None]:
    """The mini-batch-global selections of ``mini`` under the current ``model`` (CPU, bool
    ``[B, T]``): ``({need: selection}, forking-token mask or None)``.

    One no-grad pass over the same micro-batches as the gradient pass gives the current
    log-probs and entropies; each need of :data:`MINI_BATCH_NEEDS` is
    ``loss_params.select_tokens(logp, old_logp, advantages, mask, generator=generator)`` over
    the whole mini-batch (``old_logp`` None: the current log-probs, on-policy), and the
    forking mask is :func:`~passk.core.token_select.entropy_top_mask`.
    """
    select = spec.needs & MINI_BATCH_NEEDS
    need = {"logp"} | ({"entropy"} if entropy_mask_top else set())
    out = forward_logprobs_batched(
        model,
        mini,
        micro_batch_size=micro_batch_size,
        autocast=autocast,
        temperature=temperature,
        need=frozenset(need),
        share_prefix=share_prefix,
    )
    mask = mini.response_mask
    needs: dict[str, Tensor] = {}
    if select:
        assert mini.advantages is not None
        logp = out["logp"]
        old = logp if mini.old_logp is None else mini.old_logp
        for name in sorted(select):
            needs[name] = loss_params.select_tokens(
                logp, old, mini.advantages, mask, generator=generator
            )
    keep = entropy_top_mask(out["entropy"], mask, entropy_mask_top) if entropy_mask_top else None
    return needs, keep


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
    track_update: bool = False,
) -> dict[str, float]:
    """PPO epochs over ``batch``; returns metrics (means over micro-batches, token-weighted).

    Args:
        batch: the step's responses with ``advantages`` set (``old_logp`` None: the current
            policy, detached, i.e. on-policy; ``ref_logp`` needed when ``loss.kl_coef > 0``).
        loss, optim, dph: the config sections ``LossConfig``, ``OptimConfig``, ``DPHConfig``.
        temperature: the sampling temperature (the ratio's distribution).
        autocast: compute dtype of the forward/backward (None: the weights' dtype).
        generator: draws the mini-batch permutations; the random token selections (Clip-Cov)
            use seeds derived from its initial seed, without drawing from it.
        dph_batch: stored reference samples with ``ref_logp`` (the DPH term, when
            ``dph.generator`` is set).
        track_update: also report ``update/delta_norm`` and ``update/delta_rel``, the L2
            norm of each optimizer step's weight change (absolute, and over the weights'
            norm), averaged over the optimizer steps (a copy of the weights is held).

    A mini-batch whose loss or gradient norm is not finite is skipped (no optimizer
    step) and counted in ``update/skipped_steps``. The model is left in the train/eval
    mode it came in.

    With ``loss.entropy_mask_top = rho`` only the policy-loss matrix is masked to the
    mini-batch's top-rho tokens by entropy (the paper restricts the policy gradient; the
    entropy bonus and KL terms keep every token) and the normaliser still counts every valid
    token (the paper's ``1 / sum |o_i|``; the official code divides by the kept tokens, a
    constant factor ``1 / rho`` under token-mean). ``actor/entropy_mask_frac`` is the
    fraction of valid tokens that keep the policy gradient.
    """
    spec = get_policy_loss(loss.policy_loss)
    loss_params = spec.make_params(loss.params)
    outputs = _forward_outputs(spec)
    ent_top = getattr(loss, "entropy_mask_top", None) or None
    pre_pass = bool(spec.needs & MINI_BATCH_NEEDS) or ent_top is not None
    warning = getattr(loss_params, "on_policy_warning", None)
    if warning and optim.ppo_epochs == 1 and optim.mini_batches == 1:
        _warn_once(warning)
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
    deltas: list[tuple[float, float]] = []
    t_model = t_optim = 0.0  # forward + backward; clipping + optimizer step
    was_training = model.training
    model.train()
    try:
        seed = generator.initial_seed()  # selections draw from their own derived seeds
        for mb_index, mb_rows in enumerate(_mini_batches(len(batch), optim, generator)):
            mini = batch.rows(mb_rows)
            mask = mini.response_mask
            norm = global_normalizer(
                mask, loss.aggregation, max_len=mask.shape[1], constant=loss.aggregation_constant
            )
            optimizer.zero_grad(set_to_none=True)
            finite = True
            size = optim.micro_batch_size
            mini_needs: dict[str, Tensor] = {}
            keep_mini = None
            if pre_pass:
                t0 = time.perf_counter()
                mini_needs, keep_mini = mini_batch_selections(
                    model,
                    mini,
                    spec,
                    loss_params,
                    entropy_mask_top=ent_top,
                    micro_batch_size=size,
                    temperature=temperature,
                    autocast=autocast,
                    share_prefix=share,
                    generator=torch.Generator().manual_seed(
                        derive_seed(seed, "token-select", mb_index)
                    ),
                )
                t_model += time.perf_counter() - t0
            for index in micro_batch_rows(mini, size):
                t0 = time.perf_counter()
                mb = mini.rows(index)
                rmask = mb.response_mask.to(device)
                t = rmask.shape[1]  # the micro-batch's columns are a prefix of the mini-batch's
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
                extra = {
                    need: mini_needs[need][index, :t].to(device)
                    if need in mini_needs
                    else NEED_PROVIDERS[need](out, mb)
                    for need in spec.needs
                }
                assert mb.advantages is not None
                total, m = spec.compute(
                    logp, old, mb.advantages.to(device), rmask, loss_params, **extra
                )
                if keep_mini is not None:  # forking tokens: the policy term only
                    keep = keep_mini[index, :t].to(device)
                    total = torch.where(keep, total, torch.zeros_like(total))
                    kept = (keep & rmask).sum() / rmask.sum().clamp(min=1)
                    m["actor/entropy_mask_frac"] = kept.float()
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
            before = [p.detach().clone() for p in params] if track_update else None
            optimizer.step()
            if before is not None:
                deltas.append(_delta_norms(params, before))
                del before
            scheduler.step()
            steps += 1
            t_optim += time.perf_counter() - t0
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    result = metrics.means()
    result["actor/grad_norm"] = sum(grad_norms) / len(grad_norms) if grad_norms else math.nan
    if track_update:
        result["update/delta_norm"] = _mean([d for d, _ in deltas])
        result["update/delta_rel"] = _mean([r for _, r in deltas])
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


def _delta_norms(params: list[Tensor], before: list[Tensor]) -> tuple[float, float]:
    """||theta - theta_before|| and that over ||theta||, in float64 sums."""
    with torch.no_grad():
        sq = sum(float((p.detach() - b).double().pow(2).sum()) for p, b in zip(params, before))
        norm_sq = sum(float(p.detach().double().pow(2).sum()) for p in params)
    delta = math.sqrt(sq)
    return delta, delta / math.sqrt(norm_sq) if norm_sq > 0 else math.nan


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _grad_norm(params: list[Tensor], clip: float) -> float:
    """Total gradient norm (before clipping); clips in place when ``clip`` > 0."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    max_norm = clip if clip > 0 else math.inf
    norm = torch.nn.utils.clip_grad_norm_(grads, max_norm, error_if_nonfinite=False)
    return float(norm)
