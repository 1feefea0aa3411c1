"""verl plugin: passk advantage estimators and policy losses inside verl's own trainer.

Importing this module (verl does it for you, see below) registers with verl

- every estimator of passk's registry that verl can drive (:func:`verl_estimators`, derived
  from :func:`passk.list_estimators`, so new estimators come automatically) with
  ``verl.trainer.ppo.core_algos.register_adv_est`` under its passk name, so
  ``algorithm.adv_estimator=passk_analytic`` selects it. A passk name that verl itself uses
  for its own method (``rloo``) is registered as ``passk_<name>`` (``passk_rloo``) and
  verl's stays verl's;
- every passk policy loss whose inputs fit verl's ``PolicyLossFn`` signature (no extra
  ``needs``) with ``register_policy_loss`` as ``passk_<name>`` (``passk_ppo_clip``,
  ``passk_gspo``, ...), aggregated with an explicit global normaliser;
- the v1 trainer mode ``passk_sync`` (``trainer.v1.trainer_mode=passk_sync``): verl's
  synchronous trainer plus the per-response entropy / sequence log-probs that
  ``passk_adaptive`` / ``unlikeliness`` need, and unbiased pass@k, pass^k and maj@k in its
  validation metrics (:mod:`passk.integrations.verl_validation`).

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

from passk.core.advantages import compute_advantages, get_estimator, list_estimators
from passk.core.losses import get_policy_loss, list_policy_losses
from passk.seeds import derive_seed

__all__ = [
    "CONFIG_KEY",
    "PASSK_POLICY_LOSSES",
    "TRAINER_MODE",
    "VERL_ESTIMATORS",
    "VERL_ESTIMATOR_NAMES",
    "VERL_METRIC_NAMES",
    "group_by_uid",
    "passk_params_from_config",
    "passk_ppo_clip_policy_loss",
    "policy_loss_params_from_verl",
    "ppo_clip_params_from_verl",
    "register",
    "response_entropy",
    "response_inputs",
    "response_token_mean",
    "verl_advantage",
    "verl_estimator_name",
    "verl_estimators",
    "verl_global_step",
    "verl_loss_metrics",
    "verl_policy_loss",
    "verl_policy_losses",
]

logger = logging.getLogger(__name__)

#: verl 0.9.1's own advantage estimators (``core_algos.AdvantageEstimator``); a passk
#: estimator of the same name is registered as ``passk_<name>``. Static, so a name does not
#: depend on what else was imported; the live enum is added when verl is installed.
_VERL_BUILTIN_ESTIMATORS = frozenset(
    {
        "gae",
        "grpo",
        "reinforce_plus_plus",
        "reinforce_plus_plus_baseline",
        "remax",
        "rloo",
        "opo",
        "grpo_passk",
        "gpg",
        "rloo_vectorized",
        "grpo_vectorized",
        "optimal_token_baseline",
        "tir_optimal_token_baseline",
        "gdpo",
    }
)
#: passk estimators not registered with verl, and why.
_NOT_FOR_VERL = {"pass1": "verl's own grpo is the same estimator (algorithm.adv_estimator=grpo)"}
# Per-response inputs the adapter can supply to an estimator's ``needs`` (verl's trainer
# computes them; passk_sync hands them over): reduced to a per-group mean [G], or kept per
# response [G, N].
_GROUP_MEAN_NEEDS = ("entropy",)
_PER_RESPONSE_NEEDS = ("seq_logp",)
_SUPPLIED_NEEDS = frozenset(_GROUP_MEAN_NEEDS + _PER_RESPONSE_NEEDS)
# What passk_sync reads from TransferQueue for each need (the rows' token values).
_NEED_FIELDS = {"entropy": "entropy", "seq_logp": "old_log_probs"}


def verl_estimator_name(name: str) -> str:
    """The name passk estimator ``name`` has in verl: itself, or ``passk_<name>`` where
    verl uses the name for its own method.

    >>> verl_estimator_name("passk_analytic"), verl_estimator_name("rloo")
    ('passk_analytic', 'passk_rloo')
    """
    builtin = _VERL_BUILTIN_ESTIMATORS
    try:
        from verl.trainer.ppo.core_algos import AdvantageEstimator

        builtin = builtin | {e.value for e in AdvantageEstimator}
    except ImportError:
        pass
    return name if name.startswith("passk_") or name not in builtin else f"passk_{name}"


def verl_estimators() -> dict[str, str]:
    """``{verl name: passk name}`` of every registered passk estimator verl can drive.

    Derived from :func:`passk.list_estimators` each time: an estimator is left out when it
    is in ``_NOT_FOR_VERL`` or needs a per-response input the adapter cannot supply
    (supplied: ``entropy`` and ``seq_logp``, through the ``passk_sync`` trainer mode).
    """
    out: dict[str, str] = {}
    for name in list_estimators():
        if name in _NOT_FOR_VERL or not get_estimator(name).needs <= _SUPPLIED_NEEDS:
            continue
        out[verl_estimator_name(name)] = name
    return out


def verl_policy_losses() -> dict[str, str]:
    """``{verl loss_mode: passk loss}``: every passk policy loss without extra ``needs``,
    as ``passk_<name>``. verl's ``PolicyLossFn`` receives only the sampled tokens' log-probs,
    advantages and mask of one micro-batch; a loss that needs more (SimKO's top-K log-probs
    and entropy, Clip-Cov / KL-Cov's token selection over the whole mini-batch) cannot be
    computed inside it.
    """
    return {f"passk_{n}": n for n in list_policy_losses() if not get_policy_loss(n).needs}


#: verl name -> passk name of the estimators registered with verl (updated by register()).
VERL_ESTIMATOR_NAMES: dict[str, str] = verl_estimators()
#: verl names of the passk estimators registered with verl.
VERL_ESTIMATORS: tuple[str, ...] = tuple(VERL_ESTIMATOR_NAMES)
#: passk policy losses registered with verl's ``register_policy_loss``.
PASSK_POLICY_LOSSES: tuple[str, ...] = tuple(verl_policy_losses())
#: key under ``algorithm`` holding the estimator parameters.
CONFIG_KEY = "passk"
#: v1 trainer mode: per-response entropy / sequence log-probs for the estimators that need
#: them, and passk's validation metrics.
TRAINER_MODE = "passk_sync"

# Options of the adapter itself, read from ``algorithm.passk`` next to the estimator's.
_ADAPTER_KEYS = ("binarize_threshold",)
_INSTALL_HINT = "pip install 'passk[verl]' (see docs/integrations/verl.md)"
_MARK = "__passk_verl__"  # attribute marking functions registered by this module

# Per-row inputs {need: [B]} of the batch whose advantages are being computed (token-mean
# entropy, token-mean old log-prob); set by the passk_sync trainer (or by a caller with
# response_inputs(...)) around compute_advantage.
_RESPONSE_INPUTS: contextvars.ContextVar[Mapping[str, Tensor] | None] = contextvars.ContextVar(
    "passk_verl_response_inputs", default=None
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
def response_inputs(**values: Tensor) -> Iterator[None]:
    """Make per-response inputs ``[B]`` visible to the estimators that need them, inside.

    ``entropy``: mean token entropy per response (``passk_adaptive``, averaged per prompt);
    ``seq_logp``: mean token log-prob under the sampling policy (``unlikeliness``, kept per
    response). Rows follow the batch given to verl's ``compute_advantage``. The
    ``passk_sync`` trainer does this for you; use it when calling ``compute_advantage``
    yourself. Nested calls add to (and may override) the outer values.
    """
    unknown = sorted(set(values) - _SUPPLIED_NEEDS)
    if unknown:
        raise ValueError(
            f"unknown per-response input(s) {unknown}; valid: {sorted(_SUPPLIED_NEEDS)}"
        )
    merged = dict(_RESPONSE_INPUTS.get() or {})
    merged.update({k: torch.as_tensor(v).detach().reshape(-1) for k, v in values.items()})
    token = _RESPONSE_INPUTS.set(merged)
    try:
        yield
    finally:
        _RESPONSE_INPUTS.reset(token)


def response_entropy(entropy: Tensor) -> contextlib.AbstractContextManager[None]:
    """``response_inputs(entropy=entropy)``: per-response mean token entropy ``[B]``."""
    return response_inputs(entropy=entropy)


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
    if raw is None and not spec.uses_k:  # nothing required: every parameter has a default
        raw = {}
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
    inputs: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """verl-shaped advantage of passk estimator ``name``: returns ``(advantages, returns)``.

    Args:
        token_level_rewards: ``[B, T]``; the response's reward is the sum over T.
        response_mask: ``[B, T]`` valid response tokens.
        index: ``[B]`` prompt uid per response (``non_tensor_batch["uid"]``).
        config: verl's ``algorithm`` config; parameters under ``passk``.
        entropy: ``[B]`` per-response mean token entropy, for estimators that need it;
            ``None`` reads the value set by :func:`response_inputs`.
        inputs: ``{need: [B]}`` per-response inputs (``entropy``, ``seq_logp``); a need
            missing here is read from :func:`response_inputs`.
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
        given = {**(_RESPONSE_INPUTS.get() or {}), **(inputs or {})}
        if entropy is not None:
            given["entropy"] = entropy
        for need in sorted(spec.needs):
            params[need] = _need_to_groups(name, need, given.get(need), rows, cols, mask)
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


def _need_to_groups(
    name: str, need: str, value: Any, rows: Tensor, cols: Tensor, mask: Tensor
) -> Tensor:
    """A per-response input ``[B]`` -> what the estimator takes: the per-group mean ``[G]``
    (``entropy``) or the values in the group layout ``[G, N]`` (``seq_logp``, 0 where masked)."""
    if need not in _SUPPLIED_NEEDS:
        raise ValueError(
            f"estimator {name!r} needs {need!r}, which the verl adapter cannot supply "
            f"(supplied: {sorted(_SUPPLIED_NEEDS)})"
        )
    if value is None:
        raise ValueError(
            f"estimator {name!r} needs per-response {need!r}, which verl's compute_advantage "
            f"does not pass: run with trainer.v1.trainer_mode={TRAINER_MODE} (or wrap the call "
            f"in passk.integrations.verl.response_inputs({need}=...))"
        )
    flat = torch.as_tensor(value, device=mask.device).reshape(-1).to(torch.float64)  # [B]
    if flat.shape[0] != rows.shape[0]:
        raise ValueError(
            f"{need} has {flat.shape[0]} values, expected one per response ({rows.shape[0]})"
        )
    if need in _GROUP_MEAN_NEEDS:
        per_group = torch.zeros(mask.shape[0], dtype=torch.float64, device=mask.device)
        per_group.index_add_(0, rows, flat)
        return per_group / mask.sum(1).clamp(min=1)  # [G]
    grid = torch.zeros(mask.shape, dtype=torch.float64, device=mask.device)
    grid[rows, cols] = flat
    return grid  # [G, N]


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
# (passk's losses as verl policy losses: passk.integrations.verl_losses, re-exported here)

from passk.integrations.verl_losses import (  # noqa: E402
    VERL_METRIC_NAMES,
    _make_verl_policy_loss,
    passk_ppo_clip_policy_loss,
    policy_loss_params_from_verl,
    ppo_clip_params_from_verl,
    verl_loss_metrics,
    verl_policy_loss,
)

# --------------------------------------------------------------------------- trainer


def _register_trainer_mode() -> bool:
    """Register ``passk_sync``: the v1 sync trainer plus per-response inputs and validation.

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
    from passk.integrations.verl_validation import PassKValidationMixin

    class PassKPPOTrainerSync(PassKValidationMixin, PPOTrainerSync):
        """verl's synchronous PPO trainer + per-response inputs and passk validation metrics.

        verl computes token entropy and the old log-probs and stores them in TransferQueue,
        but ``compute_advantage`` never passes them to estimators. For an estimator whose
        spec ``needs`` ``entropy`` or ``seq_logp``, this trainer reads ``entropy`` /
        ``old_log_probs`` back for the batch's keys, reduces each to a token-mean per
        response ``[B]`` and exposes them through :func:`response_inputs` while verl's own
        ``_compute_advantage`` runs. Every other estimator goes through verl's code
        unchanged. Validation adds unbiased pass@k, pass^k and maj@k
        (:class:`passk.integrations.verl_validation.PassKValidationMixin`).
        """

        def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
            name = VERL_ESTIMATOR_NAMES.get(str(self.config.algorithm.adv_estimator))
            needs = sorted(get_estimator(name).needs & _SUPPLIED_NEEDS) if name else []
            if not needs:
                return super()._compute_advantage(batch, metrics)
            import transfer_queue as tq

            fields = [_NEED_FIELDS[n] for n in needs] + ["response_mask"]
            data = tq.kv_batch_get(
                keys=batch.keys, partition_id=batch.partition_id, select_fields=fields
            ).to_padded_tensor()
            values = {}
            for need in needs:
                per_row = response_token_mean(
                    data[_NEED_FIELDS[need]].float(), data["response_mask"]
                )  # [B]
                metrics[f"passk/response_{need}_mean"] = float(per_row.mean())
                values[need] = per_row
            with response_inputs(**values):
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

    global VERL_ESTIMATORS, PASSK_POLICY_LOSSES
    names = verl_estimators()  # the registry now: estimators registered since import count
    VERL_ESTIMATOR_NAMES.clear()
    VERL_ESTIMATOR_NAMES.update(names)
    VERL_ESTIMATORS = tuple(names)
    for verl_name, name in names.items():
        current = core_algos.ADV_ESTIMATOR_REGISTRY.get(verl_name)
        if current is not None and getattr(current, _MARK, None) == name:
            continue  # ours (this import or an earlier one of the module)
        if current is not None:
            warnings.warn(
                f"passk: verl already has an advantage estimator {verl_name!r}; not replacing it",
                stacklevel=2,
            )
            continue
        core_algos.ADV_ESTIMATOR_REGISTRY.pop(verl_name, None)
        core_algos.register_adv_est(verl_name)(_make_verl_estimator(name))

    losses = {
        verl_name: passk_ppo_clip_policy_loss
        if name == "ppo_clip"
        else _make_verl_policy_loss(name)
        for verl_name, name in verl_policy_losses().items()
    }
    PASSK_POLICY_LOSSES = tuple(losses)
    for name, fn in losses.items():
        current = core_algos.POLICY_LOSS_REGISTRY.get(name)
        if current is not None and current is not fn and not getattr(current, _MARK, None):
            warnings.warn(
                f"passk: verl already has a policy loss {name!r}; not replacing it", stacklevel=2
            )
            continue
        if getattr(current, _MARK, None) == name and name != "passk_ppo_clip":
            continue  # ours from an earlier import: keep the function verl already holds
        setattr(fn, _MARK, name)
        core_algos.register_policy_loss(name)(fn)

    _register_trainer_mode()


if importlib.util.find_spec("verl") is not None:
    register()
