"""The held-out evaluation is built from the config alone: the sweep's start evaluation
needs no trainer, and the trainer's own evaluation goes through the same object."""

from __future__ import annotations

from conftest import tiny_overrides
from passk.train.config import dump_config, load_config
from passk.train.heldout import HeldOut, build_task, load_policy
from passk.train.run_dir import RunDir


def test_the_start_evaluation_builds_no_trainer(tiny_checkpoint, tmp_path, monkeypatch):
    from passk.sweep.start_eval import evaluate_start
    from passk.train import loop

    def refuse(*args, **kwargs):
        raise AssertionError("the start evaluation built a Trainer")

    monkeypatch.setattr(loop.Trainer, "__init__", refuse)
    config = load_config(None, [*tiny_overrides(tiny_checkpoint), "eval.problems=3"])
    path = tmp_path / "before.yaml"
    path.write_text(dump_config(config))
    report = evaluate_start(path, tmp_path / "before").read_eval(0)
    assert report["num_problems"] == 3 and report["model"]["name"] == "before step 0"


def test_heldout_settings_are_the_runs(tiny_checkpoint, tmp_path):
    from passk.seeds import derive_seed

    config = load_config(
        None, [*tiny_overrides(tiny_checkpoint), "seed=7", "eval.n=4", "eval.problems=2"]
    )
    policy = load_policy(config)
    heldout = HeldOut.from_config(config, build_task(config), policy, RunDir(tmp_path / "r"))
    s = heldout.settings()
    assert (s.n, s.seed, s.keep_completions) == (4, derive_seed(7, "eval"), False)
    # problems are picked with seed 0 whatever the run's seed: every run sees the same ones
    other = load_config(None, [*tiny_overrides(tiny_checkpoint), "seed=8", "eval.problems=2"])
    again = HeldOut.from_config(other, build_task(other), policy, RunDir(tmp_path / "s"))
    assert [p.id for p in heldout.problems] == [p.id for p in again.problems]
