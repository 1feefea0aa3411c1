"""The training objective of one micro-batch: policy term (+ forking mask) + entropy + KL.

Per valid token ``t`` of the micro-batch, with ``pg`` the registered policy loss
(:func:`passk.core.losses.get_policy_loss`, its params validated once)::

    loss_mat[t] = keep[t] * w[t] * pg[t] + ent[t] - entropy_coef * H[t] + kl_coef * KL_t(pi || ref)

``keep`` is the forking-token mask (``loss.entropy_mask_top``, computed on the whole
mini-batch): it restricts the policy term only, as the paper restricts the policy
gradient, and the normaliser still counts every valid token (the paper's
``1 / sum |o_i|``; the official code divides by the kept tokens, a constant factor
``1 / rho`` under token-mean). ``w`` is the truncated importance weight between the
sampler and the learner (``optim.rollout_is_cap``, 1 when off). ``ent`` is EntroPIC's term
(:func:`passk.core.losses.entropy_control.entropic_loss`, 0 unless ``entropic_alpha`` is
set): its ``alpha`` and the adaptive ``entropy_coef`` come from the trainer's controllers,
one value per update. :func:`objective` returns the matrix and its
metrics; the caller aggregates it with one explicit normaliser
(:func:`passk.core.aggregate.aggregate_loss`), so micro-batching never changes the update.

>>> import torch
>>> from passk.rollout.batch import Rollouts
>>> mb = Rollouts.from_sequences([[5, 6]], [[7, 8, 9]])
>>> mb.advantages = torch.tensor([1.0])
>>> out = {"logp": torch.full((1, 3), -1.0), "entropy": torch.full((1, 3), 0.5)}
>>> loss_mat, m = objective(Objective(get_policy_loss("ppo_clip")), out, mb)
>>> loss_mat  # on-policy: ratio 1, so -A per token
tensor([[-1., -1., -1.]])
>>> m["actor/ratio_max"].item(), m["actor/entropy"].item()
(1.0, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from passk.core.entropy import entropy_loss
from passk.core.kl import kl_penalty_loss
from passk.core.losses import COV_SELECT, PolicyLossSpec, get_policy_loss
from passk.core.losses.entropy_control import entropic_loss
from passk.rollout.batch import Rollouts

__all__ = [
    "MINI_BATCH_NEEDS",
    "NEED_PROVIDERS",
    "TOPK_WIDTH",
    "Objective",
    "clip_band",
    "mismatch_metrics",
    "needs_topk",
    "objective",
    "truncated_is_weight",
]

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
TOPK_NEEDS = frozenset({"topk_logp", "topk_old_logp", "sampled_is_top1"})

# needs computed once per mini-batch by ``params.select_tokens`` (then sliced per micro-batch)
MINI_BATCH_NEEDS = frozenset({COV_SELECT})


def needs_topk(policy_loss: str | PolicyLossSpec) -> bool:
    """Whether the policy loss needs the forward's top-K outputs (and the behaviour's)."""
    spec = get_policy_loss(policy_loss) if isinstance(policy_loss, str) else policy_loss
    return bool(spec.needs & TOPK_NEEDS)


def clip_band(params: Any) -> float | None:
    """The narrowest side of a loss's clip range (``eps_low``, ``eps_high``; an
    ``eps_low`` of 1 is no lower bound), or None for a loss without one (SAPO).

    >>> from passk.core.losses import GSPOParams, CISPOParams
    >>> clip_band(GSPOParams()), clip_band(CISPOParams())
    (0.0003, 0.28)
    """
    sides = [getattr(params, "eps_high", None)]
    low = getattr(params, "eps_low", None)
    if low is not None and low < 1:
        sides.append(low)
    sides = [s for s in sides if s is not None and s > 0]
    return min(sides) if sides else None


def truncated_is_weight(learner_logp: Tensor, sampler_logp: Tensor, cap: float) -> Tensor:
    """``min(pi_learner / pi_sampler, cap)`` per token, detached: the truncated importance
    weight that corrects for sampling with a copy of the policy that is not the learner.

    >>> truncated_is_weight(torch.tensor([[0.0, -1.0]]), torch.tensor([[-1.0, 0.0]]), 2.0)
    tensor([[2.0000, 0.3679]])
    """
    log_w = (learner_logp.detach().float() - sampler_logp.float()).clamp(max=math.log(cap))
    return torch.exp(log_w)


def mismatch_metrics(learner_logp: Tensor, sampler_logp: Tensor, mask: Tensor) -> dict[str, float]:
    """How far the sampler (``Rollouts.logprobs``) is from the learner on the sampled tokens:
    ``rollout/mismatch_kl``, the k3 estimate of KL(sampler || learner), and the extremes of
    the ratio learner / sampler (``rollout/mismatch_ratio_max``, ``_min``). Empty when
    ``mask`` selects nothing.

    >>> m = mismatch_metrics(torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.0, -2.1]]),
    ...                      torch.tensor([[True, True]]))
    >>> round(m["rollout/mismatch_kl"], 5), round(m["rollout/mismatch_ratio_max"], 4)
    (0.00259, 1.1052)
    """
    mask = mask.bool()
    if not bool(mask.any()):
        return {}
    lr = (learner_logp.double() - sampler_logp.double())[mask]  # [n] valid tokens
    k3 = torch.expm1(lr) - lr
    return {
        "rollout/mismatch_kl": float(k3.mean()),
        "rollout/mismatch_ratio_max": float(lr.max().exp()),
        "rollout/mismatch_ratio_min": float(lr.min().exp()),
    }


@dataclass(frozen=True)
class Objective:
    """The terms of the objective, resolved once per update from the config sections."""

    policy: PolicyLossSpec
    params: Any = None
    """The policy loss's params (None: its defaults)."""
    entropy_coef: float = 0.0
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    kl_clamp: float | None = 10.0
    entropy_mask_top: float | None = None
    rollout_is_cap: float | None = None
    entropic_alpha: float = 0.0
    """EntroPIC's ``alpha`` for this update (0: no term)."""
    entropic_prob: float = 0.95
    """EntroPIC reweights tokens whose probability is above this."""
    outputs: frozenset[str] = field(init=False)
    """What the forward must return: log-prob, entropy (metric, bonus), top-K if needed."""

    def __post_init__(self) -> None:
        if self.params is None:
            object.__setattr__(self, "params", self.policy.make_params())
        out = {"logp", "entropy"}
        if needs_topk(self.policy):
            out |= {"topk_logp", "topk_ids", "sampled_is_top1"}
        object.__setattr__(self, "outputs", frozenset(out))

    @classmethod
    def from_config(
        cls,
        loss: Any,
        optim: Any,
        *,
        entropy_coef: float | None = None,
        entropic_alpha: float = 0.0,
    ) -> Objective:
        """From ``LossConfig`` and ``OptimConfig`` (``rollout_is_cap``); ``entropy_coef``
        (None: the config's) and ``entropic_alpha`` are this update's controller outputs."""
        spec = get_policy_loss(loss.policy_loss)
        return cls(
            policy=spec,
            params=spec.make_params(loss.params),
            entropy_coef=loss.entropy_coef if entropy_coef is None else entropy_coef,
            entropic_alpha=entropic_alpha,
            entropic_prob=getattr(loss, "entropic_prob", 0.95),
            kl_coef=loss.kl_coef,
            kl_estimator=loss.kl_estimator,
            kl_clamp=loss.kl_clamp,
            entropy_mask_top=getattr(loss, "entropy_mask_top", None) or None,
            rollout_is_cap=getattr(optim, "rollout_is_cap", None),
        )

    @property
    def mini_batch_pass(self) -> bool:
        """Whether a selection over the whole mini-batch is needed first (Clip-Cov, KL-Cov,
        forking tokens)."""
        return bool(self.policy.needs & MINI_BATCH_NEEDS) or self.entropy_mask_top is not None


def objective(
    obj: Objective,
    out: Mapping[str, Tensor],
    mb: Rollouts,
    *,
    selections: Mapping[str, Tensor] | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``(loss_mat[B, T], metrics)`` of micro-batch ``mb`` from its forward outputs ``out``.

    ``mb`` carries ``advantages`` ``[B]``, ``old_logp`` (None: the current log-probs,
    detached: on-policy), ``ref_logp`` when ``kl_coef > 0`` and the sampler's ``logprobs``
    when ``rollout_is_cap`` is set. ``selections`` are the mini-batch needs of the policy
    loss and ``keep`` the forking-token mask, both already sliced to ``mb``'s rows.
    """
    logp = out["logp"]  # [B, T], with autograd
    device = logp.device
    mask = mb.response_mask.to(device)
    old = logp.detach() if mb.old_logp is None else mb.old_logp.to(device)
    if mb.advantages is None:
        raise ValueError("the objective needs batch.advantages")
    given = selections or {}
    needs = {
        n: given[n].to(device) if n in given else NEED_PROVIDERS[n](dict(out), mb)
        for n in obj.policy.needs
    }
    loss_mat, m = obj.policy.compute(logp, old, mb.advantages.to(device), mask, obj.params, **needs)
    if obj.rollout_is_cap is not None:  # sampler != learner: reweight the policy term
        w = truncated_is_weight(old, mb.logprobs.to(device), obj.rollout_is_cap)  # [B, T]
        loss_mat = loss_mat * w
        valid = mask.bool()
        n = valid.sum().clamp(min=1)
        m["rollout/is_weight_mean"] = torch.where(valid, w, 0.0).sum() / n
        m["rollout/is_capped_frac"] = (valid & (w >= obj.rollout_is_cap)).sum() / n
    if keep is not None:  # forking tokens: the policy term only
        keep = keep.to(device)
        loss_mat = torch.where(keep, loss_mat, torch.zeros_like(loss_mat))
        m["actor/entropy_mask_frac"] = (
            (keep & mask.bool()).sum() / mask.sum().clamp(min=1)
        ).float()
    if obj.entropic_alpha:
        adv = mb.advantages.to(device)
        pic_mat, pic_m = entropic_loss(
            logp, old, adv, mask, alpha=obj.entropic_alpha, prob_threshold=obj.entropic_prob
        )
        loss_mat = loss_mat + pic_mat
        m.update(pic_m)
    ent_mat, ent_m = entropy_loss(out["entropy"], mask)
    m.update(ent_m)
    if obj.entropy_coef:
        loss_mat = loss_mat + obj.entropy_coef * ent_mat
    if obj.kl_coef > 0:
        ref = _need(mb.ref_logp, "ref_logp").to(device)
        kl_mat, kl_m = kl_penalty_loss(logp, ref, mask, kind=obj.kl_estimator, clamp=obj.kl_clamp)
        loss_mat = loss_mat + obj.kl_coef * kl_mat
        m.update(kl_m)
    return loss_mat, m
