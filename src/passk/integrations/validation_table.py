"""The pass@k / pass^k / maj@k table of grouped validation samples, with intervals.

Shared by the verl validation metrics (:mod:`passk.integrations.verl.validation`) and the
TRL callback (:mod:`passk.integrations.trl_callback`); it imports neither verl nor TRL, so
importing one integration never loads the other.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from passk.core.defaults import NUM_RESAMPLES
from passk.core.metrics import CI_KEYS, default_ks, metric_curves, per_problem_metrics

__all__ = ["grouped_metrics"]

# metric of the shared table -> its prefix in these metric names
_PREFIX = {"pass_at_k": "pass@", "pass_hat_k": "pass^", "maj_at_k": "maj@"}


def grouped_metrics(
    correct: Sequence[Sequence[bool]],
    answers: Sequence[Sequence[Hashable | None]] | None = None,
    ks: Sequence[int] | None = None,
    *,
    num_resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """pass@k, pass^k (and maj@k with ``answers``) averaged over problems, with bootstrap CIs:
    the table of ``passk eval`` reports (:func:`passk.core.metrics.metric_curves`), the same
    numbers under metric names.

    Args:
        correct: per problem, one flag per sample (problems may have different n).
        answers: per problem, the extracted answer of each sample (None: no answer).
        ks: the k values (default :func:`passk.core.metrics.default_ks` of the smallest n).
            A problem with fewer than k samples is left out at that k, as in eval reports;
            a k above every problem's n is refused.

    Returns ``{"pass@k": mean, "pass@k/ci_lo": lo, "pass@k/ci_hi": hi, "pass^k": ...,
    "maj@k": ...}`` as floats.

    >>> grouped_metrics([[True, False], [False, False]], ks=[1, 2], num_resamples=10)["pass@2"]
    0.5
    """
    if not correct:
        raise ValueError("need at least one problem")
    ns = [len(c) for c in correct]
    if min(ns) < 1:
        raise ValueError("every problem needs at least one sample")
    ks = list(ks) if ks is not None else default_ks(min(ns))
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max(ns)]
    if bad:
        raise ValueError(f"ks {bad} out of range: each k must be in [1, {max(ns)}] (most samples)")
    if answers is not None and [len(a) for a in answers] != ns:
        raise ValueError("answers must have one entry per sample of each problem")
    per = per_problem_metrics(correct, ks, answers, seed=seed)
    table = metric_curves(per, ks, num_resamples=num_resamples, confidence=confidence, seed=seed)
    out: dict[str, float] = {}
    for metric, prefix in _PREFIX.items():
        ci = table[CI_KEYS[metric]]
        for k, value in table[metric].items():
            out[f"{prefix}{k}"] = float(value)
            out[f"{prefix}{k}/ci_lo"] = float(ci[k][0])
            out[f"{prefix}{k}/ci_hi"] = float(ci[k][1])
    return out
