"""``passk eval --model`` on what training leaves behind: a run directory, a LoRA adapter
checkpoint (evaluated directly, or merged by ``passk export``), and ``--training-eval``
repeating the trainer's own evaluation sample for sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TRAIN_TESTS = Path(__file__).parents[1] / "train"  # passk_test_rewards (a hash reward)
LORA = "model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"


def _overrides(checkpoint: Path, *extra: str) -> list[str]:
    return [
        f"model.name={checkpoint}",
        "model.threads=1",
        "task.reward=passk_test_rewards:parity",
        "task.score_timeout=null",
        "rollout.max_new_tokens=12",
        "eval.problems=3",
        "eval.n=4",
        "eval.every=2",
        "optim.lr=1.0e-2",
        "log.progress=false",
        "steps=2",
        "checkpoint.every=2",
        "seed=7",
        *extra,
    ]


def _train(checkpoint: Path, out: Path, *extra: str) -> Path:
    if str(TRAIN_TESTS) not in sys.path:
        sys.path.insert(0, str(TRAIN_TESTS))
    from passk.train.config import load_config
    from passk.train.loop import train

    train(load_config(None, _overrides(checkpoint, *extra)), out)
    return out


def _passk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join([str(TRAIN_TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=env,
    )


def _samples(report: dict) -> list[tuple]:
    return [(p["id"], p["correct"], p["extracted"]) for p in report["per_problem"]]


@pytest.fixture(scope="module")
def runs(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "full": _train(tiny_checkpoint, root / "full"),
        "lora": _train(tiny_checkpoint, root / "lora", LORA),
    }


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_training_eval_repeats_the_trainers_evaluation_exactly(runs, tiny_checkpoint, kind):
    """--training-eval RUN draws the trainer's samples at step 2 (the newest checkpoint,
    adapters included) and at step 0 (the base model)."""
    run = runs[kind]
    for step, model in ((2, []), (0, ["--model", str(tiny_checkpoint)])):
        out = run.parent / f"ev-{kind}-{step}"
        done = _passk(
            "eval", "--training-eval", str(run), *model, "--no-plots", "--out", str(out),
            cwd=run.parent,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        mine = json.loads((out / "eval.json").read_text())
        trainer = json.loads((run / "evals" / f"step_{step:06d}.json").read_text())
        assert _samples(mine) == _samples(trainer), (kind, step)
        assert mine["pass_at_k"] == trainer["pass_at_k"]
        assert mine["config"]["seed"] == trainer["config"]["seed"]
        assert mine["config"]["batch_size"] == trainer["config"]["batch_size"]
        assert mine["run"]["problem_seed"] == 0 and mine["run"]["problems_requested"] == 3
    # the adapters changed the samples: step 2 differs from step 0 somewhere
    evals = [json.loads((run / "evals" / f"step_{s:06d}.json").read_text()) for s in (0, 2)]
    assert _samples(evals[0]) != _samples(evals[1])


def test_training_eval_refuses_flags_the_run_decides(runs, tmp_path):
    done = _passk(
        "eval", "--training-eval", str(runs["full"]), "--n", "8", "--seed", "3",
        "--out", str(tmp_path / "ev"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"passk eval: error: --training-eval {runs['full']} sets --seed, --n from the run's "
        "config; leave them out"
    ]


def test_a_run_directory_means_its_newest_checkpoint(runs, tmp_path):
    done = _passk(
        "eval", "--model", str(runs["full"]), "--task", "mul1", "--problems", "2", "--n", "2",
        "--max-new-tokens", "4", "--batch-size", "4", "--no-plots", "--out", str(tmp_path / "ev"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    newest = runs["full"] / "checkpoints" / "step_000002"
    said = " ".join(done.stderr.split())  # the terminal's line breaks do not matter
    assert f"is a run directory: evaluating its newest checkpoint {newest}" in said
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["model"]["source"] == str(newest.resolve())


def test_lora_checkpoint_is_named_as_such_and_export_merges_it(runs, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from passk.eval.adapters import load_adapter_model

    ckpt = runs["lora"] / "checkpoints" / "step_000002"
    adapted = load_adapter_model(ckpt, dtype="fp32", device="cpu")
    assert adapted.identity.name.startswith(f"{runs['lora'].name}/step_000002 (LoRA on ")
    done = _passk("export", str(runs["lora"]), "--out", str(tmp_path / "merged"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    merged_dir = tmp_path / "merged"
    assert (merged_dir / "config.json").is_file() and (merged_dir / "model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    ids = torch.arange(3, 40).reshape(1, -1)
    with torch.no_grad():
        want = adapted.model(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    # a merged model is evaluated like any checkpoint
    done = _passk(
        "eval", "--model", str(merged_dir), "--task", "mul1", "--problems", "1", "--n", "2",
        "--max-new-tokens", "4", "--no-plots", "--out", str(tmp_path / "ev"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # export refuses a full checkpoint and a non-empty --out, in one line each
    for args, message in (
        ([str(merged_dir), "--out", str(tmp_path / "x")], "a full model checkpoint already"),
        ([str(ckpt), "--out", str(merged_dir)], "exists and is not an empty directory"),
    ):
        done = _passk("export", *args, cwd=tmp_path)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
        assert message in done.stderr
