"""What a training run reports about its model: evaluation reports name the run and step
(and keep the base), and the summary of a LoRA run names its base model."""

from __future__ import annotations

import subprocess
import sys

from conftest import tiny_overrides
from passk.plots.eval_curves import report_label
from passk.train.config import load_config
from passk.train.loop import train
from passk.train.run_dir import RunDir


def test_eval_reports_during_training_name_the_run_and_step_and_keep_the_base(
    tiny_checkpoint, tmp_path
):
    cfg = load_config(None, [*tiny_overrides(tiny_checkpoint), "steps=2", "eval.at_start=true"])
    train(cfg, tmp_path / "myrun")
    run = RunDir(tmp_path / "myrun")
    assert run.eval_steps() == [0, 2]
    start, end = (run.read_eval(s)["model"] for s in (0, 2))
    assert (start["name"], end["name"]) == ("myrun step 0", "myrun step 2")
    assert (start["run"], start["step"], end["step"]) == ("myrun", 0, 2)
    assert start["fingerprint"] != end["fingerprint"]
    # the base model, as loaded: the same record at every step
    assert start["base"] == end["base"] and start["base"]["source"] == str(tiny_checkpoint)
    assert start["base"]["name"] == tiny_checkpoint.name and start["base"]["fingerprint"]
    # what `passk plot compare` labels two reports by
    assert report_label(run.read_eval(0), "a") != report_label(run.read_eval(2), "b")


def test_the_summary_of_a_lora_run_names_its_base_model(tiny_checkpoint, tmp_path, subprocess_env):
    sets = [a for o in tiny_overrides(tiny_checkpoint) for a in ("--set", o)]
    lora = "model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"
    out = tmp_path / "lora"
    args = ["train", "--out", str(out), "--steps", "1", *sets, "--set", lora]
    proc = subprocess.run(
        [sys.executable, "-m", "passk.cli", *args, "--set", "eval.problems=0"],
        env={**subprocess_env, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = " ".join((proc.stdout + proc.stderr).split())  # undo the console's wrapping
    assert f"(LoRA adapters only; the base is {tiny_checkpoint})" in text
    assert "model.name" not in text


def test_passk_train_prints_a_sample_every_n_steps(tiny_checkpoint, tmp_path, subprocess_env):
    sets = [a for o in tiny_overrides(tiny_checkpoint) for a in ("--set", o)]
    out = tmp_path / "shown"
    proc = subprocess.run(
        [sys.executable, "-m", "passk.cli", "train", "--out", str(out), "--steps", "2", *sets,
         "--set", "eval.problems=0", "--set", "log.print_sample_every=2",
         "--set", "log.samples=3"],
        env={**subprocess_env, "COLUMNS": "400"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "step 2 |" in text and "step 1 |" not in text  # every 2 steps: step 2 only
    assert "completion:" in text and "advantage" in text
    rows = (out / "samples.jsonl").read_text().splitlines()
    assert len(rows) == 6  # 3 rows per step, 2 steps


def test_print_sample_every_is_checked():
    import pytest

    with pytest.raises(ValueError, match=r"log\.print_sample_every must be >= 0, got -1"):
        load_config(None, ["log.print_sample_every=-1"])
