"""User reward functions: a registry plus ``"module:function"`` dotted paths.

A reward function is ``fn(completion: str, answer) -> float`` (a bool counts as 0/1).
:class:`RewardTask` wraps one around any task: the problems and the extracted answer
(for answer diversity) come from the base task, the reward from the function, and
``correct`` is ``reward >= correct_threshold``. Exceptions and NaN are handled by
:class:`~passk.tasks.guard.SafeScorer` like any scorer's.

**Out-of-range rewards are errors.** A reward must be a number (or bool) in [0, 1]; a
function returning 5.0, -1 or a string scores 0 with ``Score.error`` set, which
:class:`~passk.tasks.guard.SafeScorer` counts in ``errors`` (logged as
``reward/errors``) and reports once per distinct cause with the offending value.
Nothing is clipped: a reward on another scale must be rescaled by the function itself.

>>> from passk.tasks.arithmetic import Mul1Task
>>> task = RewardTask(Mul1Task(), get_reward("numeric"))
>>> p = task.problems("test", 1)[0]
>>> task.score(p, f"answer is {p.answer}").reward
1.0
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from passk.core.registry import Registry
from passk.tasks.base import Problem, Score, Task
from passk.tasks.verifiers import VERIFIERS

RewardFn = Callable[[str, Any], float]
_REWARDS: Registry[RewardFn] = Registry("reward")


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Register a reward function under ``name`` (a taken name is a ValueError; the same
    function again is a no-op)."""
    return _REWARDS.decorator(name)


def _verifier_reward(name: str) -> RewardFn:
    verifier = VERIFIERS[name]

    def reward(completion: str, answer: Any) -> float:
        return float(verifier(completion, str(answer))[0])

    reward.__name__ = f"{name}_reward"
    return reward


for _name in VERIFIERS:
    register_reward(_name)(_verifier_reward(_name))


def list_rewards() -> list[str]:
    return _REWARDS.names()


def get_reward(spec: str) -> RewardFn:
    """A registered reward by name, or a function by ``"package.module:function"`` path."""
    if spec in _REWARDS:
        return _REWARDS.get(spec)
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load reward {spec!r}: {e}") from e
        if not callable(fn):
            raise ValueError(f"reward {spec!r} is not callable")
        return fn
    raise ValueError(
        f"unknown reward {spec!r}; valid: {', '.join(list_rewards())} or a 'module:function' path"
    )


@dataclass(frozen=True)
class RewardTask:
    """``base``'s problems scored by ``reward_fn(completion, answer)``."""

    base: Task
    reward_fn: RewardFn
    correct_threshold: float = 1.0

    @property
    def name(self) -> str:
        fn_name = getattr(self.reward_fn, "__name__", "reward")
        return f"{self.base.name}+{fn_name}"

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return self.base.problems(split, n, seed)

    def score(self, problem: Problem, completion: str) -> Score:
        value = self.reward_fn(completion, problem.answer)
        try:
            extracted = self.base.score(problem, completion).extracted
        except Exception:  # the base task's extraction is only informative here
            extracted = None
        error = _reward_error(value)
        if error is not None:
            fn_name = getattr(self.reward_fn, "__qualname__", None) or repr(self.reward_fn)
            return Score(
                0.0,
                False,
                extracted,
                f"{error}: reward function {fn_name} returned "
                f"{value!r}, expected a number in [0, 1]",
            )
        reward = float(value)
        return Score(reward=reward, correct=reward >= self.correct_threshold, extracted=extracted)


def _reward_error(value: Any) -> str | None:
    """The cause when ``value`` is not a valid reward: a number (a bool, a NumPy or a
    0-d tensor scalar too) in [0, 1]. A string is not a number, even "1"."""
    if isinstance(value, (str, bytes)):
        return "bad reward"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "bad reward"
    if not math.isfinite(number):
        return "non-finite reward"
    if not 0.0 <= number <= 1.0:
        return "reward out of range"
    return None
