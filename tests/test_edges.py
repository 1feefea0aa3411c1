"""Bad input at the edges, met through the real CLI: one ``error:`` line and exit code 2,
no traceback; an interrupted scorer exits quietly; bad rewards are counted, not trained on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def passk(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env or ENV,
        cwd=ROOT,
    )


def one_error_line(result: subprocess.CompletedProcess, command: str = "eval") -> str:
    """The run failed with exit 2 and exactly one stderr line, the ``error:`` line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"passk {command}: error: "), result.stderr
    return lines[0]


def eval_cli(model: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return passk("eval", "--model", model, "--out", out, "--problems", "1", "--n", "1", *args)


# --- 1. task options -------------------------------------------------------------------------

BAD_OPTIONS = [
    ("add", "digits=abc", ["digits='abc'", "an integer"]),
    ("add", "digits=40", ["digits=40", "1..18"]),
    ("add", "partial_credit=yes", ["partial_credit='yes'", "true or false"]),
    ("add", "digitz=3", ["unknown option digitz=3", "valid: ", "digits"]),
    ("chain", "terms=1", ["terms=1", ">= 2"]),
    ("mul1", "format_weight=2", ["format_weight=2", "[0, 1]"]),
    ("mul1", "template=no-placeholder{x}", ["template=", "{expression}"]),
    ("code", "difficulty=abc", ["difficulty='abc'", "an integer"]),
    ("code", "difficulty=7", ["difficulty=7", "1, 2 or 3"]),
    ("code", 'families=["nope"]', ["families=['nope']", "unknown code families: nope"]),
    ("code", "timeout_s=-1", ["timeout_s=-1", "> 0"]),
    ("jsonl", "path=/no/such/file.jsonl", ["/no/such/file.jsonl", "No such file"]),
    ("math", "verifier=fuzzy", ["verifier='fuzzy'", "exact, math, numeric"]),
    ("math", "test_fraction=abc", ["test_fraction='abc'", "a number"]),
]
if importlib.util.find_spec("reasoning_gym") is not None:
    BAD_OPTIONS += [
        ("rg:leg_counting", "test_fraction=abc", ["test_fraction='abc'", "a number"]),
        ("rg:leg_counting", 'config={"nope": 1}', ["config=", "nope"]),
        ("rg:leg_counting", "colour=1", ["unknown option colour=1", "config"]),
    ]


@pytest.mark.parametrize("task, option, expected", BAD_OPTIONS)
def test_a_bad_task_option_is_one_line_naming_it(tiny_checkpoint, tmp_path, task, option, expected):
    line = one_error_line(
        eval_cli(tiny_checkpoint, tmp_path / "out", "--task", task, "--task-option", option)
    )
    for text in expected:
        assert text in line, line
    assert not (tmp_path / "out").exists()  # failed before the model loaded


def test_train_reports_a_bad_task_option_the_same_way(tiny_checkpoint, tmp_path):
    result = passk(
        "train",
        "--set", "task.name=add",
        "--set", "task.options.digits=abc",
        "--set", f"model.name={tiny_checkpoint}",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert "digits='abc'" in one_error_line(result, "train")


# --- 2. model directories --------------------------------------------------------------------


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(checkpoint, target)
    return target


def test_junk_safetensors_is_named(tiny_checkpoint, tmp_path):
    model = _copy(tiny_checkpoint, tmp_path)
    (model / "model.safetensors").write_text("junk\n")
    line = one_error_line(eval_cli(model, tmp_path / "out"))
    assert f"{model / 'model.safetensors'} is not a safetensors file" in line


def test_truncated_safetensors_is_named(tiny_checkpoint, tmp_path):
    model = _copy(tiny_checkpoint, tmp_path)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    line = one_error_line(eval_cli(model, tmp_path / "out"))
    assert f"{weights} is truncated" in line


def test_weights_that_do_not_fit_the_config_are_named(tiny_checkpoint, tmp_path):
    model = _copy(tiny_checkpoint, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["hidden_size"] *= 2
    (model / "config.json").write_text(json.dumps(config))
    line = one_error_line(eval_cli(model, tmp_path / "out"))
    assert "model.safetensors does not fit" in line and "config.json" in line
    assert "has shape" in line and "the config implies" in line


def test_a_directory_without_config_json(tiny_checkpoint, tmp_path):
    model = _copy(tiny_checkpoint, tmp_path)
    (model / "config.json").unlink()
    line = one_error_line(eval_cli(model, tmp_path / "out"))
    assert "has no config.json" in line and "valid choices are 'embedded'" in line


def test_a_model_path_that_does_not_exist(tmp_path):
    line = one_error_line(eval_cli(tmp_path / "nope", tmp_path / "out"))
    assert f"{tmp_path / 'nope'}': the path does not exist" in line and "'embedded'" in line


# --- 3. Ctrl-C and the scoring worker --------------------------------------------------------

SCORING_SCRIPT = """
import sys, time
from passk.tasks.arithmetic import Mul1Task
from passk.tasks.guard import SafeScorer


def main():
    task = Mul1Task()
    p = task.problems("test", 1)[0]
    scorer = SafeScorer(task, timeout=30.0)
    print("starting", flush=True)
    print("scored", scorer.score(p, f"= {p.answer}").correct, flush=True)
    while True:  # keep the worker busy: a Ctrl-C can come at any point of a round trip
        scorer.score(p, "= 3")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
"""


@pytest.mark.parametrize(
    "wait_for, delay, group",
    [
        ("starting", 0.3, False),  # the parent dies while its worker starts up
        ("starting", 0.3, True),  # a terminal Ctrl-C while the forkserver imports
        ("scored", 0.5, False),  # after a score, mid-loop
        ("scored", 0.5, True),
    ],
)
def test_ctrl_c_leaves_no_traceback_from_the_worker(tmp_path, wait_for, delay, group):
    script = tmp_path / "score_loop.py"
    script.write_text(textwrap.dedent(SCORING_SCRIPT))
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,  # its own process group, like a terminal's job
    )
    try:
        while (line := child.stdout.readline()) and not line.startswith(wait_for):
            pass
        assert line.startswith(wait_for), child.stderr.read()
        time.sleep(delay)
        if group:
            os.killpg(child.pid, signal.SIGINT)
        else:
            os.kill(child.pid, signal.SIGINT)
        # communicate waits until every holder of stderr (worker, forkserver) is done
        try:
            _, stderr = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # which process of the session is still there, and where it waits
            ps = subprocess.run(
                ["ps", "-s", str(child.pid), "-o", "pid,ppid,stat,wchan:24,args"],
                capture_output=True,
                text=True,
            )
            pytest.fail(f"no exit 60 s after SIGINT; the session's processes:\n{ps.stdout}")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


# --- 4. JSONL line numbers -------------------------------------------------------------------


def test_jsonl_errors_count_lines_from_one(tiny_checkpoint, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "a", "answer": "1"}\n\n{"prompt": "b"}\n')
    line = one_error_line(
        eval_cli(tiny_checkpoint, tmp_path / "out", "--task", "jsonl", "--task-option",
                 f"path={data}")
    )  # fmt: skip
    assert f"{data}:3: lacks 'prompt' or 'answer'" in line


@pytest.mark.parametrize("task", ["jsonl", "code_jsonl"])
def test_a_non_utf8_byte_names_file_and_line(tiny_checkpoint, tmp_path, task):
    data = tmp_path / "data.jsonl"
    good = json.dumps({"prompt": "a", "answer": "1", "entrypoint": "f", "tests": ["assert 1"]})
    data.write_bytes(good.encode() + b"\n" + b'{"prompt": "caf\xe9", "answer": "2"}\n')
    line = one_error_line(
        eval_cli(tiny_checkpoint, tmp_path / "out", "--task", task, "--task-option",
                 f"path={data}")
    )  # fmt: skip
    assert f"{data}:2: not UTF-8 (byte 0xe9 at column 16)" in line


# --- 5. out-of-range user rewards through passk eval -------------------------------------------


def test_an_out_of_range_user_reward_is_counted_and_reported_once(tiny_checkpoint, tmp_path):
    (tmp_path / "my_rewards.py").write_text("def five(completion, answer):\n    return 5.0\n")
    env = {**ENV, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ENV['PYTHONPATH']}"}
    out = tmp_path / "out"
    result = passk(
        "eval", "--model", tiny_checkpoint, "--task", "mul1", "--reward", "my_rewards:five",
        "--problems", "2", "--n", "2", "--max-new-tokens", "4", "--dtype", "fp32",
        "--device", "cpu", "--no-plots", "--out", out,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "eval.json").read_text())
    assert report["reward_errors"] == 4 and report["score_timeouts"] == 0
    assert report["mean_reward"] == 0.0  # scored 0, not 5
    warned = [line for line in result.stderr.splitlines() if line.startswith("passk: warning:")]
    assert len(warned) == 1 and "returned 5.0" in warned[0] and "[0, 1]" in warned[0]
