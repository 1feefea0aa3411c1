"""Rollout allocation: how many extra responses a prompt gets (DARS, arXiv 2508.13755).

After a first round of N samples with accuracy ``a``, DARS tops hard prompts up so that
their cumulative advantage mass reaches that of a prompt at 50% accuracy.

>>> import torch
>>> acc = torch.tensor([0.0, 1 / 8, 1 / 4, 1 / 2])
>>> dars_extra_rollouts(acc, 8, "et").tolist(), dars_extra_rollouts(acc, 8, "hw").tolist()
([24, 11, 3, 0], [56, 24, 8, 0])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["dars_extra_rollouts"]

_DEFAULT_MAX = {"et": 32, "hw": 64}


def dars_extra_rollouts(
    accuracy: Tensor,
    n: int,
    schedule: str = "et",
    *,
    n_max: int | None = None,
    std_normalized: bool = False,
) -> Tensor:
    """Extra rollouts ``dN`` per prompt from first-round accuracy ``a`` (``[G]`` -> ``[G]``).

    ``a := 0.5 / n`` when a prompt got no correct sample, and prompts with ``a >= 0.5``
    get nothing. With the per-sample advantage mass ``S = 2 a (1 - a)`` (or
    ``2 sqrt(a (1 - a))`` when advantages are std-normalised) and ``A_peak = n / 2``
    (``n`` when std-normalised):

    - ``"et"`` (equal treatment): ``dN = ceil((A_peak - n S) / S)``, capped at
      ``n_max - n`` (``n_max`` 32 by default);
    - ``"hw"`` (hardness weighting): ``dN = ceil((2 (1 - a) A_peak - n S) / S)``, capped
      at ``n_max - n`` (``n_max`` 64 by default).
    """
    if schedule not in _DEFAULT_MAX:
        raise ValueError(f"DARS schedule must be one of {sorted(_DEFAULT_MAX)}, got {schedule!r}")
    if n < 1:
        raise ValueError(f"n (first-round samples) must be >= 1, got {n}")
    n_max = _DEFAULT_MAX[schedule] if n_max is None else n_max
    if n_max < n:
        raise ValueError(f"n_max must be >= n={n}, got {n_max}")
    a = accuracy.to(torch.float64)
    if ((a < 0) | (a > 1)).any():
        raise ValueError("accuracy must be in [0, 1]")
    a = torch.where(a == 0, 0.5 / n, a)
    if std_normalized:
        s, peak = 2 * (a * (1 - a)).sqrt(), float(n)
    else:
        s, peak = 2 * a * (1 - a), n / 2
    target = peak if schedule == "et" else 2 * (1 - a) * peak
    # round before ceil so that exact integers computed in floating point stay exact
    extra = torch.ceil(((target - n * s) / s).round(decimals=9))
    extra = extra.clamp(0, n_max - n)
    return torch.where(a >= 0.5, 0.0, extra).long()
