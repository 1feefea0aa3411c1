"""``passk tasks list``: run as a user runs it, every registered task and prefix listed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from passk.tasks import list_tasks
from passk.tasks.cli import describe, task_table


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tasks_list_prints_every_task_and_prefix_with_a_description() -> None:
    out = run_cli("tasks", "list")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split(None, 1)[1:] for line in out.stdout.splitlines()}
    for name in [*list_tasks(), "rg:NAME", "MODULE:FACTORY"]:
        assert name in lines, (name, out.stdout)
    assert lines["mul1"] == ["Single-digit multiplication, a x b with a, b in 2..9 (64 problems)."]
    assert "reasoning-gym" in lines["rg:NAME"][0]  # the prefix's module says what it is
    assert not any("``" in line for line in out.stdout.splitlines())  # plain text, no RST


def test_tasks_without_action_prints_help_and_fails() -> None:
    out = run_cli("tasks")
    assert out.returncode == 2
    assert "list" in out.stdout


def test_describe_skips_dataclass_generated_doc() -> None:
    @dataclass
    class NoDoc:
        n: int = 1

    assert not describe(NoDoc).startswith("NoDoc(")
    assert task_table()[0][0] == list_tasks()[0]
