"""benchmarks/generate_stream.py end to end with a tiny checkpoint: both caches, ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "generate_stream.py"


def _run(*args: str) -> tuple[str, dict]:
    out = Path(args[args.index("--out") + 1])
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, check=True
    )
    return proc.stdout, json.loads(out.read_text())


@pytest.mark.parametrize("cache_only", [False, True])
def test_versus_runs_both_caches_and_prints_ratios(tiny_checkpoint, tmp_path, cache_only):
    extra = ["--cache-only", "--cache-only-mean", "4"] if cache_only else []
    stdout, result = _run(
        "--versus",
        "--model",
        str(tiny_checkpoint),
        "--batch-size",
        "4",
        "--waves",
        "3",
        "--max-new-tokens",
        "8",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "r.json"),
        *extra,
    )
    assert result["order"] == ["dynamic", "slots"]
    dynamic, slots = result["runs"]["dynamic"][0], result["runs"]["slots"][0]
    assert (dynamic["cache"], slots["cache"]) == ("dynamic", "slots")
    # the same sequences through either cache: the same number of tokens
    assert dynamic["tokens"] == slots["tokens"] > 0
    assert len(slots["waves"]) == 3 and slots["peak_rss_gb"] > 0
    ratio = slots["tok_per_s"] / dynamic["tok_per_s"]
    assert result["slots_over_dynamic_tok_per_s"] == pytest.approx(ratio)
    assert "slots / concatenating cache: tok/s" in stdout.splitlines()[-2]
    assert "machine" in result
