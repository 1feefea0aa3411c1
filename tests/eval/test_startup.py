"""Commands that load no model start without torch: ``passk --help``, ``passk eval
--samples``, ``passk eval --endpoint``, ``passk diff`` and ``passk plot`` (each run as a
user runs it, in a fresh interpreter that reports the modules it imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_endpoint import FakeServer

# runs passk's entry point, then prints which heavy modules the command imported
PROBE = """
import json, runpy, sys
sys.argv = ["passk", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("passk.cli", run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "transformers", "matplotlib") if m in sys.modules)
print("LOADED " + json.dumps({"code": code, "heavy": heavy}))
"""


def _run(tmp_path: Path, *argv: str) -> tuple[dict, str]:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, str(probe), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("LOADED ")]
    assert line, out.stdout + out.stderr
    return json.loads(line[-1].removeprefix("LOADED ")), out.stdout + out.stderr


def _samples(path: Path, lines: int = 100) -> Path:
    rows = [{"problem_id": f"p{i // 10}", "correct": i % 3 == 0} for i in range(lines)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_help_imports_no_torch(tmp_path: Path):
    loaded, text = _run(tmp_path, "--help")
    assert loaded == {"code": 0, "heavy": []}, text
    for command in ("eval", "train", "diff", "plot", "simulate"):
        assert command in text


@pytest.mark.parametrize("command", ["eval", "diff", "plot", "sweep", "simulate", "tasks"])
def test_a_sub_commands_help_names_its_flags(tmp_path: Path, command: str):
    """Only the named sub-command is built in full; its own help is complete."""
    loaded, text = _run(tmp_path, command, "--help")
    assert loaded["code"] == 0, text
    assert "usage: passk " + command in text


def test_the_help_lines_are_the_commands_own():
    """``passk --help`` shows the stubs' lines: each equals the one its module registers."""
    from passk.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    full = {a.dest: a.help for a in sub._choices_actions}
    assert full == {name: help_line for name, (_, help_line) in COMMANDS.items()}


def test_eval_samples_imports_no_torch_and_writes_the_report(tmp_path: Path):
    samples = _samples(tmp_path / "s.jsonl")
    out = tmp_path / "out"
    loaded, text = _run(
        tmp_path, "eval", "--samples", str(samples), "--out", str(out), "--no-plots"
    )
    assert loaded == {"code": 0, "heavy": []}, text
    report = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert len(report["per_problem"]) == 10


def test_eval_samples_with_figures_imports_no_torch(tmp_path: Path):
    samples = _samples(tmp_path / "s.jsonl")
    out = tmp_path / "out"
    loaded, text = _run(tmp_path, "eval", "--samples", str(samples), "--out", str(out))
    assert loaded == {"code": 0, "heavy": ["matplotlib"]}, text
    assert (out / "passk_curve.png").is_file()
    # the figures of a finished report, and a comparison of two, need no torch either
    loaded, text = _run(tmp_path, "plot", "eval", str(out))
    assert loaded == {"code": 0, "heavy": ["matplotlib"]}, text
    loaded, text = _run(tmp_path, "diff", str(out), str(out), "--resamples", "10")
    assert loaded == {"code": 0, "heavy": []}, text


def test_eval_endpoint_imports_no_torch(tmp_path: Path):
    server = FakeServer()
    try:
        loaded, text = _run(
            tmp_path, "eval", "--endpoint", server.url, "--served-model", "tiny",
            "--task", "mul1", "--problems", "2", "--n", "2", "--no-plots",
            "--num-resamples", "10", "--retries", "0", "--out", str(tmp_path / "out"),
        )  # fmt: skip
    finally:
        server.close()
    assert loaded == {"code": 0, "heavy": []}, text
    assert len(server.posts()) == 2
