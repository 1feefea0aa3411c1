"""Old import path of :mod:`passk.core.advantages.baselines` (risk-seeking, weighted and
leave-one-out advantages) and of ``pass1_matched``'s params."""

from passk.core.advantages.baselines import (
    ReinforcePPParams,
    RLOOParams,
    RSGRPOParams,
    UnlikelinessParams,
    WReinforceParams,
    unlikeliness_rewards,
)
from passk.core.advantages.passk_family import Pass1MatchedParams

__all__ = [
    "Pass1MatchedParams",
    "RLOOParams",
    "RSGRPOParams",
    "ReinforcePPParams",
    "UnlikelinessParams",
    "WReinforceParams",
    "unlikeliness_rewards",
]
