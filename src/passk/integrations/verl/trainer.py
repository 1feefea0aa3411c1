"""The v1 trainer mode ``passk_sync``: verl's synchronous trainer plus the per-response
inputs some estimators need and passk's validation metrics.

Part of the verl plugin (:func:`passk.integrations.verl.register` calls
:func:`register_trainer_mode`).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Any

from passk.core.aggregate import response_token_mean
from passk.integrations.verl.advantages import (
    NEED_FIELDS,
    VERL_ESTIMATOR_NAMES,
    estimator_needs,
    response_inputs,
)
from passk.integrations.verl.common import MARK, TRAINER_MODE

__all__ = ["register_trainer_mode"]


def register_trainer_mode() -> bool:
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
    if existing is not None and getattr(existing, MARK, None):
        return True
    from passk.integrations.verl.validation import PassKValidationMixin

    class PassKPPOTrainerSync(PassKValidationMixin, PPOTrainerSync):
        """verl's synchronous PPO trainer + per-response inputs and passk validation metrics.

        verl computes token entropy and the old log-probs and stores them in TransferQueue,
        but ``compute_advantage`` never passes them to estimators. For an estimator whose
        spec ``needs`` ``entropy`` or ``seq_logp``, this trainer reads ``entropy`` /
        ``old_log_probs`` back for the batch's keys, reduces each to a token-mean per
        response ``[B]`` and exposes them through :func:`response_inputs` while verl's own
        ``_compute_advantage`` runs. Every other estimator goes through verl's code
        unchanged. Validation adds unbiased pass@k, pass^k and maj@k
        (:class:`passk.integrations.verl.validation.PassKValidationMixin`).
        """

        def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
            name = VERL_ESTIMATOR_NAMES.get(str(self.config.algorithm.adv_estimator))
            needs = sorted(estimator_needs(name, self.config.algorithm) & NEED_FIELDS.keys())
            if not needs:
                return super()._compute_advantage(batch, metrics)
            import transfer_queue as tq

            fields = [NEED_FIELDS[n] for n in needs] + ["response_mask"]
            data = tq.kv_batch_get(
                keys=batch.keys, partition_id=batch.partition_id, select_fields=fields
            ).to_padded_tensor()
            values = {}
            for need in needs:
                per_row = response_token_mean(
                    data[NEED_FIELDS[need]].float(), data["response_mask"]
                )  # [B]
                metrics[f"passk/response_{need}_mean"] = float(per_row.mean())
                values[need] = per_row
            with response_inputs(**values):
                return super()._compute_advantage(batch, metrics)

    setattr(PassKPPOTrainerSync, MARK, True)
    TRAINER_REGISTRY[TRAINER_MODE] = PassKPPOTrainerSync
    return True
