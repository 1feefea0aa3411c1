"""The reproduction end to end on a tiny model through ``passk sweep``, and
``benchmarks/reproduce.py`` over the published results.

The tiny model gets varied rewards from a content-hash reward (tests/train's
``passk_test_rewards:parity``), so the Pass@1 arm trains on real advantages.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from passk.cli import main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_sweep import tiny_base, train_env  # noqa: E402, F401  (train_env: a fixture)


def _load_runner():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


def _quick_sweep(checkpoint: Path) -> dict:
    """configs/sweeps/reproduce.yaml's arms (a) and (c) at a tiny budget."""
    recipes = ROOT / "configs"
    return {
        "name": "reproduce-quick",
        "base": {"set": {**tiny_base(checkpoint), "checkpoint.every": 10}},
        "arms": [
            {"name": "pass1", "label": "(a) Pass@1", "config": str(recipes / "pass1.yaml")},
            {
                "name": "passk_then_pass1",
                "label": "(c) Pass@k -> Pass@1",
                "config": str(recipes / "passk_then_pass1.yaml"),
                "set": {"algorithm.stages.0.steps": 1},
            },
        ],
        "seeds": [0],
        "eval": {"problems": 2, "n": 8},
        "compare": {"reference": "pass1", "ks": [1, 8], "resamples": 200},
        "equal_budgets": True,
    }


def test_quick_sweep_end_to_end(tiny_checkpoint, tmp_path, train_env, capsys):  # noqa: F811
    file = tmp_path / "quick.yaml"
    file.write_text(yaml.safe_dump(_quick_sweep(tiny_checkpoint), sort_keys=False))
    out = tmp_path / "rep"
    assert main(["sweep", str(file), "--out", str(out)]) == 0
    result = json.loads((out / "summary.json").read_text())
    ks = [1, 2, 4, 8]
    assert result["ks"] == ks and result["status"] == {
        "pass1_s0": "done",
        "passk_then_pass1_s0": "done",
    }
    assert list(result["arms"]) == ["pass1", "passk_then_pass1"]
    for r in result["runs"]:
        for when in ("before", "after"):
            assert list(r[when]["pass_at_k"]) == [str(k) for k in ks]
            for k in ks:
                lo, hi = r[when]["ci95"][str(k)]
                assert 0.0 <= lo <= r[when]["pass_at_k"][str(k)] <= hi <= 1.0
        assert len(r["after"]["curve"]) == 8 and r["after"]["step"] == 2
        assert r["train"]["steps"] == 2 and "first" in r["train"]["entropy"]
        assert r["train_command"].startswith("passk train --config ")
        assert f"--out {r['arm']}_s0" in r["train_command"] and r["wall_s"] > 0
        # equal budgets; "before" is shared, so no arm evaluates at step 0
        cfg = r["config"]
        assert (cfg["rollout"]["prompts_per_step"], cfg["rollout"]["n"]) == (2, 6)
        assert cfg["eval"]["at_start"] is False and cfg["eval"]["n"] == 8
        run_dir = out / r["run_dir"]
        assert (run_dir / "done.json").is_file() and not (
            run_dir / "evals" / "step_000000.json"
        ).exists()
        assert not (run_dir / "checkpoints").exists()  # deleted once finished
    before = result["before"]["per_seed"]["0"]
    assert result["runs"][0]["before"]["pass_at_k"] == before["pass_at_k"]
    switch = next(r for r in result["runs"] if r["arm"] == "passk_then_pass1")
    assert switch["config"]["algorithm"]["stages"][0]["steps"] == 1
    assert switch["train"]["stage_switch_after_step"] == 1
    for arm in result["arms"].values():
        assert arm["seeds"] == [0] and set(arm["after"]) == {str(k) for k in ks}
        assert arm["after"]["1"]["n"] == 1 and "delta" in arm
    compared = result["comparisons"]["arms"]["passk_then_pass1"]
    assert compared["problems"] == 2 and set(compared) >= {"1", "8"}
    assert set(result["figures"]) == {"passk_curves", "training", "entropy"}
    for name in result["figures"].values():
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "| before |" in printed and "| (a) Pass@1 |" in printed

    # again: every run finished, so nothing is trained or evaluated again; same results
    metrics = {
        r["arm"]: (out / r["run_dir"] / "metrics.jsonl").stat().st_mtime_ns for r in result["runs"]
    }
    md = tmp_path / "tables.md"
    assert main(["sweep", str(file), "--out", str(out), "--markdown", str(md)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, skipped") == 3 and "0 to run" in printed
    assert "training seed" not in printed and "evaluating" not in printed
    again = json.loads((out / "summary.json").read_text())
    assert again["runs"] == result["runs"] and again["comparisons"] == result["comparisons"]
    assert {
        r["arm"]: (out / r["run_dir"] / "metrics.jsonl").stat().st_mtime_ns for r in again["runs"]
    } == metrics
    # the Markdown tables carry the JSON's numbers, one row per arm and per run
    text = md.read_text()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| arm | pass@1 |"))
    assert header.split(" | ")[1:] == ["pass@1", "pass@2", "pass@4", "pass@8 |"]
    before1 = f"{again['before']['mean']['pass_at_k']['1']['mean']:.3f}"
    assert f"| before | {before1} |" in text
    for arm in again["arms"].values():
        assert f"| {arm['label']} | {arm['after']['1']['mean']:.3f} |" in text
        delta = f"{arm['delta']['8']['mean']:+.3f} |"
        assert any(ln.startswith(f"| {arm['label']} | ") and ln.endswith(delta) for ln in lines)
    assert sum(ln.startswith("| (") and " | 0 | " in ln for ln in lines) == 2  # every run
    assert "Paired difference from pass1" in text


@pytest.fixture(scope="module")
def runner():
    return _load_runner()


def test_results_page_tables_are_generated_from_the_results_file(runner, capsys):
    assert runner.main(["tables", "--check", str(ROOT / "docs" / "results.md")]) == 0
    assert "8 blocks match, 0 differ" in capsys.readouterr().out


def test_results_file_has_no_machine_paths(runner):
    text = (ROOT / "benchmarks" / "results" / "reproduce.json").read_text()
    assert "/work/" not in text and '"/' not in text and "site-packages" not in text


def test_tables_with_paired_comparisons(runner, capsys):
    assert runner.main(["tables", "--compare", "pass1"]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| (")]
    assert any(ln.startswith("| (d) combination | 1 | +0.023 | +0.050 -0.004 | [") for ln in rows)


def test_run_goes_through_passk_sweep(runner, tmp_path, capsys):
    out, results = tmp_path / "runs", tmp_path / "r.json"
    argv = ["run", "--out", str(out), "--json", str(results), "--dry-run", "--seeds", "0"]
    assert runner.main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 arms x 1 seed ->" in printed and "passk train --config" in printed
    assert not results.exists() and not out.exists()
