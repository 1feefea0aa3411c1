"""``passk eval --samples`` (passk and verl layouts) and ``--endpoint``, without a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from passk.core.majority import maj_at_k
from passk.core.metrics import pass_at_k, pass_hat_k
from passk.eval.endpoint import EndpointStats
from passk.eval.evaluate import EvalConfig
from passk.eval.samples import (
    SamplesError,
    prompt_problem_id,
    read_samples,
    read_verl_dump,
    resolve_problems,
    score_samples,
)
from passk.tasks.arithmetic import Mul1Task


def _write_jsonl(path: Path, rows: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _passk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=env,
    )


def _cli(argv: list[str]) -> int:
    from passk.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


# 3 problems: "a" (4 samples, source x), "b" (2 samples by score, source y), "c" (4, source x)
ROWS = [
    {"problem_id": "a", "correct": True, "answer": "4", "source": "x"},
    {"problem_id": "a", "correct": True, "answer": "4", "source": "x"},
    {"problem_id": "a", "correct": False, "answer": "5", "source": "x"},
    {"problem_id": "a", "correct": False, "source": "x"},
    {"problem_id": "b", "score": 0.25, "answer": 1, "source": "y"},
    {"problem_id": "b", "score": 1.0, "answer": 2, "source": "y"},
    {"problem_id": 7, "correct": False, "answer": "9", "source": "x"},
    {"problem_id": 7, "correct": False, "answer": "9", "source": "x"},
    {"problem_id": 7, "correct": True, "answer": "3", "source": "x"},
    {"problem_id": 7, "correct": False, "answer": "8", "source": "x"},
]


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ({"correct": True}, "needs a 'problem_id'"),
        ({"problem_id": True, "correct": True}, "needs a 'problem_id'"),
        ({"problem_id": "a"}, "needs one of 'correct' (bool), 'score' (number) or 'response'"),
        ({"problem_id": "a", "correct": 1}, "correct must be true or false, got 1"),
        ({"problem_id": "a", "score": "high"}, "score must be a finite number"),
        ('{"problem_id": "a", "score": NaN}', "score must be a finite number"),
        ({"problem_id": "a", "response": "42"}, "pass --task NAME"),
        ({"problem_id": "a", "response": 42, "correct": True}, "response must be a string"),
    ],
)
def test_a_malformed_line_is_named_by_its_number(tmp_path, bad, message):
    path = _write_jsonl(tmp_path / "s.jsonl", [ROWS[0], "", ROWS[1], bad, ROWS[2]])
    with pytest.raises(SamplesError) as info:
        read_samples(path)
    assert str(info.value).startswith(f"{path}:4: ")  # the blank line 2 still counts
    assert message in str(info.value)


def test_score_range_and_empty_file(tmp_path):
    path = _write_jsonl(tmp_path / "s.jsonl", [{"problem_id": "a", "score": 1.5}])
    assert read_samples(path)[0].score == 1.5  # no declared range: any finite number
    with pytest.raises(SamplesError, match=r":1: score 1.5 is outside the declared range"):
        read_samples(path, score_range=(0.0, 1.0))
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(SamplesError, match="no samples"):
        read_samples(tmp_path / "e.jsonl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_samples(tmp_path / "missing.jsonl")


def test_records_and_scoring_without_a_task(tmp_path):
    records = read_samples(_write_jsonl(tmp_path / "s.jsonl", ROWS))
    assert [r.line for r in records] == list(range(1, 11))
    assert records[4].answer == "1" and records[6].problem_id == "7"  # numbers as text
    result = score_samples(records, EvalConfig(n=4, num_resamples=50), correct_threshold=1.0)
    by_id = {p.id: p for p in result.problems}
    assert [p.id for p in result.problems] == ["a", "b", "7"]
    assert by_id["b"].correct == [False, True] and by_id["b"].rewards == [0.25, 1.0]
    assert by_id["a"].extracted == ["4", "4", "5", None] and by_id["a"].source == "x"
    s = result.summary()
    assert s["problems_per_k"] == {"1": 3, "2": 3, "4": 2}
    assert s["pass_at_k"]["4"] == pytest.approx((pass_at_k(4, 2, 4) + pass_at_k(4, 1, 4)) / 2)
    assert s["pass_hat_k"]["2"] == pytest.approx(
        (pass_hat_k(4, 2, 2) + pass_hat_k(2, 1, 2) + pass_hat_k(4, 1, 2)) / 3
    )
    maj2 = [
        maj_at_k(["4", "4", "5", None], [True, True, False, False], 2),
        maj_at_k(["1", "2"], [False, True], 2),
        maj_at_k(["9", "9", "3", "8"], [False, False, True, False], 2),
    ]
    assert s["maj_at_k"]["2"] == pytest.approx(sum(maj2) / 3)
    assert set(s["by_source"]) == {"x", "y"}
    assert s["by_source"]["y"]["num_problems"] == 1
    assert s["by_source"]["y"]["problems_per_k"] == {"1": 1, "2": 1}
    assert "4" not in s["by_source"]["y"]["pass_at_k"]  # y's problem has 2 samples
    assert s["by_source"]["x"]["maj_at_k"]["2"] == pytest.approx((maj2[0] + maj2[2]) / 2)
    for key in ("ci95", "pass_hat_k_ci95", "maj_at_k_ci95"):
        assert set(s[key]) == {"1", "2", "4"}
    assert s["mean_length"] is None and s["truncated_fraction"] is None


def test_no_answers_means_no_maj_at_k(tmp_path):
    rows = [{"problem_id": "a", "correct": c} for c in (True, False)]
    result = score_samples(read_samples(_write_jsonl(tmp_path / "s.jsonl", rows)), EvalConfig(n=2))
    s = result.summary()
    assert s["maj_at_k"] == {} and s["pass_at_k"]["1"] == pytest.approx(0.5)
    assert "by_source" not in s


# --------------------------------------------------------------------------- task scoring


def test_responses_scored_by_the_task_with_its_own_extraction(tmp_path):
    task = Mul1Task()
    probs = task.problems("test", 2)
    p0, p1 = probs
    rows = [
        {"problem_id": p0.id, "response": f"so \\boxed{{{p0.answer}}}", "answer": "ignored"},
        {"problem_id": p0.id, "response": "I have no idea"},  # nothing extracted: wrong
        {"problem_id": p0.id, "response": "= 1", "correct": True},  # the task decides
        {"problem_id": "custom", "response": "= 12", "answer_ref": "12", "prompt": "3*4?"},
        {"problem_id": p1.id, "correct": True},  # no response: its flag
    ]
    records = read_samples(_write_jsonl(tmp_path / "s.jsonl", rows), has_task=True)
    problems = resolve_problems(records, lambda count: task.problems("test", 16))
    assert problems[(None, "custom")].answer == "12" and problems[(None, p0.id)] == p0
    result = score_samples(
        records, EvalConfig(n=3, score_timeout=None), task=task, problems=problems
    )
    by_id = {p.id: p for p in result.problems}
    assert by_id[p0.id].correct == [True, False, False]
    assert by_id[p0.id].extracted == [p0.answer, None, "1"]
    assert by_id[p0.id].prompt == p0.prompt and by_id[p0.id].answer == p0.answer
    assert by_id["custom"].correct == [True] and by_id["custom"].prompt == "3*4?"
    assert by_id[p1.id].correct == [True]
    assert result.reward_errors == 0


def test_unknown_problem_id_is_a_clear_error(tmp_path):
    rows = [{"problem_id": "mul1/2*3", "response": "6"}, {"problem_id": "nope", "response": "1"}]
    records = read_samples(_write_jsonl(tmp_path / "s.jsonl", rows), has_task=True)
    task = Mul1Task()
    with pytest.raises(
        SamplesError, match=r"line 2: 1 problem_id\(s\) unknown to the task \('nope'\)"
    ):
        resolve_problems(
            records, lambda count: task.problems("test", 64) + task.problems("train", 64)
        )


# --------------------------------------------------------------------------- verl dumps


def _verl_fields(n_per_prompt: int = 2) -> dict:
    inputs, outputs, gts, scores = [], [], [], []
    extra: dict[str, list] = {"reward": [], "acc": [], "pred": []}
    for prompt, truth, answers in [
        ("user\nWhat is 2*3?\nassistant\n", "6", ["6", "5"]),
        ("user\nWhat is 4*4?\nassistant\n", "16", ["16", "16"]),
    ]:
        for a in answers[:n_per_prompt]:
            inputs.append(prompt)
            outputs.append(f"The answer is \\boxed{{{a}}}")
            gts.append(truth)
            ok = a == truth
            scores.append(1.0 if ok else -1.0)  # math_dapo's scores
            extra["reward"].append(scores[-1])
            extra["acc"].append(ok)
            extra["pred"].append(a)
    return {"inputs": inputs, "outputs": outputs, "gts": gts, "scores": scores, "extra": extra}


def _write_verl_like(path: Path, step: int = 3) -> Path:
    """verl 0.9.1 ``RayPPOTrainer._write_generations``'s layout, field for field."""
    f = _verl_fields()
    with path.open("w") as out:
        for i in range(len(f["inputs"])):
            entry = {
                "input": f["inputs"][i],
                "output": f["outputs"][i],
                "gts": f["gts"][i],
                "score": f["scores"][i],
                "step": step,
            } | {k: v[i] for k, v in f["extra"].items()}
            out.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
    return path


def _check_verl_records(path: Path) -> None:
    records = read_verl_dump(path)
    assert len(records) == 4
    first = records[0]
    assert first.problem_id == prompt_problem_id("user\nWhat is 2*3?\nassistant\n")
    assert first.prompt.startswith("user\nWhat is 2*3?")
    assert first.correct is True and first.score == 1.0 and first.answer == "6"
    assert first.answer_ref == "6" and first.response.endswith("\\boxed{6}")
    result = score_samples(records, EvalConfig(n=2, num_resamples=20))
    assert [p.c for p in result.problems] == [1, 2]
    assert result.summary()["maj_at_k"]["2"] == pytest.approx((0.5 + 1.0) / 2)


def test_verl_dump_layout_reproduced(tmp_path):
    _check_verl_records(_write_verl_like(tmp_path / "3.jsonl"))


def test_verl_dump_written_by_verl_itself(tmp_path):
    pytest.importorskip("verl")
    ray_trainer = pytest.importorskip("verl.trainer.ppo.ray_trainer")
    f = _verl_fields()
    ray_trainer.RayPPOTrainer._write_generations(
        f["inputs"], f["outputs"], f["gts"], f["scores"], f["extra"], str(tmp_path), 3
    )
    written = tmp_path / "3.jsonl"
    assert written.read_text() == _write_verl_like(tmp_path / "copy.jsonl").read_text()
    _check_verl_records(written)


def test_verl_dump_errors_and_task_scoring(tmp_path):
    path = _write_verl_like(tmp_path / "3.jsonl")
    with path.open("a") as f:
        f.write(json.dumps({"input": "p", "output": "o", "score": 1.0, "step": 4}) + "\n")
    with pytest.raises(SamplesError, match=r":5: step 4 in a file that began with step 3"):
        read_verl_dump(path)
    _write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "response": "o"}])
    with pytest.raises(SamplesError, match=r"bad.jsonl:1: a verl validation dump line needs"):
        read_verl_dump(tmp_path / "bad.jsonl")
    # with a task the output is scored against gts, whatever verl's own score said
    rows = [{"input": "q", "output": "= 7", "gts": "7", "score": -1.0, "step": 1}]
    records = read_verl_dump(_write_jsonl(tmp_path / "1.jsonl", rows), has_task=True)
    problems = resolve_problems(records, lambda count: [])
    result = score_samples(
        records, EvalConfig(n=1, score_timeout=None), task=Mul1Task(), problems=problems
    )
    assert result.problems[0].correct == [True]


# --------------------------------------------------------------------------- CLI


def test_cli_end_to_end_on_a_small_jsonl(tmp_path):
    _write_jsonl(tmp_path / "s.jsonl", ROWS)
    proc = _passk(
        "eval", "--samples", "s.jsonl", "--num-resamples", "100", "--out", "ev", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = tmp_path / "ev"
    for name in ("eval.json", "passk_curve.png", "maj_curve.png", "pass1_hist.png"):
        assert (d / name).read_bytes()[:4] in (b"\x89PNG", b'{\n "')
    report = json.loads((d / "eval.json").read_text())
    for key in ("pass_at_k", "ci95", "pass_hat_k", "pass_hat_k_ci95", "maj_at_k", "maj_at_k_ci95",
                "problems_per_k", "by_source", "per_problem", "config", "run", "model"):  # fmt: skip
        assert key in report, key
    assert report["problems_per_k"] == {"1": 3, "2": 3, "4": 2}
    assert report["run"]["samples_per_problem"] == {"min": 2, "max": 4}
    assert report["model"]["name"] == "s" and report["config"]["n"] == 4
    assert report["per_problem"][1]["source"] == "y"
    for word in ("pass@k", "pass^k", "maj@k"):
        assert word in proc.stdout
    # a finished report is kept unless --overwrite
    again = _passk("eval", "--samples", "s.jsonl", "--out", "ev", cwd=tmp_path)
    assert again.returncode == 2 and "finished report" in again.stderr


def test_cli_malformed_line_exits_2_before_writing(tmp_path):
    _write_jsonl(tmp_path / "s.jsonl", [ROWS[0], ROWS[1], {"problem_id": "a", "score": "x"}])
    proc = _passk("eval", "--samples", "s.jsonl", "--out", "ev", cwd=tmp_path)
    assert proc.returncode == 2
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert lines == ["passk eval: error: s.jsonl:3: score must be a finite number, got 'x'"]
    assert not (tmp_path / "ev").exists()


def test_cli_task_scoring_unknown_id_and_bad_k(tmp_path, capsys):
    task = Mul1Task()
    p = task.problems("test", 1)[0]
    _write_jsonl(tmp_path / "s.jsonl", [{"problem_id": p.id, "response": f"= {p.answer}"}] * 2)
    out = tmp_path / "ev"
    argv = ["eval", "--samples", str(tmp_path / "s.jsonl"), "--task", "mul1", "--no-plots",
            "--num-resamples", "20", "--score-timeout", "0", "--out", str(out)]  # fmt: skip
    assert _cli(argv) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["pass_at_k"]["2"] == 1.0 and report["maj_at_k"]["2"] == pytest.approx(1.0)
    assert report["per_problem"][0]["extracted"] == [p.answer, p.answer]
    assert _cli([*argv, "--overwrite", "--k", "4"]) == 2
    assert "--k [4] exceeds the most samples any problem has (2)" in capsys.readouterr().err
    _write_jsonl(tmp_path / "u.jsonl", [{"problem_id": "mul1/0*0", "response": "0"}])
    argv[2] = str(tmp_path / "u.jsonl")
    assert _cli([*argv, "--overwrite"]) == 2
    assert "unknown to the task ('mul1/0*0')" in capsys.readouterr().err


def test_cli_verl_format(tmp_path):
    _write_verl_like(tmp_path / "3.jsonl")
    out = tmp_path / "ev"
    argv = ["eval", "--samples", str(tmp_path / "3.jsonl"), "--samples-format", "verl",
            "--no-plots", "--num-resamples", "20", "--out", str(out)]  # fmt: skip
    assert _cli(argv) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["num_problems"] == 2 and report["pass_at_k"]["1"] == pytest.approx(0.75)
    assert report["run"]["samples_format"] == "verl"


def test_ctrl_c_during_scoring_writes_a_partial_report(tmp_path, monkeypatch):
    from passk.eval import samples as samples_mod

    real = samples_mod._score_problem
    seen = []

    def interrupted(*args, **kwargs):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(samples_mod, "_score_problem", interrupted)
    _write_jsonl(tmp_path / "s.jsonl", ROWS)
    out = tmp_path / "ev"
    argv = ["eval", "--samples", str(tmp_path / "s.jsonl"), "--num-resamples", "20",
            "--out", str(out)]  # fmt: skip
    assert _cli(argv) == 130
    report = json.loads((out / "eval.json").read_text())
    assert report["interrupted"] and report["num_problems"] == 2
    assert [p["id"] for p in report["per_problem"]] == ["a", "b"]
    assert (out / "passk_curve.png").is_file()
    monkeypatch.setattr(samples_mod, "_score_problem", real)
    assert _cli(argv) == 0  # an interrupted report is replaced without --overwrite
    assert json.loads((out / "eval.json").read_text())["num_problems"] == 3


# --------------------------------------------------------------------------- endpoint


@dataclass(frozen=True)
class FakeConfig:
    url: str
    model: str
    api: str = "chat"
    concurrency: int = 16
    timeout_s: float = 120.0
    retries: int = 5
    api_key: str | None = None


@dataclass(frozen=True)
class FakeRequest:
    problem_id: str
    prompt: str
    system_prompt: str | None = None


class FakeEndpointError(RuntimeError):
    pass


def _fake_endpoint(monkeypatch, *, fail_after=None, interrupt_after=None):
    """A stand-in for passk.eval.endpoint: answers every problem right on samples 0, 1 and
    wrong on the rest; counts the problems it was asked for (the 'cache': asked ones)."""
    calls: list[dict] = []
    cache: dict[str, list[str]] = {}

    def sample_endpoint(cfg, requests, *, n, temperature, top_p, max_tokens, seed,
                        cache_path, progress=None, stats=None):  # fmt: skip
        calls.append({"cfg": cfg, "requests": list(requests), "n": n, "temperature": temperature,
                      "top_p": top_p, "max_tokens": max_tokens, "seed": seed,
                      "cache_path": Path(cache_path)})  # fmt: skip
        out = {}
        for i, req in enumerate(requests):
            done = len(cache)
            if interrupt_after is not None and done >= interrupt_after:
                raise KeyboardInterrupt
            if fail_after is not None and done >= fail_after:
                raise FakeEndpointError("server at http://x/v1 stayed down after 5 retries")
            expression = req.prompt.split("What is ")[1].split("?")[0]
            a, b = (int(x) for x in expression.replace("×", "*").replace("x", "*").split("*"))
            texts = [f"\\boxed{{{a * b}}}" if j < 2 else "\\boxed{0}" for j in range(n)]
            cache.setdefault(req.problem_id, texts)
            out[req.problem_id] = cache[req.problem_id]
            if progress is not None:
                progress((i + 1) * n, len(requests) * n)
        return out

    module = types.ModuleType("passk.eval.endpoint")
    module.EndpointConfig = FakeConfig
    module.EndpointRequest = FakeRequest
    module.EndpointError = FakeEndpointError
    module.EndpointStats = EndpointStats
    module.sample_endpoint = sample_endpoint
    module.served_model_info = lambda cfg: {
        "id": cfg.model,
        "object": "model",
        "max_model_len": 4096,
    }
    monkeypatch.setitem(sys.modules, "passk.eval.endpoint", module)
    import passk.eval

    monkeypatch.setattr(passk.eval, "endpoint", module, raising=False)
    return calls, cache


def _endpoint_argv(out: Path, *extra: str) -> list[str]:
    return ["eval", "--endpoint", "http://x/v1", "--served-model", "m", "--task", "mul1",
            "--problems", "5", "--n", "4", "--concurrency", "1", "--no-plots",
            "--num-resamples", "20", "--score-timeout", "0", "--out", str(out), *extra]  # fmt: skip


def test_endpoint_wiring(tmp_path, monkeypatch):
    calls, _ = _fake_endpoint(monkeypatch)
    out = tmp_path / "ev"
    argv = _endpoint_argv(out, "--system-prompt", "Be brief.", "--temperature", "0.6")
    assert _cli(argv) == 0
    first = calls[0]
    assert first["cfg"] == FakeConfig("http://x/v1", "m", "chat", 1, 120.0, 5)
    assert first["n"] == 4 and first["temperature"] == 0.6 and first["max_tokens"] == 256
    assert first["cache_path"] == out / "endpoint_cache.jsonl" and first["seed"] == 0
    problems = Mul1Task().problems("test", 5)
    asked = [r for c in calls for r in c["requests"]]
    assert [r.problem_id for r in asked] == [p.id for p in problems]
    assert asked[0] == FakeRequest(problems[0].id, problems[0].prompt, "Be brief.")
    assert len(calls) == 3  # chunks of ceil(8 * concurrency / n) = 2 problems
    report = json.loads((out / "eval.json").read_text())
    assert report["served_model"]["id"] == "m" and report["model"]["name"] == "m"
    assert report["num_problems"] == 5 and report["pass_at_k"]["1"] == pytest.approx(0.5)
    assert report["pass_hat_k"]["4"] == 0.0 and report["maj_at_k"]["4"] == pytest.approx(0.5)
    assert report["run"]["endpoint"] == "http://x/v1" and not report["interrupted"]
    # completions: the raw prompt, the system prompt and a blank line first
    calls.clear()
    assert _cli([*argv, "--api", "completions", "--overwrite"]) == 0
    req = calls[0]["requests"][0]
    assert req.prompt == f"Be brief.\n\n{problems[0].prompt}" and req.system_prompt is None


def test_endpoint_error_is_exit_2_with_a_partial_report(tmp_path, monkeypatch, capsys):
    _fake_endpoint(monkeypatch, fail_after=2)
    out = tmp_path / "ev"
    assert _cli(_endpoint_argv(out)) == 2
    err = capsys.readouterr().err
    assert "passk eval: error: server at http://x/v1 stayed down" in err
    assert "2 of 5 problems sampled" in err and "rerun with the same --out" in err
    report = json.loads((out / "eval.json").read_text())
    assert report["interrupted"] and report["num_problems"] == 2


def test_endpoint_ctrl_c_then_resume(tmp_path, monkeypatch):
    _, cache = _fake_endpoint(monkeypatch, interrupt_after=3)
    out = tmp_path / "ev"
    assert _cli(_endpoint_argv(out)) == 130
    report = json.loads((out / "eval.json").read_text())
    assert report["interrupted"] and report["num_problems"] == 2  # the finished chunk
    assert len(cache) == 3  # the third problem is in the cache, for the rerun
    _fake_endpoint(monkeypatch)
    assert _cli(_endpoint_argv(out)) == 0  # no --overwrite needed: the report was partial
    report = json.loads((out / "eval.json").read_text())
    assert report["num_problems"] == 5 and not report["interrupted"]


def test_endpoint_flags_are_checked(tmp_path, capsys):
    assert _cli(["eval", "--endpoint", "http://x", "--out", str(tmp_path / "o")]) == 2
    assert "--endpoint needs --served-model" in capsys.readouterr().err
    argv = ["eval", "--endpoint", "http://x", "--served-model", "m", "--concurrency", "0",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert _cli(argv) == 2
    assert "--concurrency must be >= 1" in capsys.readouterr().err
    argv = ["eval", "--samples", "s.jsonl", "--model", "embedded", "--out", str(tmp_path / "o")]
    assert _cli(argv) == 2
    assert "--model samples a local model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_endpoint_down_at_the_start_is_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    _fake_endpoint(monkeypatch)
    module = sys.modules["passk.eval.endpoint"]

    def down(cfg):
        raise FakeEndpointError(f"endpoint {cfg.url}/models failed 6 times: connection refused")

    monkeypatch.setattr(module, "served_model_info", down)
    out = tmp_path / "ev"
    assert _cli(_endpoint_argv(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "passk eval: error: endpoint http://x/v1/models failed 6 times: connection refused"
    ]
    assert not (out / "eval.json").exists()


def test_endpoint_no_request_seed_sends_none(tmp_path, monkeypatch):
    calls, _ = _fake_endpoint(monkeypatch)
    assert _cli(_endpoint_argv(tmp_path / "ev", "--seed", "3")) == 0
    assert {c["seed"] for c in calls} == {3}
    calls.clear()
    assert _cli(_endpoint_argv(tmp_path / "ev2", "--no-request-seed")) == 0
    assert calls and {c["seed"] for c in calls} == {None}
