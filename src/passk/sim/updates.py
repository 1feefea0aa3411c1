"""Exact expected updates of an advantage estimator on a softmax policy over strategies.

The lab's policy picks one of S *strategies* per response; strategy ``s`` solves problem
``x`` when ``solves[x, s]``. A group of ``n`` responses to problem ``x`` is ``n`` i.i.d.
draws from ``softmax(logits[x])`` with 0/1 rewards. The quantity every result of the lab
rests on is the expected policy-gradient step in logit space,

    ``E[(1/n) sum_i A_i (onehot(s_i) - softmax(logits[x]))]``,

with ``A`` the estimator's advantages of the group (:func:`passk.compute_advantages`).

For an estimator whose advantages depend only on the group's rewards and treat responses
alike (*exchangeable*: every correct response gets ``a_pos(c)``, every wrong one
``a_neg(c)``, with ``c`` the number correct), the expectation is a finite sum over
``c ~ Binomial(n, p)``: given ``c``, the correct draws are i.i.d. from the policy restricted
to the solving strategies, the wrong ones from the rest. With ``pi`` the policy, ``pi_C``
its mass on solving strategies, ``p = sum(pi_C)`` and ``B_m(j) = C(m, j) p^j (1 - p)^(m - j)``:

    ``E = alpha pi_C + gamma pi_notC - (beta + delta) pi``,
    ``alpha = sum_c a_pos(c) B_{n-1}(c - 1)``,  ``gamma = sum_c a_neg(c) B_{n-1}(c)``,
    ``beta = sum_c a_pos(c) (c / n) B_n(c)``,    ``delta = sum_c a_neg(c) ((n - c) / n) B_n(c)``

(``c B_n(c) / (n p) = B_{n-1}(c - 1)`` removes every division by ``p`` or ``1 - p``).
Since the update sums to zero over strategies, it is always a multiple of the gradient of
the problem's success probability: ``E = m(p) * dp/dlogits`` with
``dp/dlogits = pi_C - p pi`` and ``m(p) = (alpha - beta - delta) / (1 - p)``
(:func:`problem_weight`). An exchangeable estimator is therefore, on every problem, Pass@1's
gradient re-weighted by a function of that problem's success rate alone: its effect on
exploration can only come through parameters shared across problems.

Batch-level estimators (a group's advantages depend on other groups, e.g.
``pass1_matched``), stochastic ones (random subsets) and those needing per-response inputs
(log-probs, entropy) have no such closed form: :func:`advantage_table` refuses them with the
reason, and the dynamics run them on sampled groups (:mod:`passk.sim.dynamics`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from passk import compute_advantages, get_estimator

__all__ = [
    "advantage_table",
    "binomial_pmf",
    "expected_logit_update",
    "policy_probabilities",
    "problem_weight",
    "sampled_logit_update",
    "strategy_entropy",
    "strategy_entropy_gradient",
    "success_probability",
    "update_from_table",
]

_TOL = 1e-10  # agreement required of an estimator's advantages to count as exchangeable


def policy_probabilities(logits: Tensor) -> Tensor:
    """``softmax(logits, -1)``, written out: on the lab's small tensors it is ~30x faster
    than ``Tensor.softmax``, whose kernel wakes every intra-op thread."""
    e = (logits - logits.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


@lru_cache(maxsize=64)
def _log_comb(n: int) -> Tensor:
    j = torch.arange(n + 1, dtype=torch.float64)
    return (
        torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64))
        - torch.lgamma(j + 1)
        - torch.lgamma(n - j + 1)
    )


def binomial_pmf(n: int, p: Tensor) -> Tensor:
    """``[*p.shape, n + 1]``: ``P(c = j)`` for ``c ~ Binomial(n, p)``, float64, exact at p in {0, 1}.

    >>> binomial_pmf(2, torch.tensor([0.5, 0.0, 1.0]))
    tensor([[0.2500, 0.5000, 0.2500],
            [1.0000, 0.0000, 0.0000],
            [0.0000, 0.0000, 1.0000]], dtype=torch.float64)
    """
    p = torch.as_tensor(p, dtype=torch.float64)[..., None]
    j = torch.arange(n + 1, dtype=torch.float64)
    # xlogy gives 0 * log 0 = 0, so p = 0 and p = 1 are exact
    log_pmf = _log_comb(n) + torch.special.xlogy(j, p) + torch.special.xlogy(n - j, 1 - p)
    return log_pmf.exp()


def advantage_table(estimator: str, n: int, **params: Any) -> tuple[Tensor, Tensor]:
    """``(a_pos, a_neg)``, each ``[n + 1]`` float64: the advantage of a correct and of a wrong
    response in a group of ``n`` with ``c`` correct (index ``c``; ``a_pos[0]`` and
    ``a_neg[n]`` are 0: no such response exists).

    Refuses, with the reason, estimators the exact sum cannot take: stochastic ones,
    those needing per-response inputs, batch-level ones (a group's advantages change with
    the other groups of the batch) and non-exchangeable ones (responses with the same
    reward get different advantages).

    >>> a_pos, a_neg = advantage_table("pass1", 4)
    >>> round(a_pos[1].item(), 6), round(a_neg[1].item(), 6)  # 1 of 4 correct: GRPO's z-scores
    (1.732051, -0.57735)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"group size n must be an integer >= 1, got {n!r}")
    spec = get_estimator(estimator)
    if spec.stochastic:
        raise ValueError(
            f"estimator {estimator!r} draws random subsets (stochastic): its advantages are not "
            "a function of the group's number of correct responses; run it with mode: stochastic"
        )
    if spec.needs:
        raise ValueError(
            f"estimator {estimator!r} needs per-response inputs {sorted(spec.needs)} that a "
            "policy over strategies does not have; it cannot be simulated"
        )
    ones = torch.arange(n)[None, :] < torch.arange(n + 1)[:, None]  # [n + 1, n]: row c has c ones
    rewards = ones.to(torch.float64)
    joint = compute_advantages(estimator, rewards, **params)
    alone = torch.cat(
        [compute_advantages(estimator, rewards[c : c + 1], **params) for c in range(n + 1)]
    )
    if not torch.allclose(joint, alone, rtol=_TOL, atol=_TOL):
        raise ValueError(
            f"estimator {estimator!r} is batch-level: a group's advantages depend on the other "
            "groups of the batch, so no per-problem expectation exists; run it with mode: stochastic"
        )
    flipped = compute_advantages(estimator, rewards.flip(1), **params).flip(1)
    a_pos = torch.where(ones, joint, torch.nan)
    a_neg = torch.where(~ones, joint, torch.nan)
    same_pos = torch.nan_to_num(a_pos - a_pos.nanmean(1, keepdim=True)).abs().max()
    same_neg = torch.nan_to_num(a_neg - a_neg.nanmean(1, keepdim=True)).abs().max()
    if (
        not torch.allclose(joint, flipped, rtol=_TOL, atol=_TOL)
        or same_pos > _TOL * (1 + joint.abs().max())
        or same_neg > _TOL * (1 + joint.abs().max())
    ):
        raise ValueError(
            f"estimator {estimator!r} is not exchangeable: responses with the same reward get "
            "different advantages depending on their position; run it with mode: stochastic"
        )
    return a_pos.nanmean(1).nan_to_num(0.0), a_neg.nanmean(1).nan_to_num(0.0)


def _as_inputs(logits: Any, solves: Any) -> tuple[Tensor, Tensor]:
    logits = torch.as_tensor(logits, dtype=torch.float64)
    solves = torch.as_tensor(solves)
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [P, S], got shape {tuple(logits.shape)}")
    if solves.shape != logits.shape:
        raise ValueError(
            f"solves must have the logits' shape {tuple(logits.shape)}, got {tuple(solves.shape)}"
        )
    if solves.dtype != torch.bool:
        raise ValueError(f"solves must be a bool tensor, got dtype {solves.dtype}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits must be finite")
    return logits, solves


def success_probability(logits: Any, solves: Any) -> Tensor:
    """``[P]``: each problem's probability that one response is correct (float64)."""
    logits, solves = _as_inputs(logits, solves)
    return (policy_probabilities(logits) * solves).sum(-1)


def _coefficients(a_pos: Tensor, a_neg: Tensor, n: int, p: Tensor) -> tuple[Tensor, ...]:
    """``alpha, gamma, beta + delta`` of the module docstring, each ``[P]``."""
    c = torch.arange(n + 1, dtype=torch.float64)
    pmf_n = binomial_pmf(n, p)  # [P, n + 1]
    pmf_m = binomial_pmf(n - 1, p)  # [P, n]
    alpha = pmf_m @ a_pos[1:]  # sum_c a_pos(c) B_{n-1}(c - 1), c = 1..n
    gamma = pmf_m @ a_neg[:-1]  # sum_c a_neg(c) B_{n-1}(c), c = 0..n-1
    drift = pmf_n @ (a_pos * c / n + a_neg * (n - c) / n)  # beta + delta
    return alpha, gamma, drift


def expected_logit_update(
    logits: Any, solves: Any, estimator: str, n: int, **params: Any
) -> Tensor:
    """``[P, S]``: row x is ``E[(1/n) sum_i A_i (onehot(s_i) - softmax(logits[x]))]`` over a
    group of ``n`` i.i.d. draws ``s_i ~ softmax(logits[x])`` with rewards
    ``r_i = solves[x, s_i]`` and ``A`` the advantages of ``estimator`` (with ``params``).

    Exact (a sum over the Binomial number of correct draws), float64. ``logits`` is
    ``[P, S]``, ``solves`` bool ``[P, S]``. Estimators that are batch-level, stochastic,
    need per-response inputs or are not exchangeable are refused (see
    :func:`advantage_table`).

    >>> logits = torch.tensor([[0.0, 0.0]])
    >>> solves = torch.tensor([[True, False]])
    >>> expected_logit_update(logits, solves, "pass1", n=2)  # half the groups carry signal
    tensor([[ 0.2500, -0.2500]], dtype=torch.float64)
    """
    logits, solves = _as_inputs(logits, solves)
    a_pos, a_neg = advantage_table(estimator, n, **params)
    return update_from_table(logits, solves, a_pos, a_neg)


def update_from_table(logits: Tensor, solves: Tensor, a_pos: Tensor, a_neg: Tensor) -> Tensor:
    """:func:`expected_logit_update` from a precomputed :func:`advantage_table` (the group
    size is ``len(a_pos) - 1``); the dynamics call this once per step with a cached table."""
    n = a_pos.numel() - 1
    pi = policy_probabilities(logits)  # [P, S]
    pi_c = pi * solves
    p = pi_c.sum(-1)
    alpha, gamma, drift = _coefficients(a_pos, a_neg, n, p)
    return alpha[:, None] * pi_c + gamma[:, None] * (pi - pi_c) - drift[:, None] * pi


def problem_weight(estimator: str, n: int, p: Any, **params: Any) -> Tensor:
    """``m(p)``: the factor by which the estimator's expected update on a problem with
    success probability ``p`` multiplies that problem's pass@1 gradient ``dp/dlogits``.

    Every exchangeable estimator's expected update is ``m(p) * dp/dlogits`` (module
    docstring), so ``m`` is all that separates two such estimators: it is how much each
    problem counts, as a function of how often it is solved. For reference, the gradient
    of pass@k itself is ``k (1 - p)^(k - 1) * dp/dlogits``. ``p`` in (0, 1); float64.

    >>> problem_weight("pass1", 2, [0.1, 0.5]).tolist()  # with n = 2, GRPO weighs every p alike
    [1.0, 1.0]
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    if not bool(((p > 0) & (p < 1)).all()):
        raise ValueError("p must lie strictly between 0 and 1 (the weight is a ratio there)")
    a_pos, a_neg = advantage_table(estimator, n, **params)
    alpha, _, drift = _coefficients(a_pos, a_neg, n, p.reshape(-1))
    return ((alpha - drift) / (1 - p.reshape(-1))).reshape(p.shape)


def sampled_logit_update(
    logits: Tensor,
    solves: Tensor,
    problems: Tensor,
    estimator: str,
    n: int,
    generator: torch.Generator,
    **params: Any,
) -> Tensor:
    """``[B, S]``: one sampled estimate of the update for each of ``problems`` (``[B]``
    row indices into ``logits``), computed from real groups: ``n`` draws per problem, their
    0/1 rewards, and the estimator's advantages over the whole ``[B, n]`` batch (so
    batch-level estimators keep their batch semantics). Its mean over draws is
    :func:`expected_logit_update` for exchangeable estimators.
    """
    pi = policy_probabilities(logits[problems])  # [B, S]
    draws = torch.multinomial(pi, n, replacement=True, generator=generator)  # [B, n]
    rewards = solves[problems].gather(1, draws).to(torch.float64)  # [B, n]
    adv = compute_advantages(estimator, rewards, **params)  # [B, n]
    counts = torch.zeros_like(pi).scatter_add_(1, draws, adv)  # sum_i A_i onehot(s_i)
    return (counts - adv.sum(1, keepdim=True) * pi) / n


def strategy_entropy(logits: Tensor) -> Tensor:
    """``[P]``: the entropy ``H = -sum_s pi_s log pi_s`` of each problem's strategy
    distribution ``pi = softmax(logits)`` (nats, float64)."""
    pi = policy_probabilities(logits)
    return -torch.special.xlogy(pi, pi).sum(-1)


def strategy_entropy_gradient(logits: Tensor) -> Tensor:
    """``[P, S]``: ``dH / dlogits = -pi (log pi + H)`` per problem, the closed form of the
    entropy's gradient in the logits (it sums to 0 over strategies, like every logit update).

    >>> g = strategy_entropy_gradient(torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64))
    >>> g[0].abs().sum().item(), round(g[1, 0].item(), 6)  # uniform: a maximum; else toward it
    (0.0, -0.209987)
    """
    pi = policy_probabilities(logits)
    log_pi = torch.log_softmax(logits, -1)
    h = -(pi * log_pi).sum(-1, keepdim=True)
    return -pi * (log_pi + h)
