"""``passk plot compare`` on what a user hands it (run directories, missing or foreign
files, an --out in a folder not made yet), and what the Dang et al. line means."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from passk.eval.evaluate import EvalConfig, EvalResult, ProblemResult
from passk.eval.report import write_json_atomic


def _report(scale: float, **extra) -> dict:
    values = {str(k): min(1.0, scale * k**0.5 / 3) for k in (1, 2, 4)}
    return {
        "pass_at_k": values,
        "ci95": {k: [max(0.0, v - 0.05), min(1.0, v + 0.05)] for k, v in values.items()},
        "num_problems": 3,
        "model": {"name": "base"},
        **extra,
    }


def _compare(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", "plot", "compare", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=env,
    )


def test_run_directories_use_their_newest_evaluation_and_out_folders_are_made(tmp_path):
    for run, scale in (("run-a", 0.5), ("run-b", 1.0)):
        write_json_atomic(tmp_path / run / "evals" / "step_000000.json", _report(0.3, step=0))
        write_json_atomic(tmp_path / run / "evals" / "step_000008.json", _report(scale, step=8))
    done = _compare("run-a", "run-b", "--out", "figs/new/cmp.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "figs/new/cmp.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "passk plot: error: missing.json does not exist"),
        (
            lambda d: (d / "missing.json").write_text("<html>not json</html>"),
            "passk plot: error: missing.json is not an eval report (not JSON:",
        ),
        (
            lambda d: (d / "missing.json").write_text("[1, 2]"),
            "passk plot: error: missing.json is not an eval report (a JSON list)",
        ),
        (
            lambda d: (d / "missing.json").mkdir(),
            "passk plot: error: missing.json is a directory with neither an eval.json",
        ),
    ],
    ids=["missing", "not-json", "not-an-object", "empty-dir"],
)
def test_bad_inputs_are_one_line_naming_the_file(tmp_path, make, message):
    write_json_atomic(tmp_path / "ok" / "eval.json", _report(0.5))
    make(tmp_path)
    done = _compare("ok", "missing.json", "--out", "c.png", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(message), line
    assert not (tmp_path / "c.png").exists()


def test_out_that_is_a_directory_is_one_line(tmp_path):
    write_json_atomic(tmp_path / "ok" / "eval.json", _report(0.5))
    done = _compare("ok", "--out", "ok", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "passk plot: error: --out ok is a directory; give a file name, e.g. ok/cmp.png"
    )


def test_the_dang_line_bounds_the_with_replacement_mean_not_the_unbiased_pass_at_k(
    tmp_path, monkeypatch
):
    """Every problem has c = 1 of n = 4: the unbiased pass@4 is 1, the with-replacement
    mean 1 - 0.75^4 = 0.684 and the bound equals it (no spread in pass@1): the bound is
    below the measured pass@k, so it must not be labelled a bound on it."""
    n, config = 4, EvalConfig(n=4, num_resamples=5)
    problems = [
        ProblemResult(
            f"p{i}",
            "",
            "",
            n,
            1,
            [0.0] * n,
            [True, False, False, False],
            [None] * n,
            [],
            [],
            None,
            [None] * n,
        )
        for i in range(3)
    ]
    report = EvalResult(problems, config).to_dict()
    assert report["pass_at_k"]["4"] == 1.0
    assert report["pass_at_k_with_replacement"]["4"] == pytest.approx(1 - 0.75**4)
    assert report["dang_bound"]["4"] >= report["pass_at_k_with_replacement"]["4"] - 1e-12
    assert report["dang_bound"]["4"] < report["pass_at_k"]["4"]

    from passk.plots import plot_passk_curve
    from passk.plots.common import pyplot

    figures = []
    monkeypatch.setattr(pyplot(), "close", figures.append)
    plot_passk_curve(report, tmp_path / "c.png")
    labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert "mean 1-(1-pass@1)^k (with replacement)" in labels
    assert "Dang et al. bound on the dotted line (k >= 2)" in labels
    assert not any(label.startswith("Dang et al. bound (") for label in labels)
    docs = (Path(__file__).parents[1] / "docs" / "eval.md").read_text(encoding="utf-8")
    assert "Dang et al. upper bound on mean pass@k" not in docs
    assert json.dumps(report)  # the new key is plain JSON
