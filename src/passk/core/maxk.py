"""Old import path of :mod:`passk.core.advantages.maxk` (max@k for continuous rewards)."""

from passk.core.advantages.maxk import MaxKParams, PKPOParams, maxk_subset_stats

__all__ = ["MaxKParams", "PKPOParams", "maxk_subset_stats"]
