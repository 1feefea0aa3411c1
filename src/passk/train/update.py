"""One policy update, read top to bottom: epochs -> mini-batches -> micro-batches ->
objective -> aggregate -> step.

The batch is a :class:`~passk.rollout.batch.Rollouts` whose training fields the trainer has
set (``advantages``, and ``correct``, ``ref_logp``, ``old_logp`` where needed). Each
mini-batch is one optimizer step; it is split into micro-batches of
``optim.micro_batch_size`` rows whose gradients accumulate, and every micro-batch divides
by the normaliser of its whole mini-batch (:func:`passk.core.aggregate.global_normalizer`),
so the update does not depend on the micro-batch size. The per-micro-batch loss is
:func:`passk.train.objective.objective`. With ``optim.share_prefix`` a group's rows share
one micro-batch and its prompt runs once (:func:`passk.rollout.logprobs.forward_logprobs`).

Behaviour log-probs. When the update is not fully on-policy (several epochs or
mini-batches) and the caller did not set ``old_logp``, they come from a no-grad pass over
*the very micro-batches of the first epoch* (:func:`behaviour_logprobs`): the same rows,
the same padding, the same kernels, so before any optimizer step the importance ratio is
exactly 1, under bf16 autocast too. A pass over other micro-batches differs by bf16
rounding, which is wider than GSPO's clip band (3e-4) and silently clipped every token.
The ratio measured before the first optimizer step is logged (``update/ratio_noise``,
the largest ``|r - 1|`` the loss saw) and a warning says so when it exceeds the loss's
clip band (e.g. ``optim.old_logprobs=rollout`` with a bf16 sampling copy).

Token selections that are global over a mini-batch (Clip-Cov / KL-Cov's covariance
selection, the need :data:`~passk.core.losses.COV_SELECT`; the forking-token mask of
``loss.entropy_mask_top``, arXiv 2506.01939) come from a no-grad pre-pass over the
mini-batch's micro-batches, computed once on the whole mini-batch and sliced per
micro-batch (:func:`mini_batch_selections`).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from typing import Any

import torch
from torch import Tensor

from passk.core.aggregate import aggregate_loss, global_normalizer
from passk.core.divergences import dph_divergence_loss
from passk.core.losses import PolicyLossSpec
from passk.core.token_select import entropy_top_mask
from passk.rollout.batch import Rollouts
from passk.rollout.logprobs import (
    autocast_context,
    forward_logprobs,
    forward_logprobs_batched,
    micro_batch_rows,
)
from passk.seeds import derive_seed
from passk.train.config import DPHConfig, LossConfig, OptimConfig
from passk.train.objective import (
    MINI_BATCH_NEEDS,
    NEED_PROVIDERS,
    TOPK_WIDTH,
    Objective,
    clip_band,
    mismatch_metrics,
    needs_topk,
    objective,
)

__all__ = [
    "NEED_PROVIDERS",
    "TOPK_WIDTH",
    "MetricSum",
    "behaviour_logprobs",
    "behaviour_pass",
    "mini_batch_plan",
    "mini_batch_selections",
    "needs_topk",
    "policy_update",
]

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=3)


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


def policy_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: Rollouts,
    *,
    loss: LossConfig,
    optim: OptimConfig,
    dph: DPHConfig,
    temperature: float,
    autocast: torch.dtype | None,
    generator: torch.Generator,
    dph_batch: Rollouts | None = None,
    track_update: bool = False,
    entropy_coef: float | None = None,
    entropic_alpha: float = 0.0,
) -> dict[str, float]:
    """PPO epochs over ``batch``; returns metrics (means over micro-batches, token-weighted).

    ``batch`` has ``advantages`` (``old_logp`` None: see the module docstring; ``ref_logp``
    when ``loss.kl_coef > 0``). ``temperature`` is the sampling temperature, ``autocast``
    the compute dtype (None: the weights'), ``generator`` draws the mini-batch permutations
    (token selections use seeds derived from its initial seed, without drawing from it),
    ``dph_batch`` holds stored reference samples with ``ref_logp`` (the DPH term);
    ``track_update`` adds ``update/delta_norm`` and ``update/delta_rel``; ``entropy_coef``
    (None: ``loss.entropy_coef``) and ``entropic_alpha`` are the entropy controllers' outputs
    for this update. A mini-batch whose
    loss or gradient norm is not finite is skipped and counted; ``optim.target_kl`` stops
    the remaining mini-batches once one's mean approximate KL passes it. The model is left
    in the train/eval mode it came in.
    """
    obj = Objective.from_config(
        loss, optim, entropy_coef=entropy_coef, entropic_alpha=entropic_alpha
    )
    run = _Run(model, obj, optim, temperature, autocast, track_update)
    run.check(batch, loss)
    plan = mini_batch_plan(len(batch), optim, generator)  # [epoch][mini-batch] -> rows
    seed, index = generator.initial_seed(), 0
    was_training = model.training
    model.train()
    try:
        if batch.old_logp is None and not _on_policy(optim):
            batch = behaviour_logprobs(run, batch, plan[0])  # the first epoch's micro-batches
        for minis in plan:
            for rows in minis:
                mini = batch.rows(rows)
                norm = _normalizer(mini, loss)
                select, keep = run.selections(mini, derive_seed(seed, "token-select", index))
                optimizer.zero_grad(set_to_none=True)
                finite, kl = True, MetricSum()
                for micro in micro_batch_rows(mini, optim.micro_batch_size):
                    mb = mini.rows(micro)
                    t = mb.response_mask.shape[1]
                    out = run.forward(mb)
                    loss_mat, m = objective(
                        obj,
                        out,
                        mb,
                        selections={k: v[micro, :t] for k, v in select.items()},
                        keep=None if keep is None else keep[micro, :t],
                    )
                    mask = mb.response_mask.to(run.device)
                    value = aggregate_loss(loss_mat, mask, loss.aggregation, normalizer=norm)
                    if not torch.isfinite(value):
                        finite = False
                        break
                    run.timed(value.backward)
                    run.record(m, rows[micro], mb, out)
                    kl.add({"kl": m.get("actor/approx_kl", 0.0)}, float(mask.sum()))
                finite = finite and run.dph_backward(dph, dph_batch)
                run.step(optimizer, scheduler, finite)
                index += 1
                if optim.target_kl is not None and kl.means().get("kl", 0.0) > optim.target_kl:
                    return run.result(batch, stopped_at=index, of=sum(map(len, plan)))
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    return run.result(batch)


def _normalizer(mini: Rollouts, loss: LossConfig) -> Tensor | float:
    """The mini-batch's normaliser, shared by all its micro-batches."""
    mask = mini.response_mask
    return global_normalizer(
        mask, loss.aggregation, max_len=mask.shape[1], constant=loss.aggregation_constant
    )


def _on_policy(optim: OptimConfig) -> bool:
    """One epoch, one mini-batch, no forced recompute: the current log-probs, detached,
    are the behaviour policy's."""
    return (
        optim.ppo_epochs == 1
        and optim.mini_batches == 1
        and getattr(optim, "old_logprobs", "auto") != "recompute"
    )


def mini_batch_plan(
    n_rows: int, optim: OptimConfig, generator: torch.Generator
) -> list[list[Tensor]]:
    """Rows of each mini-batch of each epoch (a fresh permutation per epoch when there are
    several mini-batches), drawn up front so the behaviour pass can follow the first epoch."""
    plan = []
    for _ in range(optim.ppo_epochs):
        if optim.mini_batches > 1:
            rows = torch.randperm(n_rows, generator=generator)
        else:
            rows = torch.arange(n_rows)
        plan.append(list(rows.tensor_split(optim.mini_batches)))
    return plan


@torch.no_grad()
def behaviour_logprobs(run: _Run, batch: Rollouts, minis: list[Tensor]) -> Rollouts:
    """A shallow copy of ``batch`` with ``old_logp`` (and ``old_topk_*`` when the loss needs
    them) from the current policy, each row computed in the micro-batch where the first
    epoch will train it: bit-identical to that training forward, so the ratio starts at 1."""
    B, T = batch.response_mask.shape
    old = torch.zeros(B, T)
    topk = needs_topk(run.obj.policy)
    ids = torch.zeros(B, T, TOPK_WIDTH, dtype=torch.long) if topk else None
    top = torch.zeros(B, T, TOPK_WIDTH) if topk else None
    t_model = run.t_model  # this pass's forward time is the behaviour pass's, not the update's
    for rows in minis:
        mini = batch.rows(rows)
        for micro in micro_batch_rows(mini, run.optim.micro_batch_size):
            mb = mini.rows(micro)
            t = mb.response_mask.shape[1]
            out = run.forward(mb)
            where = rows[micro]
            old[where, :t] = out["logp"].float().cpu()
            if ids is not None and top is not None:
                ids[where, :t] = out["topk_ids"].cpu()
                top[where, :t] = out["topk_logp"].float().cpu()
    run.t_behaviour += run.t_model - t_model
    run.t_model = t_model
    run.behaviour = old
    out = copy.copy(batch)  # the caller's batch keeps its fields
    out.old_logp, out.old_topk_ids, out.old_topk_logp = old, ids, top
    return out


class _Run:
    """The state of one update: the forward, the optimizer steps and what they measured."""

    def __init__(
        self,
        model: Any,
        obj: Objective,
        optim: OptimConfig,
        temperature: float,
        autocast: torch.dtype | None,
        track_update: bool,
    ) -> None:
        self.model, self.obj, self.optim = model, obj, optim
        self.temperature, self.autocast, self.track_update = temperature, autocast, track_update
        self.device = next(model.parameters()).device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.metrics = MetricSum()
        self.steps = self.skipped = 0
        self.grad_norms: list[float] = []
        self.deltas: list[tuple[float, float]] = []
        self.t_model = self.t_optim = self.t_behaviour = 0.0
        self.noise = 0.0  # largest |ratio - 1| the loss saw before the first optimizer step
        self.learner: Tensor | None = None  # learner log-probs before any step, [B, T]
        self.seen: Tensor | None = None  # rows of ``learner`` that were filled, [B]
        self.behaviour: Tensor | None = None  # old_logp from behaviour_logprobs, [B, T]

    def check(self, batch: Rollouts, loss: LossConfig) -> None:
        if batch.advantages is None:
            raise ValueError("policy_update needs batch.advantages")
        if loss.kl_coef > 0 and batch.ref_logp is None:
            raise ValueError("loss.kl_coef > 0 needs batch.ref_logp (the reference log-probs)")
        warning = getattr(self.obj.params, "on_policy_warning", None)
        if warning and self.optim.ppo_epochs == 1 and self.optim.mini_batches == 1:
            _warn_once(warning)
        B, T = batch.response_mask.shape
        self.learner, self.seen = torch.zeros(B, T), torch.zeros(B, dtype=torch.bool)

    def forward(self, mb: Rollouts) -> dict[str, Tensor]:
        t0 = time.perf_counter()
        with autocast_context(self.device, self.autocast):
            out = forward_logprobs(
                self.model,
                mb,
                temperature=self.temperature,
                need=self.obj.outputs,
                topk_ids=mb.old_topk_ids,
                topk_width=TOPK_WIDTH,
                share_prefix=bool(self.optim.share_prefix),
            )
        self.t_model += time.perf_counter() - t0
        return out

    def selections(self, mini: Rollouts, seed: int) -> tuple[dict[str, Tensor], Tensor | None]:
        if not self.obj.mini_batch_pass:
            return {}, None
        return self.timed(
            mini_batch_selections,
            self.model,
            mini,
            self.obj.policy,
            self.obj.params,
            entropy_mask_top=self.obj.entropy_mask_top,
            micro_batch_size=self.optim.micro_batch_size,
            temperature=self.temperature,
            autocast=self.autocast,
            share_prefix=bool(self.optim.share_prefix),
            generator=torch.Generator().manual_seed(seed),
        )

    def timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.t_model += time.perf_counter() - t0

    def record(
        self, m: dict[str, Tensor], rows: Tensor, mb: Rollouts, out: dict[str, Tensor]
    ) -> None:
        """Add a micro-batch's metrics; before the first optimizer step, also what the
        learner's log-probs and the loss's ratio were."""
        self.metrics.add(m, float(mb.response_mask.sum()))
        if self.steps or self.skipped:
            return
        assert self.learner is not None and self.seen is not None
        t = mb.response_mask.shape[1]
        self.learner[rows, :t] = out["logp"].detach().float().cpu()
        self.seen[rows] = True
        for key, sign in (("actor/ratio_max", 1.0), ("actor/ratio_min", -1.0)):
            if key in m:
                self.noise = max(self.noise, sign * (float(m[key]) - 1.0))

    def dph_backward(self, dph: DPHConfig, ref: Rollouts | None) -> bool:
        """The DPH term's gradient over the stored reference samples (True when there is
        none to add); False when its loss is not finite."""
        if dph.generator is None or ref is None or not len(ref):
            return True
        return self.timed(
            _dph_backward,
            self.model,
            ref,
            dph,
            self.optim.micro_batch_size,
            self.temperature,
            self.autocast,
            bool(self.optim.share_prefix),
            self.metrics,
        )

    def step(self, optimizer: torch.optim.Optimizer, scheduler: Any, finite: bool) -> None:
        """Clip and take the optimizer step, or skip it (and count) when not finite."""
        t0 = time.perf_counter()
        grad_norm = _grad_norm(self.params, self.optim.grad_clip) if finite else math.nan
        if not math.isfinite(grad_norm):
            optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
        else:
            self.grad_norms.append(grad_norm)
            before = [p.detach().clone() for p in self.params] if self.track_update else None
            optimizer.step()
            if before is not None:
                self.deltas.append(_delta_norms(self.params, before))
            scheduler.step()
            self.steps += 1
        self.t_optim += time.perf_counter() - t0

    def result(
        self, batch: Rollouts, stopped_at: int | None = None, of: int = 0
    ) -> dict[str, float]:
        out = self.metrics.means()
        out["actor/grad_norm"] = _mean(self.grad_norms)
        if self.track_update:
            out["update/delta_norm"] = _mean([d for d, _ in self.deltas])
            out["update/delta_rel"] = _mean([r for _, r in self.deltas])
        out["update/optimizer_steps"] = float(self.steps)
        out["update/skipped_steps"] = float(self.skipped)
        out["update/ratio_noise"] = self.noise
        out["update/kl_stopped"] = float(stopped_at is not None and stopped_at < of)
        out.update(self._mismatch(batch))
        out["time/forward_backward"] = self.t_model
        out["time/optimizer"] = self.t_optim
        out["time/behaviour_pass"] = self.t_behaviour
        band = clip_band(self.obj.params)
        if band is not None and self.noise > band:
            _warn_once(
                f"the importance ratio deviated from 1 by up to {self.noise:.2g} before any "
                f"update, more than {self.obj.policy.name}'s clip band ({band:g}): the loss "
                "clips numerical noise, not policy change (behaviour log-probs from another "
                "computation, e.g. optim.old_logprobs=rollout with a bf16 sampling copy)"
            )
        return out

    def _mismatch(self, batch: Rollouts) -> dict[str, float]:
        """Sampler vs learner, on the rows whose learner log-probs were taken before any
        optimizer step (all rows, unless the caller set ``old_logp`` and there are several
        mini-batches)."""
        assert self.learner is not None and self.seen is not None
        mask = batch.response_mask.bool()
        if self.behaviour is not None:
            return mismatch_metrics(self.behaviour, batch.logprobs, mask)
        return mismatch_metrics(self.learner, batch.logprobs, mask & self.seen[:, None])


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
