"""The lab's dynamics: the two-mode collapse, its fixed point computed independently,
optimizers, schedules, sampled mode and the exact metrics."""

from __future__ import annotations

import math

import pytest
import torch

from passk.sim import Arm, Optimizer, Phase, PolicySpec, population_metrics, run_arm, two_mode
from passk.sim.dynamics import _Adam, phase_params


def _passk_pos_neg(n: int, c: int, k: int) -> tuple[float, float]:
    """Analytic Pass@k's (A_pos, A_neg) from the paper's formulas (0 for dead groups)."""
    neg = n - c
    if c == 0 or neg < k:
        return 0.0, 0.0
    rho = 1 - math.comb(neg, k) / math.comb(n, k)
    sigma = math.sqrt(rho * (1 - rho))
    return (1 - rho) / sigma, (
        1 - rho - math.comb(neg - 1, k - 1) / math.comb(n - 1, k - 1)
    ) / sigma


def _drift_a_minus_b(pi_a: float, n: int, k: int, frac: float) -> float:
    """d(theta_A - theta_B)/dt for a shared 2-strategy policy on the two-mode population,
    written out from the definition: on a problem that strategy X solves, c ~ Bin(n, pi_X)
    and the A-component of (1/n) sum_i A_i (e_{s_i} - pi) is what each branch says."""
    pi_b = 1 - pi_a
    total = 0.0
    for weight, p_solve, a_solves in ((frac, pi_a, True), (1 - frac, pi_b, False)):
        comp = 0.0
        for c in range(n + 1):
            prob = math.comb(n, c) * p_solve**c * (1 - p_solve) ** (n - c)
            a_pos, a_neg = _passk_pos_neg(n, c, k)
            if a_solves:  # correct draws are A
                comp += prob * (c * a_pos * (1 - pi_a) - (n - c) * a_neg * pi_a) / n
            else:  # correct draws are B
                comp += prob * (-c * a_pos * pi_a + (n - c) * a_neg * (1 - pi_a)) / n
        total += weight * comp
    return 2 * total  # the B component is minus the A component with two strategies


def _fixed_point_share_b(n: int = 16, k: int = 4, frac: float = 0.75) -> float:
    lo, hi = 0.5, 1 - 1e-9  # drift > 0 at pi_A = 0.5 (A's problems outnumber B's), < 0 near 1
    assert _drift_a_minus_b(lo, n, k, frac) > 0 > _drift_a_minus_b(hi, n, k, frac)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _drift_a_minus_b(mid, n, k, frac) > 0 else (lo, mid)
    return 1 - (lo + hi) / 2


PASS1 = Arm("Pass@1", (Phase("pass1"),))
PASSK = Arm("Pass@k", (Phase("passk_analytic", {"k": 4}),))
START = PolicySpec(init=(2.0, -1.0, 0.0))


def test_pass1_collapses_the_rare_strategy_on_the_two_mode_population():
    traj = run_arm(two_mode(0.75, 4), PASS1, n=16, steps=2000, policy=START, log_every=100)
    assert traj["shares"]["B"][0] == pytest.approx(math.exp(-1) / (math.exp(2) + math.exp(-1) + 1))
    assert traj["shares"]["B"][-1] < 1e-3
    assert traj["pass_at_k"]["64"][0] > 0.98
    assert traj["pass_at_k"]["64"][-1] == pytest.approx(0.75, abs=0.005)
    assert traj["by_group"]["rare"]["pass_at_k"]["64"][-1] < 0.01


def test_passk_keeps_the_rare_strategy_and_reaches_the_independent_fixed_point():
    fixed = _fixed_point_share_b()
    # two strategies (no junk): the fixed point is reached, to many digits
    two = run_arm(
        two_mode(0.75, 4, junk=0), PASSK, n=16, steps=3000, policy=PolicySpec(init=(2.0, -1.0))
    )
    assert two["shares"]["B"][-1] == pytest.approx(fixed, abs=1e-6)
    # with junk, whose share decays only like 1/t: B approaches the same point
    three = run_arm(two_mode(0.75, 4), PASSK, n=16, steps=2000, policy=START, log_every=100)
    assert three["shares"]["junk"][-1] < 0.005
    assert three["shares"]["B"][-1] == pytest.approx(fixed, abs=0.005)
    assert three["pass_at_k"]["64"][-1] > 0.9999


def test_the_fixed_point_is_not_the_pass_at_4_optimum():
    # argmax over pi_B of 0.75 (1 - (1 - pi_A)^4) + 0.25 (1 - (1 - pi_B)^4), pi_A + pi_B = 1:
    # 3 pi_B^3 = pi_A^3
    optimum = 1 / (1 + 3 ** (1 / 3))
    assert abs(_fixed_point_share_b() - optimum) > 0.05


def test_schedule_switches_phase_and_pass1_then_loses_the_rare_strategy():
    arm = Arm("P@k -> P@1", (Phase("passk_analytic", {"k": 4}, steps=1000), Phase("pass1")))
    traj = run_arm(two_mode(0.75, 4), arm, n=16, steps=2000, policy=START, log_every=100)
    at = traj["step"].index(1000)
    assert traj["phase"][at] == 0 and traj["phase"][at + 1] == 1
    assert traj["shares"]["B"][at] > 0.3
    assert traj["shares"]["B"][-1] < 0.01


def test_per_problem_logits_do_not_collapse_under_pass1():
    """Without shared parameters no problem's push reaches another: the rare problems
    learn B under Pass@1 too."""
    traj = run_arm(
        two_mode(0.75, 4),
        PASS1,
        n=16,
        steps=500,
        policy=PolicySpec(parameters="per_problem", init=(2.0, -1.0, 0.0)),
        optimizer=Optimizer(name="adam", lr=0.05),
        log_every=50,
    )
    assert traj["by_group"]["rare"]["pass_at_k"]["64"][-1] > 0.99
    assert traj["by_group"]["rare"]["success"][-1] > traj["by_group"]["rare"]["success"][0]


def test_adam_matches_torch_adam():
    opt = Optimizer(name="adam", lr=0.1, betas=(0.8, 0.95), eps=1e-6)
    ours = _Adam(torch.Size([3]), opt)
    param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ref = torch.optim.Adam([param], lr=0.1, betas=(0.8, 0.95), eps=1e-6, maximize=True)
    mine = torch.zeros(3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        grad = torch.randn(3, generator=gen, dtype=torch.float64)
        param.grad = grad.clone()
        ref.step()
        mine = mine + ours.step(grad)
    torch.testing.assert_close(mine, param.detach(), rtol=1e-12, atol=1e-12)


def test_population_metrics_by_hand():
    pop = two_mode(0.5, 2)
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(3.0), 0.0]], dtype=torch.float64)
    m = population_metrics(logits, pop, ks=(1, 2))
    p = [1 / 3, 3 / 5]  # problem 0 solved by A, problem 1 by B
    assert m["pass_at_k"]["2"] == pytest.approx(sum(0.5 * (1 - (1 - q) ** 2) for q in p))
    assert m["pass_hat_k"]["2"] == pytest.approx(sum(0.5 * q**2 for q in p))
    assert m["by_group"]["rare"]["pass_at_k"]["1"] == pytest.approx(3 / 5)
    assert m["shares"]["B"] == pytest.approx(0.5 * (1 / 3) + 0.5 * (3 / 5))
    h0 = math.log(3)
    h1 = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))
    assert m["entropy"] == pytest.approx((h0 + h1) / 2)


def test_stochastic_mode_is_seeded_and_runs_batch_level_estimators():
    arm = Arm("matched", (Phase("pass1_matched", {"k": 4}),))
    kw = dict(n=16, steps=30, policy=START, mode="stochastic", batch_problems=4, log_every=10)
    a = run_arm(two_mode(0.75, 4), arm, seed=1, **kw)
    b = run_arm(two_mode(0.75, 4), arm, seed=1, **kw)
    c = run_arm(two_mode(0.75, 4), arm, seed=2, **kw)
    assert a == b
    assert a["shares"]["B"] != c["shares"]["B"]


def test_stochastic_estimators_get_a_fresh_seed_each_step():
    full = Phase("passk_full", {"k": 4, "shuffle": True})
    seeds = {phase_params(full, 0, step)["seed"] for step in range(20)}
    assert len(seeds) == 20  # a new seed every step
    assert phase_params(full, 0, 3) != phase_params(full, 1, 3)  # and per run seed
    fixed = Phase("passk_full", {"k": 4, "seed": 5})
    assert {phase_params(fixed, 0, step)["seed"] for step in range(5)} == {5}  # kept
    assert "seed" not in phase_params(Phase("pass1_matched", {"k": 4}), 0, 1)  # takes none
    arm = Arm("full", (full,))
    traj = run_arm(
        two_mode(0.75, 4), arm, n=16, steps=5, policy=START, mode="stochastic", log_every=1
    )
    assert traj["step"] == [0, 1, 2, 3, 4, 5]


def test_exact_mode_refuses_batch_level_estimators():
    arm = Arm("matched", (Phase("pass1_matched", {"k": 4}),))
    with pytest.raises(ValueError, match="batch-level"):
        run_arm(two_mode(0.75, 4), arm, n=16, steps=1, policy=START)


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="3 strategies"):
        run_arm(two_mode(0.75, 4), PASS1, n=16, steps=1, policy=PolicySpec(init=(1.0, 2.0)))
    with pytest.raises(ValueError, match="parameters must be one of"):
        PolicySpec(parameters="global")
    with pytest.raises(ValueError, match="optimizer must be"):
        Optimizer(name="rmsprop")
    with pytest.raises(ValueError, match="only the last phase"):
        Arm("x", (Phase("pass1"), Phase("pass1")))
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        Phase("pass2")
    with pytest.raises(ValueError, match="whole number"):
        two_mode(0.75, 3)
