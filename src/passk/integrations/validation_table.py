"""The pass@k / pass^k / maj@k table of grouped validation samples, with intervals.

Shared by the verl validation metrics (:mod:`passk.integrations.verl.validation`) and the
TRL callback (:mod:`passk.integrations.trl_callback`); it imports neither verl nor TRL, so
importing one integration never loads the other.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from passk.core.defaults import NUM_RESAMPLES
from passk.core.majority import maj_at_k
from passk.core.metrics import bootstrap_mean_ci, default_ks, pass_at_k, pass_hat_k

__all__ = ["grouped_metrics"]


def grouped_metrics(
    correct: Sequence[Sequence[bool]],
    answers: Sequence[Sequence[Hashable | None]] | None = None,
    ks: Sequence[int] | None = None,
    *,
    num_resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """pass@k, pass^k (and maj@k with ``answers``) averaged over problems, with bootstrap CIs.

    Args:
        correct: per problem, one flag per sample (problems may have different n).
        answers: per problem, the extracted answer of each sample (None: no answer).
        ks: the k values (default :func:`passk.core.metrics.default_ks` of the smallest n);
            each must be ``<=`` the smallest n.

    Returns ``{"pass@k": mean, "pass@k/ci_lo": lo, "pass@k/ci_hi": hi, "pass^k": ...,
    "maj@k": ...}`` as floats.

    >>> grouped_metrics([[True, False], [False, False]], ks=[1, 2], num_resamples=10)["pass@2"]
    0.5
    """
    if not correct:
        raise ValueError("need at least one problem")
    ns = [len(c) for c in correct]
    n_min = min(ns)
    if n_min < 1:
        raise ValueError("every problem needs at least one sample")
    ks = list(ks) if ks is not None else default_ks(n_min)
    bad = [k for k in ks if not (isinstance(k, int) and 1 <= k <= n_min)]
    if bad:
        raise ValueError(f"ks {bad} out of range: each k must be in [1, {n_min}] (fewest samples)")
    if answers is not None and [len(a) for a in answers] != ns:
        raise ValueError("answers must have one entry per sample of each problem")
    cs = [int(sum(bool(x) for x in c)) for c in correct]
    columns: dict[str, list[float]] = {}
    for k in ks:
        columns[f"pass@{k}"] = [float(pass_at_k(n, c, k)) for n, c in zip(ns, cs)]
        columns[f"pass^{k}"] = [pass_hat_k(n, c, k) for n, c in zip(ns, cs)]
        if answers is not None:
            columns[f"maj@{k}"] = [maj_at_k(a, c, k) for a, c in zip(answers, correct)]
    names = list(columns)
    table = np.array([columns[name] for name in names], dtype=np.float64).T  # [P, M]
    lo, hi = bootstrap_mean_ci(table, num_resamples, confidence=confidence, seed=seed)
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        out[name] = float(table[:, i].mean())
        out[f"{name}/ci_lo"] = float(lo[i])
        out[f"{name}/ci_hi"] = float(hi[i])
    return out
