"""The ``passk simulate`` file: population, policy, estimators, optimizer, steps, seeds.

::

    population: {kind: two_mode, frac_common: 0.75, problems: 4}
    policy: {parameters: shared, init: [2.0, -1.0, 0.0]}
    n: 16                  # group size
    steps: 2000
    mode: exact            # or stochastic (sampled groups, batch_problems per step)
    optimizer: {name: sgd, lr: 1.0}
    seeds: [0]
    log_every: 10
    ks: [1, 4, 16, 64]
    estimators:
      - {estimator: pass1}
      - {label: "Pass@k (k=4)", estimator: passk_analytic, params: {k: 4}}
      - label: "P@k -> P@1"
        schedule:
          - {estimator: passk_analytic, params: {k: 4}, steps: 1000}
          - {estimator: pass1}
      - {label: "Pass@1 + EntroPIC", estimator: pass1,
         control: {kind: entropic, target: 0.5, kp: 1.0, ki: 0.01}}

An entry's optional ``control`` is an entropy control (:class:`passk.sim.EntropyControl`):
``kind`` ``bonus`` (``coef``), ``adaptive`` (``target``, initial ``coef``, ``delta``,
``coef_min``, ``coef_max``) or ``entropic`` (``target``, ``kp``, ``ki``; exact mode).

Population kinds: ``two_mode`` (:func:`passk.sim.two_mode`'s arguments), ``random``
(``problems``, ``strategies``, ``density``, ``seed``) and ``table`` (``solves``, and
optionally ``weights``, ``groups``, ``strategies``). In ``exact`` mode the seeds matter
only where something is random (a random population takes its own ``seed``; per-problem
``init_scale`` noise takes the run's), so an exact run without noise runs once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from passk.overrides import apply_overrides
from passk.sim.dynamics import MODES, Arm, EntropyControl, Optimizer, Phase, PolicySpec
from passk.sim.population import Population, from_table, random_population, two_mode

__all__ = ["SimulateSpec", "load_simulate", "parse_simulate"]

_TOP = (
    "population",
    "policy",
    "n",
    "steps",
    "mode",
    "batch_problems",
    "optimizer",
    "seeds",
    "log_every",
    "ks",
    "estimators",
)


@dataclass(frozen=True)
class SimulateSpec:
    """A parsed simulation file (every value checked)."""

    population: Population
    population_spec: Mapping[str, Any]
    policy: PolicySpec
    n: int
    steps: int
    mode: str
    batch_problems: int
    optimizer: Optimizer
    seeds: tuple[int, ...]
    log_every: int
    ks: tuple[int, ...]
    arms: tuple[Arm, ...]

    @property
    def runs_per_arm(self) -> tuple[int, ...]:
        """The seeds each arm runs: all of them where sampling or init noise uses the seed,
        else the first (an exact, noise-free run is the same for every seed)."""
        seeded = self.mode == "stochastic" or self.policy.init_scale > 0
        return self.seeds if seeded else self.seeds[:1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "population": dict(self.population_spec),
            "policy": {
                "parameters": self.policy.parameters,
                "init": list(self.policy.init) if self.policy.init is not None else None,
                "init_scale": self.policy.init_scale,
            },
            "n": self.n,
            "steps": self.steps,
            "mode": self.mode,
            "batch_problems": self.batch_problems,
            "optimizer": {
                "name": self.optimizer.name,
                "lr": self.optimizer.lr,
                "betas": list(self.optimizer.betas),
                "eps": self.optimizer.eps,
            },
            "seeds": list(self.seeds),
            "log_every": self.log_every,
            "ks": list(self.ks),
            "estimators": [
                {
                    "label": arm.label,
                    "schedule": [
                        {"estimator": ph.estimator, "params": dict(ph.params), "steps": ph.steps}
                        for ph in arm.phases
                    ],
                    **control_dict(arm),
                }
                for arm in self.arms
            ],
        }


def control_dict(arm: Arm) -> dict[str, Any]:
    """``{"control": {...}}`` for an arm with an entropy control, else nothing."""
    if arm.control is None:
        return {}
    return {"control": dataclasses.asdict(arm.control)}


def load_simulate(path: str | Path, overrides: Sequence[str] = ()) -> SimulateSpec:
    """Read and check a simulation file, with ``key.path=value`` ``overrides`` applied
    (:mod:`passk.overrides`); errors name the file and the bad key."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ValueError(f"simulation file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    try:
        if overrides:
            tree = apply_overrides(dict(_mapping(tree, "the file")), overrides)
        return parse_simulate(tree)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def parse_simulate(tree: Any) -> SimulateSpec:
    """A :class:`SimulateSpec` from a parsed YAML tree."""
    tree = _mapping(tree, "the file")
    _no_unknown(tree, _TOP, "")
    population_spec = dict(_mapping(tree.get("population", {"kind": "two_mode"}), "population"))
    population = _population(population_spec)
    n = _int(tree.get("n", 16), "n", minimum=1)
    mode = tree.get("mode", "exact")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    ks = tuple(_int(k, "ks", minimum=1) for k in _list(tree.get("ks", [1, 4, 16, 64]), "ks"))
    if not ks:
        raise ValueError("ks must list at least one k")
    steps = _int(tree.get("steps", 1000), "steps", minimum=0)
    arms = _arms(tree.get("estimators"), mode, n)
    for arm in arms:  # a schedule longer than the run is a mistake worth naming
        planned = sum(ph.steps or 0 for ph in arm.phases[:-1])
        if planned >= steps and len(arm.phases) > 1:
            raise ValueError(
                f"estimator {arm.label!r}: its schedule switches after {planned} steps, but the "
                f"run has {steps}: the last phase would never run"
            )
    policy = _policy(tree.get("policy", {}))
    strategies = population.strategies
    if policy.init is not None and len(policy.init) != len(strategies):
        raise ValueError(
            f"policy.init has {len(policy.init)} logits for {len(strategies)} strategies "
            f"{list(strategies)}"
        )
    return SimulateSpec(
        population=population,
        population_spec=population_spec,
        policy=policy,
        n=n,
        steps=steps,
        mode=mode,
        batch_problems=_int(tree.get("batch_problems", 8), "batch_problems", minimum=1),
        optimizer=_optimizer(tree.get("optimizer", {})),
        seeds=_seeds(tree.get("seeds", [0])),
        log_every=_int(tree.get("log_every", 10), "log_every", minimum=1),
        ks=ks,
        arms=arms,
    )


def _population(spec: Mapping[str, Any]) -> Population:
    spec = dict(spec)
    kind = spec.pop("kind", "two_mode")
    builders = {
        "two_mode": (two_mode, ("frac_common", "problems", "junk", "common_also_rare")),
        "random": (random_population, ("problems", "strategies", "density", "seed")),
        "table": (from_table, ("solves", "weights", "groups", "strategies")),
    }
    if kind not in builders:
        raise ValueError(f"population kind must be one of {sorted(builders)}, got {kind!r}")
    build, valid = builders[kind]
    _no_unknown(spec, valid, "population.")
    if kind == "table":
        if "solves" not in spec:
            raise ValueError("population kind 'table' needs solves: [[0/1 per strategy], ...]")
        solves = spec.pop("solves")
        return build(solves, **spec)
    return build(**spec)


def _policy(value: Any) -> PolicySpec:
    tree = _mapping(value, "policy")
    _no_unknown(tree, ("parameters", "init", "init_scale"), "policy.")
    init = tree.get("init")
    if init is not None:
        init = tuple(_float(v, "policy.init") for v in _list(init, "policy.init"))
    return PolicySpec(
        parameters=tree.get("parameters", "shared"),
        init=init,
        init_scale=_float(tree.get("init_scale", 0.0), "policy.init_scale"),
    )


def _optimizer(value: Any) -> Optimizer:
    tree = _mapping(value, "optimizer")
    _no_unknown(tree, ("name", "lr", "betas", "eps"), "optimizer.")
    betas = tuple(
        _float(b, "optimizer.betas")
        for b in _list(tree.get("betas", [0.9, 0.999]), "optimizer.betas")
    )
    return Optimizer(
        name=tree.get("name", "sgd"),
        lr=_float(tree.get("lr", 1.0), "optimizer.lr"),
        betas=betas,  # type: ignore[arg-type]
        eps=_float(tree.get("eps", 1e-8), "optimizer.eps"),
    )


def _phase(value: Any, where: str, *, last: bool) -> Phase:
    tree = _mapping(value, where)
    _no_unknown(tree, ("estimator", "params", "steps"), f"{where}.")
    if "estimator" not in tree:
        raise ValueError(f"{where} needs an estimator name")
    steps = tree.get("steps")
    if steps is None and not last:
        raise ValueError(f"{where} needs steps (only the last phase runs until the end)")
    try:
        return Phase(
            estimator=tree["estimator"],
            params=dict(_mapping(tree.get("params", {}), f"{where}.params")),
            steps=None if steps is None else _int(steps, f"{where}.steps", minimum=1),
        )
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _arms(value: Any, mode: str, n: int) -> tuple[Arm, ...]:
    from passk.sim.updates import advantage_table

    entries = _list(value, "estimators")
    if not entries:
        raise ValueError("estimators must list at least one estimator (or schedule)")
    arms: list[Arm] = []
    for i, entry in enumerate(entries):
        where = f"estimators[{i}]"
        tree = _mapping(entry, where)
        control = _control(tree.get("control"), f"{where}.control", mode)
        tree = {k: v for k, v in tree.items() if k != "control"}
        if "schedule" in tree:
            _no_unknown(tree, ("label", "schedule"), f"{where}.")
            raw = _list(tree["schedule"], f"{where}.schedule")
            if not raw:
                raise ValueError(f"{where}.schedule is empty")
            phases = tuple(
                _phase(ph, f"{where}.schedule[{j}]", last=j == len(raw) - 1)
                for j, ph in enumerate(raw)
            )
        else:
            _no_unknown(tree, ("label", "estimator", "params"), f"{where}.")
            phases = (_phase({k: v for k, v in tree.items() if k != "label"}, where, last=True),)
        label = str(tree.get("label") or " -> ".join(ph.describe() for ph in phases))
        if any(arm.label == label for arm in arms):
            raise ValueError(f"{where}: label {label!r} is used twice; give each a distinct label")
        for ph in phases:
            if mode == "exact":  # refuse what the exact sum cannot take, with the reason
                try:
                    advantage_table(ph.estimator, n, **ph.params)
                except ValueError as e:
                    raise ValueError(f"{where}: {e}") from None
        arms.append(Arm(label=label, phases=phases, control=control))
    return tuple(arms)


_CONTROL_KEYS = ("kind", "coef", "target", "delta", "coef_min", "coef_max", "kp", "ki")


def _control(value: Any, where: str, mode: str) -> EntropyControl | None:
    if value is None:
        return None
    tree = _mapping(value, where)
    _no_unknown(tree, _CONTROL_KEYS, f"{where}.")
    if "kind" not in tree:
        raise ValueError(f"{where} needs a kind: bonus, adaptive or entropic")
    numbers = {
        k: _float(v, f"{where}.{k}") for k, v in tree.items() if k != "kind" and v is not None
    }
    try:
        control = EntropyControl(kind=tree["kind"], **numbers)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if control.kind == "entropic" and mode != "exact":
        raise ValueError(f"{where}: the entropic control runs in mode: exact only")
    return control


def _seeds(value: Any) -> tuple[int, ...]:
    seeds = tuple(_int(s, "seeds", minimum=0) for s in _list(value, "seeds"))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must list distinct integers >= 0, got {list(seeds)}")
    return seeds


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping of keys to values, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {value!r}")
    return value


def _no_unknown(tree: Mapping[str, Any], valid: Sequence[str], prefix: str) -> None:
    unknown = sorted(set(tree) - set(valid))
    if unknown:
        raise ValueError(f"unknown key {prefix}{unknown[0]}; valid: {', '.join(valid)}")


def _int(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    return float(value)
