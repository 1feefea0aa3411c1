"""examples/trl/train_passk_grpo.py as users run it: answers and meta reach the task's scorer.

The reward is checked with known-correct completions for a task whose answer is a string
(``mul1``), a dict of tests (``code``) and a reasoning-gym entry scored from its metadata
(``rg:countdown``); then the script itself trains one step on a tiny local checkpoint.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="TRL not installed: pip install 'passk[trl]'")
pytest.importorskip("datasets", reason="TRL needs datasets")

from passk.tasks import get_task

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "trl" / "train_passk_grpo.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_passk_grpo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def correct_completion(task_name: str, problem) -> str:
    if task_name == "code":
        return f"```python\n{problem.meta['reference']}```"
    if task_name.startswith("rg:"):
        return f"<answer>{problem.answer}</answer>"
    return f"The answer is \\boxed{{{problem.answer}}}."


TASKS = ["mul1", "code", "rg:countdown"]


@pytest.mark.parametrize("task_name", TASKS)
def test_reward_scores_known_answers_through_the_dataset(task_name: str) -> None:
    if task_name.startswith("rg:"):
        pytest.importorskip("reasoning_gym")
    from datasets import Dataset

    example = load_example()
    task = get_task(task_name)
    problems = task.problems("train", 3, seed=0)
    dataset = Dataset.from_list(example.build_rows(problems))  # what TRL iterates
    reward = example.task_reward_fn(task, problems)
    columns = {k: dataset[k] for k in dataset.column_names if k != "prompt"}
    right = [[{"role": "assistant", "content": correct_completion(task_name, p)}] for p in problems]
    wrong = [[{"role": "assistant", "content": "no idea"}] for _ in problems]
    assert reward(right, **columns) == [1.0] * len(problems)
    assert reward(wrong, **columns) == [0.0] * len(problems)


def test_rows_reject_duplicate_problem_ids() -> None:
    example = load_example()
    problems = get_task("mul1").problems("train", 1)
    with pytest.raises(ValueError, match="unique"):
        example.build_rows(problems * 2)


def script_args(task_name: str, checkpoint: Path, out: Path) -> list[str]:
    return [
        *("--model", str(checkpoint), "--task", task_name, "--steps", "1"),
        *("--num-generations", "2", "--k", "2", "--prompts-per-step", "1"),
        *("--num-problems", "2", "--max-completion-length", "8", "--output-dir", str(out)),
    ]


def test_script_trains_one_step_on_code(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """As a user runs it (a subprocess): the code task crashed here on a stringified answer."""
    cmd = [sys.executable, str(SCRIPT), *script_args("code", tiny_checkpoint, tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "step 1: reward" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("task_name", ["mul1", "rg:countdown"])
def test_main_trains_one_step(
    task_name: str, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same script's main() in this process (one TRL import for both tasks: faster)."""
    if task_name.startswith("rg:"):
        pytest.importorskip("reasoning_gym")
    load_example().main(script_args(task_name, tiny_checkpoint, tmp_path / "out"))
    assert "step 1: reward" in capsys.readouterr().out
