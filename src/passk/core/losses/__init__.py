"""Per-token policy-gradient losses and their registry of specs.

The registry (:mod:`.registry`) sits below the families, which register themselves on
import: PPO clip and SimKO (:mod:`.ppo`), the sequence-level GSPO, CISPO and SAPO
(:mod:`.sequence`), the covariance-selected Clip-Cov and KL-Cov (:mod:`.covariance`), the
divergence trust regions DPPO-TV and DPPO-KL (:mod:`.dppo`).

Every policy loss has the family signature ::

    fn(logp[B, T], old_logp[B, T], advantages[B] | [B, T], mask[B, T], *, **params, **needs)
        -> (loss_mat[B, T], metrics)

``loss_mat`` is the per-token loss to *minimise*, exactly 0 where ``mask`` is 0; ``metrics``
maps namespaced keys (``actor/clip_frac``) to detached 0-d tensors, averaged over the valid
tokens of the call. Reduce ``loss_mat`` with :func:`passk.core.aggregate.aggregate_loss`;
since aggregation is linear, terms compose by adding loss matrices before one aggregation::

    >>> import torch
    >>> from passk.core.aggregate import aggregate_loss
    >>> from passk.core.entropy import entropy_loss
    >>> from passk.core.kl import kl_penalty_loss
    >>> B, T = 2, 3
    >>> logp = torch.full((B, T), -1.0, requires_grad=True)
    >>> old = torch.full((B, T), -1.0)
    >>> adv, mask = torch.tensor([1.0, -1.0]), torch.ones(B, T, dtype=torch.bool)
    >>> pg, m = ppo_clip_loss(logp, old, adv, mask)
    >>> ent, _ = entropy_loss(torch.full((B, T), 2.0), mask)
    >>> kl, _ = kl_penalty_loss(logp, old, mask, kind="k3")
    >>> aggregate_loss(pg + 0.001 * ent + 0.001 * kl, mask, "token-mean")
    tensor(-0.0020, grad_fn=<DivBackward0>)

Each loss is registered with a frozen parameter dataclass (defaults and validation live
there, nowhere else) and the names of the extra tensors it ``needs``; the trainer builds the
params once from its config and calls :meth:`PolicyLossSpec.compute`, never a loss by name::

    >>> spec = get_policy_loss("ppo_clip")
    >>> p = spec.make_params({"eps_high": 0.4})
    >>> p
    PPOClipParams(eps_low=0.2, eps_high=0.4, dual_clip=None)
    >>> loss, _ = spec.compute(logp, old, adv, mask, p)
    >>> torch.equal(loss, ppo_clip_loss(logp, old, adv, mask, eps_high=0.4)[0])
    True

Masked entries of every input are replaced before any arithmetic, so NaN or inf in padding
reach neither ``loss_mat`` nor metrics nor gradients. Half-precision inputs are computed (and
returned) in float32; gradients flow back in their dtype. ``log_ratio = logp - old_logp``
(PPO ratio ``r = exp``), clamped to +-20 before ``exp``.
"""

from __future__ import annotations

from passk.core._masked import Metrics
from passk.core.losses.covariance import (
    COV_SELECT,
    ClipCovParams,
    KLCovParams,
    clip_cov_loss,
    kl_cov_loss,
)
from passk.core.losses.dppo import DPPOKLParams, DPPOTVParams, dppo_kl_loss, dppo_tv_loss
from passk.core.losses.ppo import (
    PPOClipParams,
    SimKOParams,
    ppo_clip_from_ratio,
    ppo_clip_loss,
    simko_entropy_weights,
    simko_loss,
)
from passk.core.losses.registry import (
    POLICY_LOSSES,
    PolicyLossFn,
    PolicyLossSpec,
    get_policy_loss,
    list_policy_losses,
    register_policy_loss,
)
from passk.core.losses.sequence import (
    CISPOParams,
    GSPOParams,
    SAPOParams,
    cispo_loss,
    gspo_loss,
    sapo_loss,
)

__all__ = [
    "COV_SELECT",
    "POLICY_LOSSES",
    "CISPOParams",
    "ClipCovParams",
    "DPPOKLParams",
    "DPPOTVParams",
    "GSPOParams",
    "KLCovParams",
    "Metrics",
    "PPOClipParams",
    "PolicyLossFn",
    "PolicyLossSpec",
    "SAPOParams",
    "SimKOParams",
    "cispo_loss",
    "clip_cov_loss",
    "dppo_kl_loss",
    "dppo_tv_loss",
    "get_policy_loss",
    "gspo_loss",
    "kl_cov_loss",
    "list_policy_losses",
    "ppo_clip_from_ratio",
    "ppo_clip_loss",
    "register_policy_loss",
    "sapo_loss",
    "simko_entropy_weights",
    "simko_loss",
]
