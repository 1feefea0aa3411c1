"""maj@k: expected correctness of a majority vote over k of a problem's n samples.

For one problem with n sampled responses, each with an extracted final answer (any
hashable value, or None when nothing was extracted) and a correctness flag, maj@k is
the expected correctness of this procedure: draw a uniformly random k-subset of the n
samples; the answer given most often in the subset wins; a tie between m answers is
broken uniformly at random (a correct answer tied with m - 1 others counts 1/m); samples
with no answer (None) never win, and a subset holding no answer at all votes wrong.

**Correctness of an answer.** Votes are counted per distinct answer value. The winner
counts as correct with the fraction of its samples marked correct, ``q_a``: the vote
returns answer a, represented by one of its samples drawn at random. For a verifier that
is a function of the extracted answer this is 0 or 1; a fraction appears only when the
flags disagree within one answer (the extraction is coarser than the verifier). Several
distinct answers marked correct (``"0.5"`` and ``"1/2"``) are separate candidates that
split their votes, as they would in a real vote on the extracted strings. None samples
count in the subset size, never for the vote, whatever their flag.

**Exact computation** (:func:`maj_at_k_values`, ``method="exact"``). By linearity,
``maj@k = sum_a q_a P(a wins)``, over the answers with ``q_a > 0`` (usually one; answers
with equal counts win equally often, so each distinct count is computed once). For a
target a with count m_a and j of its samples in the subset,

    P(a wins) = sum_j H(j) * E_{(k-j)-subset S of the others}[ 1{every other answer has
                count <= j in S} / (1 + #answers with count == j in S) ]

with H(j) the hypergeometric probability of j target samples. ``1/(1 + t)`` is
``integral_0^1 y^t dy``, so the expectation is an integral over y of a product, over the
other answers b, of generating polynomials ``sum_{i<j} C(m_b, i) x^i + y C(m_b, j) x^j``
(None samples and answers with m_b < j contribute unrestricted binomials). The integrand
is a polynomial in y of degree at most ``T = min(#answers with m_b >= j, (k-j) // j)``,
so Gauss-Legendre quadrature with ``T // 2 + 1`` nodes in (0, 1) integrates it exactly;
its nodes and weights are positive, so nothing cancels. The product is built one answer
at a time holding *probabilities* (coefficient of x^d divided by the number of
d-subsets, each step a hypergeometric mixture), never raw counts: every intermediate
lies in [0, 1], so n of any size neither overflows nor loses precision, and one pass
yields every d, hence every k at once. Work is about
``sum_b min(m_b, m_a)^2 / 2`` vector operations of length <= n per target; n = 256 is
milliseconds to a few tens of them (see ``docs/eval.md`` for measured figures).

**Sampled fallback** (``method="sample"``, or ``"auto"`` when the exact work estimate
exceeds ``max_exact_work``): ``num_subsets`` k-subsets drawn without replacement
(seeded), each scored with its exact tie-break expectation; the standard error of that
mean is returned alongside.

>>> round(maj_at_k(["4", "4", "5", None], [True, True, False, False], 2), 4)
0.6667
>>> maj_at_k(["4", "5"], [True, False], 2)  # a two-way tie: the correct answer wins half
0.5
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "MajorityValues",
    "answer_classes",
    "maj_at_k",
    "maj_at_k_brute_force",
    "maj_at_k_per_problem",
    "maj_at_k_values",
]

# above this estimate of exact work (multiply-adds) "auto" samples instead
DEFAULT_MAX_EXACT_WORK = 5e8
DEFAULT_NUM_SUBSETS = 4096


@dataclass(frozen=True)
class MajorityValues:
    """maj@k of one problem at several k: ``values[i]`` at ``ks[i]`` with its standard
    error (0.0 when computed exactly); ``method`` is ``"exact"`` or ``"sample"``."""

    ks: tuple[int, ...]
    values: tuple[float, ...]
    stderr: tuple[float, ...]
    method: str


def answer_classes(
    answers: Sequence[Hashable | None], correct: Sequence[bool]
) -> tuple[list[int], list[float], int]:
    """Vote counts per distinct answer (first-seen order), each answer's fraction of
    correct samples, and the number of samples with no answer.

    >>> answer_classes(["a", None, "b", "a"], [True, True, False, False])
    ([2, 1], [0.5, 0.0], 1)
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} correctness flags")
    counts: Counter = Counter()
    right: Counter = Counter()
    n_none = 0
    for a, ok in zip(answers, correct):
        if a is None:
            n_none += 1
            continue
        counts[a] += 1
        right[a] += bool(ok)
    keys = list(counts)
    return [counts[a] for a in keys], [right[a] / counts[a] for a in keys], n_none


@lru_cache(maxsize=256)
def _gauss_legendre01(q: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(q)
    return (x + 1) / 2, w / 2


def _log_factorials(n: int) -> np.ndarray:
    return np.array([math.lgamma(i + 1) for i in range(n + 1)])


def _exact_work(counts: Sequence[int], q: Sequence[float], n: int, kmax: int) -> float:
    work = 0.0
    for m_a in {m for m, q_a in zip(counts, q) if q_a > 0}:
        for j in range(1, min(m_a, kmax) + 1):
            big = sum(1 for m in counts if m >= j) - 1
            ties = min(big, max(kmax - j, 0) // j)
            work += big * (j + 1) * (ties // 2 + 1) * min(n, kmax)
    return work


def _maj_exact(counts: Sequence[int], q: Sequence[float], n_none: int, kmax: int) -> np.ndarray:
    """maj@k for k = 0..kmax (index k), exact; see the module docstring."""
    n = sum(counts) + n_none
    lf = _log_factorials(n)

    def log_comb(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
        return lf[a] - lf[b] - lf[np.asarray(a) - np.asarray(b)]

    # answers with equal counts win equally often (the others' counts are the same
    # multiset), so each distinct count of a correct answer is one target
    weight: dict[int, float] = {}
    for m_a, q_a in zip(counts, q):
        if q_a > 0:
            weight[m_a] = weight.get(m_a, 0.0) + q_a
    out = np.zeros(kmax + 1)
    for m_a, q_a in weight.items():
        others = list(counts)
        others.remove(m_a)
        m_rest = n - m_a
        for j in range(1, min(m_a, kmax) + 1):
            dmax = min(kmax - j, m_rest)
            big = sorted((m for m in others if m >= j), reverse=True)
            ties = min(len(big), dmax // j)
            nodes, weights = _gauss_legendre01(ties // 2 + 1)
            # p[y, d]: over uniform d-subsets of the samples folded in so far, the mean of
            # 1{no answer above j} * y^(#answers at j); None and smaller answers: always 1
            m_seen = m_rest - sum(big)
            deg = min(m_seen, dmax)
            p = np.ones((len(nodes), deg + 1))
            for m in big:
                new_deg = min(deg + j, dmax)
                new = np.zeros((len(nodes), new_deg + 1))
                for i in range(min(j, new_deg) + 1):
                    hi = min(deg + i, new_deg)
                    d = np.arange(i, hi + 1)
                    # P(i of the d drawn come from this answer), hypergeometric
                    h = np.exp(log_comb(m_seen, d - i) + log_comb(m, i) - log_comb(m_seen + m, d))
                    term = p[:, : hi - i + 1] * h
                    new[:, i : hi + 1] += term * nodes[:, None] if i == j else term
                p, deg, m_seen = new, new_deg, m_seen + m
            inner = weights @ p  # [deg + 1], d = k - j
            k = np.arange(j, j + deg + 1)
            hyper = np.exp(log_comb(m_a, j) + log_comb(m_rest, k - j) - log_comb(n, k))
            out[k] += q_a * hyper * inner
    return np.clip(out, 0.0, 1.0)


def _maj_sampled(
    counts: Sequence[int],
    q: Sequence[float],
    n_none: int,
    ks: Sequence[int],
    num_subsets: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of maj@k over seeded k-subsets without replacement."""
    labels = np.repeat(np.arange(len(counts) + 1), [n_none, *counts]) - 1  # None -> -1
    q_arr = np.asarray(q, dtype=np.float64)
    n = len(labels)
    rng = np.random.default_rng([seed, n, len(counts)])
    values, errors = [], []
    for k in ks:
        keys = rng.random((num_subsets, n))
        order = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n else keys.argsort(1)
        # [S, k]: the k smallest of n uniform keys, a uniform k-subset
        picked = labels[order]
        votes = np.zeros((num_subsets, len(counts) + 1), dtype=np.int64)
        np.add.at(votes, (np.arange(num_subsets)[:, None], picked + 1), 1)
        votes = votes[:, 1:]  # drop the None column
        top = votes.max(axis=1, keepdims=True)
        winners = (votes == top) & (top > 0)
        scores = (winners * q_arr).sum(1) / np.maximum(winners.sum(1), 1)  # [S]
        values.append(scores.mean())
        errors.append(scores.std(ddof=1) / math.sqrt(num_subsets) if num_subsets > 1 else 0.0)
    return np.array(values), np.array(errors)


def maj_at_k_values(
    answers: Sequence[Hashable | None],
    correct: Sequence[bool],
    ks: Sequence[int] | None = None,
    *,
    method: str = "auto",
    num_subsets: int = DEFAULT_NUM_SUBSETS,
    seed: int = 0,
    max_exact_work: float = DEFAULT_MAX_EXACT_WORK,
) -> MajorityValues:
    """maj@k of one problem's samples at each k in ``ks`` (default 1..n).

    Args:
        answers: per-sample extracted answer (hashable; None: no answer).
        correct: per-sample correctness.
        method: ``"exact"``, ``"sample"`` or ``"auto"`` (exact unless its work estimate
            exceeds ``max_exact_work``).
        num_subsets, seed: the sampled estimate's k-subsets per k and its seed.
    """
    n = len(answers)
    if n < 1:
        raise ValueError("need at least one sample")
    ks = list(range(1, n + 1)) if ks is None else [int(k) for k in ks]
    bad = [k for k in ks if not 1 <= k <= n]
    if bad:
        raise ValueError(f"k must be in 1..n={n}, got {bad}")
    if method not in ("auto", "exact", "sample"):
        raise ValueError(f"method must be 'auto', 'exact' or 'sample', got {method!r}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    counts, q, n_none = answer_classes(answers, correct)
    return _values_from_classes(
        counts, q, n_none, tuple(ks), method, num_subsets, seed, max_exact_work
    )


def _values_from_classes(
    counts: Sequence[int],
    q: Sequence[float],
    n_none: int,
    ks: tuple[int, ...],
    method: str,
    num_subsets: int,
    seed: int,
    max_exact_work: float,
) -> MajorityValues:
    n = sum(counts) + n_none
    if not ks:
        return MajorityValues((), (), (), "exact")
    kmax = max(ks)
    if method == "auto":
        method = "exact" if _exact_work(counts, q, n, kmax) <= max_exact_work else "sample"
    if method == "exact" or not any(x > 0 for x in q):
        curve = _maj_exact(counts, q, n_none, kmax)
        values = [float(curve[k]) for k in ks]
        return MajorityValues(tuple(ks), tuple(values), (0.0,) * len(ks), "exact")
    mean, err = _maj_sampled(counts, q, n_none, ks, num_subsets, seed)
    return MajorityValues(tuple(ks), tuple(map(float, mean)), tuple(map(float, err)), "sample")


def maj_at_k(
    answers: Sequence[Hashable | None], correct: Sequence[bool], k: int, **kwargs: object
) -> float:
    """maj@k of one problem at one k (see :func:`maj_at_k_values` for the options)."""
    return maj_at_k_values(answers, correct, [k], **kwargs).values[0]  # type: ignore[arg-type]


def maj_at_k_per_problem(
    answers: Sequence[Sequence[Hashable | None]],
    correct: Sequence[Sequence[bool]],
    ks: Sequence[int],
    **kwargs: object,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-problem maj@k ``[P, K]`` (NaN where a problem has fewer than k samples), its
    standard errors ``[P, K]`` (0 where exact) and each problem's method."""
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} problems of answers but {len(correct)} of flags")
    opts = {
        "method": "auto",
        "num_subsets": DEFAULT_NUM_SUBSETS,
        "seed": 0,
        "max_exact_work": DEFAULT_MAX_EXACT_WORK,
    }
    unknown = set(kwargs) - set(opts)
    if unknown:
        raise TypeError(f"unexpected option(s) {sorted(unknown)}; valid: {', '.join(opts)}")
    opts |= kwargs
    if opts["method"] not in ("auto", "exact", "sample"):
        raise ValueError(f"method must be 'auto', 'exact' or 'sample', got {opts['method']!r}")
    values = np.full((len(answers), len(ks)), np.nan)
    errors = np.zeros((len(answers), len(ks)))
    methods = []
    # maj@k depends only on the answers' (count, correct fraction) profile: problems that
    # share one (common at small n) are computed once
    memo: dict[tuple, MajorityValues] = {}
    for i, (ans, ok) in enumerate(zip(answers, correct)):
        if len(ans) < 1:
            raise ValueError(f"problem {i} has no samples")
        cols = [j for j, k in enumerate(ks) if k <= len(ans)]
        counts, q, n_none = answer_classes(ans, ok)
        profile = sorted(zip(counts, q), reverse=True)
        key = (tuple(profile), n_none, tuple(ks[j] for j in cols))
        res = memo.get(key)
        if res is None:
            res = _values_from_classes(
                [m for m, _ in profile], [x for _, x in profile], n_none, key[2], **opts
            )
            memo[key] = res
        values[i, cols] = res.values
        errors[i, cols] = res.stderr
        methods.append(res.method)
    return values, errors, methods


def maj_at_k_brute_force(
    answers: Sequence[Hashable | None], correct: Sequence[bool], k: int
) -> float:
    """maj@k by enumerating every k-subset (for tests; C(n, k) subsets).

    >>> round(maj_at_k_brute_force(["4", "4", "5", None], [True, True, False, False], 2), 4)
    0.6667
    """
    from itertools import combinations

    _, q, _ = answer_classes(answers, correct)
    labels = list(dict.fromkeys(a for a in answers if a is not None))
    quality = dict(zip(labels, q))
    total, subsets = 0.0, 0
    for subset in combinations(range(len(answers)), k):
        votes = Counter(answers[i] for i in subset if answers[i] is not None)
        subsets += 1
        if not votes:
            continue
        top = max(votes.values())
        winners = [a for a, v in votes.items() if v == top]
        total += sum(quality[a] for a in winners) / len(winners)
    return total / subsets
