"""passk: exploration-aware reinforcement learning with verifiable rewards.

The numerics core is importable without any trainer machinery::

    >>> import torch, passk
    >>> rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> passk.compute_advantages("passk_analytic", rewards, k=2)
    tensor([[ 1.0000, -0.3333, -0.3333, -0.3333]])
"""

from passk.core.advantages import (
    EstimatorSpec,
    compute_advantages,
    eta_curve,
    get_estimator,
    list_estimators,
    register_estimator,
)
from passk.core.metrics import (
    answer_diversity,
    dang_bound,
    default_ks,
    pass_at_k,
    pass_at_k_ci,
    pass_at_k_curve,
)

__version__ = "0.1.0"

__all__ = [
    "EstimatorSpec",
    "__version__",
    "answer_diversity",
    "compute_advantages",
    "dang_bound",
    "default_ks",
    "eta_curve",
    "get_estimator",
    "list_estimators",
    "pass_at_k",
    "pass_at_k_ci",
    "pass_at_k_curve",
    "register_estimator",
]
