"""``passk eval``: bad settings and a reused --out fail in one line, exit 2, before any
model loads (the model named here does not exist: loading it would fail differently)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NO_MODEL = ["--model", "/nonexistent/model"]


def _eval(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", "eval", *NO_MODEL, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _finished(d: Path) -> None:
    d.mkdir()
    (d / "eval.json").write_text(json.dumps({"interrupted": False, "num_problems": 16}))


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (
            lambda d: _finished(d / "ev"),
            ["--out", "ev"],
            "ev/eval.json holds a finished report; pass --overwrite",
        ),
        (lambda d: None, ["--out", "o", "--threads", "-3"], "--threads must be >= 0"),
        (lambda d: None, ["--out", "o", "--score-timeout", "-1"], "--score-timeout must be >= 0"),
        (lambda d: None, ["--out", "o", "--temperature", "-1"], "--temperature must be >= 0"),
        (lambda d: None, ["--out", "o", "--top-p", "0"], "--top-p must be in (0, 1]"),
        (lambda d: None, ["--out", "o", "--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
        (lambda d: None, ["--out", "o", "--problems", "0"], "--problems must be >= 1"),
        (lambda d: None, ["--out", "o", "--batch-size", "0"], "--batch-size must be 'auto'"),
        (lambda d: (d / "f").write_text("x"), ["--out", "f"], "--out f is a file"),
    ],
    ids=[
        "finished",
        "threads",
        "timeout",
        "temperature",
        "top-p",
        "tokens",
        "problems",
        "batch",
        "out-file",
    ],
)
def test_one_line_exit_2_before_the_model_loads(make, args, message, tmp_path):
    make(tmp_path)
    proc = _eval(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("passk eval: error: "), proc.stderr
    assert message in lines[0]


def test_overwrite_passes_the_check_and_an_interrupted_report_is_replaceable(tmp_path):
    _finished(tmp_path / "ev")
    proc = _eval("--out", "ev", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 2 and "finished report" not in proc.stderr
    assert "/nonexistent/model" in proc.stderr  # it went on to load the model
    (tmp_path / "ev" / "eval.json").write_text(json.dumps({"interrupted": True}))
    proc = _eval("--out", "ev", cwd=tmp_path)
    assert "finished report" not in proc.stderr and "/nonexistent/model" in proc.stderr
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report == {"interrupted": True}  # nothing written before the model loaded
