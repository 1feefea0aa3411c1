"""Evaluation metrics: unbiased pass@k and pass^k, curves, bootstrap intervals, bounds,
diversity (maj@k, which needs the answers themselves, is in :mod:`passk.core.majority`).

All functions are pure: they take counts or per-problem values and return numbers.
Problems may have different sample counts n: per-problem arrays hold NaN at every k > n
(such a problem says nothing about pass@k there), curves average the other problems, and
:func:`problems_per_k` says how many problems each k rests on.

>>> round(pass_at_k(16, 4, 4), 4)
0.728
>>> pass_at_k(16, 13, 4)  # fewer than k wrong samples: some k-subset must be correct
1.0
>>> {k: round(v, 3) for k, v in pass_at_k_curve([4, 4], [1, 0]).items()}
{1: 0.125, 2: 0.25, 4: 0.5}
>>> round(pass_hat_k(16, 12, 4), 4)  # all 4 of a random 4-subset correct: C(12,4)/C(16,4)
0.272
>>> pass_at_k_curve([2, 4], [2, 0], [1, 4])  # the n = 2 problem is left out at k = 4
{1: 0.5, 4: 0.0}
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from passk.core.defaults import NUM_RESAMPLES
from passk.core.majority import maj_at_k_per_problem

if TYPE_CHECKING:
    import torch

__all__ = [
    "answer_diversity",
    "bootstrap_mean_ci",
    "dang_bound",
    "default_ks",
    "metric_curves",
    "pass_at_k",
    "pass_at_k_ci",
    "pass_at_k_curve",
    "pass_at_k_per_problem",
    "pass_at_k_table",
    "pass_hat_k",
    "pass_hat_k_ci",
    "pass_hat_k_curve",
    "pass_hat_k_per_problem",
    "pass_hat_k_table",
    "per_problem_metrics",
    "problems_per_k",
    "summarize_per_problem",
]


def _is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch: the numbers are computed
    with numpy so that reports read from files (``passk eval --samples``, ``passk diff``)
    never load it; tensors in give tensors out."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(x, torch_module.Tensor)


def _as_tensor(values: np.ndarray, like: Any = None) -> torch.Tensor:
    import torch

    out = torch.from_numpy(np.ascontiguousarray(values))
    return out if like is None else out.to(like.device)


def _as_int_array(x: Any) -> np.ndarray:
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.int64)


def _check_count_arrays(n: np.ndarray, c: np.ndarray, k: int) -> None:
    if (n < 1).any() or (c < 0).any() or (c > n).any():
        raise ValueError(f"need n >= 1 and 0 <= c <= n elementwise; got n={n}, c={c}")
    if not 1 <= k <= int(n.min()):
        raise ValueError(f"k must be in [1, min(n)={int(n.min())}], got {k}")


def _pass_at_k_array(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Vectorised :func:`pass_at_k` of integer arrays (float64), with a log-space prefix sum."""
    n, c = np.broadcast_arrays(n, c)
    if n.size == 0:
        return np.zeros(n.shape, dtype=np.float64)
    _check_count_arrays(n, c, k)
    n_max = int(n.max())
    # S[m] = sum_{i=k+1}^{m} log(1 - k/i) for m >= k (0 below); log(1 - pass) = S[n] - S[n-c]
    i = np.arange(1, n_max + 1, dtype=np.float64)
    terms = np.zeros_like(i)
    terms[k:] = np.log1p(-k / i[k:])  # i > k
    prefix = np.concatenate([np.zeros(1), np.cumsum(terms)])  # [n_max + 1]
    log_fail = prefix[n] - prefix[n - c]
    return np.where(n - c < k, 1.0, -np.expm1(log_fail))


_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def _pass_hat_k_array(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Vectorised :func:`pass_hat_k` of integer arrays (float64), with log-gamma differences."""
    n, c = np.broadcast_arrays(n, c)
    if n.size == 0:
        return np.zeros(n.shape, dtype=np.float64)
    _check_count_arrays(n, c, k)
    nf = n.astype(np.float64)
    ok = c >= k
    cf = np.where(ok, c, n).astype(np.float64)  # placeholder where the value is 0 anyway

    def lg(x: np.ndarray) -> np.ndarray:
        return np.asarray(_lgamma(x), dtype=np.float64).reshape(x.shape)

    log_p = (lg(cf + 1) - lg(cf - k + 1) - lg(nf + 1)) + lg(nf - k + 1)
    value = np.where(ok, np.exp(np.minimum(log_p, 0.0)), 0.0)
    return np.where(c == n, 1.0, value)  # exact where all correct


def _check_counts(n: int, c: int, k: int) -> None:
    if n < 1:
        raise ValueError(f"n (samples per problem) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (correct samples) must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")


def pass_at_k(n: int | torch.Tensor, c: int | torch.Tensor, k: int) -> float | torch.Tensor:
    """Unbiased pass@k estimate ``1 - C(n - c, k) / C(n, k)`` (Chen et al., 2021).

    Computed in the stable product form ``1 - prod_{i=n-c+1}^{n} (1 - k / i)`` (equal to 1
    when ``n - c < k``), never with raw binomials, so n up to 10^4 and beyond is exact to
    float64 rounding. ``n`` and ``c`` may be ints (returns a float) or integer tensors of
    the same shape (returns a float64 tensor, vectorised with a log-space prefix sum).
    """
    if _is_tensor(n) or _is_tensor(c):
        like = n if _is_tensor(n) else c
        return _as_tensor(_pass_at_k_array(_as_int_array(n), _as_int_array(c), k), like)
    n, c = int(n), int(c)
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    log_fail = math.fsum(math.log1p(-k / i) for i in range(n - c + 1, n + 1))
    return -math.expm1(log_fail)


def default_ks(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n, with n itself appended when it is not a power of two.

    >>> default_ks(16), default_ks(12)
    ([1, 2, 4, 8, 16], [1, 2, 4, 8, 12])
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks = [2**i for i in range(int(math.log2(n)) + 1)]
    if ks[-1] != n:
        ks.append(n)
    return ks


def _as_counts(
    n: Sequence[int] | torch.Tensor, c: Sequence[int] | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    n_t = _as_int_array(n).reshape(-1)
    c_t = _as_int_array(c).reshape(-1)
    if n_t.shape != c_t.shape:
        raise ValueError(f"n and c must have the same length, got {len(n_t)} and {len(c_t)}")
    if n_t.size == 0:
        raise ValueError("need at least one problem")
    return n_t, c_t


def _per_problem(fn: Callable, n_t: np.ndarray, c_t: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """``fn(n, c, k)`` (an array function) per problem and k, ``[P, K]`` float64, NaN where
    ``n < k``."""
    out = np.full((len(n_t), len(ks)), math.nan, dtype=np.float64)
    for j, k in enumerate(ks):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        has = n_t >= k
        if has.any():
            out[has, j] = fn(n_t[has], c_t[has], k)
    return out


def _default_or_checked_ks(n_t: np.ndarray, ks: Sequence[int] | None) -> list[int]:
    ks = list(ks) if ks is not None else default_ks(int(n_t.min()))
    n_max = int(n_t.max())
    too_big = [k for k in ks if k > n_max]
    if too_big:
        raise ValueError(f"k={too_big} exceeds every problem's sample count (max n={n_max})")
    return ks


def problems_per_k(n: Sequence[int] | torch.Tensor, ks: Sequence[int]) -> dict[int, int]:
    """How many problems have at least k samples, for each k (those a curve averages).

    >>> problems_per_k([2, 4, 8], [1, 4, 8])
    {1: 3, 4: 2, 8: 1}
    """
    n_t = _as_int_array(n).reshape(-1)
    return {k: int((n_t >= k).sum()) for k in ks}


def pass_at_k_per_problem(
    n: Sequence[int] | torch.Tensor, c: Sequence[int] | torch.Tensor, ks: Sequence[int]
) -> torch.Tensor:
    """Per-problem unbiased pass@k, shape ``[P, len(ks)]`` (float64 tensor; NaN where n < k)."""
    return _as_tensor(pass_at_k_table(n, c, ks))


def pass_at_k_table(
    n: Sequence[int] | torch.Tensor, c: Sequence[int] | torch.Tensor, ks: Sequence[int]
) -> np.ndarray:
    """:func:`pass_at_k_per_problem` as a numpy array (no torch needed).

    >>> pass_at_k_table([4, 2], [1, 2], [1, 4])
    array([[0.25, 1.  ],
           [1.  ,  nan]])
    """
    n_t, c_t = _as_counts(n, c)
    return _per_problem(_pass_at_k_array, n_t, c_t, ks)


def pass_at_k_curve(
    n: Sequence[int] | torch.Tensor,
    c: Sequence[int] | torch.Tensor,
    ks: Sequence[int] | None = None,
) -> dict[int, float]:
    """Mean unbiased pass@k over problems for each k (default: :func:`default_ks` of min n).

    A problem with fewer than k samples is left out at that k."""
    n_t, c_t = _as_counts(n, c)
    ks = _default_or_checked_ks(n_t, ks)
    values = np.nanmean(pass_at_k_table(n_t, c_t, ks), axis=0)
    return {k: float(v) for k, v in zip(ks, values)}


def pass_at_k_ci(
    n: Sequence[int] | torch.Tensor,
    c: Sequence[int] | torch.Tensor,
    ks: Sequence[int] | None = None,
    *,
    num_resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[int, tuple[float, float]]:
    """Percentile bootstrap confidence interval of mean pass@k, resampling problems.

    The interval reflects the spread over problems (the dominant uncertainty when each
    problem has many samples); the per-problem estimate is already unbiased.
    """
    n_t, c_t = _as_counts(n, c)
    ks = _default_or_checked_ks(n_t, ks)
    per_problem = pass_at_k_table(n_t, c_t, ks)  # [P, K]
    lo, hi = bootstrap_mean_ci(per_problem, num_resamples, confidence=confidence, seed=seed)
    return {k: (float(a), float(b)) for k, a, b in zip(ks, lo, hi)}


def pass_hat_k(n: int | torch.Tensor, c: int | torch.Tensor, k: int) -> float | torch.Tensor:
    """pass^k: the probability that all k of a uniformly random k-subset are correct,
    ``C(c, k) / C(n, k)`` (0 when ``c < k``); the consistency counterpart of pass@k.

    Scalars are computed as ``prod_{i=n-k+1}^{n} (1 - (n - c) / i)`` with ``math.fsum`` of
    ``log1p`` terms; integer tensors (same shape, float64 result) with log-gamma
    differences. Neither forms a binomial, so n of 10^4 and more is fine.

    >>> pass_hat_k(4, 4, 4), pass_hat_k(4, 3, 4), round(pass_hat_k(4, 3, 2), 4)
    (1.0, 0.0, 0.5)
    """
    if _is_tensor(n) or _is_tensor(c):
        like = n if _is_tensor(n) else c
        return _as_tensor(_pass_hat_k_array(_as_int_array(n), _as_int_array(c), k), like)
    n, c = int(n), int(c)
    _check_counts(n, c, k)
    if c < k:
        return 0.0
    if c == n:
        return 1.0
    return math.exp(math.fsum(math.log1p(-(n - c) / i) for i in range(n - k + 1, n + 1)))


def pass_hat_k_per_problem(
    n: Sequence[int] | torch.Tensor, c: Sequence[int] | torch.Tensor, ks: Sequence[int]
) -> torch.Tensor:
    """Per-problem pass^k, shape ``[P, len(ks)]`` (float64 tensor; NaN where n < k)."""
    return _as_tensor(pass_hat_k_table(n, c, ks))


def pass_hat_k_table(
    n: Sequence[int] | torch.Tensor, c: Sequence[int] | torch.Tensor, ks: Sequence[int]
) -> np.ndarray:
    """:func:`pass_hat_k_per_problem` as a numpy array (no torch needed)."""
    n_t, c_t = _as_counts(n, c)
    return _per_problem(_pass_hat_k_array, n_t, c_t, ks)


def pass_hat_k_curve(
    n: Sequence[int] | torch.Tensor,
    c: Sequence[int] | torch.Tensor,
    ks: Sequence[int] | None = None,
) -> dict[int, float]:
    """Mean pass^k over problems for each k (problems with n < k left out).

    >>> {k: round(v, 4) for k, v in pass_hat_k_curve([4, 4], [4, 2], [1, 2, 4]).items()}
    {1: 0.75, 2: 0.5833, 4: 0.5}
    """
    n_t, c_t = _as_counts(n, c)
    ks = _default_or_checked_ks(n_t, ks)
    values = np.nanmean(pass_hat_k_table(n_t, c_t, ks), axis=0)
    return {k: float(v) for k, v in zip(ks, values)}


def pass_hat_k_ci(
    n: Sequence[int] | torch.Tensor,
    c: Sequence[int] | torch.Tensor,
    ks: Sequence[int] | None = None,
    *,
    num_resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[int, tuple[float, float]]:
    """Percentile bootstrap interval of mean pass^k over problems (as :func:`pass_at_k_ci`)."""
    n_t, c_t = _as_counts(n, c)
    ks = _default_or_checked_ks(n_t, ks)
    per_problem = pass_hat_k_per_problem(n_t, c_t, ks).numpy()
    lo, hi = bootstrap_mean_ci(per_problem, num_resamples, confidence=confidence, seed=seed)
    return {k: (float(a), float(b)) for k, a, b in zip(ks, lo, hi)}


def summarize_per_problem(
    values: np.ndarray,
    ks: Sequence[int],
    *,
    num_resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[int, float], dict[int, tuple[float, float]], dict[int, int]]:
    """Mean, bootstrap interval and problem count per k of ``values[P, K]`` (NaN: no value).

    A k that no problem reaches is left out of all three dicts.

    >>> v = np.array([[1.0, np.nan], [0.0, 0.5]])
    >>> mean, ci, count = summarize_per_problem(v, [1, 4], num_resamples=20)
    >>> mean, count
    ({1: 0.5, 4: 0.5}, {1: 2, 4: 1})
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(ks):
        raise ValueError(f"values must be [P, {len(ks)}], got shape {values.shape}")
    counts = (~np.isnan(values)).sum(0)
    keep = [j for j in range(len(ks)) if counts[j] > 0]
    if not keep:
        return {}, {}, {}
    sub = values[:, keep]
    lo, hi = bootstrap_mean_ci(sub, num_resamples, confidence=confidence, seed=seed)
    means = np.nanmean(sub, axis=0)
    ks_kept = [ks[j] for j in keep]
    return (
        {k: float(m) for k, m in zip(ks_kept, means)},
        {k: (float(a), float(b)) for k, a, b in zip(ks_kept, lo, hi)},
        {k: int(counts[j]) for k, j in zip(ks_kept, keep)},
    )


def bootstrap_mean_ci(
    values: np.ndarray,
    num_resamples: int = NUM_RESAMPLES,
    *,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the column means of ``values[P, K]``, resampling rows.

    Rows are the units resampled with replacement (problems; for a paired comparison,
    per-problem differences). Returns ``(lo[K], hi[K])``. A NaN entry means "no value":
    such a column resamples its other rows only (NaN bounds for a column of NaN).

    >>> lo, hi = bootstrap_mean_ci(np.array([[0.5], [0.5]]), 10)
    >>> float(lo[0]), float(hi[0])
    (0.5, 0.5)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"values must be [P, K] with P >= 1, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    missing = np.isnan(values)
    if not missing.any():
        p = len(values)
        idx = rng.integers(0, p, size=(num_resamples, p))
        # how often each row is drawn, then one matrix product: no [B, P, K] gather
        offsets = (np.arange(num_resamples) * p)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=num_resamples * p)
        means = counts.reshape(num_resamples, p).astype(np.float64) @ values / p  # [B, K]
        lo, hi = np.quantile(means, [alpha, 1 - alpha], axis=0)
        return lo, hi
    # NaN marks "no value" (a problem with fewer than k samples): each column resamples
    # only its own rows, seeded alike
    lo, hi = np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan)
    for j in range(values.shape[1]):
        col = values[~missing[:, j], j]
        if len(col) == 0:
            continue
        col_rng = np.random.default_rng([seed, j])
        means = col[col_rng.integers(0, len(col), size=(num_resamples, len(col)))].mean(axis=1)
        lo[j], hi[j] = np.quantile(means, [alpha, 1 - alpha])
    return lo, hi


def dang_bound(pass1: Sequence[float] | torch.Tensor, k: int) -> float:
    """Dang et al.'s bound from the per-problem pass@1 distribution, on the with-replacement
    mean pass@k ``E[1 - (1 - rho)^k]`` (not on the unbiased estimate: see below).

    ``E[pass@k] <= 1 - ((1 - E[rho])^2 + Var(rho))^(k/2)`` with rho the per-problem pass@1
    (population variance). A measured pass@k close to the bound means the model's
    successes are spread over problems as evenly as its pass@1 allows.

    It is a bound for k >= 2 only (the exponent k/2 >= 1 makes Jensen's inequality go the
    right way; at k = 1 it lies below pass@1). It bounds the with-replacement quantity
    ``E[1 - (1 - rho)^k]``; the unbiased without-replacement estimate from c of n samples
    is larger than that and can exceed the bound, by much at k near n (c = 1 of n = 4 on
    every problem: pass@4 is 1, the bound 0.684).

    >>> round(dang_bound([0.5, 0.5], 2), 4)
    0.75
    """
    if _is_tensor(pass1):
        pass1 = pass1.detach().cpu().numpy()
    rho = np.asarray(pass1, dtype=np.float64).reshape(-1)
    if rho.size == 0:
        raise ValueError("need at least one problem")
    if ((rho < 0) | (rho > 1)).any():
        raise ValueError("pass1 values must be in [0, 1]")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    second_moment = (1 - rho.mean()) ** 2 + rho.var()  # population variance
    return float(1 - second_moment ** (k / 2))


def answer_diversity(
    answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]]
) -> float:
    """Distinct final answers among wrong responses divided by the number of wrong responses.

    Computed per problem and averaged over the problems that have at least one wrong
    response (NaN when none has). A missing answer (None) counts as one answer class,
    "no answer". 1.0 means every wrong response gave a different answer; values near
    1/n mean the model repeats one wrong answer.

    >>> answer_diversity([["4", "5", "5", None]], [[True, False, False, False]])
    0.6666666666666666
    """
    if len(answers) != len(correct):
        raise ValueError(f"answers and correct differ in length: {len(answers)} vs {len(correct)}")
    ratios = []
    for i, (ans, ok) in enumerate(zip(answers, correct)):
        if len(ans) != len(ok):
            raise ValueError(f"problem {i}: {len(ans)} answers but {len(ok)} correctness flags")
        wrong = [a for a, good in zip(ans, ok) if not good]
        if wrong:
            ratios.append(len(set(wrong)) / len(wrong))
    return float(np.mean(ratios)) if ratios else float("nan")


def _wrong_answer_counts(
    answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]]
) -> list[list[int]]:
    """Per problem, how many wrong responses gave each distinct answer (None: one class)."""
    if len(answers) != len(correct):
        raise ValueError(f"answers and correct differ in length: {len(answers)} vs {len(correct)}")
    out = []
    for i, (ans, ok) in enumerate(zip(answers, correct)):
        if len(ans) != len(ok):
            raise ValueError(f"problem {i}: {len(ans)} answers but {len(ok)} correctness flags")
        counts: dict[str | None, int] = {}
        for a, good in zip(ans, ok):
            if not good:
                counts[a] = counts.get(a, 0) + 1
        out.append(list(counts.values()))
    return out


def wrong_answer_pair_diversity(
    answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]]
) -> float:
    """The probability that two wrong responses of a problem, drawn without replacement,
    give different answers; averaged over problems with at least two wrong responses.

    Unlike :func:`answer_diversity` (distinct / wrong, which is 1.0 for a problem with a
    single wrong response and falls as wrong responses accumulate), it does not depend
    on how many wrong responses a problem has: each problem's value is an unbiased
    estimate of the same quantity (the Gini-Simpson index of its wrong answers), so two
    arms that leave different numbers of wrong samples compare like with like. A
    missing answer (None) counts as one answer class.

    >>> round(wrong_answer_pair_diversity([["4", "5", "5", None]], [[True, False, False, False]]), 4)
    0.6667
    >>> wrong_answer_pair_diversity([["7", "8"]], [[True, False]])  # one wrong response
    nan
    """
    values = []
    for counts in _wrong_answer_counts(answers, correct):
        w = sum(counts)
        if w >= 2:
            values.append(1 - sum(m * (m - 1) for m in counts) / (w * (w - 1)))
    return float(np.mean(values)) if values else float("nan")


def wrong_answer_expected_distinct(
    answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]], m: int
) -> float:
    """Expected number of distinct answers among ``m`` wrong responses drawn without
    replacement from a problem's wrong responses (rarefaction), averaged over problems
    with at least ``m`` wrong responses: ``sum_a 1 - C(W - w_a, m) / C(W, m)``.

    >>> ans, ok = [["4", "5", "5", None]], [[True, False, False, False]]
    >>> round(wrong_answer_expected_distinct(ans, ok, 2), 4)
    1.6667
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    values = []
    for counts in _wrong_answer_counts(answers, correct):
        w = sum(counts)
        if w >= m:
            total = math.comb(w, m)
            values.append(sum(1 - math.comb(w - c, m) / total for c in counts))
    return float(np.mean(values)) if values else float("nan")


# --------------------------------------------------------------------------- the one table


def per_problem_metrics(
    correct: Sequence[Sequence[bool]],
    ks: Sequence[int],
    answers: Sequence[Sequence[Hashable | None]] | None = None,
    *,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per-problem ``[P, K]`` pass@k and pass^k, and maj@k with ``answers`` (NaN where a
    problem has fewer than k samples), with each problem's n: what every pass@k table of
    the library (``passk eval`` reports, the verl and TRL validation metrics) is built from.

    maj@k is exact where that is cheap and sampled otherwise (``maj_err`` holds its standard
    errors, ``maj_sampled`` which problems were sampled; see :mod:`passk.core.majority`).
    """
    ns = [len(c) for c in correct]
    cs = [sum(bool(x) for x in c) for c in correct]
    per: dict[str, np.ndarray] = {
        "n": np.array(ns),
        "pass_at_k": pass_at_k_table(ns, cs, ks),
        "pass_hat_k": pass_hat_k_table(ns, cs, ks),
    }
    if answers is not None:
        maj, err, methods = maj_at_k_per_problem(answers, correct, ks, seed=seed)
        per |= {"maj_at_k": maj, "maj_err": err, "maj_sampled": np.array(methods) == "sample"}
    return per


# metric of per_problem_metrics -> the key of its interval in a table
CI_KEYS = {"pass_at_k": "ci95", "pass_hat_k": "pass_hat_k_ci95", "maj_at_k": "maj_at_k_ci95"}


def metric_curves(
    per: Mapping[str, np.ndarray],
    ks: Sequence[int],
    rows: np.ndarray | None = None,
    *,
    num_resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """pass@k, pass^k and maj@k with intervals and per-k problem counts (k keys: strings)
    over the problems ``rows`` of :func:`per_problem_metrics` (default: all).

    A problem with fewer than k samples is left out at that k; a k that no problem reaches
    is left out altogether. The metrics share one bootstrap (the same resampled problem
    sets). Keys: ``pass_at_k``, ``ci95``, ``pass_hat_k``, ``pass_hat_k_ci95``, ``maj_at_k``,
    ``maj_at_k_ci95`` (empty without answers), ``problems_per_k``, and with answers
    ``maj_at_k_sampled_problems`` (and ``maj_at_k_stderr`` where some were sampled).

    >>> per = per_problem_metrics([[True, False], [False, False, False, True]], [1, 4])
    >>> out = metric_curves(per, [1, 4], num_resamples=50)
    >>> {k: round(v, 6) for k, v in out["pass_at_k"].items()}, out["problems_per_k"]
    ({'1': 0.375, '4': 1.0}, {'1': 2, '4': 1})
    """
    rows = np.arange(len(per["n"])) if rows is None else rows
    names = [name for name in CI_KEYS if name in per]
    joint = np.concatenate([per[name][rows] for name in names], axis=1)  # [P, M*K]
    mean, ci, _ = summarize_per_problem(
        joint,
        list(range(joint.shape[1])),
        num_resamples=num_resamples,
        confidence=confidence,
        seed=seed,
    )
    out: dict[str, Any] = {}
    for m, name in enumerate(names):
        cols = [(k, m * len(ks) + j) for j, k in enumerate(ks) if m * len(ks) + j in mean]
        out[name] = {str(k): mean[col] for k, col in cols}
        out[CI_KEYS[name]] = {str(k): list(ci[col]) for k, col in cols}
    ns = per["n"][rows]
    out["problems_per_k"] = {str(k): int((ns >= k).sum()) for k in ks if k <= ns.max()}
    if "maj_at_k" not in per:
        return out | {"maj_at_k": {}, "maj_at_k_ci95": {}}
    sampled = int(per["maj_sampled"][rows].sum())
    out["maj_at_k_sampled_problems"] = sampled
    if sampled:
        # Monte Carlo error of the mean over problems (the exact ones add none)
        maj, err = per["maj_at_k"][rows], per["maj_err"][rows]
        have = ~np.isnan(maj)
        se = np.sqrt((np.where(have, err, 0.0) ** 2).sum(0)) / np.maximum(have.sum(0), 1)
        out["maj_at_k_stderr"] = {str(k): float(e) for k, e in zip(ks, se) if k <= ns.max()}
    return out
