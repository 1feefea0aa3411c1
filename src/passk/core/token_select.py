"""Token selections over a whole mini-batch: covariance (Clip-Cov / KL-Cov) and entropy (forking
tokens).

Each function is pure: it takes the *mini-batch's* detached tensors ``[B, T]`` (and, for a
random selection, a ``torch.Generator``) and returns a bool selection ``[B, T]``, False at
padding. The trainer calls it once per mini-batch, before the mini-batch is split into
micro-batches, and hands every micro-batch its rows of the selection, so the update does not
depend on the micro-batch size. (The official code of both papers selects inside the loss,
i.e. per micro-batch, so its selection changes with the micro-batch size and with
gradient-accumulation settings.)

    >>> import torch
    >>> mask = torch.ones(1, 5, dtype=torch.bool)
    >>> entropy_top_mask(torch.tensor([[0.1, 3.0, 0.2, 2.0, 0.3]]), mask, 0.4)
    tensor([[False,  True, False,  True, False]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from passk.core._checks import check_fraction
from passk.core._masked import (
    _LOG_RATIO_CLAMP,
    _broadcast_advantages,
    _check_2d,
    _fill,
    _up,
)

__all__ = [
    "clip_cov_select",
    "covariance_scores",
    "entropy_top_mask",
    "kl_cov_select",
    "selection_count",
]


def selection_count(n_valid: int, fraction: float) -> int:
    """Tokens a ``fraction`` of ``n_valid`` selects: ``max(1, int(fraction * n_valid))`` (the
    rounding of the official Clip-Cov / KL-Cov code), 0 when there is no valid token.

    >>> selection_count(10_000, 2e-4), selection_count(100, 2e-4), selection_count(0, 0.5)
    (2, 1, 0)
    """
    if n_valid <= 0:
        return 0
    return min(n_valid, max(1, int(fraction * n_valid)))


def covariance_scores(logp: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """``cov[B, T] = (A_t - mean A) (logp_t - mean logp)``, both means over the valid tokens.

    arXiv 2505.22617 eq. (Clip-Cov / KL-Cov): the per-token centred cross product of
    advantage and log-probability (the summand of their covariance), over the valid tokens
    of the whole batch passed in (token-weighted means, as in the official code's
    ``masked_mean``). Detached; 0 at padding. ``advantages`` is ``[B]`` or ``[B, T]``.

        >>> import torch
        >>> cov = covariance_scores(torch.tensor([[-1.0, -3.0]]), torch.tensor([[1.0, -1.0]]),
        ...                         torch.ones(1, 2))
        >>> cov  # means A = 0, logp = -2: (1)(1), (-1)(-1)
        tensor([[1., 1.]])
    """
    mask = _check_2d(mask, logp=logp)
    lp = _fill(_up(logp.detach()), mask)  # [B, T]
    adv = _fill(_up(_broadcast_advantages(advantages.detach(), mask)).to(lp.dtype), mask)
    n = mask.sum().clamp(min=1).to(lp.dtype)
    a_c = adv - adv.sum() / n
    l_c = lp - lp.sum() / n
    return _fill(a_c * l_c, mask)


def clip_cov_select(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_cov_ratio: float,
    clip_cov_lb: float,
    clip_cov_ub: float,
    eps_low: float,
    eps_high: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Clip-Cov's tokens (arXiv 2505.22617): a random ``clip_cov_ratio`` of the valid tokens,
    drawn among those with ``clip_cov_lb < cov < clip_cov_ub`` that PPO's clip has not already
    cut off; ``[B, T]`` bool.

    Follows the official code (PRIME-RL/Entropy-Mechanism-of-RL and verl,
    ``verl/trainer/ppo/core_algos.py``, ``compute_policy_loss_clip_cov``): the bounds are
    strict, tokens whose clipped PPO branch is active (``-A clip(r) > -A r``) are not
    candidates, ``max(1, int(clip_cov_ratio * n_valid))`` tokens are drawn (fewer when fewer
    are candidates) by a random permutation of the candidates in row-major order. The draw
    uses ``generator`` (None: the global generator), so a seeded generator makes it
    deterministic.

        >>> import torch
        >>> logp = torch.tensor([[-1.0, -9.0, -2.0, -5.0]])
        >>> adv = torch.tensor([[2.0, -2.0, 0.5, -0.5]])
        >>> covariance_scores(logp, adv, torch.ones(1, 4))
        tensor([[6.5000, 9.5000, 1.1250, 0.3750]])
        >>> clip_cov_select(logp, logp, adv, torch.ones(1, 4), clip_cov_ratio=0.5,
        ...                 clip_cov_lb=2.0, clip_cov_ub=8.0, eps_low=0.2, eps_high=0.2)
        tensor([[ True, False, False, False]])
    """
    check_fraction("clip_cov_ratio", clip_cov_ratio)
    if not clip_cov_lb < clip_cov_ub:
        raise ValueError(
            f"clip_cov_lb must be < clip_cov_ub, got {clip_cov_lb!r} and {clip_cov_ub!r}"
        )
    mask = _check_2d(mask, logp=logp, old_logp=old_logp)
    cov = covariance_scores(logp, advantages, mask)  # [B, T]
    adv = _fill(_up(_broadcast_advantages(advantages.detach(), mask)), mask)
    log_ratio = _fill(_up(logp.detach()), mask) - _fill(_up(old_logp.detach()), mask)
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    clipped_by_ppo = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high) > -adv * ratio
    candidate = mask & ~clipped_by_ppo & (cov > clip_cov_lb) & (cov < clip_cov_ub)
    idx = candidate.reshape(-1).nonzero().squeeze(1).cpu()  # row-major order
    k = min(selection_count(int(mask.sum()), clip_cov_ratio), len(idx))
    flat = torch.zeros(mask.numel(), dtype=torch.bool)
    if k:
        perm = torch.randperm(len(idx), generator=generator)
        flat[idx[perm[:k]]] = True
    return flat.reshape(mask.shape).to(mask.device)


def kl_cov_select(logp: Tensor, advantages: Tensor, mask: Tensor, *, kl_cov_ratio: float) -> Tensor:
    """KL-Cov's tokens (arXiv 2505.22617): the ``max(1, int(kl_cov_ratio * n_valid))`` valid
    tokens of largest ``cov`` (:func:`covariance_scores`); ``[B, T]`` bool, deterministic.

    Follows the official code (``compute_policy_loss_kl_cov``: ``torch.topk`` of the
    covariance over the valid tokens); there the fraction is given in percent
    (``k_percent`` 0.2 for 7B = 2e-3, 0.02 for 32B = 2e-4); here it is a fraction.

        >>> import torch
        >>> logp = torch.tensor([[-1.0, -9.0, -2.0, -5.0]])
        >>> kl_cov_select(logp, torch.tensor([[2.0, -2.0, 0.5, -0.5]]), torch.ones(1, 4),
        ...               kl_cov_ratio=0.5)
        tensor([[ True,  True, False, False]])
    """
    check_fraction("kl_cov_ratio", kl_cov_ratio)
    mask = _check_2d(mask, logp=logp)
    cov = covariance_scores(logp, advantages, mask)
    flat_mask = mask.reshape(-1)
    idx = flat_mask.nonzero().squeeze(1)  # [n_valid]
    k = selection_count(len(idx), kl_cov_ratio)
    flat = torch.zeros_like(flat_mask)
    if k:
        top = torch.topk(cov.reshape(-1)[idx], k, largest=True, sorted=False).indices
        flat[idx[top]] = True
    return flat.reshape(mask.shape)


def entropy_top_mask(entropy: Tensor, mask: Tensor, top: float) -> Tensor:
    """Forking tokens (arXiv 2506.01939): the ``ceil(top * n_valid)`` valid tokens of highest
    entropy in the batch passed in; ``[B, T]`` bool.

    Follows the official code (Shenzhi-Wang/Beyond-the-80-20-Rule-RLVR,
    ``verl/trainer/ppo/core_algos.py``, ``get_global_entropy_top_mask``): an exact count by
    ``torch.topk`` rather than a threshold quantile, at least one token, ties broken by
    ``topk``. The paper's rho = 0.2. Non-finite entropies at padding are ignored; a
    non-finite valid entropy counts as lowest (NaN) or highest (+inf).

        >>> import torch
        >>> ent = torch.tensor([[0.5, 2.0, 1.0], [9.0, 0.1, float("nan")]])
        >>> entropy_top_mask(ent, torch.tensor([[1, 1, 1], [0, 1, 0]]), 0.5)
        tensor([[False,  True,  True],
                [False, False, False]])
    """
    check_fraction("entropy_mask_top", top)
    mask = _check_2d(mask, entropy=entropy)
    ent = _up(entropy.detach())
    ent = torch.nan_to_num(ent, nan=-math.inf)
    flat_mask = mask.reshape(-1)
    idx = flat_mask.nonzero().squeeze(1)
    n = len(idx)
    # ceil, robust to float noise in top * n (0.2 * 15 = 3.0000000000000004)
    k = min(n, max(1, math.ceil(round(top * n, 9)))) if n else 0
    flat = torch.zeros_like(flat_mask)
    if k:
        top_idx = torch.topk(ent.reshape(-1)[idx], k, largest=True, sorted=False).indices
        flat[idx[top_idx]] = True
    return flat.reshape(mask.shape)
