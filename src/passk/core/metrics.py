"""Evaluation metrics: unbiased pass@k, curves, bootstrap intervals, bounds, diversity.

All functions are pure: they take counts or per-problem values and return numbers.

>>> round(pass_at_k(16, 4, 4), 4)
0.728
>>> pass_at_k(16, 13, 4)  # fewer than k wrong samples: some k-subset must be correct
1.0
>>> {k: round(v, 3) for k, v in pass_at_k_curve([4, 4], [1, 0]).items()}
{1: 0.125, 2: 0.25, 4: 0.5}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "answer_diversity",
    "bootstrap_mean_ci",
    "dang_bound",
    "default_ks",
    "pass_at_k",
    "pass_at_k_ci",
    "pass_at_k_curve",
    "pass_at_k_per_problem",
]


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
    if isinstance(n, torch.Tensor) or isinstance(c, torch.Tensor):
        n_t = torch.as_tensor(n)
        c_t = torch.as_tensor(c)
        n_t, c_t = torch.broadcast_tensors(n_t, c_t)
        if n_t.numel() == 0:
            return torch.zeros(n_t.shape, dtype=torch.float64, device=n_t.device)
        n_t, c_t = n_t.long(), c_t.long()
        if (n_t < 1).any() or (c_t < 0).any() or (c_t > n_t).any():
            raise ValueError(f"need n >= 1 and 0 <= c <= n elementwise; got n={n_t}, c={c_t}")
        if not 1 <= k <= int(n_t.min()):
            raise ValueError(f"k must be in [1, min(n)={int(n_t.min())}], got {k}")
        n_max = int(n_t.max())
        # S[m] = sum_{i=k+1}^{m} log(1 - k/i) for m >= k (0 below); log(1 - pass) = S[n] - S[n-c]
        i = torch.arange(1, n_max + 1, dtype=torch.float64, device=n_t.device)
        terms = torch.where(i > k, torch.log1p(-k / i), torch.zeros_like(i))
        prefix = torch.cat([terms.new_zeros(1), torch.cumsum(terms, 0)])  # [n_max + 1]
        log_fail = prefix[n_t] - prefix[n_t - c_t]
        return torch.where(n_t - c_t < k, torch.ones_like(log_fail), -torch.expm1(log_fail))
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


def _as_counts(n: Sequence[int] | torch.Tensor, c: Sequence[int] | torch.Tensor) -> tuple:
    n_t = torch.as_tensor(n, dtype=torch.long).reshape(-1)
    c_t = torch.as_tensor(c, dtype=torch.long).reshape(-1)
    if n_t.shape != c_t.shape:
        raise ValueError(f"n and c must have the same length, got {len(n_t)} and {len(c_t)}")
    if n_t.numel() == 0:
        raise ValueError("need at least one problem")
    return n_t, c_t


def pass_at_k_per_problem(
    n: Sequence[int] | torch.Tensor, c: Sequence[int] | torch.Tensor, ks: Sequence[int]
) -> torch.Tensor:
    """Per-problem unbiased pass@k, shape ``[P, len(ks)]`` (float64)."""
    n_t, c_t = _as_counts(n, c)
    return torch.stack([pass_at_k(n_t, c_t, k) for k in ks], dim=1)


def pass_at_k_curve(
    n: Sequence[int] | torch.Tensor,
    c: Sequence[int] | torch.Tensor,
    ks: Sequence[int] | None = None,
) -> dict[int, float]:
    """Mean unbiased pass@k over problems for each k (default: :func:`default_ks` of min n)."""
    n_t, c_t = _as_counts(n, c)
    ks = list(ks) if ks is not None else default_ks(int(n_t.min()))
    values = pass_at_k_per_problem(n_t, c_t, ks).mean(0)
    return {k: float(v) for k, v in zip(ks, values)}


def pass_at_k_ci(
    n: Sequence[int] | torch.Tensor,
    c: Sequence[int] | torch.Tensor,
    ks: Sequence[int] | None = None,
    *,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[int, tuple[float, float]]:
    """Percentile bootstrap confidence interval of mean pass@k, resampling problems.

    The interval reflects the spread over problems (the dominant uncertainty when each
    problem has many samples); the per-problem estimate is already unbiased.
    """
    n_t, c_t = _as_counts(n, c)
    ks = list(ks) if ks is not None else default_ks(int(n_t.min()))
    per_problem = pass_at_k_per_problem(n_t, c_t, ks).numpy()  # [P, K]
    lo, hi = bootstrap_mean_ci(per_problem, num_resamples, confidence=confidence, seed=seed)
    return {k: (float(a), float(b)) for k, a, b in zip(ks, lo, hi)}


def bootstrap_mean_ci(
    values: np.ndarray, num_resamples: int = 1000, *, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the column means of ``values[P, K]``, resampling rows.

    Rows are the units resampled with replacement (problems; for a paired comparison,
    per-problem differences). Returns ``(lo[K], hi[K])``.

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
    idx = rng.integers(0, len(values), size=(num_resamples, len(values)))
    means = values[idx].mean(axis=1)  # [B, K]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha], axis=0)
    return lo, hi


def dang_bound(pass1: Sequence[float] | torch.Tensor, k: int) -> float:
    """Upper bound on mean pass@k from the per-problem pass@1 distribution (Dang et al.).

    ``E[pass@k] <= 1 - ((1 - E[rho])^2 + Var(rho))^(k/2)`` with rho the per-problem pass@1
    (population variance). A measured pass@k close to the bound means the model's
    successes are spread over problems as evenly as its pass@1 allows.

    It is a bound for k >= 2 only (the exponent k/2 >= 1 makes Jensen's inequality go the
    right way; at k = 1 it lies below pass@1). It bounds the with-replacement quantity
    ``E[1 - (1 - rho)^k]``; the unbiased without-replacement estimate from c of n samples
    can exceed it slightly on finite data.

    >>> round(dang_bound([0.5, 0.5], 2), 4)
    0.75
    """
    rho = torch.as_tensor(pass1, dtype=torch.float64).reshape(-1)
    if rho.numel() == 0:
        raise ValueError("need at least one problem")
    if ((rho < 0) | (rho > 1)).any():
        raise ValueError("pass1 values must be in [0, 1]")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    second_moment = (1 - rho.mean()) ** 2 + rho.var(unbiased=False)
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
