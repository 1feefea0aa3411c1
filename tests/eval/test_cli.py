"""`passk eval` and `passk plot compare` end to end, as subprocesses on a tiny checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _passk(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def eval_dirs(tiny_checkpoint, tmp_path_factory) -> list[Path]:
    out = []
    for seed in (0,):  # one run keeps the suite fast; compare overlays it with itself
        d = tmp_path_factory.mktemp(f"eval{seed}")
        proc = _passk(
            "eval", "--model", str(tiny_checkpoint), "--task", "mul1", "--problems", "6",
            "--n", "4", "--max-new-tokens", "8", "--batch-size", "8", "--seed", str(seed),
            "--dtype", "fp32", "--device", "cpu", "--num-resamples", "100", "--out", str(d),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        out.append(d)
    return out


def test_eval_writes_the_promised_files(eval_dirs):
    d = eval_dirs[0]
    for name in ("eval.json", "passk_curve.png", "maj_curve.png", "pass1_hist.png"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0
    assert (d / "passk_curve.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((d / "eval.json").read_text())
    for key in (
        "pass_at_k", "ci95", "per_problem", "dang_bound", "answer_diversity", "mean_entropy",
        "mean_length", "reward_errors", "config", "model", "run", "pass_hat_k",
        "pass_hat_k_ci95", "maj_at_k", "maj_at_k_ci95", "problems_per_k",
    ):  # fmt: skip
        assert key in report, key
    assert list(report["pass_at_k"]) == ["1", "2", "4"]
    assert list(report["pass_hat_k"]) == list(report["maj_at_k"]) == ["1", "2", "4"]
    assert report["problems_per_k"] == {"1": 6, "2": 6, "4": 6}
    for k, v in report["pass_at_k"].items():
        lo, hi = report["ci95"][k]
        assert 0.0 <= lo <= v <= hi <= 1.0
        if k != "1":
            assert 0.0 <= report["dang_bound"][k] <= 1.0
    assert report["num_problems"] == 6 and len(report["per_problem"]) == 6
    pp = report["per_problem"][0]
    assert pp["n"] == 4 and 0 <= pp["c"] <= 4 and pp["prompt"].startswith("What is")
    assert pp["answer"].isdigit() and len(pp["extracted"]) == 4
    assert report["config"]["n"] == 4 and report["config"]["seed"] == 0
    assert report["model"]["dtype"] == "float32" and report["model"]["fingerprint"]
    assert report["run"]["task"] == "mul1" and report["reward_errors"] == 0
    assert report["mean_entropy"] > 0 and 1 <= report["mean_length"] <= 8
    assert not report["interrupted"]


def test_plot_compare(eval_dirs, tmp_path):
    out = tmp_path / "cmp.png"
    files = [str(eval_dirs[0] / "eval.json"), str(eval_dirs[0])]
    proc = _passk("plot", "compare", *files, "--out", str(out), "--labels", "a", "b")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_eval_reports_a_bad_model_clearly(tmp_path):
    proc = _passk(
        "eval", "--model", str(tmp_path / "missing"), "--problems", "1", "--out", str(tmp_path)
    )
    assert proc.returncode != 0
    assert "valid choices are 'embedded'" in proc.stderr


def test_ctrl_c_writes_partial_results(monkeypatch, tiny_checkpoint, tmp_path):
    """In-process: evaluate() is interrupted after two problems; eval.json keeps them."""
    from passk.cli import build_parser
    from passk.eval import model_run as eval_cli
    from passk.eval.evaluate import EvalInterrupted, evaluate

    def interrupted_evaluate(*args, **kwargs):
        done = []

        def on_problem(pr):
            done.append(pr)
            if len(done) == 2:
                raise KeyboardInterrupt

        return evaluate(*args, **(kwargs | {"on_problem": on_problem}))

    monkeypatch.setattr(eval_cli, "evaluate", interrupted_evaluate)
    args = build_parser().parse_args(
        ["eval", "--model", str(tiny_checkpoint), "--problems", "5", "--n", "2",
         "--max-new-tokens", "4", "--batch-size", "2", "--score-timeout", "0",
         "--dtype", "fp32", "--out", str(tmp_path)]
    )  # fmt: skip
    assert args.func(args) == 130
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["interrupted"] and report["num_problems"] == 2
    assert len(report["per_problem"]) == 2 and "1" in report["pass_at_k"]
    assert (tmp_path / "passk_curve.png").is_file()
    assert issubclass(EvalInterrupted, KeyboardInterrupt)


@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_bad_batch_size_is_one_line_before_the_model_loads(tmp_path, capsys, bad):
    from passk.cli import build_parser

    # the model path does not exist: an error about it would mean it was loaded first
    args = build_parser().parse_args(
        [
            "eval",
            "--model",
            str(tmp_path / "missing"),
            f"--batch-size={bad}",
            "--out",
            str(tmp_path),
        ]
    )
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"passk eval: error: --batch-size must be 'auto' or an integer >= 1, got {bad!r}"


def test_batch_size_defaults_to_auto(tmp_path):
    from passk.cli import build_parser

    assert build_parser().parse_args(["eval", "--out", str(tmp_path)]).batch_size == "auto"
    args = build_parser().parse_args(["eval", "--batch-size", "32", "--out", str(tmp_path)])
    from passk.eval.cli import parse_batch_size

    assert parse_batch_size(args.batch_size) == 32
