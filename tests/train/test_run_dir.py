"""RunDir: the run-directory layout, metrics reading, evaluations and the finished mark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import tiny_overrides
from passk.train.run_dir import RunDir


def _write_metrics(run: RunDir, rows: list[dict], tail: str = "") -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def _rows() -> list[dict]:
    return [
        {"kind": "train", "step": 1, "reward/mean": 0.1},
        {"step": 2, "reward/mean": 0.2},  # no kind: a training step
        {"kind": "eval", "step": 2, "eval/pass@1": 0.5},
        {"kind": "train", "step": 3, "reward/mean": 0.3},
    ]


def test_paths_follow_the_layout(tmp_path):
    run = RunDir(tmp_path / "r")
    rel = {
        name: getattr(run, name).relative_to(run.path).as_posix()
        for name in ("config", "metrics", "evals_dir", "checkpoints", "done", "training_plot")
    }
    assert rel == {
        "config": "config.yaml",
        "metrics": "metrics.jsonl",
        "evals_dir": "evals",
        "checkpoints": "checkpoints",
        "done": "done.json",
        "training_plot": "training.png",
    }
    assert run.tensorboard.name == "tensorboard" and run.wandb.name == "wandb"
    assert run.eval_path(7).relative_to(run.path).as_posix() == "evals/step_000007.json"
    assert run.eval_path(1234567).name == "step_1234567.json"
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        run.eval_path(-1)
    assert RunDir(str(tmp_path / "r")) == run and len({run, RunDir(run.path)}) == 1


def test_read_metrics_kinds_and_a_line_cut_by_a_crash(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_metrics() == [] and run.last_train_step() == 0 and not run.holds_run()
    _write_metrics(run, _rows(), tail='{"kind": "train", "step": 4, "rew')
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 2, 3]
    assert [r["step"] for r in run.read_metrics("train")] == [1, 2, 3]
    assert run.read_metrics("eval") == [_rows()[2]]
    assert run.last_train_step() == 3 and run.holds_run()


def test_read_metrics_refuses_damage_before_the_last_line(tmp_path):
    run = RunDir(tmp_path)
    good = json.dumps({"step": 1})
    run.metrics.write_text(f"{good}\n{{oops\n{good}\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not valid JSON"):
        run.read_metrics()
    run.metrics.write_text(f'{good}\n{{"reward/mean": 1}}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: expected a JSON object with a 'step'"):
        run.read_metrics()


def test_truncate_metrics_keeps_steps_up_to_the_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    run.truncate_metrics(1)  # no file: nothing to do, nothing created
    assert not run.metrics.exists()
    _write_metrics(run, _rows(), tail='{"step": 9, "cut')
    run.truncate_metrics(2)
    assert run.read_metrics() == _rows()[:3]
    assert run.metrics.read_text().endswith("}\n")  # the cut line is gone
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary left


def test_metric_series_later_record_of_a_step_wins(tmp_path):
    from passk.train.run_dir import metric_series

    rows = [
        {"step": 1, "x": 0.5},
        {"step": 2, "x": float("nan")},  # not finite: left out
        {"step": 3, "x": True},  # a flag, not a number
        {"step": 1, "x": 0.25},  # written again after a resume
        {"step": 4, "x": 2},
    ]
    assert metric_series(rows, "x") == ([1, 4], [0.25, 2.0])
    assert metric_series(rows, "missing") == ([], [])


def test_evals_by_step_ignore_temporaries(tmp_path):
    run = RunDir(tmp_path)
    assert run.evals() == {} and run.eval_steps() == []
    run.evals_dir.mkdir()
    for step in (16, 0):
        run.eval_path(step).write_text(json.dumps({"step": step, "pass_at_k": {"1": 0.5}}))
    (run.evals_dir / ".step_000020.json.ab12").write_text("{")  # an atomic write cut short
    assert run.eval_steps() == [0, 16]
    assert {s: r["step"] for s, r in run.evals().items()} == {0: 0, 16: 16}
    with pytest.raises(ValueError, match=r"no evaluation at step 8 \(have: 0, 16\)"):
        run.read_eval(8)


def test_foreign_files_name_what_is_not_a_run(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.foreign_files() == []  # missing directory: nothing foreign
    run.path.mkdir()
    (run.path / "notes.txt").write_text("mine")
    (run.path / "data").mkdir()
    (run.path / "evals").write_text("a file where a directory belongs")
    (run.path / ".metrics.jsonl.tmp-123").write_text("")  # an atomic write cut by a crash
    run.config.write_text("learning_rate: 3\nlayers: [1, 2]\n")  # the user's own config
    assert run.foreign_files() == ["config.yaml", "data/", "evals", "notes.txt"]


def test_foreign_files_accept_a_passk_config_and_any_config_of_a_started_run(tmp_path):
    run = RunDir(tmp_path)
    run.config.write_text("steps: 3\noptim: {lr: 1.0e-4}\n")
    for name in ("checkpoints", "tensorboard", "wandb", "evals"):
        (tmp_path / name).mkdir()
    run.training_plot.write_bytes(b"\x89PNG")
    assert run.foreign_files() == []
    assert run.read_config() == {"steps": 3, "optim": {"lr": 1e-4}}
    run.config.write_text("not_a_passk_key: 1\n")
    assert run.foreign_files() == []  # checkpoints exist: it is the run's own config


def test_mark_finished_and_is_finished(tmp_path):
    run = RunDir(tmp_path)
    _write_metrics(run, _rows())
    assert not run.is_finished(3) and run.finished() is None
    with pytest.raises(ValueError, match="finished at step 4: its log ends at step 3"):
        run.mark_finished(4)
    run.evals_dir.mkdir()
    run.eval_path(3).write_text("{}")
    run.mark_finished(3, {"wall_s": 1.5, "fingerprint": "abc"})
    record = run.finished()
    assert record["steps"] == 3 and record["final_eval"] == "evals/step_000003.json"
    assert record["wall_s"] == 1.5 and record["fingerprint"] == "abc"
    assert run.is_finished(3) and not run.is_finished(2) and not run.is_finished(4)
    run.eval_path(3).unlink()  # the final report it names is gone: not finished
    assert not run.is_finished(3)
    run.mark_finished(3)  # no final evaluation (none configured)
    assert run.finished()["final_eval"] is None and run.is_finished(3)
    run.clear_finished()
    assert not run.is_finished(3) and not run.done.exists()


def test_a_trained_run_matches_the_layout(tiny_checkpoint: Path, tmp_path):
    from passk.train.config import load_config
    from passk.train.loop import train

    config = load_config(None, [*tiny_overrides(tiny_checkpoint), "steps=2", "eval.at_start=false"])
    out = tmp_path / "run"
    train(config, out)
    run = RunDir(out)
    assert run.holds_run() and run.foreign_files() == []
    assert run.last_train_step() == 2 and run.eval_steps() == [2]
    assert run.evals()[2]["pass_at_k"] and run.read_metrics("eval")[0]["step"] == 2
    assert run.read_config()["steps"] == 2 and run.checkpoints.is_dir()
    assert run.is_finished(2) and run.finished()["final_eval"] == "evals/step_000002.json"
