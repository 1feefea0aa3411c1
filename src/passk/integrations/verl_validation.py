"""Old import path of :mod:`passk.integrations.verl.validation` (verl validation metrics)."""

from passk.integrations.verl.validation import (
    VAL_CONFIG_KEY,
    PassKValidationMixin,
    ValidationOptions,
    grouped_metrics,
    maj_at_k,
    pass_hat_k,
    validation_options_from_config,
    verl_validation_metrics,
)

__all__ = [
    "VAL_CONFIG_KEY",
    "PassKValidationMixin",
    "ValidationOptions",
    "grouped_metrics",
    "maj_at_k",
    "pass_hat_k",
    "validation_options_from_config",
    "verl_validation_metrics",
]
