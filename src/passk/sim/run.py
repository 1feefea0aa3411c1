"""Run every estimator of a :class:`~passk.sim.config.SimulateSpec` and collect the result.

The result is plain data (what ``passk simulate`` writes as ``result.json``)::

    {"format": "passk.simulate/1", "config": {...}, "population": {...},
     "estimators": [{"label": ..., "schedule": [...],
                     "runs": [{"seed": 0, "seconds": ..., "trajectory": {...}}],
                     "final": {...}}], "seconds": ...}

A trajectory holds per logged step ``step``, ``phase``, ``success``, ``pass_at_k[k]``,
``pass_hat_k[k]``, ``shares[strategy]``, ``entropy`` and ``by_group[g][...]``
(:func:`passk.sim.run_arm`); ``final`` is the last logged values, averaged over the runs
(one run per seed where the seed matters, see ``SimulateSpec.runs_per_arm``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from passk.sim.config import SimulateSpec, control_dict
from passk.sim.dynamics import run_arm

__all__ = ["FORMAT", "final_values", "simulate", "total_steps"]

FORMAT = "passk.simulate/1"


def simulate(spec: SimulateSpec, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run every estimator (and seed, where it matters); ``on_step`` is called after each
    update with the number of updates done so far over the whole simulation."""
    started = time.perf_counter()
    done = 0

    def tick(_: int) -> None:
        nonlocal done
        done += 1
        if on_step is not None:
            on_step(done)

    estimators = []
    for arm in spec.arms:
        runs = []
        for seed in spec.runs_per_arm:
            t0 = time.perf_counter()
            traj = run_arm(
                spec.population,
                arm,
                n=spec.n,
                steps=spec.steps,
                policy=spec.policy,
                optimizer=spec.optimizer,
                mode=spec.mode,
                batch_problems=spec.batch_problems,
                seed=seed,
                log_every=spec.log_every,
                ks=spec.ks,
                on_step=tick,
            )
            runs.append({"seed": seed, "seconds": time.perf_counter() - t0, "trajectory": traj})
        estimators.append(
            {
                "label": arm.label,
                "schedule": [
                    {"estimator": ph.estimator, "params": dict(ph.params), "steps": ph.steps}
                    for ph in arm.phases
                ],
                **control_dict(arm),
                "runs": runs,
                "final": final_values([r["trajectory"] for r in runs]),
            }
        )
    return {
        "format": FORMAT,
        "config": spec.to_dict(),
        "population": spec.population.describe(),
        "estimators": estimators,
        "seconds": time.perf_counter() - started,
    }


def total_steps(spec: SimulateSpec) -> int:
    """Updates the whole simulation makes (for a progress bar)."""
    return spec.steps * len(spec.arms) * len(spec.runs_per_arm)


def final_values(trajectories: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The last logged value of every series, averaged over ``trajectories``."""

    def last(nodes: list[Any]) -> Any:
        if isinstance(nodes[0], Mapping):
            return {key: last([node[key] for node in nodes]) for key in nodes[0]}
        return sum(float(node[-1]) for node in nodes) / len(nodes)

    return last([{k: v for k, v in t.items() if k not in ("step", "phase")} for t in trajectories])
