"""verl plugin: passk advantage estimators and policy losses inside verl's own trainer.

Importing this module (verl does it for you, see below) registers with verl

- every group estimator of :mod:`passk.core.advantages` that verl can drive
  (:data:`VERL_ESTIMATORS`) with ``verl.trainer.ppo.core_algos.register_adv_est``
  under its passk name, so ``algorithm.adv_estimator=passk_analytic`` selects it;
- ``passk_ppo_clip`` with ``register_policy_loss`` (``actor.policy_loss.loss_mode``):
  passk's decoupled-clip PPO loss, aggregated with an explicit global normaliser;
- the v1 trainer mode ``passk_sync`` (``trainer.v1.trainer_mode=passk_sync``): verl's
  synchronous trainer plus the per-response entropy that ``passk_adaptive`` needs.

verl loads it in every process (driver, TaskRunner, every Ray worker) through either

- the ``verl.plugins`` entry-point group, read by ``import verl`` when passk is installed
  (``VERL_USE_EXTERNAL_PLUGINS`` = ``auto`` by default; ``none`` disables it), or
- ``VERL_USE_EXTERNAL_MODULES=passk.integrations.verl``, also read by ``import verl``.

Estimator parameters come from ``algorithm.passk`` (``algorithm.passk.k=8``; a ``+`` only
where the config has no ``passk`` key yet); they are checked at the first call, which
raises a ``ValueError`` naming the bad key and the valid ones. ``k`` has no default here:
a silent ``k`` in a multi-node run is a wasted run.

Stochastic estimators (``passk_full`` with ``shuffle``, ``passk_bootstrap``) draw with
``derive_seed(seed, "adv", step)`` at verl's global step ``step``: a new draw each step, the
same draw when the run is repeated or resumed. verl computes advantages in its trainer
process alone, so no rank enters the seed. Called outside verl's trainer (no step), the
configured ``seed`` is used as given.

The adapter turns verl's flat batch into passk's group layout and back::

    token_level_rewards[B, T] --sum(-1)--> scores[B] --uid--> rewards[G, N] (+ mask[G, N])
    advantages[G, N] --gather--> [B] --x response_mask--> advantages[B, T]

Without verl installed this module imports (so the docs and doctests build) but registers
nothing; :func:`register` then raises an ``ImportError`` with the install command.

>>> import numpy as np, torch
>>> scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
>>> rewards, mask, rows, cols = group_by_uid(scores, np.array(["a", "b", "a", "b", "a"]))
>>> rewards
tensor([[1., 0., 1.],
        [0., 1., 0.]])
>>> mask
tensor([[ True,  True,  True],
        [ True,  True, False]])
>>> rewards[rows, cols]  # back to the flat order
tensor([1., 0., 0., 1., 1.])
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from passk.core.advantages import compute_advantages, get_estimator
from passk.core.aggregate import aggregate_loss
from passk.core.policy_losses import get_policy_loss
from passk.seeds import derive_seed

__all__ = [
    "CONFIG_KEY",
    "PASSK_POLICY_LOSSES",
    "TRAINER_MODE",
    "VERL_ESTIMATORS",
    "VERL_METRIC_NAMES",
    "group_by_uid",
    "passk_params_from_config",
    "passk_ppo_clip_policy_loss",
    "ppo_clip_params_from_verl",
    "register",
    "response_entropy",
    "response_token_mean",
    "verl_advantage",
    "verl_global_step",
    "verl_loss_metrics",
    "verl_policy_loss",
]

logger = logging.getLogger(__name__)

#: passk estimators registered with verl, under these names.
VERL_ESTIMATORS: tuple[str, ...] = (
    "passk_analytic",
    "passk_full",
    "passk_bootstrap",
    "maxk_analytic",
    "passk_combination",
    "passk_exceed",
    "pkpo_loo",
    "passk_adaptive",
)
#: passk policy losses registered with verl's ``register_policy_loss``.
PASSK_POLICY_LOSSES: tuple[str, ...] = ("passk_ppo_clip",)
#: key under ``algorithm`` holding the estimator parameters.
CONFIG_KEY = "passk"
#: v1 trainer mode that supplies per-response entropy to ``passk_adaptive``.
TRAINER_MODE = "passk_sync"

# Options of the adapter itself, read from ``algorithm.passk`` next to the estimator's.
_ADAPTER_KEYS = ("binarize_threshold",)
_INSTALL_HINT = "pip install 'passk[verl]' (see docs/integrations/verl.md)"
_MARK = "__passk_verl__"  # attribute marking functions registered by this module

# Per-row mean token entropy [B] of the batch whose advantages are being computed; set by the
# passk_sync trainer (or by a caller with response_entropy(...)) around compute_advantage.
_RESPONSE_ENTROPY: contextvars.ContextVar[Tensor | None] = contextvars.ContextVar(
    "passk_verl_response_entropy", default=None
)


# --------------------------------------------------------------------------- grouping


def group_by_uid(scores: Tensor, index: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Scatter flat per-response ``scores[B]`` into padded groups by prompt uid.

    Groups are ordered by sorted uid, responses keep their batch order inside a group.

    Args:
        scores: ``[B]`` one scalar reward per response.
        index: ``[B]`` group labels (verl's ``non_tensor_batch["uid"]``: str or int).

    Returns:
        ``(rewards[G, N], mask[G, N], rows[B], cols[B])`` with ``N`` the largest group,
        ``mask`` marking real responses of ragged groups, and ``rewards[rows, cols] ==
        scores`` (long tensors on ``scores.device``) to map any ``[G, N]`` result back.
    """
    labels = np.asarray(index)
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"index must be 1-D with one uid per response ({scores.shape[0]}), "
            f"got shape {labels.shape}"
        )
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)  # [G]
    order = np.argsort(inverse, kind="stable")  # rows sorted by group, batch order kept
    starts = np.cumsum(counts) - counts  # [G] first sorted position of each group
    cols = np.empty_like(inverse)
    cols[order] = np.arange(inverse.shape[0]) - starts[inverse[order]]
    device = scores.device
    rows_t = torch.as_tensor(inverse, dtype=torch.long, device=device)
    cols_t = torch.as_tensor(cols, dtype=torch.long, device=device)
    G, N = counts.shape[0], int(counts.max()) if counts.size else 0
    rewards = torch.zeros(G, N, dtype=scores.dtype, device=device)
    mask = torch.zeros(G, N, dtype=torch.bool, device=device)
    rewards[rows_t, cols_t] = scores
    mask[rows_t, cols_t] = True
    return rewards, mask, rows_t, cols_t


def response_token_mean(values: Tensor, response_mask: Tensor) -> Tensor:
    """Token-mean of ``values[B, T]`` over each response's valid tokens -> ``[B]`` (0 if none).

    >>> response_token_mean(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1, 1, 0]]))
    tensor([2.])
    """
    m = response_mask.to(torch.bool)
    total = torch.where(m, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return total.sum(-1) / m.sum(-1).clamp(min=1).to(values.dtype)


@contextlib.contextmanager
def response_entropy(entropy: Tensor) -> Iterator[None]:
    """Make per-response mean token entropy ``[B]`` visible to ``passk_adaptive`` inside.

    Rows follow the batch given to verl's ``compute_advantage``. The ``passk_sync``
    trainer does this for you; use it directly when calling ``compute_advantage`` yourself.
    """
    token = _RESPONSE_ENTROPY.set(torch.as_tensor(entropy).detach().reshape(-1))
    try:
        yield
    finally:
        _RESPONSE_ENTROPY.reset(token)


# --------------------------------------------------------------------------- config


def _to_plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python (verl hands over DictConfig or AlgoConfig)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:  # omegaconf is a verl dependency; without it the value is already plain
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value


def passk_params_from_config(name: str, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``config.passk`` (verl's ``algorithm`` config) for estimator ``name``.

    Returns ``(estimator_params, adapter_options)``. Raises ``ValueError`` when the key is
    missing, ``k`` is missing for an estimator that takes it, or a key is unknown (the
    message lists the valid keys); per-group inputs (``entropy``) are never read from config.

    >>> passk_params_from_config("passk_analytic", {"passk": {"k": 8}})
    ({'k': 8}, {'binarize_threshold': None})
    """
    spec = get_estimator(name)
    fields = {f.name for f in dataclasses.fields(spec.params)} - set(spec.needs)
    valid = sorted(fields | set(_ADAPTER_KEYS))
    raw = None if config is None else config.get(CONFIG_KEY, None)
    if raw is None:
        raise ValueError(
            f"verl estimator {name!r} reads its parameters from algorithm.{CONFIG_KEY}, "
            f"which is missing; add e.g. +algorithm.{CONFIG_KEY}.k=8 (valid keys: {valid})"
        )
    params = _to_plain(raw)
    if not isinstance(params, dict):
        raise ValueError(f"algorithm.{CONFIG_KEY} must be a mapping, got {params!r}")
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"algorithm.{CONFIG_KEY} has unknown key(s) {unknown} for estimator {name!r}; "
            f"valid: {valid}"
        )
    if spec.uses_k and params.get("k") is None:
        raise ValueError(
            f"estimator {name!r} needs algorithm.{CONFIG_KEY}.k (the pass@k group size, "
            f"1 <= k <= responses per prompt); e.g. +algorithm.{CONFIG_KEY}.k=8"
        )
    adapter = {key: params.pop(key, None) for key in _ADAPTER_KEYS}
    threshold = adapter["binarize_threshold"]
    if threshold is not None and not isinstance(threshold, int | float):
        raise ValueError(
            f"algorithm.{CONFIG_KEY}.binarize_threshold must be a number or null, got {threshold!r}"
        )
    return params, adapter


# --------------------------------------------------------------------------- estimator


def verl_global_step() -> int | None:
    """verl's current global training step, or None outside verl's trainer.

    verl 0.9.1 keeps it in ``SkipManager.step``, set by both its trainers (legacy and v1)
    when a step starts and after a checkpoint is loaded; -1 until a trainer runs.
    """
    try:
        from verl.utils.skip.skip_manager import SkipManager
    except ImportError:  # another verl layout: no step, the configured seed is used
        return None
    step = getattr(SkipManager, "step", -1)
    return int(step) if isinstance(step, int) and step >= 0 else None


def verl_advantage(
    name: str,
    token_level_rewards: Tensor,
    response_mask: Tensor,
    index: Any = None,
    config: Any = None,
    entropy: Tensor | None = None,
    step: int | None = None,
) -> tuple[Tensor, Tensor]:
    """verl-shaped advantage of passk estimator ``name``: returns ``(advantages, returns)``.

    Args:
        token_level_rewards: ``[B, T]``; the response's reward is the sum over T.
        response_mask: ``[B, T]`` valid response tokens.
        index: ``[B]`` prompt uid per response (``non_tensor_batch["uid"]``).
        config: verl's ``algorithm`` config; parameters under ``passk``.
        entropy: ``[B]`` per-response mean token entropy, for estimators that need it;
            ``None`` reads the value set by :func:`response_entropy`.
        step: training step; a stochastic estimator then draws with
            ``derive_seed(seed, "adv", step)``. ``None``: the configured seed as given.

    Both outputs are ``[B, T]``: the response advantage on its valid tokens, 0 elsewhere
    (outcome-only, so returns equal advantages, as in verl's GRPO).
    """
    spec = get_estimator(name)
    params, adapter = passk_params_from_config(name, config)
    if index is None:
        raise ValueError(
            f"estimator {name!r} groups responses by prompt and needs the uid index "
            "(non_tensor_batch['uid']), which verl did not pass"
        )
    if token_level_rewards.ndim != 2 or token_level_rewards.shape != response_mask.shape:
        raise ValueError(
            f"token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must both be [B, T]"
        )
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)  # [B]
        if adapter["binarize_threshold"] is not None:
            scores = (scores > adapter["binarize_threshold"]).to(scores.dtype)
        rewards, mask, rows, cols = group_by_uid(scores, index)  # [G, N] x2, [B] x2
        if "entropy" in spec.needs:
            ent = entropy if entropy is not None else _RESPONSE_ENTROPY.get()
            if ent is None:
                raise ValueError(
                    f"estimator {name!r} needs per-response entropy, which verl's "
                    f"compute_advantage does not pass: run with "
                    f"trainer.v1.trainer_mode={TRAINER_MODE} (or wrap the call in "
                    "passk.integrations.verl.response_entropy(...))"
                )
            ent = torch.as_tensor(ent, device=scores.device).reshape(-1).to(torch.float64)
            if ent.shape[0] != scores.shape[0]:
                raise ValueError(
                    f"entropy has {ent.shape[0]} values, expected one per response "
                    f"({scores.shape[0]})"
                )
            per_group = torch.zeros(rewards.shape[0], dtype=torch.float64, device=ent.device)
            per_group.index_add_(0, rows, ent)
            params["entropy"] = per_group / mask.sum(1).clamp(min=1)  # [G]
        if step is not None and _takes_seed(spec):
            base = params.get("seed", _seed_default(spec))
            params["seed"] = derive_seed(int(base), "adv", int(step))
        try:
            adv = compute_advantages(name, rewards, mask, **params)  # [G, N]
        except ValueError as err:
            raise ValueError(f"passk estimator {name!r} (algorithm.{CONFIG_KEY}): {err}") from err
        flat = adv[rows, cols].to(torch.float32)  # [B]
        advantages = flat.unsqueeze(-1) * response_mask.to(flat.dtype)  # [B, T]
    return advantages, advantages


def _takes_seed(spec: Any) -> bool:
    return spec.stochastic and any(f.name == "seed" for f in dataclasses.fields(spec.params))


def _seed_default(spec: Any) -> int:
    return next(f.default for f in dataclasses.fields(spec.params) if f.name == "seed")


def _make_verl_estimator(name: str) -> Any:
    def estimator(
        token_level_rewards: Tensor,
        response_mask: Tensor,
        index: Any = None,
        config: Any = None,
        **kwargs: Any,
    ) -> tuple[Tensor, Tensor]:
        return verl_advantage(
            name, token_level_rewards, response_mask, index, config, step=verl_global_step()
        )

    estimator.__name__ = f"passk_{name}_verl_advantage".replace("passk_passk_", "passk_")
    estimator.__qualname__ = estimator.__name__
    estimator.__doc__ = f"passk estimator {name!r} for verl (see passk.integrations.verl)."
    setattr(estimator, _MARK, name)
    return estimator


# --------------------------------------------------------------------------- policy loss


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


def ppo_clip_params_from_verl(config: Any) -> Any:
    """verl's actor config -> the validated params of passk's ``ppo_clip`` loss spec.

    ``clip_ratio_low`` / ``clip_ratio_high`` (each falling back to ``clip_ratio``) become
    ``eps_low`` / ``eps_high`` and ``clip_ratio_c`` becomes ``dual_clip``, as verl's
    ``vanilla`` loss reads them; a key the config lacks (or sets to null) keeps the spec's
    default. A value the spec rejects raises a ``ValueError`` naming verl's keys.

    >>> ppo_clip_params_from_verl({"clip_ratio": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 3})
    PPOClipParams(eps_low=0.2, eps_high=0.28, dual_clip=3.0)
    """
    clip = config.get("clip_ratio", None)
    verl_keys = {
        "eps_low": ("clip_ratio_low", config.get("clip_ratio_low", None)),
        "eps_high": ("clip_ratio_high", config.get("clip_ratio_high", None)),
        "dual_clip": ("clip_ratio_c", config.get("clip_ratio_c", None)),
    }
    mapping: dict[str, float] = {}
    for field, (_, value) in verl_keys.items():
        if value is None and field != "dual_clip":
            value = clip
        if value is not None:
            mapping[field] = float(value)
    try:
        return get_policy_loss("ppo_clip").make_params(mapping)
    except ValueError as err:
        given = {key: value for key, value in verl_keys.values()} | {"clip_ratio": clip}
        raise ValueError(f"passk_ppo_clip with actor config {given}: {err}") from err


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


# --------------------------------------------------------------------------- trainer


def _register_trainer_mode() -> bool:
    """Register ``passk_sync``, the v1 sync trainer that exposes per-response entropy.

    Returns False (and registers nothing) when verl's v1 trainer cannot be imported, e.g.
    without TransferQueue. Set ``PASSK_VERL_TRAINER=0`` to skip it (it adds the v1
    trainer's import time, ~8 s, to every process that imports verl).
    """
    if os.environ.get("PASSK_VERL_TRAINER", "1") == "0":
        return False
    if importlib.util.find_spec("transfer_queue") is None:
        return False
    try:
        from verl.trainer.ppo.v1 import PPOTrainerSync
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
    except Exception as err:  # an optional extra: never break `import verl`
        warnings.warn(
            f"passk: verl v1 trainer not importable ({err!r}); "
            f"trainer_mode={TRAINER_MODE} unavailable",
            stacklevel=2,
        )
        return False
    existing = TRAINER_REGISTRY.get(TRAINER_MODE)
    if existing is not None and getattr(existing, _MARK, None):
        return True

    class PassKPPOTrainerSync(PPOTrainerSync):
        """verl's synchronous PPO trainer + per-response entropy for passk estimators.

        verl computes token entropy with the old log-probs and stores it in
        TransferQueue, but ``compute_advantage`` never passes it to estimators. For an
        estimator whose spec ``needs`` entropy, this trainer reads it back for the
        batch's keys, reduces it to a token-mean per response ``[B]`` and exposes it
        through :func:`response_entropy` while verl's own ``_compute_advantage`` runs.
        Every other estimator goes through verl's code unchanged.
        """

        def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
            name = str(self.config.algorithm.adv_estimator)
            try:
                spec = get_estimator(name)
            except ValueError:
                return super()._compute_advantage(batch, metrics)
            if "entropy" not in spec.needs:
                return super()._compute_advantage(batch, metrics)
            import transfer_queue as tq

            fields = ["entropy", "response_mask"]
            data = tq.kv_batch_get(
                keys=batch.keys, partition_id=batch.partition_id, select_fields=fields
            ).to_padded_tensor()
            ent = response_token_mean(data["entropy"].float(), data["response_mask"])  # [B]
            metrics["passk/response_entropy_mean"] = float(ent.mean())
            with response_entropy(ent):
                return super()._compute_advantage(batch, metrics)

    setattr(PassKPPOTrainerSync, _MARK, True)
    TRAINER_REGISTRY[TRAINER_MODE] = PassKPPOTrainerSync
    return True


# --------------------------------------------------------------------------- registration


def register() -> None:
    """Register passk's estimators, losses and trainer mode with verl (idempotent).

    Called on import when verl is installed. A name that verl (or another plugin)
    already uses for a different function is left alone with a warning.
    """
    try:
        from verl.trainer.ppo import core_algos
    except ImportError as err:
        raise ImportError(f"passk.integrations.verl needs verl: {_INSTALL_HINT}") from err

    for name in VERL_ESTIMATORS:
        current = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
        if current is not None and getattr(current, _MARK, None) == name:
            continue  # ours (this import or an earlier one of the module)
        if current is not None:
            warnings.warn(
                f"passk: verl already has an advantage estimator {name!r}; not replacing it",
                stacklevel=2,
            )
            continue
        core_algos.ADV_ESTIMATOR_REGISTRY.pop(name, None)
        core_algos.register_adv_est(name)(_make_verl_estimator(name))

    losses = {"passk_ppo_clip": passk_ppo_clip_policy_loss}
    for name, fn in losses.items():
        current = core_algos.POLICY_LOSS_REGISTRY.get(name)
        if current is not None and current is not fn and not getattr(current, _MARK, None):
            warnings.warn(
                f"passk: verl already has a policy loss {name!r}; not replacing it", stacklevel=2
            )
            continue
        setattr(fn, _MARK, name)
        core_algos.register_policy_loss(name)(fn)

    _register_trainer_mode()


if importlib.util.find_spec("verl") is not None:
    register()
