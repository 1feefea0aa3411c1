"""Math answer sets keyed by the dataset's own ids (``id_field``), from a JSONL file or
``hf:ORG/NAME[:split]`` (here a local dataset folder, offline), scored with math-verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from passk.tasks import get_task

pytest.importorskip("math_verify", reason="needs passk[tasks]")

# MATH-500's layout (problem, answer, unique_id, ...) with invented problems
ROWS = [
    {"problem": "What is $2+2$?", "answer": "4", "unique_id": "test/algebra/1.json"},
    {"problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?", "answer": "\\frac{3}{4}", "unique_id": "test/algebra/2.json"},
    {"problem": "What is $3^2$?", "answer": "9", "unique_id": "test/algebra/3.json"},
]  # fmt: skip


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_id_field_names_the_problems(tmp_path):
    path = _write(tmp_path / "math500.jsonl", ROWS)
    task = get_task("math", path=str(path), prompt_field="problem", id_field="unique_id")
    problems = {p.id: p for p in task.all_problems()}
    assert list(problems) == [r["unique_id"] for r in ROWS]
    p = problems["test/algebra/2.json"]
    assert task.score(p, "so the sum is \\boxed{0.75}").correct  # math-verify: 3/4 == 0.75
    assert not task.score(p, "\\boxed{1/2}").correct
    default = get_task("math", path=str(path), prompt_field="problem")
    assert [q.id for q in default.all_problems()] == ["math/0", "math/1", "math/2"]


def test_id_field_errors_name_the_line(tmp_path):
    path = _write(tmp_path / "m.jsonl", [ROWS[0], {"problem": "x", "answer": "1"}])
    with pytest.raises(ValueError, match=r"m.jsonl:2: id_field 'unique_id' is missing"):
        get_task("math", path=str(path), prompt_field="problem", id_field="unique_id")
    path = _write(tmp_path / "d.jsonl", [ROWS[0], ROWS[0]])
    with pytest.raises(ValueError, match=r"d.jsonl:2: id 'test/algebra/1.json' .* repeats line 1"):
        get_task("math", path=str(path), prompt_field="problem", id_field="unique_id")
    with pytest.raises(ValueError, match="names no dataset"):
        get_task("math", path="hf:", prompt_field="problem")


def _passk(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {
        "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200",
        "HF_HOME": str(cwd / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "passk.cli", "eval", *args, "--no-plots", "--num-resamples", "20"]
    return subprocess.run(cmd, capture_output=True, cwd=cwd, timeout=300, env=env, text=True)


@pytest.mark.parametrize("source", ["file", "hf"])
def test_samples_keyed_by_unique_id_are_scored(tmp_path, source):
    if source == "file":
        path = str(_write(tmp_path / "math500.jsonl", ROWS))
    else:  # a dataset folder as datasets loads it: its test split from test.jsonl
        (tmp_path / "m500").mkdir()
        _write(tmp_path / "m500" / "test.jsonl", ROWS)
        path = f"hf:{tmp_path / 'm500'}:test"
    samples = [
        {"problem_id": "test/algebra/1.json", "response": "\\boxed{4}"},
        {"problem_id": "test/algebra/1.json", "response": "\\boxed{5}"},
        {"problem_id": "test/algebra/3.json", "response": "It is \\boxed{9}."},
    ]
    _write(tmp_path / "s.jsonl", samples)
    done = _passk(
        "--samples", "s.jsonl", "--task", "math", "--task-option", f"path={path}",
        "prompt_field=problem", "id_field=unique_id", "answer_field=answer",
        "--out", "ev", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert [(p["id"], p["c"], p["n"]) for p in report["per_problem"]] == [
        ("test/algebra/1.json", 1, 2),
        ("test/algebra/3.json", 1, 1),
    ]
