"""Fixtures of the trainer tests: a tiny checkpoint and overrides that make runs fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # passk_test_rewards, importable in-process too
    sys.path.insert(0, str(HERE))


def tiny_overrides(checkpoint: Path, reward: str = "parity") -> list[str]:
    return [
        f"model.name={checkpoint}",
        "model.threads=1",
        f"task.reward=passk_test_rewards:{reward}",
        "task.score_timeout=null",
        "rollout.max_new_tokens=12",
        "eval.problems=2",
        "eval.n=4",
        "optim.lr=1.0e-3",
        "log.progress=false",
    ]


@pytest.fixture()
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env
