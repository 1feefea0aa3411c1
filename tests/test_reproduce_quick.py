"""benchmarks/reproduce.py end to end on a tiny random model (the --quick code path).

The tiny model gets varied rewards from a content-hash reward (tests/train's
``passk_test_rewards:parity``), so every arm trains on real advantages.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN_TESTS = ROOT / "tests" / "train"
if str(TRAIN_TESTS) not in sys.path:  # passk_test_rewards, importable in-process
    sys.path.insert(0, str(TRAIN_TESTS))


def _load_runner():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runner():
    return _load_runner()


def _args(checkpoint: Path, out: Path) -> list[str]:
    return [
        "--quick",
        "--out",
        str(out),
        "--model",
        str(checkpoint),
        "--eval-n",
        "8",  # k = 1, 2, 4, 8
        "--set",
        "task.reward=passk_test_rewards:parity",
        "--set",
        "task.score_timeout=null",
        "--set",
        "optim.lr=1.0e-3",
        "--set",
        "model.device=cpu",
    ]


def test_quick_run_end_to_end(runner, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "rep"
    assert runner.main(_args(tiny_checkpoint, out)) == 0
    result = json.loads((out / "reproduce.json").read_text())  # --quick: JSON in the run dir
    ks = [1, 2, 4, 8]
    assert result["quick"] and result["ks"] == ks
    assert result["budget"]["steps"] == 2 and result["budget"]["seeds"] == [0]
    arms = ["pass1", "passk", "passk_then_pass1", "combination"]
    assert list(result["arms"]) == arms
    assert sorted(r["arm"] for r in result["runs"]) == sorted(arms)
    for r in result["runs"]:
        assert r["status"] == "done", r
        for when in ("before", "after"):
            assert list(r[when]["pass_at_k"]) == [str(k) for k in ks]
            for k in ks:
                lo, hi = r[when]["ci95"][str(k)]
                assert 0.0 <= lo <= r[when]["pass_at_k"][str(k)] <= hi <= 1.0
        assert len(r["after"]["curve"]) == 8 and r["after"]["step"] == 2
        assert r["train"]["steps"] == 2 and "first" in r["train"]["entropy"]
        assert "passk train --config configs/" in r["train_command"]
        assert r["wall_s"] > 0
        # equal budgets; "before" is shared, so no arm evaluates at step 0
        cfg = r["config"]
        assert (cfg["rollout"]["prompts_per_step"], cfg["rollout"]["n"]) == (2, 6)
        assert cfg["rollout"]["max_new_tokens"] == 16 and cfg["eval"]["at_start"] is False
        assert not (out / f"{r['arm']}_s0" / "evals" / "step_000000.json").exists()
        assert not (out / f"{r['arm']}_s0" / "checkpoints").exists()  # pruned when done
    switch = next(r for r in result["runs"] if r["arm"] == "passk_then_pass1")
    assert switch["config"]["algorithm"]["stages"][0]["steps"] == 1
    assert switch["train"]["stage_switch_after_step"] == 1
    for arm in arms:
        agg = result["arms"][arm]
        assert agg["seeds"] == [0] and set(agg["after"]) == {str(k) for k in ks}
        assert agg["after"]["1"]["n"] == 1
    for name in ("passk_curves", "training", "entropy"):
        path = Path(result["figures"][name])
        assert path.is_file() and path.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "held-out pass@k after training" in printed and "(a) Pass@1" in printed

    # --resume: everything finished, so nothing is trained again; same results
    md = tmp_path / "tables.md"
    assert runner.main([*_args(tiny_checkpoint, out), "--resume", "--markdown", str(md)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier") == 4 and "done earlier, reused" in printed
    again = json.loads((out / "reproduce.json").read_text())
    assert again["runs"][0]["after"]["pass_at_k"] == result["runs"][0]["after"]["pass_at_k"]
    # the Markdown tables carry the JSON's numbers, one row per arm and per run
    text = md.read_text()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| arm | pass@1 |"))
    assert header.split(" | ")[1:] == ["pass@1", "pass@2", "pass@4", "pass@8 |"]
    before1 = f"{again['before']['mean']['pass_at_k']['1']['mean']:.3f}"
    assert f"| before | {before1} |" in text
    for arm in arms:
        agg = again["arms"][arm]
        row = f"| {agg['label']} | {agg['after']['1']['mean']:.3f} |"
        assert row in text, row
        delta = f"{agg['delta']['8']['mean']:+.3f} |"
        assert any(ln.startswith(f"| {agg['label']} | ") and ln.endswith(delta) for ln in lines)
    assert sum(ln.startswith("| (") and " | 0 | " in ln for ln in lines) == 4  # every run
    # without --resume an existing run directory is refused
    assert runner.main(_args(tiny_checkpoint, out)) == 2


def test_shared_before_equals_a_runs_own_step0_eval(runner, tiny_checkpoint, tmp_path):
    """The claim behind evaluating "before" once: a run's own step-0 evaluation is identical."""
    from passk.train.config import load_config
    from passk.train.trainer import train

    args = runner.build_parser().parse_args(_args(tiny_checkpoint, tmp_path / "x"))
    budget = runner.resolve_budget(args)
    base = [*runner.common_overrides(args, budget, 0), *args.overrides]
    cfg = load_config(ROOT / runner.ARMS["pass1"].config, base)
    runner.run_before(cfg, tmp_path / "before")
    shared = json.loads((tmp_path / "before" / "evals" / "step_000000.json").read_text())

    arm = runner.ARMS["combination"]  # any arm: the initial model is the same
    own_cfg = load_config(ROOT / arm.config, [*base, "eval.at_start=true", "steps=1"])
    train(own_cfg, tmp_path / "own")
    own = json.loads((tmp_path / "own" / "evals" / "step_000000.json").read_text())
    assert [p["c"] for p in own["per_problem"]] == [p["c"] for p in shared["per_problem"]]
    assert own["pass_at_k"] == shared["pass_at_k"]
    assert own["mean_entropy"] == pytest.approx(shared["mean_entropy"], rel=1e-6)


def test_quick_never_overwrites_the_real_results(runner, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [*_args(tiny_checkpoint, tmp_path / "r"), "--json", str(runner.DEFAULT_JSON)]
    assert runner.main(argv) == 2
    assert not (tmp_path / runner.DEFAULT_JSON).exists()


def test_resume_continues_an_interrupted_arm(runner, tiny_checkpoint, tmp_path, capsys):
    """An arm cut after step 1 resumes from its checkpoint and ends as the straight run."""
    out = tmp_path / "rep"
    argv = [
        *_args(tiny_checkpoint, out),
        "--arms",
        "passk_then_pass1",  # the stage switch is part of the restored state
        "--checkpoint-every",
        "1",
        "--keep-checkpoints",
        "--set",
        "checkpoint.keep=2",
    ]
    assert runner.main(argv) == 0
    straight = json.loads((out / "reproduce.json").read_text())["runs"][0]
    run = out / "passk_then_pass1_s0"
    # make it look interrupted after step 1: no marker, newest checkpoint is step 1
    (run / runner.RUN_MARKER).unlink()
    shutil.rmtree(run / "checkpoints" / "step_000002")
    (run / "checkpoints" / "latest").write_text("step_000001\n")
    capsys.readouterr()
    assert runner.main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "[passk_then_pass1_s0] resuming" in printed and "step 2/2 [pass1]" in printed
    assert "step 1/2" not in printed
    resumed = json.loads((out / "reproduce.json").read_text())["runs"][0]
    assert resumed["resumed"] is True
    assert resumed["after"]["correct_per_problem"] == straight["after"]["correct_per_problem"]
    assert resumed["train"]["reward"] == straight["train"]["reward"]
    assert resumed["train"]["stage_switch_after_step"] == 1

    # a finished run with other settings is refused, not mixed into the results
    assert runner.main([*argv, "--resume", "--n", "5"]) == 2
