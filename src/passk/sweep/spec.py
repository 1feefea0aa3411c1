"""The sweep file: a base config, arms, seeds and one evaluation, read and checked.

A sweep file is YAML::

    name: pass1-vs-passk            # optional (default: the file's stem)
    base:                           # what every arm shares
      config: ../pass1.yaml         # a recipe, relative to this file (optional)
      set: {steps: 16, task.name: mul1}   # or a list of "key=value"
    arms:
      - {name: pass1, label: "(a) Pass@1"}
      - {name: passk, config: ../passk_analytic.yaml}
      - {name: switch, config: ../passk_then_pass1.yaml, set: [algorithm.stages.0.steps=8]}
    seeds: [0, 1]
    eval: {split: test, problems: 16, n: 64, ks: [1, 4, 16, 64], temperature: 1.0}
    compare: {reference: pass1, ks: [1, 64], resamples: 1000, confidence: 0.95}
    equal_budgets: true             # refuse arms whose rollout budgets differ
    keep_checkpoints: false         # delete a finished run's checkpoints

An arm's ``config`` replaces the base recipe; ``set`` overrides apply base first, then
the arm's. The seed and every ``eval.*`` key belong to the sweep (``seeds``, ``eval``),
so an override of them is an error; an ``eval`` key left out keeps the trainer's
default. ``compare.resamples`` and ``confidence`` also set each run's pass@k intervals.
Every error names the key: ``arms[1].config: ...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from passk.core.defaults import NUM_RESAMPLES
from passk.train.config import EvalSection

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED_ARM_NAMES = ("before", "logs", "figures")


class SweepError(ValueError):
    """A sweep file that cannot be run; the message starts with the bad key."""


@dataclass(frozen=True)
class ArmSpec:
    name: str
    label: str
    config: Path | None
    """Recipe of this arm (resolved), or None: the base recipe."""
    config_text: str | None
    """The recipe path as written in the sweep file (for reports)."""
    overrides: tuple[str, ...]


_TRAINER_EVAL = EvalSection()  # a key the sweep file leaves out keeps the trainer's default


@dataclass(frozen=True)
class EvalSpec:
    """The evaluation of every run (the trainer's ``eval`` section) and the k reported."""

    split: str = _TRAINER_EVAL.split
    problems: int = _TRAINER_EVAL.problems
    n: int = _TRAINER_EVAL.n
    ks: tuple[int, ...] = ()
    """k values reported (default 1, 2, 4, ..., n)."""
    temperature: float = _TRAINER_EVAL.temperature
    top_p: float = _TRAINER_EVAL.top_p
    max_new_tokens: int | None = _TRAINER_EVAL.max_new_tokens
    every: int = _TRAINER_EVAL.every

    def overrides(self) -> list[str]:
        """The trainer's ``eval.*`` settings of every run (not ``at_start``)."""
        out = [
            f"eval.split={self.split}",
            f"eval.problems={self.problems}",
            f"eval.n={self.n}",
            f"eval.temperature={self.temperature}",
            f"eval.top_p={self.top_p}",
            f"eval.every={self.every}",
            "eval.at_end=true",
        ]
        if self.max_new_tokens is not None:
            out.append(f"eval.max_new_tokens={self.max_new_tokens}")
        return out


@dataclass(frozen=True)
class CompareSpec:
    reference: str
    ks: tuple[int, ...]
    resamples: int = NUM_RESAMPLES
    confidence: float = 0.95


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base_config: Path | None
    base_config_text: str | None
    base_overrides: tuple[str, ...]
    arms: tuple[ArmSpec, ...]
    seeds: tuple[int, ...]
    eval: EvalSpec
    compare: CompareSpec
    equal_budgets: bool = False
    keep_checkpoints: bool = False

    def arm(self, name: str) -> ArmSpec:
        for a in self.arms:
            if a.name == name:
                return a
        raise SweepError(f"no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")

    def select(self, arms: Sequence[str] | None, seeds: Sequence[int] | None) -> SweepSpec:
        """The same sweep restricted to some arms and seeds (the reference arm stays)."""
        keep = list(arms) if arms else [a.name for a in self.arms]
        for name in keep:
            self.arm(name)
        if seeds:
            unknown = [s for s in seeds if s not in self.seeds]
            if unknown:
                raise SweepError(f"--seeds {unknown}: not in the sweep's seeds {list(self.seeds)}")
        chosen = tuple(a for a in self.arms if a.name in keep)
        reference = self.compare.reference if self.compare.reference in keep else chosen[0].name
        return replace(
            self,
            arms=chosen,
            seeds=tuple(seeds) if seeds else self.seeds,
            compare=replace(self.compare, reference=reference),
        )

    def to_dict(self) -> dict[str, Any]:
        """The sweep as written (recipe paths as given, not resolved)."""
        return {
            "name": self.name,
            "base": {"config": self.base_config_text, "set": list(self.base_overrides)},
            "arms": [
                {
                    "name": a.name,
                    "label": a.label,
                    "config": a.config_text,
                    "set": list(a.overrides),
                }
                for a in self.arms
            ],
            "seeds": list(self.seeds),
            "eval": asdict(self.eval) | {"ks": list(self.eval.ks)},
            "compare": asdict(self.compare) | {"ks": list(self.compare.ks)},
            "equal_budgets": self.equal_budgets,
            "keep_checkpoints": self.keep_checkpoints,
        }


_TOP_KEYS = (
    "name",
    "base",
    "arms",
    "seeds",
    "eval",
    "compare",
    "equal_budgets",
    "keep_checkpoints",
)


def load_sweep(path: str | Path, extra_overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and check a sweep file; ``extra_overrides`` join the base ``set`` (last)."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {str(path)!r} does not exist")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SweepError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise SweepError(f"{path} must hold a mapping with keys {', '.join(_TOP_KEYS)}")
    return parse_sweep(tree, path.parent, default_name=path.stem, extra=extra_overrides)


def parse_sweep(
    tree: Mapping[str, Any],
    root: Path,
    *,
    default_name: str = "sweep",
    extra: Sequence[str] = (),
) -> SweepSpec:
    """A :class:`SweepSpec` from a parsed sweep file; recipe paths are relative to ``root``."""
    _no_unknown(tree, _TOP_KEYS, "")
    base = _mapping(tree.get("base", {}), "base")
    _no_unknown(base, ("config", "set"), "base.")
    base_text = _optional_str(base.get("config"), "base.config")
    base_overrides = (*_overrides(base.get("set"), "base.set"), *extra)
    _check_reserved(base_overrides, "base.set" if not extra else "base.set / --set")
    evaluation = _eval(tree.get("eval"))
    arms = _arms(tree.get("arms"), root)
    seeds = _seeds(tree.get("seeds"))
    compare = _compare(tree.get("compare", {}), arms, evaluation)
    name = _optional_str(tree.get("name"), "name") or default_name
    return SweepSpec(
        name=name,
        base_config=_recipe(base_text, root, "base.config"),
        base_config_text=base_text,
        base_overrides=base_overrides,
        arms=arms,
        seeds=seeds,
        eval=evaluation,
        compare=compare,
        equal_budgets=_bool(tree.get("equal_budgets", False), "equal_budgets"),
        keep_checkpoints=_bool(tree.get("keep_checkpoints", False), "keep_checkpoints"),
    )


# --- sections ----------------------------------------------------------------------------------


def _arms(value: Any, root: Path) -> tuple[ArmSpec, ...]:
    if not isinstance(value, list) or not value:
        raise SweepError(f"arms: expected a non-empty list of arms, got {value!r}")
    arms: list[ArmSpec] = []
    for i, item in enumerate(value):
        where = f"arms[{i}]"
        item = _mapping(item, where)
        _no_unknown(item, ("name", "label", "config", "set"), f"{where}.")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise SweepError(
                f"{where}.name: expected letters, digits, '_', '.' or '-', got {name!r}"
            )
        if name in RESERVED_ARM_NAMES:
            raise SweepError(
                f"{where}.name: {name!r} is reserved ({', '.join(RESERVED_ARM_NAMES)})"
            )
        if any(a.name == name for a in arms):
            raise SweepError(f"{where}.name: {name!r} is used by an earlier arm")
        text = _optional_str(item.get("config"), f"{where}.config")
        overrides = _overrides(item.get("set"), f"{where}.set")
        _check_reserved(overrides, f"{where}.set")
        label = _optional_str(item.get("label"), f"{where}.label") or name
        arms.append(ArmSpec(name, label, _recipe(text, root, f"{where}.config"), text, overrides))
    return tuple(arms)


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        raise SweepError(f"seeds: expected a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise SweepError(f"seeds: {value} has repeats")
    return tuple(value)


def _eval(value: Any) -> EvalSpec:
    if value is None:
        raise SweepError("eval: missing; give at least {problems: P, n: N}")
    tree = _mapping(value, "eval")
    names = tuple(EvalSpec.__dataclass_fields__)
    _no_unknown(tree, names, "eval.")
    kw: dict[str, Any] = {}
    for key in ("problems", "n", "every"):
        if key in tree:
            kw[key] = _int(tree[key], f"eval.{key}", minimum=0 if key == "every" else 1)
    if "max_new_tokens" in tree and tree["max_new_tokens"] is not None:
        kw["max_new_tokens"] = _int(tree["max_new_tokens"], "eval.max_new_tokens", minimum=1)
    for key in ("temperature", "top_p"):
        if key in tree:
            kw[key] = _float(tree[key], f"eval.{key}")
    if "split" in tree:
        kw["split"] = _optional_str(tree["split"], "eval.split") or EvalSpec.split
    n = kw.get("n", EvalSpec.n)
    from passk.core.metrics import default_ks

    kw["ks"] = _ks(tree.get("ks"), "eval.ks", n) if "ks" in tree else tuple(default_ks(n))
    return EvalSpec(**kw)


def _compare(value: Any, arms: Sequence[ArmSpec], evaluation: EvalSpec) -> CompareSpec:
    tree = _mapping(value, "compare")
    _no_unknown(tree, ("reference", "ks", "resamples", "confidence"), "compare.")
    names = [a.name for a in arms]
    reference = tree.get("reference", names[0])
    if reference not in names:
        raise SweepError(
            f"compare.reference: {reference!r} is not an arm; arms: {', '.join(names)}"
        )
    ks = _ks(tree["ks"], "compare.ks", evaluation.n) if "ks" in tree else evaluation.ks
    resamples = _int(tree.get("resamples", NUM_RESAMPLES), "compare.resamples", minimum=1)
    confidence = _float(tree.get("confidence", 0.95), "compare.confidence")
    if not 0 < confidence < 1:
        raise SweepError(f"compare.confidence: must be in (0, 1), got {confidence}")
    return CompareSpec(reference, ks, resamples, confidence)


# --- values ------------------------------------------------------------------------------------


def _overrides(value: Any, where: str) -> tuple[str, ...]:
    """``set`` as a list of ``key=value`` strings or a mapping ``{key: value}``."""
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(f"{k}={_yaml_value(v)}" for k, v in value.items())
    if not isinstance(value, list):
        raise SweepError(f"{where}: expected a list of 'key=value' or a mapping, got {value!r}")
    for i, item in enumerate(value):
        key, sep, _ = item.partition("=") if isinstance(item, str) else ("", "", "")
        if not sep or not key.strip():
            raise SweepError(f"{where}[{i}]: expected 'key=value', got {item!r}")
    return tuple(value)


def _yaml_value(value: Any) -> str:
    """A value as override text that YAML reads back to the same value."""
    if isinstance(value, str) and yaml.safe_load(value) == value and "\n" not in value:
        return value
    return json.dumps(value)


# keys the sweep sets itself: the seed (from ``seeds``) and the evaluation (from ``eval``)
_RESERVED = ("seed", "eval")


def _check_reserved(overrides: Sequence[str], where: str) -> None:
    for text in overrides:
        key = text.partition("=")[0].strip()
        if key.split(".")[0] in _RESERVED:
            owner = "seeds" if key == "seed" else "eval"
            raise SweepError(f"{where}: {key!r} is set by the sweep's {owner!r} section, not here")


def _recipe(text: str | None, root: Path, where: str) -> Path | None:
    if text is None:
        return None
    path = (Path(text) if Path(text).is_absolute() else root / text).resolve()
    if not path.is_file():
        raise SweepError(f"{where}: recipe {text!r} not found (looked at {path})")
    return path


def _ks(value: Any, where: str, n: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise SweepError(f"{where}: expected a non-empty list of k, got {value!r}")
    bad = [k for k in value if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n]
    if bad:
        raise SweepError(f"{where}: every k must be an integer in 1..eval.n={n}, got {bad}")
    return tuple(sorted(set(value)))


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SweepError(f"{where}: expected a mapping, got {value!r}")
    return value


def _no_unknown(tree: Mapping[str, Any], valid: Sequence[str], prefix: str) -> None:
    for key in tree:
        if key not in valid:
            raise SweepError(f"{prefix}{key}: unknown key; valid: {', '.join(valid)}")


def _optional_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise SweepError(f"{where}: expected a string, got {value!r}")
    return value


def _int(value: Any, where: str, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SweepError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _float(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SweepError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SweepError(f"{where}: expected true or false, got {value!r}")
    return value
