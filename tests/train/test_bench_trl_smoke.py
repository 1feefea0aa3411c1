"""benchmarks/trainer_vs_trl.py end to end in a tiny mode (tiny random Llama, no hub)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="TRL not installed: pip install 'passk[trl]'")
pytest.importorskip("datasets", reason="TRL needs datasets")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "trainer_vs_trl.py"


def _bench():
    spec = importlib.util.spec_from_file_location("trainer_vs_trl", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_abba_schedule() -> None:
    bench = _bench()
    assert bench.abba_schedule(1) == [1]
    assert bench.abba_schedule(2) == [1, 1]  # O T T O
    assert bench.abba_schedule(5) == [1, 1, 3, 3, 5]  # O T T O O T T O O T


def test_quick_run_prints_ratio_last(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    bench = _bench()
    out = tmp_path / "bench.json"
    report = bench.main(
        [
            "--quick",
            "--model",
            str(tiny_checkpoint),
            "--threads",
            "1",
            "--completion-len",
            "6",
            "--dtypes",
            "fp32",
            "bf16",
            "--json",
            str(out),
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("throughput_ratio_vs_trl: ")
    assert float(lines[-1].split(": ")[1]) == pytest.approx(report["throughput_ratio_vs_trl"], 1e-3)
    assert lines[-2] == "headline precision: bf16 (target >= 1.25)"
    saved = json.loads(out.read_text())
    assert saved["headline_dtype"] == "bf16"
    for res in saved["results"]:
        # 1 warm-up + 1 measured step each, 2 prompts x 4 completions per step
        assert len(res["ours"]) == len(res["trl"]) == 2
        assert res["same_prompts_per_step"] == [True, True]  # same prompts, same order
        for rec in res["ours"] + res["trl"]:
            assert rec["completions"] == 8
            assert 8 <= rec["tokens"] <= 8 * 6
        s = res["summary"]
        assert s["ours"]["tokens_per_s"] > 0 and s["trl"]["tokens_per_s"] > 0
        assert 0 <= s["ours"]["non_model_share"] <= 1
