"""Every run of a sweep, its resolved config, and the evaluations the arms share.

Planning loads and validates every arm x seed config before anything runs, so a bad key
in any arm fails at once. Before the first update every arm of a seed has the same
weights, the same held-out problems and the same evaluation sample seeds (the trainer
derives them from ``(seed, "eval")``); when every arm of a seed agrees on all of that
(:func:`eval_fingerprint`), the starting model is evaluated once for the seed and each
arm trains with ``eval.at_start=false``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passk.sweep.spec import ArmSpec, SweepError, SweepSpec
from passk.train.run_dir import RunDir


@dataclass(frozen=True)
class Run:
    """One arm x seed: a ``passk train`` run."""

    arm: ArmSpec
    seed: int
    recipe: Path | None
    overrides: tuple[str, ...]
    config: Any  # TrainConfig
    run_dir: RunDir

    @property
    def key(self) -> str:
        return f"{self.arm.name}_s{self.seed}"

    @property
    def steps(self) -> int:
        return int(self.config.steps)

    def argv(self, *, resume: bool) -> list[str]:
        """The ``passk train`` command line this run is trained with."""
        args = [sys.executable, "-m", "passk.cli", "train"]
        if self.recipe is not None:
            args += ["--config", str(self.recipe)]
        for text in self.overrides:
            args += ["--set", text]
        args += ["--out", str(self.run_dir.path)]
        return args + (["--resume"] if resume else [])

    def command(self, root: Path, *, shell: bool = False) -> str:
        """The same command as text, with paths relative to ``root`` (run it from there).

        ``shell``: a command to paste into a shell whose current directory is ``root``
        (paths outside ``root`` stay absolute; none is cut to its ``site-packages`` part).
        """
        path, arg = (shell_path, shell_arg) if shell else (portable_path, portable_arg)
        args = ["passk", "train"]
        if self.recipe is not None:
            args += ["--config", path(self.recipe, root)]
        for text in self.overrides:
            args += ["--set", arg(text, root)]
        args += ["--out", path(self.run_dir.path, root)]
        return shlex.join(args)


@dataclass(frozen=True)
class StartEval:
    """The shared evaluation of the starting model for one seed."""

    seed: int
    config: Any  # TrainConfig of the seed's first arm (with eval.at_start)
    run_dir: RunDir
    fingerprint: str

    @property
    def key(self) -> str:
        return f"before_s{self.seed}"


@dataclass(frozen=True)
class Plan:
    spec: SweepSpec
    out: Path
    runs: tuple[Run, ...]
    starts: dict[int, StartEval]
    """seed -> its shared "before" evaluation; a seed missing here evaluates in each run."""

    def start_of(self, run: Run) -> StartEval | None:
        return self.starts.get(run.seed)


def plan_sweep(spec: SweepSpec, out: Path, *, threads: int = 1) -> Plan:
    """Resolve and validate every run's config; decide which "before" evaluations are shared."""
    from passk.train.config import load_config, validate
    from passk.train.config_validate import warn_config

    runs: list[Run] = []
    starts: dict[int, StartEval] = {}
    for seed in spec.seeds:
        configs = []
        for arm in spec.arms:
            overrides = _overrides(spec, arm, seed, threads)
            recipe = arm.config or spec.base_config
            where = f"arm {arm.name!r}, seed {seed}"
            try:
                config = load_config(recipe, [*overrides, "eval.at_start=true"])
                validate(config)
            except ValueError as e:
                raise SweepError(f"{where}: {e}") from None
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                warn_config(config)
            for w in said:  # once per arm: the seeds share the arm's settings
                if seed == spec.seeds[0]:
                    warnings.warn(f"arm {arm.name!r}: {w.message}", stacklevel=2)
            configs.append((arm, recipe, overrides, config))
        prints = {eval_fingerprint(c) for *_, c in configs}
        shared = len(prints) == 1 and configs[0][3].eval.problems > 0
        if shared:
            first = configs[0][3]
            starts[seed] = StartEval(seed, first, RunDir(out / f"before_s{seed}"), prints.pop())
        for arm, recipe, overrides, config in configs:
            at_start = "eval.at_start=false" if shared else "eval.at_start=true"
            final = (*overrides, at_start)
            if shared:
                config = load_config(recipe, list(final))
            runs.append(Run(arm, seed, recipe, final, config, RunDir(out / f"{arm.name}_s{seed}")))
    if spec.equal_budgets:
        check_equal_budgets(runs)
    return Plan(spec, out, tuple(runs), starts)


def _overrides(spec: SweepSpec, arm: ArmSpec, seed: int, threads: int) -> tuple[str, ...]:
    return (
        *spec.base_overrides,
        *arm.overrides,
        f"seed={seed}",
        *spec.eval.overrides(),
        f"model.threads={threads}",
        "log.progress=false",
    )


def eval_fingerprint(config: Any) -> str:
    """Everything a held-out evaluation of the starting model depends on (not the algorithm)."""
    d = config.to_dict()
    view = {
        "seed": d["seed"],
        "model": {k: v for k, v in d["model"].items() if k != "threads"},
        "task": d["task"],
        "eval": {k: v for k, v in d["eval"].items() if k not in ("every", "at_start", "at_end")},
        "max_new_tokens": d["rollout"]["max_new_tokens"],
        "batch_size": d["rollout"]["batch_size"],
    }
    return hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]


def budget_view(config: Any) -> dict[str, Any]:
    """The parts of a config that set the rollout and evaluation budget."""
    d = config.to_dict()
    return {
        "steps": d["steps"],
        "rollout": d["rollout"],
        "eval": d["eval"],
        "task": d["task"],
        "model": d["model"],
    }


def check_equal_budgets(runs: Sequence[Run]) -> None:
    """Refuse arms that sample more (dynamic sampling, DARS) or differ in budget."""
    for run in runs:
        a = run.config.algorithm
        if a.dynamic_sampling or a.dars is not None:
            raise SweepError(
                f"equal_budgets: arm {run.arm.name!r} uses dynamic sampling or DARS, which "
                "changes its rollout budget"
            )
    for seed in dict.fromkeys(r.seed for r in runs):
        group = [r for r in runs if r.seed == seed]
        first = budget_view(group[0].config)
        for run in group[1:]:
            view = budget_view(run.config)
            diff = [k for k in view if view[k] != first[k]]
            if diff:
                raise SweepError(
                    f"equal_budgets: arm {run.arm.name!r} differs from {group[0].arm.name!r} in "
                    f"{', '.join(diff)} (seed {seed})"
                )


# --- paths in reports --------------------------------------------------------------------------


def portable_path(path: str | Path, root: Path) -> str:
    """A path as reports store it: relative to ``root``, never a machine's absolute path.

    A file inside an installed package keeps only its path under ``site-packages``.
    """
    text = str(path)
    if not os.path.isabs(text):
        return text
    marker = f"{os.sep}site-packages{os.sep}"
    if marker in text:
        return text.split(marker, 1)[1]
    return os.path.relpath(text, os.path.abspath(root))


def portable_arg(text: str, root: Path) -> str:
    """``key=/abs/path`` with the path made portable; anything else unchanged."""
    key, sep, value = text.partition("=")
    if sep and os.path.isabs(value):
        return f"{key}={portable_path(value, root)}"
    return portable_path(text, root) if os.path.isabs(text) else text


def shell_path(path: str | Path, root: Path) -> str:
    """A path to type in a shell at ``root``: relative when it lies under ``root``, else
    absolute (a relative path is taken to be relative to ``root`` already)."""
    text = str(path)
    if not os.path.isabs(text):
        return text
    rel = os.path.relpath(text, os.path.abspath(root))
    return text if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def shell_arg(text: str, root: Path) -> str:
    """``key=/abs/path`` with the path as :func:`shell_path` writes it; else unchanged."""
    key, sep, value = text.partition("=")
    if sep and os.path.isabs(value):
        return f"{key}={shell_path(value, root)}"
    return shell_path(text, root) if os.path.isabs(text) else text


def portable(obj: Any, root: Path) -> Any:
    """``obj`` with every absolute path in its strings made portable (see :func:`portable_path`)."""
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable(v, root) for v in obj]
    if isinstance(obj, str):
        return portable_arg(obj, root)
    return obj
