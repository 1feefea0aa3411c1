"""PassKEvalCallback in 2-step CPU runs of GRPOTrainer and PassKGRPOTrainer (tiny model)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl", reason="TRL not installed: pip install 'passk[trl]'")
datasets = pytest.importorskip("datasets", reason="TRL needs datasets")

from test_trl import build_model, build_tokenizer  # noqa: E402

from passk.integrations.trl import PassKGRPOTrainer  # noqa: E402
from passk.integrations.trl_callback import PassKEvalCallback  # noqa: E402

N_GEN = 4
# Correctness of the i-th completion of each prompt, by prompt id: 1 of 4, none, all.
EVAL_PATTERN = {0: [1.0, 0.0, 0.0, 0.0], 1: [0.0] * 4, 2: [1.0] * 4}
EXPECTED = {
    "eval_pass@1": (0.25 + 0 + 1) / 3,
    "eval_pass@2": (0.5 + 0 + 1) / 3,
    "eval_pass@4": 2 / 3,
    "eval_pass^2": 1 / 3,
    "eval_pass^4": 1 / 3,
    "eval_maj@4": (0.25 + 0 + 1) / 3,  # one answer class per prompt: its mean correctness
}


def pattern_reward(completions, pid, **kwargs) -> list[float]:
    """Completions arrive as contiguous groups of N_GEN per prompt (train and callback)."""
    return [EVAL_PATTERN[p][i % N_GEN] for i, p in enumerate(pid)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny-cb")
    return build_tokenizer(root / "tok"), root


def make(tiny, cls, name: str, **overrides):
    from trl import GRPOConfig, GRPOTrainer

    tok, root = tiny
    data = {"prompt": [f"what is {i} + 2 ?" for i in range(3)], "pid": [0, 1, 2]}
    config = dict(
        output_dir=str(root / f"out-{name}"),
        per_device_train_batch_size=3 * N_GEN,
        per_device_eval_batch_size=3 * N_GEN,
        num_generations=N_GEN,
        num_generations_eval=N_GEN,
        max_completion_length=4,
        max_steps=2,
        learning_rate=1e-2,
        beta=0.0,
        loss_type="dapo",
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        shuffle_dataset=False,
    )
    config.update(overrides)
    kwargs = (
        {"advantage": "passk_analytic", "advantage_kwargs": {"k": 2}}
        if cls is PassKGRPOTrainer
        else {}
    )
    assert cls is PassKGRPOTrainer or cls is GRPOTrainer
    return cls(
        model=build_model(tok, root / f"model-{name}"),
        reward_funcs=pattern_reward,
        args=GRPOConfig(**config),
        train_dataset=datasets.Dataset.from_dict(data),
        eval_dataset=datasets.Dataset.from_dict(data),
        processing_class=tok,
        **kwargs,
    )


def check(metrics: dict[str, float]) -> None:
    print("\nPassKEvalCallback metrics:")
    for key in sorted(metrics):
        print(f"  {key} = {metrics[key]:.4f}")
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value), key
        assert metrics[f"{key}/ci_lo"] <= value + 1e-9 <= metrics[f"{key}/ci_hi"] + 2e-9
    assert metrics["eval_passk/num_prompts"] == 3 and metrics["eval_passk/num_generations"] == N_GEN


def test_passk_trainer_logs_passk_after_evaluate(tiny) -> None:
    trainer = make(tiny, PassKGRPOTrainer, "passk", eval_strategy="steps", eval_steps=2)
    callback = PassKEvalCallback(
        trainer, ks=[1, 2, 4], answer_fn=lambda text, row: f"same-{row['pid']}"
    )
    trainer.add_callback(callback)
    trainer.train()
    check(callback.last_metrics)
    logged = [h for h in trainer.state.log_history if "eval_pass@4" in h]
    assert len(logged) == 1 and logged[0]["step"] == 2
    # TRL's own eval log is still there and was not mixed with the callback's generations
    assert any("eval_loss" in h for h in trainer.state.log_history)
    assert "eval_completions/mean_length" not in logged[0]
    # evaluate() returns the callback's metrics too
    assert trainer.evaluate()["eval_pass@4"] == pytest.approx(2 / 3)


def test_grpo_trainer_on_its_own_schedule(tiny) -> None:
    from trl import GRPOTrainer

    trainer = make(tiny, GRPOTrainer, "grpo")  # no eval_strategy: TRL never evaluates
    callback = PassKEvalCallback(
        trainer, eval_steps=1, ks=[1, 2, 4], answer_fn=lambda text, row: f"same-{row['pid']}"
    )
    trainer.add_callback(callback)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logged = [h for h in trainer.state.log_history if "eval_pass@4" in h]
    assert [h["step"] for h in logged] == [1, 2]
    check(callback.last_metrics)
    # training still happened, and the model is back in training mode after each run
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
    assert trainer.model.training


def test_bad_arguments(tiny) -> None:
    from trl import GRPOTrainer

    trainer = make(tiny, GRPOTrainer, "bad")
    with pytest.raises(ValueError, match=r"ks \[8\] out of range"):
        PassKEvalCallback(trainer, ks=[1, 8])
    with pytest.raises(ValueError, match="reward_index must be in"):
        PassKEvalCallback(trainer, reward_index=3)
    with pytest.raises(ValueError, match="eval_steps must be"):
        PassKEvalCallback(trainer, eval_steps=0)


def test_example_script_logs_passk_eval(tiny_checkpoint, tmp_path, capsys) -> None:
    """examples/trl/train_passk_grpo.py --eval-steps: the callback on a passk task."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "trl" / "train_passk_grpo.py"
    spec = importlib.util.spec_from_file_location("train_passk_grpo_cb", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(
        [
            *("--model", str(tiny_checkpoint), "--task", "mul1", "--steps", "1"),
            *("--num-generations", "2", "--k", "2", "--prompts-per-step", "1"),
            *("--num-problems", "2", "--max-completion-length", "8"),
            *("--output-dir", str(tmp_path / "out"), "--eval-steps", "1"),
            *("--eval-problems", "2", "--eval-generations", "2"),
        ]
    )
    out = capsys.readouterr().out
    assert "eval_pass@1" in out and "eval_pass@2" in out, out[-2000:]
