"""passk's policy losses as verl policy losses (``actor.policy_loss.loss_mode=passk_<name>``).

Part of the verl plugin (:mod:`passk.integrations.verl` registers them): each loss reads
its parameters from the actor-config keys verl's own losses use and aggregates with an
explicit global normaliser.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from passk.core.aggregate import aggregate_loss
from passk.core.losses import get_policy_loss, list_policy_losses
from passk.integrations.verl.common import MARK


def _verl_normalizer(
    loss_agg_mode: str, mask: Tensor, global_info: Mapping[str, Any]
) -> tuple[str, Tensor | float]:
    """Map verl's ``loss_agg_mode`` + ``global_batch_info`` to a passk mode and normaliser.

    verl multiplies each rank's loss by ``dp_size`` and divides by a global count, so the
    passk normaliser is ``global count / dp_size`` (the same value on every micro-batch).
    """
    dp = float(global_info.get("dp_size", 1) or 1)
    tokens = global_info.get("batch_num_tokens")
    seqs = global_info.get("global_batch_size")
    if loss_agg_mode == "token-mean":
        n = mask.sum() if tokens is None else tokens
        return "token-mean", n / dp
    if loss_agg_mode == "token-sum":
        return "constant", 1.0 / dp
    if loss_agg_mode in ("seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        n = (mask.sum(-1) > 0).sum() if seqs is None else seqs
        if loss_agg_mode == "seq-mean-token-sum-norm":
            scale = global_info.get("loss_scale_factor") or mask.shape[-1]
            return "seq-mean-token-sum", n / dp * scale
        return loss_agg_mode, n / dp
    raise ValueError(
        f"loss_agg_mode {loss_agg_mode!r} is not supported by passk_ppo_clip; valid: "
        "token-mean, token-sum, seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm"
    )


# passk loss parameter -> verl actor-config keys it is read from (first one set wins), as
# verl's own losses read them (vanilla, gspo, cispo: clip_ratio_*; sapo: tau_pos / tau_neg).
# verl's ActorConfig is a closed dataclass, so a passk parameter without a verl key keeps
# the passk spec's default.
_VERL_ACTOR_KEYS: dict[str, tuple[str, ...]] = {
    "eps_low": ("clip_ratio_low", "clip_ratio"),
    "eps_high": ("clip_ratio_high", "clip_ratio"),
    "dual_clip": ("clip_ratio_c",),
    "tau_pos": ("tau_pos",),
    "tau_neg": ("tau_neg",),
}


def policy_loss_params_from_verl(name: str, config: Any) -> Any:
    """verl's actor config -> the validated params of passk's loss spec ``name``.

    Each params field listed in ``_VERL_ACTOR_KEYS`` takes the first of its verl keys that
    the config sets (``eps_low`` <- ``clip_ratio_low``, else ``clip_ratio``; ``dual_clip``
    <- ``clip_ratio_c``; ``tau_pos`` / ``tau_neg`` <- the same names); other fields keep
    the spec's default. A value the spec rejects raises a ``ValueError`` naming verl's keys.
    """
    spec = get_policy_loss(name)
    mapping: dict[str, float] = {}
    given: dict[str, Any] = {}
    for field in (f.name for f in dataclasses.fields(spec.params)):
        for key in _VERL_ACTOR_KEYS.get(field, ()):
            value = config.get(key, None)
            given[key] = value
            if value is not None:
                mapping[field] = float(value)
                break
    try:
        return spec.make_params(mapping)
    except ValueError as err:
        raise ValueError(f"passk_{name} with actor config {given}: {err}") from err


def ppo_clip_params_from_verl(config: Any) -> Any:
    """verl's actor config -> the validated params of passk's ``ppo_clip`` loss spec.

    ``clip_ratio_low`` / ``clip_ratio_high`` (each falling back to ``clip_ratio``) become
    ``eps_low`` / ``eps_high`` and ``clip_ratio_c`` becomes ``dual_clip``, as verl's
    ``vanilla`` loss reads them; a key the config lacks (or sets to null) keeps the spec's
    default. A value the spec rejects raises a ``ValueError`` naming verl's keys.

    >>> ppo_clip_params_from_verl({"clip_ratio": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 3})
    PPOClipParams(eps_low=0.2, eps_high=0.28, dual_clip=3.0)
    """
    return policy_loss_params_from_verl("ppo_clip", config)


def verl_policy_loss(
    name: str,
    params: Any,
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str,
    config: Any,
    rollout_is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """passk policy loss ``name`` with its ``params`` (from the spec's ``make_params``), shaped
    for verl: ``spec.compute`` -> optional importance weights -> :func:`passk.core.aggregate.
    aggregate_loss` with verl's global token / sequence counts as the normaliser, so the
    value does not depend on micro-batching.

    Args:
        old_log_prob, log_prob: ``[B, T]`` rollout-time and current log-probs.
        advantages: ``[B, T]``; response_mask: ``[B, T]``.
        rollout_is_weights: optional ``[B, T]`` importance weights (rollout correction).

    Returns ``(scalar loss, metrics)``; metrics are floats under ``actor/``, with verl's
    names where verl has one (:func:`verl_loss_metrics`).
    """
    mask = response_mask.to(torch.bool)
    loss_mat, metrics = get_policy_loss(name).compute(
        log_prob, old_log_prob, advantages, mask, params
    )  # [B, T]
    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights
    info = config.get("global_batch_info", None) or {}
    mode, normalizer = _verl_normalizer(loss_agg_mode, mask, info)
    loss = aggregate_loss(loss_mat, mask, mode, normalizer=normalizer)
    return loss, verl_loss_metrics(metrics, log_prob, old_log_prob, mask)


def passk_ppo_clip_policy_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """verl ``PolicyLossFn`` ``passk_ppo_clip``: passk's ``ppo_clip`` spec with the params
    :func:`ppo_clip_params_from_verl` reads from verl's actor config, through
    :func:`verl_policy_loss`. Same value and gradient as verl's ``vanilla``."""
    if config is None:
        raise ValueError("passk_ppo_clip needs verl's actor config (clip_ratio_*)")
    params = ppo_clip_params_from_verl(config)
    return verl_policy_loss(
        "ppo_clip",
        params,
        old_log_prob,
        log_prob,
        advantages,
        response_mask,
        loss_agg_mode,
        config,
        rollout_is_weights,
    )


#: passk losses verl already has under its own name, equal in value and gradient
#: (``tests/core/test_dppo.py``): verl users select verl's (``loss_mode=dppo_tv``, thresholds
#: in ``clip_ratio_low`` / ``_high``, the cap in ``clip_ratio_c``), so the plugin does not
#: register a second copy.
VERL_NATIVE_LOSSES: dict[str, str] = {"dppo_tv": "dppo_tv", "dppo_kl": "dppo_kl"}


def verl_policy_losses() -> dict[str, str]:
    """``{verl loss_mode: passk loss}``: every passk policy loss without extra ``needs``,
    as ``passk_<name>``, except those verl has itself (:data:`VERL_NATIVE_LOSSES`). verl's
    ``PolicyLossFn`` receives only the sampled tokens' log-probs, advantages and mask of one
    micro-batch; a loss that needs more (SimKO's top-K log-probs and entropy, Clip-Cov /
    KL-Cov's token selection over the whole mini-batch) cannot be computed inside it.
    """
    return {
        f"passk_{n}": n
        for n in list_policy_losses()
        if not get_policy_loss(n).needs and n not in VERL_NATIVE_LOSSES
    }


def make_verl_policy_loss(name: str) -> Any:
    """verl ``PolicyLossFn`` for passk loss ``name`` (params from the actor config)."""

    def policy_loss(
        old_log_prob: Tensor,
        log_prob: Tensor,
        advantages: Tensor,
        response_mask: Tensor,
        loss_agg_mode: str = "token-mean",
        config: Any = None,
        rollout_is_weights: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        if config is None:
            raise ValueError(f"passk_{name} needs verl's actor config")
        params = policy_loss_params_from_verl(name, config)
        return verl_policy_loss(
            name,
            params,
            old_log_prob,
            log_prob,
            advantages,
            response_mask,
            loss_agg_mode,
            config,
            rollout_is_weights,
        )

    policy_loss.__name__ = f"passk_{name}_policy_loss"
    policy_loss.__qualname__ = policy_loss.__name__
    policy_loss.__doc__ = f"passk policy loss {name!r} for verl (see passk.integrations.verl)."
    setattr(policy_loss, MARK, f"passk_{name}")
    return policy_loss


#: passk loss metric -> the name verl's ``vanilla`` loss logs it under (verl 0.9.1).
VERL_METRIC_NAMES: dict[str, str] = {
    "actor/clip_frac": "actor/pg_clipfrac",
    "actor/dual_clip_frac": "actor/pg_clipfrac_lower",
}
# verl 0.9.1 averages every loss metric over micro-batches and ranks (workers/utils/
# losses.py wraps them in Metric(MEAN)): a per-micro-batch max or min would be logged as a
# mean under a name that says max, so those are not reported. verl logs actor/pg_loss
# itself from the returned scalar.
_NOT_REPORTED = ("actor/pg_loss", "actor/ratio_max", "actor/ratio_min")


def verl_loss_metrics(
    metrics: Mapping[str, Tensor], log_prob: Tensor, old_log_prob: Tensor, mask: Tensor
) -> dict[str, float]:
    """passk loss metrics under verl's names, as floats, for verl's dashboards.

    ``actor/pg_clipfrac`` (tokens whose clipped branch is active), ``actor/pg_clipfrac_lower``
    (dual clip active) and ``actor/ppo_kl`` (verl's k1 estimate, mean of ``old - new``
    log-prob) mean what they mean for verl's ``vanilla`` loss; passk's own means (e.g.
    ``actor/clip_frac_high``, ``actor/approx_kl``, the k3 estimate) keep their names.

    Args:
        metrics: the loss's metrics (0-d tensors); log_prob, old_log_prob, mask: ``[B, T]``.
    """
    out = {
        VERL_METRIC_NAMES.get(key, key): float(value)
        for key, value in metrics.items()
        if key not in _NOT_REPORTED
    }
    m = mask.to(torch.bool)
    log_ratio = (log_prob.detach().double() - old_log_prob.detach().double()).clamp(-20, 20)
    diff = -log_ratio[m]  # verl clamps the log-ratio at +-20 too
    out["actor/ppo_kl"] = float(diff.mean()) if diff.numel() else 0.0
    return out
