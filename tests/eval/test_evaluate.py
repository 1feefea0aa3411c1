"""evaluate(): counts, metrics, partial results on Ctrl-C, reward errors."""

from __future__ import annotations

import json
import math

import pytest

from passk.core.majority import maj_at_k
from passk.core.metrics import pass_at_k, pass_hat_k
from passk.eval.evaluate import EvalConfig, EvalInterrupted, evaluate, progress_lines
from passk.eval.report import write_json_atomic
from passk.tasks.base import Problem, Score


class ParityTask:
    """Correct iff the completion has an even number of characters; 'x' in it raises."""

    name = "parity"

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return [Problem(id=f"q{i}", prompt=f"question {i}", answer="even") for i in range(n)]

    def score(self, problem: Problem, completion: str) -> Score:
        if "x" in completion:
            raise ValueError("x is not allowed")
        even = len(completion) % 2 == 0
        return Score(float(even), even, extracted=str(len(completion) % 5))


def test_evaluate_counts_and_metrics(tiny_model_eos, tiny_tokenizer):
    task = ParityTask()
    cfg = EvalConfig(n=4, max_new_tokens=12, batch_size=8, score_timeout=None, num_resamples=200)
    result = evaluate(tiny_model_eos, tiny_tokenizer, task, task.problems("test", 5), config=cfg)
    assert len(result.problems) == 5 and not result.interrupted
    for p in result.problems:
        assert p.n == 4 and len(p.completions) == 4
        errors = sum(e is not None for e in p.errors)
        expected_c = sum(len(c) % 2 == 0 and "x" not in c for c in p.completions)
        assert p.c == expected_c and errors == sum("x" in c for c in p.completions)
    s = result.summary()
    assert set(s["pass_at_k"]) == {"1", "2", "4"}
    mean_p1 = sum(p.c / p.n for p in result.problems) / 5
    assert s["pass_at_k"]["1"] == pytest.approx(mean_p1)
    p4 = sum(pass_at_k(p.n, p.c, 4) for p in result.problems) / 5
    assert s["pass_at_k"]["4"] == pytest.approx(p4)
    for k, (lo, hi) in s["ci95"].items():
        assert lo - 1e-9 <= s["pass_at_k"][k] <= hi + 1e-9
    assert s["pass_at_k"]["1"] <= s["pass_at_k"]["2"] <= s["pass_at_k"]["4"]
    # pass^k and maj@k from the same samples, with the answers the task extracted
    hat4 = sum(pass_hat_k(p.n, p.c, 4) for p in result.problems) / 5
    assert s["pass_hat_k"]["4"] == pytest.approx(hat4)
    maj2 = sum(maj_at_k(p.extracted, p.correct, 2) for p in result.problems) / 5
    assert s["maj_at_k"]["2"] == pytest.approx(maj2)
    assert s["problems_per_k"] == {"1": 5, "2": 5, "4": 5}
    assert set(s["maj_at_k_ci95"]) == set(s["pass_hat_k_ci95"]) == {"1", "2", "4"}
    assert s["maj_at_k"]["1"] == pytest.approx(s["pass_at_k"]["1"])  # one vote: pass@1
    assert "by_source" not in s
    assert s["reward_errors"] == sum(e is not None for p in result.problems for e in p.errors)
    assert s["mean_entropy"] > 0 and 1 <= s["mean_length"] <= 12
    json.dumps(result.to_dict(), allow_nan=False)  # JSON-ready


def test_same_seed_same_result_and_overrides(tiny_model, tiny_tokenizer):
    task = ParityTask()
    probs = task.problems("test", 2)
    a = evaluate(tiny_model, tiny_tokenizer, task, probs, n=3, max_new_tokens=6, score_timeout=None)
    b = evaluate(
        tiny_model,
        tiny_tokenizer,
        task,
        probs,
        n=3,
        max_new_tokens=6,
        batch_size=2,
        score_timeout=None,
    )
    assert [p.completions for p in a.problems] == [p.completions for p in b.problems]
    assert a.config.n == 3


def test_ctrl_c_keeps_finished_problems(tiny_model, tiny_tokenizer):
    task = ParityTask()
    seen = []

    def on_problem(pr):
        seen.append(pr.id)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(EvalInterrupted) as info:
        evaluate(
            tiny_model,
            tiny_tokenizer,
            task,
            task.problems("test", 6),
            n=2,
            max_new_tokens=4,
            batch_size=2,
            score_timeout=None,
            on_problem=on_problem,
        )
    partial = info.value.partial
    assert partial.interrupted and [p.id for p in partial.problems] == ["q0", "q1", "q2"]
    s = partial.summary()
    assert s["num_problems"] == 3 and s["interrupted"] and "1" in s["pass_at_k"]


def test_config_validation_and_atomic_write(tmp_path):
    with pytest.raises(ValueError, match=r"k must be in 1\.\.n"):
        EvalConfig(n=4, ks=(8,))
    assert EvalConfig(n=6).resolved_ks()[:3] == [1, 2, 4]
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "x.json", {"bad": math.nan})
    assert list(tmp_path.iterdir()) == []  # the failed write left no temp file


def test_auto_batch_size_and_sampler_stats(tiny_model_eos, tiny_tokenizer):
    task = ParityTask()
    cfg = EvalConfig(n=3, max_new_tokens=6, score_timeout=None, num_resamples=50)
    assert cfg.batch_size == "auto"
    result = evaluate(tiny_model_eos, tiny_tokenizer, task, task.problems("test", 4), config=cfg)
    s = result.summary()
    assert s["sampler"]["rollout/batch_size"] == 12  # all 12 sequences fit at once
    assert s["sampler"]["rollout/static_fallback"] == 0.0
    assert json.loads(json.dumps(s))["sampler"] == s["sampler"]


@pytest.mark.parametrize("bad", [0, -1, "big", 1.5, True])
def test_bad_batch_size_is_rejected(bad):
    with pytest.raises(ValueError, match=f"batch_size.*{bad!r}"):
        EvalConfig(batch_size=bad)


def test_samples_in_eval_mode_and_restores_train_mode(tiny_model, tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**(tiny_model.config.to_dict() | {"attention_dropout": 0.5}))
    model = LlamaForCausalLM(config)
    model.load_state_dict(tiny_model.state_dict())
    task = ParityTask()
    cfg = EvalConfig(n=2, max_new_tokens=8, score_timeout=None, num_resamples=20)
    model.eval()
    reference = evaluate(model, tiny_tokenizer, task, task.problems("test", 2), config=cfg)
    model.train()
    in_train = evaluate(model, tiny_tokenizer, task, task.problems("test", 2), config=cfg)
    assert model.training
    assert [p.completions for p in in_train.problems] == [p.completions for p in reference.problems]


def test_progress_lines_report_each_tenth_once_with_the_time_left():
    now = [0.0]
    lines: list[str] = []
    tick = progress_lines(lines.append, 20, "eval at step 5", clock=lambda: now[0])
    for _ in range(20):
        now[0] += 3.0  # one sample every 3 s
        tick(1)
    assert len(lines) == 10
    assert lines[0] == "eval at step 5: 2/20 samples (10%), 0.1 min elapsed, ~0.9 min left"
    assert lines[-1].startswith("eval at step 5: 20/20 samples (100%), 1.0 min elapsed")
    # a batch of finished samples that crosses several marks gives one line
    lines.clear()
    tick = progress_lines(lines.append, 100, clock=lambda: 1.0)
    tick(35)
    tick(65)
    assert [line.split(",")[0] for line in lines] == [
        "eval: 35/100 samples (35%)",
        "eval: 100/100 samples (100%)",
    ]
    # fewer samples than parts: a line per sample, never a repeated mark
    lines.clear()
    tick = progress_lines(lines.append, 3)
    for _ in range(3):
        tick(1)
    assert len(lines) == 3


@pytest.mark.parametrize("total, parts", [(0, 10), (5, 0)])
def test_progress_lines_reject_empty_totals(total, parts):
    with pytest.raises(ValueError, match=f"total={total} and parts={parts}"):
        progress_lines(print, total, parts=parts)
