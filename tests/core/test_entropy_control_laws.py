"""The entropy controllers' laws and EntroPIC's loss term, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from loss_inputs import D, ln

from passk.core.losses import ppo_clip_loss
from passk.core.losses.entropy_control import (
    adaptive_entropy_coef,
    entropic_alpha,
    entropic_loss,
)


def test_adaptive_coefficient_walks_toward_holding_the_target() -> None:
    coef, applied = 0.0, []
    for e in (0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3, 0.2):  # target 0.2: below x3, above x4, equal
        a, coef = adaptive_entropy_coef(coef, e, target=0.2, delta=0.01, coef_max=0.025)
        applied.append(a)
    assert applied == pytest.approx([0.0, 0.01, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert coef == pytest.approx(0.01)  # 0.025 (capped) - 3 x 0.01, floored at 0, + 0.01
    assert adaptive_entropy_coef(0.3, math.nan, target=0.2, delta=0.1) == (0.0, 0.3)
    with pytest.raises(ValueError, match="delta must be > 0, got 0"):
        adaptive_entropy_coef(0.0, 0.1, target=0.2, delta=0)


def test_entropic_pi_law_by_hand() -> None:
    integral, alphas = 0.0, []
    for h in (0.9, 0.7, 0.4):  # target 0.5, kp 2, ki 0.5
        a, integral = entropic_alpha(h, integral, target=0.5, kp=2.0, ki=0.5)
        alphas.append(a)
    # e = 0.4, 0.2, -0.1; I before = 0, 0.4, 0.6; alpha = 2e + 0.5 I (clipped to [-1, 1])
    assert alphas == pytest.approx([0.8, 0.6, 0.1])
    assert integral == pytest.approx(0.5)
    assert entropic_alpha(5.0, 0.0, target=0.5, kp=1.0, ki=0.0)[0] == 1.0
    with pytest.raises(ValueError, match="kp and ki must be >= 0"):
        entropic_alpha(0.1, 0.0, target=0.5, kp=-1.0, ki=0.0)


def test_entropic_term_weights_positives_one_plus_alpha_negatives_one_minus() -> None:
    p = [0.97, 0.97, 0.5, 0.5]
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]], dtype=D)
    mask = torch.ones(1, 4)
    alpha = 0.3
    logp = ln(*p).requires_grad_(True)
    base, _ = ppo_clip_loss(logp, logp.detach(), adv, mask)
    term, m = entropic_loss(logp, logp.detach(), adv, mask, alpha=alpha)
    (base + term).sum().backward()
    # on-policy r = 1: d/dlogp of -A r is -A; the term adds -alpha |A| on tokens with p > 0.95
    want = [-(1 + alpha) * 1.0, -(1 - alpha) * -1.0, -1.0, 1.0]
    torch.testing.assert_close(logp.grad, torch.tensor([want], dtype=D))
    assert m["entropic/high_prob_frac"].item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[-1, 1\], got 2"):
        entropic_loss(logp, logp, adv, mask, alpha=2)


def test_objective_adds_the_entropic_term_only_when_alpha_is_set() -> None:
    from passk.core.losses import get_policy_loss
    from passk.rollout.batch import Rollouts
    from passk.train.objective import Objective, objective

    mb = Rollouts.from_sequences([[5, 6], [5, 7]], [[7, 8, 9], [1, 2, 3]])
    mb.advantages = torch.tensor([1.0, -0.5])
    logp = torch.log(torch.tensor([[0.99, 0.6, 0.96], [0.98, 0.2, 0.5]]))
    out = {"logp": logp, "entropy": torch.full((2, 3), 0.5)}
    spec = get_policy_loss("ppo_clip")
    plain, _ = objective(Objective(spec), out, mb)
    with_pic, m = objective(Objective(spec, entropic_alpha=-0.4), out, mb)
    term, _ = entropic_loss(logp, logp, mb.advantages, mb.response_mask, alpha=-0.4)
    torch.testing.assert_close(with_pic, plain + term)
    assert m["entropic/alpha"].item() == pytest.approx(-0.4)
    assert (term != 0).sum() == 3  # the three tokens above 0.95
