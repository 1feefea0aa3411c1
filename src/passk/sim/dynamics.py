"""Training dynamics of a softmax policy over strategies under any advantage estimator.

The policy's logits for problem ``x`` are ``theta + phi[x]``: ``theta[S]`` is shared by all
problems, ``phi[P, S]`` is each problem's own; ``parameters`` picks ``"shared"``,
``"per_problem"`` or ``"both"``. The objective is the population's weighted mean, so the
step on ``theta`` is the weighted mean of the problems' logit updates and the step on
``phi[x]`` is problem ``x``'s update times its weight.

Two modes:

- ``exact``: every step applies the exact expected update of every problem
  (:func:`passk.sim.updates.expected_logit_update`); deterministic, no sampling.
- ``stochastic``: every step draws ``batch_problems`` problems (by weight, with
  replacement), ``n`` responses each, and applies the update computed from those groups
  with the estimator's real batch semantics (batch-level and stochastic estimators run
  here); seeded.

An arm is a schedule of phases (an estimator with its params, for a number of steps), so
"Pass@k for T/2 steps, then Pass@1" is one arm. An arm may carry an entropy control
(:class:`EntropyControl`): a fixed entropy bonus, Skywork-OR1's adaptive coefficient, or
EntroPIC's PI-controlled weights on positive vs negative advantages, each stepped on the
population's exact mean strategy entropy before every update. Metrics are exact for the current policy
at every logged step: population pass@k ``sum_x w_x (1 - (1 - p_x)^k)``, pass^k
``sum_x w_x p_x^k``, the same per group, the mean strategy shares and the mean entropy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from passk import get_estimator
from passk.core.losses.entropy_control import adaptive_entropy_coef, entropic_alpha
from passk.seeds import derive_seed
from passk.sim.population import Population
from passk.sim.updates import (
    advantage_table,
    policy_probabilities,
    sampled_logit_update,
    strategy_entropy,
    strategy_entropy_gradient,
    update_from_table,
)

__all__ = [
    "CONTROLS",
    "Arm",
    "EntropyControl",
    "Optimizer",
    "Phase",
    "PolicySpec",
    "population_metrics",
    "run_arm",
]

PARAMETERS = ("shared", "per_problem", "both")
MODES = ("exact", "stochastic")
CONTROLS = ("bonus", "adaptive", "entropic")


@dataclass(frozen=True)
class EntropyControl:
    """An entropy control added to an arm's update; ``H`` is the population's mean strategy
    entropy ``sum_x w_x H(pi_x)``, measured before each update.

    - ``bonus``: ``coef * dH_x/dlogits`` added to every problem's update (the gradient of
      the bonus ``coef H``; :func:`passk.sim.updates.strategy_entropy_gradient`).
    - ``adaptive``: the same bonus with Skywork-OR1's coefficient
      (:func:`passk.core.losses.entropy_control.adaptive_entropy_coef`): ``coef`` is its
      initial value; applied only while ``H <= target``; moved by ``delta`` each update
      within ``[coef_min, coef_max]``.
    - ``entropic``: EntroPIC's ``alpha = clip(kp (H - target) + ki I, -1, 1)``
      (:func:`~passk.core.losses.entropy_control.entropic_alpha`); every advantage ``A``
      becomes ``A + alpha |A|`` (positive ones weigh ``1 + alpha``, negative ones
      ``1 - alpha``). The trainer applies this only to tokens above a probability threshold;
      the lab's response is one strategy draw, and it applies it to all. Exact mode only.
    """

    kind: str
    coef: float = 0.0
    target: float | None = None
    delta: float = 0.005
    coef_min: float = 0.0
    coef_max: float = 1.0
    kp: float = 1.0
    ki: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in CONTROLS:
            raise ValueError(f"control kind must be one of {list(CONTROLS)}, got {self.kind!r}")
        for name in ("coef", "delta", "coef_min", "coef_max", "kp", "ki"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"control {name} must be a number >= 0, got {value!r}")
        if self.kind == "bonus" and self.target is not None:
            raise ValueError("control kind 'bonus' has a fixed coefficient and takes no target")
        if self.kind != "bonus" and (
            isinstance(self.target, bool)
            or not isinstance(self.target, (int, float))
            or self.target < 0
        ):
            raise ValueError(
                f"control kind {self.kind!r} needs a target entropy >= 0 (nats), "
                f"got {self.target!r}"
            )
        if self.kind == "adaptive" and not (
            self.delta > 0 and self.coef_min <= self.coef <= self.coef_max
        ):
            raise ValueError(
                f"control kind 'adaptive' needs delta > 0 and coef_min <= coef <= coef_max, "
                f"got delta={self.delta!r}, coef={self.coef!r} in "
                f"[{self.coef_min!r}, {self.coef_max!r}]"
            )

    def describe(self) -> str:
        if self.kind == "bonus":
            return f"entropy bonus {self.coef:g}"
        if self.kind == "adaptive":
            return f"adaptive entropy coefficient, target {self.target:g}"
        return f"EntroPIC, target {self.target:g}"


@dataclass(frozen=True)
class Phase:
    """``estimator`` with ``params`` for ``steps`` steps (``None``: until the run ends)."""

    estimator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    steps: int | None = None

    def __post_init__(self) -> None:
        get_estimator(self.estimator)  # an unknown name lists the valid ones
        if self.steps is not None and (
            isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1
        ):
            raise ValueError(f"a phase's steps must be an integer >= 1, got {self.steps!r}")

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.estimator}({args})" if args else self.estimator


@dataclass(frozen=True)
class Arm:
    """A labelled schedule of phases; only the last phase may run until the end."""

    label: str
    phases: tuple[Phase, ...]
    control: EntropyControl | None = None

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError(f"arm {self.label!r} has no phase")
        if any(ph.steps is None for ph in self.phases[:-1]):
            raise ValueError(f"arm {self.label!r}: only the last phase may omit steps")

    def phase_at(self, step: int) -> int:
        """Index of the phase that makes update ``step`` (0-based); past the end, the last."""
        start = 0
        for i, ph in enumerate(self.phases):
            if ph.steps is None or step < start + ph.steps:
                return i
            start += ph.steps
        return len(self.phases) - 1


@dataclass(frozen=True)
class Optimizer:
    """Gradient ascent on the logits' parameters: ``sgd`` (plain steps) or ``adam``."""

    name: str = "sgd"
    lr: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.name!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")


@dataclass(frozen=True)
class PolicySpec:
    """Which logits are parameters and where they start.

    ``init``: the starting logits over strategies (default all 0), the same for every
    problem; ``init_scale``: the standard deviation of seeded Gaussian noise added to each
    problem's own logits (needs ``per_problem`` or ``both``).
    """

    parameters: str = "shared"
    init: tuple[float, ...] | None = None
    init_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.parameters not in PARAMETERS:
            raise ValueError(
                f"parameters must be one of {list(PARAMETERS)}, got {self.parameters!r}"
            )
        if not self.init_scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {self.init_scale!r}")
        if self.init_scale > 0 and self.parameters == "shared":
            raise ValueError(
                "init_scale needs per-problem logits: set parameters to per_problem or both"
            )


class _Adam:
    def __init__(self, shape: torch.Size, opt: Optimizer) -> None:
        self.opt, self.t = opt, 0
        self.m = torch.zeros(shape, dtype=torch.float64)
        self.v = torch.zeros(shape, dtype=torch.float64)

    def step(self, grad: Tensor) -> Tensor:
        b1, b2 = self.opt.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return self.opt.lr * m_hat / (v_hat.sqrt() + self.opt.eps)


def _stepper(shape: torch.Size, opt: Optimizer) -> Callable[[Tensor], Tensor]:
    if opt.name == "adam":
        return _Adam(shape, opt).step
    return lambda grad: opt.lr * grad


def population_metrics(logits: Tensor, pop: Population, ks: Sequence[int]) -> dict[str, Any]:
    """Exact metrics of the policy ``softmax(logits)`` (``[P, S]``) on ``pop``."""
    pi = policy_probabilities(logits)
    p = (pi * pop.solves).sum(-1).clamp(0.0, 1.0)  # [P]
    k = torch.tensor(list(ks), dtype=torch.float64)[:, None]  # [K, 1]
    at_k = -torch.expm1(k * torch.log1p(-p))  # [K, P]: 1 - (1 - p)^k, exact for small p
    hat_k = p.pow(k)  # [K, P]
    entropy = -(torch.special.xlogy(pi, pi)).sum(-1)  # [P]
    names = [str(k) for k in ks]

    def table(w: Tensor) -> dict[str, Any]:
        w = w / w.sum()
        return {
            "success": float(w @ p),
            "pass_at_k": dict(zip(names, (at_k @ w).tolist())),
            "pass_hat_k": dict(zip(names, (hat_k @ w).tolist())),
        }

    out = table(pop.weights)
    out["shares"] = dict(zip(pop.strategies, (pop.weights @ pi).tolist()))
    out["entropy"] = float(pop.weights @ entropy)
    groups = pop.group_names()
    if len(groups) > 1:
        labels = list(pop.groups)
        out["by_group"] = {
            g: table(pop.weights * torch.tensor([x == g for x in labels], dtype=torch.float64))
            for g in groups
        }
    return out


def phase_params(phase: Phase, seed: int, step: int) -> dict[str, Any]:
    """The phase's params, plus a fresh seed per step for estimators that take one
    (``EstimatorSpec.takes_seed``) unless the phase fixes it."""
    params = dict(phase.params)
    if "seed" not in params and get_estimator(phase.estimator).for_params(params).takes_seed:
        params["seed"] = derive_seed(seed, "sim-estimator", step)
    return params


def run_arm(
    pop: Population,
    arm: Arm,
    *,
    n: int,
    steps: int,
    policy: PolicySpec = PolicySpec(),
    optimizer: Optimizer = Optimizer(),
    mode: str = "exact",
    batch_problems: int = 8,
    seed: int = 0,
    log_every: int = 1,
    ks: Sequence[int] = (1, 4, 16, 64),
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``arm`` for ``steps`` updates and return its trajectory.

    The trajectory holds, for step 0, every ``log_every``-th step and the last step:
    ``step``, ``phase`` (the phase index in force), ``step_size`` (the mean over the
    updates since the previous log of the weighted mean norm of each problem's logit
    change; 0 at step 0), and the lists of
    :func:`population_metrics` (``pass_at_k[k]``, ``pass_hat_k[k]``, ``success``,
    ``shares[strategy]``, ``entropy``, ``by_group[g][...]``). With an entropy control it
    also holds ``control_coef`` (the bonus coefficient the last update applied) and
    ``control_alpha`` (EntroPIC's alpha of the last update), 0 at step 0.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    control = arm.control
    if control is not None and control.kind == "entropic" and mode != "exact":
        raise ValueError(f"arm {arm.label!r}: the entropic control runs in mode: exact only")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ValueError(f"log_every must be an integer >= 1, got {log_every!r}")
    p_count, s_count = pop.solves.shape
    init = torch.zeros(s_count, dtype=torch.float64)
    if policy.init is not None:
        if len(policy.init) != s_count:
            raise ValueError(
                f"policy init has {len(policy.init)} logits for {s_count} strategies "
                f"{list(pop.strategies)}"
            )
        init = torch.tensor(policy.init, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    shared = policy.parameters in ("shared", "both")
    own = policy.parameters in ("per_problem", "both")
    theta = init.clone() if shared else torch.zeros(s_count, dtype=torch.float64)
    phi = torch.zeros(p_count, s_count, dtype=torch.float64)
    if not shared:
        phi += init
    if policy.init_scale > 0:
        phi += policy.init_scale * torch.randn(p_count, s_count, generator=gen, dtype=torch.float64)
    step_theta = _stepper(theta.shape, optimizer)
    step_phi = _stepper(phi.shape, optimizer)
    w = pop.weights[:, None]
    tables: dict[int, tuple[Tensor, Tensor]] = {}  # phase index -> (a_pos, a_neg)

    traj: dict[str, Any] = {"step": [], "phase": [], "step_size": []}
    moved, since = 0.0, 0  # summed step sizes since the last log
    # the control's state (coefficient, EntroPIC's integral) and its last outputs
    coef = control.coef if control is not None else 0.0
    integral, applied, alpha = 0.0, 0.0, 0.0
    if control is not None:
        traj["control_coef"], traj["control_alpha"] = [], []

    def log(step: int, phase: int) -> None:
        metrics = population_metrics(theta + phi, pop, ks)
        traj["step"].append(step)
        traj["phase"].append(phase)
        traj["step_size"].append(moved / since if since else 0.0)
        if control is not None:
            traj["control_coef"].append(applied)
            traj["control_alpha"].append(alpha)
        _append(traj, metrics)

    log(0, arm.phase_at(0))
    for t in range(steps):
        i = arm.phase_at(t)
        phase = arm.phases[i]
        logits = theta + phi  # [P, S]
        if control is not None:
            h = float(pop.weights @ strategy_entropy(logits))
            if control.kind == "bonus":
                applied = control.coef
            elif control.kind == "adaptive":
                applied, coef = adaptive_entropy_coef(
                    coef,
                    h,
                    target=control.target,
                    delta=control.delta,
                    coef_min=control.coef_min,
                    coef_max=control.coef_max,
                )
            else:
                alpha, integral = entropic_alpha(
                    h, integral, target=control.target, kp=control.kp, ki=control.ki
                )
        if mode == "exact":
            if i not in tables:
                tables[i] = advantage_table(phase.estimator, n, **phase.params)
            a_pos, a_neg = tables[i]
            if alpha:  # EntroPIC: A -> A + alpha |A|
                a_pos, a_neg = a_pos + alpha * a_pos.abs(), a_neg + alpha * a_neg.abs()
            g = update_from_table(logits, pop.solves, a_pos, a_neg)  # [P, S]
            if applied:
                g = g + applied * strategy_entropy_gradient(logits)
            grad_theta, grad_phi = (w * g).sum(0), w * g
        else:
            idx = torch.multinomial(pop.weights, batch_problems, replacement=True, generator=gen)
            params = phase_params(phase, seed, t)
            g = sampled_logit_update(logits, pop.solves, idx, phase.estimator, n, gen, **params)
            if applied:
                g = g + applied * strategy_entropy_gradient(logits[idx])
            grad_theta = g.mean(0)
            grad_phi = torch.zeros_like(phi).index_add_(0, idx, g) / batch_problems
        before = theta + phi
        if shared:
            theta = theta + step_theta(grad_theta)
        if own:
            phi = phi + step_phi(grad_phi)
        moved += float(pop.weights @ (theta + phi - before).norm(dim=-1))
        since += 1
        if (t + 1) % log_every == 0 or t + 1 == steps:
            log(t + 1, i)
            moved, since = 0.0, 0
        if on_step is not None:
            on_step(t + 1)
    return traj


def _append(traj: dict[str, Any], metrics: Mapping[str, Any]) -> None:
    """Append one logged step's nested metrics to the trajectory's nested lists."""
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            _append(traj.setdefault(key, {}), value)
        else:
            traj.setdefault(key, []).append(value)
