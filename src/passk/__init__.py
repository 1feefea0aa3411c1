"""passk: exploration-aware reinforcement learning with verifiable rewards.

The numerics core is importable without any trainer machinery::

    >>> import torch, passk
    >>> rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> passk.compute_advantages("passk_analytic", rewards, k=2)
    tensor([[ 1.0000, -0.3333, -0.3333, -0.3333]])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from passk.lazy import lazy_getattr

if TYPE_CHECKING:
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

# name -> module; imported on first use, so that ``import passk`` (every ``passk``
# command) does not pay for torch when the command needs none
_LAZY: dict[str, str] = {
    "EstimatorSpec": "passk.core.advantages",
    "compute_advantages": "passk.core.advantages",
    "eta_curve": "passk.core.advantages",
    "get_estimator": "passk.core.advantages",
    "list_estimators": "passk.core.advantages",
    "register_estimator": "passk.core.advantages",
    "answer_diversity": "passk.core.metrics",
    "dang_bound": "passk.core.metrics",
    "default_ks": "passk.core.metrics",
    "pass_at_k": "passk.core.metrics",
    "pass_at_k_ci": "passk.core.metrics",
    "pass_at_k_curve": "passk.core.metrics",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


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
