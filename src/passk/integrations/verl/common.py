"""What the verl plugin's modules share: config keys, the registration mark, config reading.

Nothing here imports verl at module level, so the plugin imports (and its docs build)
without verl installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CONFIG_KEY",
    "INSTALL_HINT",
    "MARK",
    "TRAINER_MODE",
    "to_plain",
    "verl_global_step",
]

#: key under ``algorithm`` holding the estimator parameters.
CONFIG_KEY = "passk"
#: v1 trainer mode: per-response entropy / sequence log-probs for the estimators that need
#: them, and passk's validation metrics.
TRAINER_MODE = "passk_sync"
#: how to install the verl extra, for every "needs verl" error.
INSTALL_HINT = "pip install 'passk[verl]' (see docs/integrations/verl.md)"
#: attribute marking the functions and classes this plugin registered with verl.
MARK = "__passk_verl__"


def to_plain(value: Any) -> Any:
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
        return {str(k): to_plain(v) for k, v in value.items()}
    return value


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
