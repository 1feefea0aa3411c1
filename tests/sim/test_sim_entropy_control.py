"""Entropy controls in the lab: the closed-form entropy gradient against autograd, and one
update of each control against values stepped by hand."""

from __future__ import annotations

import math

import pytest
import torch

from passk.sim import (
    Arm,
    EntropyControl,
    Phase,
    PolicySpec,
    expected_logit_update,
    from_table,
    run_arm,
    strategy_entropy,
    strategy_entropy_gradient,
)
from passk.sim.config import parse_simulate
from passk.sim.updates import advantage_table, update_from_table

D = torch.float64


def test_entropy_gradient_matches_autograd() -> None:
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(5, 4, generator=g, dtype=D)).requires_grad_(True)
    h = strategy_entropy(logits)
    (auto,) = torch.autograd.grad(h.sum(), logits)
    torch.testing.assert_close(strategy_entropy_gradient(logits.detach()), auto)
    pi = logits.detach().softmax(-1)
    torch.testing.assert_close(h.detach(), -(pi * pi.log()).sum(-1))


# one problem, strategy 0 solves it; logits start at (1, 0, -1)
POP = from_table([[1, 0, 0]])
INIT = (1.0, 0.0, -1.0)


def _one_step(control: EntropyControl, steps: int = 1) -> dict:
    arm = Arm("x", (Phase("pass1"),), control=control)
    return run_arm(POP, arm, n=4, steps=steps, policy=PolicySpec(init=INIT), ks=(1,))


def _hand_entropy(z: list[float]) -> tuple[list[float], float]:
    e = [math.exp(v) for v in z]
    pi = [v / sum(e) for v in e]
    return pi, -sum(p * math.log(p) for p in pi)


def test_bonus_adds_coef_times_the_entropy_gradient() -> None:
    pi, h = _hand_entropy(list(INIT))
    grad_h = [-p * (math.log(p) + h) for p in pi]  # dH/dz by hand
    base = expected_logit_update(torch.tensor([INIT], dtype=D), POP.solves, "pass1", 4)[0]
    want = [z + b + 0.3 * gh for z, b, gh in zip(INIT, base.tolist(), grad_h)]
    traj = _one_step(EntropyControl("bonus", coef=0.3))
    got_pi, _ = _hand_entropy(want)
    assert traj["shares"]["s0"][-1] == pytest.approx(got_pi[0], abs=1e-12)
    assert traj["control_coef"] == [0.0, 0.3]
    assert traj["entropy"][0] == pytest.approx(h, abs=1e-12)


def test_adaptive_coefficient_steps_by_hand() -> None:
    _, h0 = _hand_entropy(list(INIT))  # 0.832 nats
    above = _one_step(EntropyControl("adaptive", coef=0.2, target=0.5, delta=0.05), steps=3)
    below = _one_step(EntropyControl("adaptive", coef=0.2, target=2.0, delta=0.05), steps=3)
    assert h0 > 0.5
    assert above["control_coef"][1] == 0.0  # above target: no bonus
    assert below["control_coef"][1:] == pytest.approx([0.2, 0.25, 0.30])  # below: +delta each
    plain = run_arm(POP, Arm("p", (Phase("pass1"),)), n=4, steps=1, policy=PolicySpec(init=INIT))
    assert above["entropy"][1] == pytest.approx(plain["entropy"][1], abs=1e-15)
    assert below["entropy"][1] > plain["entropy"][1]


def test_entropic_reweights_the_advantage_table_by_hand() -> None:
    _, h0 = _hand_entropy(list(INIT))
    target, kp, ki = 0.3, 0.5, 0.1
    alpha1 = kp * (h0 - target)  # step 1: integral 0
    traj = _one_step(EntropyControl("entropic", target=target, kp=kp, ki=ki), steps=2)
    assert traj["control_alpha"][1] == pytest.approx(alpha1, abs=1e-12)
    a_pos, a_neg = advantage_table("pass1", 4)
    logits = torch.tensor([INIT], dtype=D)
    # A -> A + alpha |A|: positives (1 + alpha), negatives (1 - alpha)
    g = update_from_table(logits, POP.solves, (1 + alpha1) * a_pos, (1 - alpha1) * a_neg)
    z1 = logits + g
    h1 = float(strategy_entropy(z1)[0])
    assert traj["entropy"][1] == pytest.approx(h1, abs=1e-12)
    alpha2 = kp * (h1 - target) + ki * (h0 - target)  # integral holds step 1's error
    assert traj["control_alpha"][2] == pytest.approx(min(1.0, alpha2), abs=1e-12)


def test_control_config_is_parsed_checked_and_echoed() -> None:
    tree = {
        "population": {"kind": "two_mode"},
        "steps": 2,
        "estimators": [
            {"estimator": "pass1", "control": {"kind": "adaptive", "target": 0.4}},
            {"label": "b", "estimator": "pass1", "control": {"kind": "bonus", "coef": 0.1}},
        ],
    }
    spec = parse_simulate(tree)
    assert spec.arms[0].control == EntropyControl("adaptive", target=0.4)
    assert spec.to_dict()["estimators"][1]["control"]["coef"] == 0.1
    bad = dict(tree, estimators=[{"estimator": "pass1", "control": {"kind": "entropic"}}])
    with pytest.raises(
        ValueError, match=r"estimators\[0\].control: control kind 'entropic' needs a target"
    ):
        parse_simulate(bad)
    bad = dict(
        tree,
        mode="stochastic",
        estimators=[{"estimator": "pass1", "control": {"kind": "entropic", "target": 0.3}}],
    )
    with pytest.raises(ValueError, match="runs in mode: exact only"):
        parse_simulate(bad)
    bad = dict(tree, estimators=[{"estimator": "pass1", "control": {"kind": "pid"}}])
    with pytest.raises(
        ValueError, match=r"control kind must be one of \['bonus', 'adaptive', 'entropic'\]"
    ):
        parse_simulate(bad)
