"""Two arms compared on the same problems, with intervals that count training seeds.

An arm is a metric evaluated per seed and per problem, ``values[S, P]`` (pass@k, pass^k,
maj@k at one k; or an indicator such as Cover@tau). Arm B is compared with arm A by the
difference of means ``B - A``; seeds are paired by position (seed s of A and of B start
from the same weights or share a role), problems by index.

Two intervals, for two questions:

* **t over seeds** (:func:`t_interval` of the per-seed differences, df = S - 1): would
  another training run differ the same way, on *this* test set? It counts the variance
  between training runs (and the sampling noise of the evaluation, which each seed's
  mean carries) and treats the problems as fixed. Needs S >= 2.
* **bootstrap over seeds and problems** (:func:`crossed_bootstrap`): would another
  training run, evaluated on *new* problems from the same distribution, differ the same
  way? It resamples seed effects and problem effects, each once, so the seed x problem
  term is counted once (a bootstrap that redraws a seeds x problems sub-array counts it
  (S-1)/S + (P-1)/P + (S-1)(P-1)/(SP) times: ~2.3 with 3 seeds). With few seeds its
  tails are too light (it knows only S seed effects), which is why it is never used
  alone when S >= 2.

A difference is called **distinguishable** only when both intervals exclude 0. With one
seed there is no t-interval: the bootstrap covers problems and evaluation samples, not
training variance, and the result says so (``training_variance_covered``).

Means of 0/1 values (Cover@tau, pass^k or pass@k where every problem is 0 or 1) are
where a bootstrap collapses (all problems equal: zero width). There the arm's interval
is Wilson's score interval, and the difference's spans both Newcombe's score interval
for paired proportions over every seed x problem pair and the bootstrap (the score
interval alone would treat the pairs as independent and miss the seed level).

Everything here is pure: arrays in, plain dicts out (JSON-ready).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


# --- distributions ------------------------------------------------------------------------------


def t_cdf(x: float, df: int) -> float:
    """Student-t CDF for an integer ``df >= 1``, in closed form (finite series in theta).

    With theta = atan(x / sqrt(df)): df = 1 gives 1/2 + theta/pi; the other df sum a
    finite series in cos(theta) (odd and even df differ).

    >>> round(t_cdf(4.302652729911275, 2), 6)
    0.975
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df}")
    theta = math.atan(x / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for j in range(1, df // 2):
            term *= c2 * (2 * j - 1) / (2 * j)
            total += term
        a = s * total
    else:
        a = theta
        if df > 1:
            term, total = 1.0, 1.0
            for j in range(1, (df - 1) // 2):
                term *= c2 * (2 * j) / (2 * j + 1)
                total += term
            a += s * math.cos(theta) * total
        a *= 2 / math.pi
    return 0.5 + 0.5 * a


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with integer ``df`` (bisection on :func:`t_cdf`).

    >>> round(t_quantile(0.975, 2), 4)
    4.3027
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def binomial_two_sided(successes: int, trials: int) -> float:
    """Exact two-sided p-value of ``successes`` of ``trials`` under p = 1/2 (a sign test).

    >>> binomial_two_sided(0, 5)
    0.0625
    """
    if trials == 0:
        return 1.0
    tail = min(successes, trials - successes)
    p = sum(math.comb(trials, i) for i in range(tail + 1)) / 2**trials
    return min(1.0, 2 * p)


# --- intervals ----------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """mean +- t(df = len - 1) * sd / sqrt(len) of ``values`` (None for fewer than 2).

    >>> lo, hi = t_interval([0.1, 0.2, 0.3])
    >>> round(lo, 4), round(hi, 4)
    (-0.0484, 0.4484)
    """
    _check_confidence(confidence)
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    half = t_quantile(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def wilson_interval(
    successes: int, trials: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Wilson's score interval for a proportion (never zero width, stays inside [0, 1]).

    >>> lo, hi = wilson_interval(0, 10)
    >>> round(lo, 4), round(hi, 4)
    (0.0, 0.2775)
    """
    _check_confidence(confidence)
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials >= 1, got {successes} of {trials}")
    z, p = _z(confidence), successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_proportion_interval(
    a: np.ndarray, b: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Newcombe's score interval for ``mean(b) - mean(a)`` of paired 0/1 outcomes.

    It combines the two Wilson intervals with the correlation of the pairs (Newcombe
    1998, method 10); it has width even when every pair changed the same way.

    >>> lo, hi = paired_proportion_interval(np.zeros(20), np.ones(20))
    >>> round(lo, 3), round(hi, 3)
    (0.772, 1.0)
    """
    a, b = np.asarray(a, dtype=bool).ravel(), np.asarray(b, dtype=bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal, non-empty sets of pairs, got {a.size} and {b.size}")
    n = a.size
    both, only_a = int((a & b).sum()), int((a & ~b).sum())
    only_b, neither = int((~a & b).sum()), int((~a & ~b).sum())
    pa, pb = (both + only_a) / n, (both + only_b) / n
    la, ua = wilson_interval(both + only_a, n, confidence)
    lb, ub = wilson_interval(both + only_b, n, confidence)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(denom) if denom > 0 else 0.0
    down = math.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    up = math.sqrt(max(0.0, (ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2))
    d = pb - pa
    return max(-1.0, d - down), min(1.0, d + up)


def crossed_variance(values: np.ndarray) -> float:
    """Unbiased variance of the grand mean of ``values[S, P]`` under random seeds and
    problems: ``V_seeds / S + V_problems / P - MS_residual / (S P)`` (the seed x problem
    term appears in both the seed means and the problem means, so it is taken out once,
    from the seed part). The seed part is floored at 0, which makes the estimate
    conservative where seeds agree (with pure evaluation noise and 3 seeds it is
    1 + 1/e times the truth on average).

    Used by the tests to check :func:`crossed_bootstrap`.
    """
    s, p = values.shape
    row, col, grand = values.mean(1), values.mean(0), values.mean()
    v_seeds = row.var(ddof=1) if s > 1 else 0.0
    v_probs = col.var(ddof=1) if p > 1 else 0.0
    if s > 1 and p > 1:
        resid = values - row[:, None] - col[None, :] + grand
        ms = float((resid**2).sum()) / ((s - 1) * (p - 1))
        v_seeds = max(0.0, v_seeds - ms / p)
    return float(v_seeds / s + v_probs / p)


def crossed_bootstrap(
    values: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values[S, P]``, resampling seeds and problems.

    The array is split into a grand mean, seed effects (row means minus it), problem
    effects (column means minus it) and a residual. A replicate draws S seed effects and
    P problem effects with replacement and adds their means to the grand mean. Problem
    effects carry the seed x problem term once (a column mean averages it over seeds);
    seed effects would carry it again (a row mean averages it over problems), so they
    are shrunk by the share of their variance that the residual explains: the seed level
    resamples training-run variance only, and the evaluation noise is resampled with
    the problems, where P - 1 degrees of freedom describe it. Both are rescaled by
    sqrt(m / (m - 1)), the bootstrap's small-sample bias. The replicates' variance is
    then :func:`crossed_variance` exactly.

    With one seed it is the ordinary bootstrap over problems.

    >>> crossed_bootstrap(np.ones((3, 4)))
    (1.0, 1.0)
    """
    _check_confidence(confidence)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.size == 0 or np.isnan(values).any():
        raise ValueError(f"values must be a finite [seeds, problems] array, got {values.shape}")
    s, p = values.shape
    grand = float(values.mean())
    row, col = values.mean(1) - grand, values.mean(0) - grand
    seed_eff = row * math.sqrt(s / (s - 1)) if s > 1 else np.zeros(1)
    prob_eff = col * math.sqrt(p / (p - 1)) if p > 1 else np.zeros(1)
    if s > 1 and p > 1:
        resid = values - row[:, None] - col[None, :] - grand
        ms = float((resid**2).sum()) / ((s - 1) * (p - 1))
        v_row = float(row.var(ddof=1))
        seed_eff = seed_eff * (math.sqrt(max(0.0, 1 - ms / (p * v_row))) if v_row > 0 else 0.0)
    rng = np.random.default_rng(seed)
    draws = grand + _resampled_means(seed_eff, resamples, rng)
    draws = draws + _resampled_means(prob_eff, resamples, rng)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _resampled_means(effects: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` draws (with replacement) of ``len(effects)`` effects each."""
    m = len(effects)
    counts = rng.multinomial(m, np.full(m, 1 / m), size=resamples)  # [B, m]
    return counts @ effects / m


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def mean_interval(
    values: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Interval of one arm's mean of ``values[S, P]``: Wilson over every seed x problem
    value when all are 0 or 1, else :func:`crossed_bootstrap`."""
    values = np.asarray(values, dtype=float)
    if _is_binary(values):
        return wilson_interval(int(values.sum()), values.size, confidence)
    return crossed_bootstrap(values, resamples, confidence, seed)


# --- one metric, two arms -----------------------------------------------------------------------


def compare_values(
    a: np.ndarray,
    b: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict[str, Any]:
    """Arm B against arm A on one metric, ``a[S, P]`` and ``b[S, P]`` (seeds paired by row).

    A problem with NaN in any seed of either arm (fewer than k samples) is left out.
    Returns ``a``, ``b`` (means), ``diff`` (B - A), ``per_seed`` (each seed's B - A),
    ``t_ci`` (None with one seed), ``boot_ci``, ``boot_method`` (``"bootstrap"``, or
    ``"newcombe"`` for 0/1 values: the hull of the score interval and the bootstrap),
    ``a_ci``, ``b_ci``, ``distinguishable``,
    ``training_variance_covered``, ``seeds`` and ``problems``.

    >>> r = compare_values(np.array([[0.2, 0.4]]), np.array([[0.3, 0.5]]))
    >>> round(r["diff"], 6), r["t_ci"], r["training_variance_covered"]
    (0.1, None, False)
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"a and b must be [seeds, problems] of one shape, got {a.shape}, {b.shape}"
        )
    keep = ~(np.isnan(a).any(0) | np.isnan(b).any(0))
    if not keep.any():
        raise ValueError("no problem has a value in every seed of both arms")
    a, b = a[:, keep], b[:, keep]
    s, p = a.shape
    diff = b - a  # [S, P]
    per_seed = diff.mean(1)  # [S]
    t_ci = t_interval(per_seed, confidence)
    opts = {"resamples": resamples, "confidence": confidence, "seed": seed}
    boot_ci, method = crossed_bootstrap(diff, **opts), "bootstrap"
    if _is_binary(a) and _is_binary(b):
        # the score interval keeps width where the bootstrap collapses (every pair changed
        # alike); it pools the seed x problem pairs, so the bootstrap's seed level is kept
        score = paired_proportion_interval(a, b, confidence)
        boot_ci, method = (min(boot_ci[0], score[0]), max(boot_ci[1], score[1])), "newcombe"
    excludes = [ci[0] > 0 or ci[1] < 0 for ci in (t_ci, boot_ci) if ci is not None]
    return {
        "a": float(a.mean()),
        "b": float(b.mean()),
        "diff": float(diff.mean()),
        "per_seed": [float(x) for x in per_seed],
        "t_ci": list(t_ci) if t_ci is not None else None,
        "boot_ci": list(boot_ci),
        "boot_method": method,
        "a_ci": list(mean_interval(a, **opts)),
        "b_ci": list(mean_interval(b, **opts)),
        "distinguishable": all(excludes),
        "training_variance_covered": t_ci is not None,
        "seeds": s,
        "problems": p,
    }


def compare_metrics(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray],
    ks: Mapping[str, Sequence[Any]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`compare_values` for every metric and k: ``a[metric]`` is ``[S, P, K]`` with
    column j holding ``ks[metric][j]``; returns ``{metric: {str(k): result}}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for metric, keys in ks.items():
        if metric not in a or metric not in b:
            continue
        va, vb = np.asarray(a[metric], dtype=float), np.asarray(b[metric], dtype=float)
        if va.shape != vb.shape or va.ndim != 3 or va.shape[2] != len(keys):
            raise ValueError(
                f"{metric}: expected [seeds, problems, {len(keys)}] arrays of one shape, "
                f"got {va.shape} and {vb.shape}"
            )
        out[metric] = {}
        for j, k in enumerate(keys):
            try:
                out[metric][str(k)] = compare_values(
                    va[:, :, j], vb[:, :, j], resamples=resamples, confidence=confidence, seed=seed
                )
            except ValueError:  # no problem has k samples in every report
                continue
    return out


# --- per-problem transitions --------------------------------------------------------------------

TRANSITIONS = ("never_to_solved", "solved_to_never", "always_to_not_always", "not_always_to_always")


def transitions(
    c_a: np.ndarray,
    n_a: np.ndarray,
    c_b: np.ndarray,
    n_b: np.ndarray,
    ids: Sequence[str] | None = None,
    *,
    threshold: float = 0.0,
) -> dict[str, Any]:
    """Problems that changed class between A and B, from counts ``c[S, P]`` of ``n[S, P]``.

    A problem is *solved* when its pass@1 = c / n exceeds ``threshold`` (default: at
    least one of n right) and *always* solved when c / n >= 1 - ``threshold`` (all n).
    Counts are summed over seeds and given per seed; ``problems`` lists, per transition,
    the ids that made it in at least one seed (with how many seeds). Each pair of
    opposite transitions gets an exact McNemar test (a two-sided sign test on the
    discordant seed x problem pairs), and ``sign_test`` is the exact sign test on the
    per-problem change of pass@1 (mean over seeds; ties left out).

    >>> t = transitions(np.array([[0, 3, 4]]), np.array([[4, 4, 4]]),
    ...                 np.array([[2, 0, 3]]), np.array([[4, 4, 4]]))
    >>> t["never_to_solved"], t["solved_to_never"], t["always_to_not_always"]
    (1, 1, 1)
    """
    arrays = [np.asarray(x, dtype=float) for x in (c_a, n_a, c_b, n_b)]
    shape = arrays[0].shape
    if len(shape) != 2 or any(x.shape != shape for x in arrays):
        raise ValueError(
            f"counts must be [seeds, problems] of one shape, got {[x.shape for x in arrays]}"
        )
    if not 0 <= threshold < 0.5:
        raise ValueError(f"threshold must be in [0, 0.5), got {threshold}")
    c_a, n_a, c_b, n_b = arrays
    if (n_a < 1).any() or (n_b < 1).any() or (c_a > n_a).any() or (c_b > n_b).any():
        raise ValueError("counts must satisfy 0 <= c <= n and n >= 1")
    s, p = shape
    ids = [str(i) for i in ids] if ids is not None else [str(j) for j in range(p)]
    if len(ids) != p:
        raise ValueError(f"{len(ids)} ids for {p} problems")
    ra, rb = c_a / n_a, c_b / n_b
    solved_a, solved_b = ra > threshold, rb > threshold
    always_a, always_b = ra >= 1 - threshold, rb >= 1 - threshold
    moves = {
        "never_to_solved": ~solved_a & solved_b,
        "solved_to_never": solved_a & ~solved_b,
        "always_to_not_always": always_a & ~always_b,
        "not_always_to_always": ~always_a & always_b,
    }  # each [S, P]
    out: dict[str, Any] = {name: int(m.sum()) for name, m in moves.items()}
    out["per_seed"] = {name: [int(x) for x in m.sum(1)] for name, m in moves.items()}
    out["problems"] = {
        name: {ids[j]: int(m[:, j].sum()) for j in range(p) if m[:, j].any()}
        for name, m in moves.items()
    }
    out["solved"] = {"a": int(solved_a.sum()), "b": int(solved_b.sum())}
    out["always"] = {"a": int(always_a.sum()), "b": int(always_b.sum())}
    up, down = out["never_to_solved"], out["solved_to_never"]
    out["mcnemar_p_solved"] = binomial_two_sided(up, up + down)
    up, down = out["not_always_to_always"], out["always_to_not_always"]
    out["mcnemar_p_always"] = binomial_two_sided(up, up + down)
    change = (rb - ra).mean(0)  # [P]
    better, worse = int((change > 1e-12).sum()), int((change < -1e-12).sum())
    out["sign_test"] = {
        "better": better,
        "worse": worse,
        "p": binomial_two_sided(better, better + worse),
    }
    out["threshold"] = threshold
    out["seeds"], out["pairs"] = s, s * p
    return out


def cover_at_tau(c: np.ndarray, n: np.ndarray, taus: Sequence[float]) -> np.ndarray:
    """Cover@tau per problem: 1 where pass@1 = c / n exceeds tau, ``[..., len(taus)]``.

    Its mean over problems is the share of problems solved more often than tau.

    >>> cover_at_tau(np.array([0, 1, 3]), np.array([4, 4, 4]), [0.0, 0.5]).tolist()
    [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
    """
    rate = np.asarray(c, dtype=float) / np.asarray(n, dtype=float)
    return (rate[..., None] > np.asarray(taus, dtype=float)).astype(float)
