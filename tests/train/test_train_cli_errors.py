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
        (
            lambda d: None,
            ["--set", "rollout.n=4"],  # the default analytic Pass@k has k = 4
            "passk_analytic with params.k=4 (the default), rollout.n=4 gives every response a "
            "zero advantage (the stage would not learn); use k <= 3 or rollout.n >= 5",
        ),
    ],
    ids=[
        "yaml",
        "override",
        "config-dir",
        "out-file",
        "out-unwritable",
        "foreign",
        "timeout",
        "k-equals-n",
    ],
)
def test_one_line_and_exit_2(make, args, message, tmp_path):
    make(tmp_path)
    proc = _train(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("passk train: error: "), proc.stderr
    assert message in lines[0]
    assert not (tmp_path / "runs").exists()  # the default --out is not created
    if (tmp_path / "p" / "config.yaml").exists():
        assert (tmp_path / "p" / "config.yaml").read_text() == "mine\n"


def test_a_full_disk_while_checkpointing_is_one_line(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    import torch

    from conftest import tiny_overrides
    from passk.cli import main

    real = torch.save

    def full(obj, f, *a, **k):
        if str(f).endswith("optimizer.pt"):
            raise OSError(28, "No space left on device", str(f))
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    sets = [x for o in tiny_overrides(tiny_checkpoint) for x in ("--set", o)]
    code = main(
        ["train", *sets, "--set", "eval.problems=0", "--steps", "1", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2
    lines = [x for x in err.splitlines() if x.startswith("passk train: error:")]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in err
    assert list((tmp_path / "r" / "checkpoints").glob(".tmp-*")) == []


def test_a_start_checks_the_config_and_the_directory_once(tiny_checkpoint, tmp_path, monkeypatch):
    """``passk train`` validates the config and checks ``--out`` before torch loads; the
    trainer it starts then takes them as done instead of running them again."""
    from collections import Counter

    from conftest import tiny_overrides
    from passk.cli import main
    from passk.train import config_validate
    from passk.train.run_dir import RunDir

    calls: Counter[str] = Counter()
    real_check, real_validate = RunDir.check_start, config_validate.validate

    def check_start(self, resume):
        calls["directory"] += 1
        return real_check(self, resume)

    def validate(config):
        calls["config"] += 1
        return real_validate(config)

    monkeypatch.setattr(RunDir, "check_start", check_start)
    for module in ("passk.train.config", "passk.train.loop"):
        monkeypatch.setattr(f"{module}.validate", validate)
    sets = [x for o in tiny_overrides(tiny_checkpoint) for x in ("--set", o)]
    out = tmp_path / "r"
    args = ["train", *sets, "--set", "eval.problems=0", "--steps", "1", "--out", str(out)]
    assert main(args) == 0
    assert calls == {"directory": 1, "config": 1}
    # the library entry point still checks by itself
    from passk.train.config import load_config
    from passk.train.loop import train

    with pytest.raises(ValueError, match="already holds a run"):
        train(load_config(None, [*tiny_overrides(tiny_checkpoint), "steps=1"]), out)
    assert calls == {"directory": 2, "config": 2}
