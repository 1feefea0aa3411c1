"""scripts/gpu_check.sh without a GPU: its --dry-run runs every stage on the CPU with tiny
sizes and writes the JSON a GPU run would (CI never needs a GPU for it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def run_script(*args: str, out: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    if out is not None:
        env["PASSK_GPU_CHECK_OUT"] = str(out)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=900
    )


def test_unknown_argument_is_refused() -> None:
    result = run_script("--gpu")
    assert result.returncode == 2
    assert result.stderr.strip() == "gpu_check.sh: unknown argument '--gpu' (valid: --dry-run)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_without_cuda_it_stops_at_once() -> None:
    result = run_script()
    assert result.returncode == 2
    assert "torch sees no CUDA device" in result.stderr


@pytest.mark.slow
@pytest.mark.embedded
def test_dry_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    result = run_script("--dry-run", out=out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu" and figures["dry_run"] is True
    assert figures["cuda_tests"]["exit_code"] == 0 and figures["cuda_tests"]["failures"] == 0
    assert figures["train"]["steps"] == 1 and len(figures["train"]["step_s"]) == 1
    assert figures["train"]["step_s"][0] > 0
    assert figures["eval"]["tokens"] > 0 and figures["eval"]["tokens_per_s"] > 0
    assert figures["verl_vllm"] == {
        "status": "skipped",
        "reason": "dry run",
        "wall_s": None,
        "log_tail": None,
    }
    # a dry run never writes into benchmarks/results
    assert not list((REPO / "benchmarks" / "results").glob("gpu_check_cpu*.json"))
