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
  ``passk_gspo``, ...), aggregated with an explicit global normaliser; DPPO is verl's own
  (``loss_mode=dppo_tv`` / ``dppo_kl``, equal to passk's), so it is not registered again;
- the v1 trainer mode ``passk_sync`` (``trainer.v1.trainer_mode=passk_sync``): verl's
  synchronous trainer plus the per-response entropy / sequence log-probs that
  ``passk_adaptive`` / ``unlikeliness`` need, and unbiased pass@k, pass^k and maj@k in its
  validation metrics (:mod:`passk.integrations.verl.validation`).

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

The package: :mod:`.common` (config keys, the registration mark), :mod:`.advantages`
(estimators and the batch <-> group adapter), :mod:`.losses` (policy losses),
:mod:`.validation` (pass@k / pass^k / maj@k metrics), :mod:`.trainer` (``passk_sync``);
:func:`register` puts them into verl.

Without verl installed this package imports (so the docs and doctests build) but registers
nothing; :func:`register` then raises an ``ImportError`` with the install command.
"""

from __future__ import annotations

import importlib.util
import warnings

from passk.core.aggregate import response_token_mean
from passk.integrations.verl.advantages import (
    VERL_ESTIMATOR_NAMES,
    group_by_uid,
    make_verl_estimator,
    passk_params_from_config,
    response_entropy,
    response_inputs,
    verl_advantage,
    verl_estimator_name,
    verl_estimators,
)
from passk.integrations.verl.common import (
    CONFIG_KEY,
    INSTALL_HINT,
    MARK,
    TRAINER_MODE,
    verl_global_step,
)
from passk.integrations.verl.losses import (
    VERL_METRIC_NAMES,
    VERL_NATIVE_LOSSES,
    make_verl_policy_loss,
    passk_ppo_clip_policy_loss,
    policy_loss_params_from_verl,
    ppo_clip_params_from_verl,
    verl_loss_metrics,
    verl_policy_loss,
    verl_policy_losses,
)
from passk.integrations.verl.trainer import register_trainer_mode

__all__ = [
    "CONFIG_KEY",
    "PASSK_POLICY_LOSSES",
    "TRAINER_MODE",
    "VERL_ESTIMATORS",
    "VERL_ESTIMATOR_NAMES",
    "VERL_METRIC_NAMES",
    "VERL_NATIVE_LOSSES",
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

#: verl names of the passk estimators registered with verl.
VERL_ESTIMATORS: tuple[str, ...] = tuple(VERL_ESTIMATOR_NAMES)
#: passk policy losses registered with verl's ``register_policy_loss``.
PASSK_POLICY_LOSSES: tuple[str, ...] = tuple(verl_policy_losses())


def register() -> None:
    """Register passk's estimators, losses and trainer mode with verl (idempotent).

    Called on import when verl is installed. A name that verl (or another plugin)
    already uses for a different function is left alone with a warning.
    """
    try:
        from verl.trainer.ppo import core_algos
    except ImportError as err:
        raise ImportError(f"passk.integrations.verl needs verl: {INSTALL_HINT}") from err

    global VERL_ESTIMATORS, PASSK_POLICY_LOSSES
    names = verl_estimators()  # the registry now: estimators registered since import count
    VERL_ESTIMATOR_NAMES.clear()
    VERL_ESTIMATOR_NAMES.update(names)
    VERL_ESTIMATORS = tuple(names)
    for verl_name, name in names.items():
        current = core_algos.ADV_ESTIMATOR_REGISTRY.get(verl_name)
        if current is not None and getattr(current, MARK, None) == name:
            continue  # ours (this import or an earlier one of the module)
        if current is not None:
            warnings.warn(
                f"passk: verl already has an advantage estimator {verl_name!r}; not replacing it",
                stacklevel=2,
            )
            continue
        core_algos.ADV_ESTIMATOR_REGISTRY.pop(verl_name, None)
        core_algos.register_adv_est(verl_name)(make_verl_estimator(name))

    losses = {
        verl_name: passk_ppo_clip_policy_loss if name == "ppo_clip" else make_verl_policy_loss(name)
        for verl_name, name in verl_policy_losses().items()
    }
    PASSK_POLICY_LOSSES = tuple(losses)
    for name, fn in losses.items():
        current = core_algos.POLICY_LOSS_REGISTRY.get(name)
        if current is not None and current is not fn and not getattr(current, MARK, None):
            warnings.warn(
                f"passk: verl already has a policy loss {name!r}; not replacing it", stacklevel=2
            )
            continue
        if getattr(current, MARK, None) == name and name != "passk_ppo_clip":
            continue  # ours from an earlier import: keep the function verl already holds
        setattr(fn, MARK, name)
        core_algos.register_policy_loss(name)(fn)

    register_trainer_mode()


if importlib.util.find_spec("verl") is not None:
    register()
