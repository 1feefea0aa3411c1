"""Old import path of :mod:`passk.integrations.verl.losses` (passk losses as verl losses)."""

from passk.integrations.verl.losses import (
    VERL_METRIC_NAMES,
    passk_ppo_clip_policy_loss,
    policy_loss_params_from_verl,
    ppo_clip_params_from_verl,
    verl_loss_metrics,
    verl_policy_loss,
)

__all__ = [
    "VERL_METRIC_NAMES",
    "passk_ppo_clip_policy_loss",
    "policy_loss_params_from_verl",
    "ppo_clip_params_from_verl",
    "verl_loss_metrics",
    "verl_policy_loss",
]
