"""Bad input to ``passk train`` gets one line and exit code 2, before any model loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NO_MODEL = "model.name=/nonexistent/model"  # loading it would fail with another message


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", "train", "--no-progress", "--set", NO_MODEL, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (
            lambda d: (d / "bad.yaml").write_text("steps: [1\n"),
            ["--config", "bad.yaml"],
            "config file 'bad.yaml' is not valid YAML at line 2",
        ),
        (lambda d: None, ["--set", "rollout.n=[1"], "override 'rollout.n=[1': the value is not"),
        (lambda d: (d / "cfgdir").mkdir(), ["--config", "cfgdir"], "is a directory, not a YAML"),
        (
            lambda d: (d / "afile").write_text("x"),
            ["--out", "afile"],
            "--out afile is a file, not a directory",
        ),
        (
            lambda d: (d / "afile").write_text("x"),
            ["--out", "afile/run"],
            "--out afile/run is not writable",
        ),
        (
            lambda d: (d / "p").mkdir() or (d / "p" / "config.yaml").write_text("mine\n"),
            ["--out", "p", "--steps", "1"],
            "not part of a passk run: config.yaml",
        ),
        (lambda d: None, ["--set", "task.score_timeout=-5"], "task.score_timeout must be > 0"),
    ],
    ids=["yaml", "override", "config-dir", "out-file", "out-unwritable", "foreign", "timeout"],
)
def test_one_line_and_exit_2(make, args, message, tmp_path):
    make(tmp_path)
    proc = _train(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("passk train: error: "), proc.stderr
    assert message in lines[0]
    if (tmp_path / "p" / "config.yaml").exists():
        assert (tmp_path / "p" / "config.yaml").read_text() == "mine\n"
