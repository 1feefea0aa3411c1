"""Group-level advantage estimators: ``rewards[G, N] (+ mask) -> advantages[G, N]``.

The registry (:mod:`.registry`) sits below the families, which register themselves on
import: the pass@k family (:mod:`.passk_family`), max@k for continuous rewards
(:mod:`.maxk`), pass@k mixtures and MaxRL (:mod:`.mixtures`), Pass@1 and its baselines
(:mod:`.baselines`), quantile baselines (:mod:`.quantile`), and the estimators built from
others: weighted sums and the pass@k boundary gate (:mod:`.composed`). Importing this
package imports them all.

>>> import torch
>>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
>>> compute_advantages("pass1", r)
tensor([[ 1.7321, -0.5774, -0.5774, -0.5774],
        [ 1.0000,  1.0000, -1.0000, -1.0000]])
>>> compute_advantages("passk_analytic", r, k=2)  # the easier group gets less push
tensor([[ 1.0000, -0.3333, -0.3333, -0.3333],
        [ 0.4472,  0.4472, -0.4472, -0.4472]])
"""

from __future__ import annotations

from passk.core.advantages.baselines import (
    Pass1Params,
    ReinforcePPParams,
    RLOOParams,
    RSGRPOParams,
    UnlikelinessParams,
    WReinforceParams,
    pass1_advantage,
    unlikeliness_rewards,
)
from passk.core.advantages.composed import (
    CombineParams,
    CombineTerm,
    GatedParams,
    passk_headroom,
)
from passk.core.advantages.maxk import MaxKParams, PKPOParams, maxk_subset_stats
from passk.core.advantages.mixtures import MaxRLParams, MixtureParams, mixture_failure_weights
from passk.core.advantages.passk_family import (
    AdaptiveParams,
    BootstrapParams,
    ExceedParams,
    FullParams,
    Pass1MatchedParams,
    PassKParams,
    exceed_scale_default,
    pass1_matched_advantage,
    passk_adaptive_advantage,
    passk_analytic_advantage,
    passk_analytic_values,
    passk_bootstrap_advantage,
    passk_combination_advantage,
    passk_exceed_advantage,
    passk_full_advantage,
)
from passk.core.advantages.quantile import QAEParams, group_quantile
from passk.core.advantages.registry import (
    ESTIMATORS,
    RESPONSE_NEEDS,
    EstimatorSpec,
    compute_advantages,
    eta_curve,
    get_estimator,
    list_estimators,
    register_estimator,
)

# The table's name before the package split; tests and plugins that unregister their own
# estimators still reach it here.
_REGISTRY = ESTIMATORS

__all__ = [
    "ESTIMATORS",
    "RESPONSE_NEEDS",
    "AdaptiveParams",
    "BootstrapParams",
    "CombineParams",
    "CombineTerm",
    "EstimatorSpec",
    "ExceedParams",
    "FullParams",
    "GatedParams",
    "MaxKParams",
    "MaxRLParams",
    "MixtureParams",
    "PKPOParams",
    "Pass1MatchedParams",
    "Pass1Params",
    "PassKParams",
    "QAEParams",
    "RLOOParams",
    "RSGRPOParams",
    "ReinforcePPParams",
    "UnlikelinessParams",
    "WReinforceParams",
    "compute_advantages",
    "eta_curve",
    "exceed_scale_default",
    "get_estimator",
    "group_quantile",
    "list_estimators",
    "maxk_subset_stats",
    "mixture_failure_weights",
    "pass1_advantage",
    "pass1_matched_advantage",
    "passk_adaptive_advantage",
    "passk_analytic_advantage",
    "passk_analytic_values",
    "passk_bootstrap_advantage",
    "passk_combination_advantage",
    "passk_exceed_advantage",
    "passk_full_advantage",
    "passk_headroom",
    "register_estimator",
    "unlikeliness_rewards",
]
