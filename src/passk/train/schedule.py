"""Small state machines of a run whose state goes into checkpoints: prompt order, stages."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from passk.core.advantages import get_estimator
from passk.seeds import derive_seed
from passk.tasks.base import Problem
from passk.train.config import StageConfig


class PromptSampler:
    """Epochs over the training problems, each in a seeded random order."""

    def __init__(self, problems: Sequence[Problem], seed: int) -> None:
        if not problems:
            raise ValueError("the task has no training problems")
        self.problems = list(problems)
        self.seed = seed
        self.drawn = 0

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        random.Random(derive_seed(self.seed, "epoch", epoch)).shuffle(order)
        return order

    def draw(self, count: int) -> list[Problem]:
        out = []
        for _ in range(count):
            epoch, pos = divmod(self.drawn, len(self.problems))
            out.append(self.problems[self._order(epoch)[pos]])
            self.drawn += 1
        return out


class StageSchedule:
    """Which stage (estimator, params, reward kind) is active; switches by steps or reward."""

    def __init__(self, stages: Sequence[StageConfig]) -> None:
        self.stages = list(stages)
        self.index = 0
        self.start = 1  # first step of the current stage
        self.rewards: list[float] = []  # train reward means of the current stage

    @property
    def stage(self) -> StageConfig:
        return self.stages[self.index]

    def params(self, step: int) -> dict[str, Any]:
        """The stage's estimator parameters at ``step``, with the estimator's defaults filled
        in (so ``params["k"]`` is the k actually used) and k annealed when configured."""
        s = self.stage
        spec = get_estimator(s.estimator)
        params = dict(s.params)
        if spec.uses_k:
            k0 = int(params.get("k", spec.params.k))
            params["k"] = k0
            if s.k_final is not None and s.steps is not None:
                frac = (step - self.start) / max(s.steps - 1, 1)
                params["k"] = round(k0 + (s.k_final - k0) * min(max(frac, 0.0), 1.0))
        return params

    def observe(self, step: int, reward_mean: float) -> bool:
        """Record a finished step; advance to the next stage when this one ends."""
        s = self.stage
        if math.isfinite(reward_mean):
            self.rewards.append(reward_mean)
        if self.index == len(self.stages) - 1:
            return False
        done = s.steps is not None and step - self.start + 1 >= s.steps
        if s.until_reward is not None and len(self.rewards) >= s.window:
            done |= sum(self.rewards[-s.window :]) / s.window >= s.until_reward
        if done:
            self.index += 1
            self.start = step + 1
            self.rewards = []
        return done

    def state_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start": self.start, "rewards": list(self.rewards)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index, self.start, self.rewards = state["index"], state["start"], state["rewards"]
