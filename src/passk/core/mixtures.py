"""Old import path of :mod:`passk.core.advantages.mixtures` (pass@k mixtures and MaxRL)."""

from passk.core.advantages.mixtures import MaxRLParams, MixtureParams, mixture_failure_weights

__all__ = ["MaxRLParams", "MixtureParams", "mixture_failure_weights"]
