"""``passk eval --samples`` as a user meets it: problems keyed on (source, id), the
encodings and streams a file comes in, sampling flags that do not apply, conflicting
verdicts, and what reaches the terminal and the report."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from passk.eval.evaluate import EvalConfig, EvalResult, ProblemResult
from passk.eval.report import tidy_floats
from passk.eval.samples import SamplesError, read_samples, score_samples


def _passk(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *args],
        capture_output=True,
        input=stdin,
        cwd=cwd,
        timeout=300,
        env=env,
    )


def _lines(rows: list[dict]) -> bytes:
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode("utf-8")


def _eval(cwd: Path, samples: str, *extra: str, stdin: bytes | None = None):
    out = cwd / "ev"
    done = _passk(
        "eval", "--samples", samples, "--no-plots", "--num-resamples", "20",
        "--out", str(out), *extra, cwd=cwd, stdin=stdin,
    )  # fmt: skip
    report = json.loads((out / "eval.json").read_text()) if done.returncode == 0 else None
    return done, report


ROWS = [
    {"problem_id": "a", "correct": True},
    {"problem_id": "a", "correct": False},
    {"problem_id": "b", "correct": False},
    {"problem_id": "b", "correct": False},
]


# --------------------------------------------------------------------------- item 3


def test_one_id_under_two_sources_is_two_problems_and_is_said(tmp_path):
    rows = [
        {"problem_id": 5, "source": "gsm8k", "correct": True},
        {"problem_id": 5, "source": "gsm8k", "correct": True},
        {"problem_id": 5, "source": "math", "correct": False},
        {"problem_id": 5, "source": "math", "correct": False},
    ]
    (tmp_path / "s.jsonl").write_bytes(_lines(rows))
    done, report = _eval(tmp_path, "s.jsonl")
    assert done.returncode == 0, done.stderr
    assert report["num_problems"] == 2
    assert set(report["by_source"]) == {"gsm8k", "math"}
    assert report["by_source"]["math"]["pass_at_k"]["1"] == 0.0
    assert report["by_source"]["gsm8k"]["pass_at_k"]["1"] == 1.0
    assert report["run"]["ids_under_several_sources"] == {"5": ["gsm8k", "math"]}
    err = done.stderr.decode()
    assert "1 problem_id(s) occur under several sources" in err and "'5' under gsm8k, math" in err


def test_integer_and_string_forms_of_one_id_are_refused_naming_both_lines(tmp_path):
    rows = [{"problem_id": 5, "correct": True}, ROWS[2], {"problem_id": "5", "correct": False}]
    (tmp_path / "s.jsonl").write_bytes(_lines(rows))
    done, _ = _eval(tmp_path, "s.jsonl")
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [
        "passk eval: error: s.jsonl:3: problem_id '5' is a str but line 1 gave the same id as "
        "a int; write each problem's id one way (both are read as the text '5')"
    ]
    assert not (tmp_path / "ev" / "eval.json").exists()


# --------------------------------------------------------------------------- item 10


@pytest.mark.parametrize(
    "flags",
    [["--n", "8"], ["--problems", "10"], ["--temperature", "0.6", "--top-p", "0.9"]],
    ids=["n", "problems", "temperature"],
)
def test_sampling_flags_are_refused_with_samples(tmp_path, flags):
    (tmp_path / "s.jsonl").write_bytes(_lines(ROWS))
    done, _ = _eval(tmp_path, "s.jsonl", *flags)
    assert done.returncode == 2
    (line,) = done.stderr.decode().strip().splitlines()
    named = [f for f in flags if f.startswith("--")]
    assert line.startswith(f"passk eval: error: {', '.join(named)} say")
    assert "holds samples already drawn" in line and "leave" in line


def test_the_report_records_no_made_up_sampling_settings(tmp_path):
    (tmp_path / "s.jsonl").write_bytes(_lines(ROWS))
    done, report = _eval(tmp_path, "s.jsonl")
    assert done.returncode == 0, done.stderr
    cfg = report["config"]
    assert cfg["n"] == 2  # the file's most samples per problem
    for key in ("temperature", "top_p", "max_new_tokens", "batch_size", "system_prompt"):
        assert cfg[key] is None, key
    assert report["run"]["problems_requested"] is None


def test_correct_decides_a_line_whose_score_disagrees_and_it_is_said(tmp_path):
    rows = [
        {"problem_id": "a", "correct": False, "score": 1},  # conflict: correct decides
        {"problem_id": "a", "correct": True, "score": 1},
        {"problem_id": "b", "correct": True, "score": 0.2},  # conflict
        {"problem_id": "b", "correct": False, "score": 0.0},
    ]
    (tmp_path / "s.jsonl").write_bytes(_lines(rows))
    done, report = _eval(tmp_path, "s.jsonl")
    assert done.returncode == 0, done.stderr
    by_id = {p["id"]: p for p in report["per_problem"]}
    assert by_id["a"]["correct"] == [False, True] and by_id["b"]["correct"] == [True, False]
    assert report["run"]["verdict_conflicts"]["count"] == 2
    assert report["run"]["verdict_conflicts"]["lines"] == [1, 3]
    assert "2 line(s) of s.jsonl carry a 'correct' that disagrees" in done.stderr.decode()


# --------------------------------------------------------------------------- item 11


def test_bom_gzip_and_stdin_are_read(tmp_path):
    data = _lines(ROWS)
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + data)
    with gzip.open(tmp_path / "s.jsonl.gz", "wb") as f:
        f.write(data)
    results = {}
    for name, stdin in (("bom.jsonl", None), ("s.jsonl.gz", None), ("-", data)):
        done, report = _eval(tmp_path, name, "--overwrite", stdin=stdin)
        assert done.returncode == 0, (name, done.stderr)
        results[name] = report["pass_at_k"]
    assert results["bom.jsonl"] == results["s.jsonl.gz"] == results["-"] == {"1": 0.25, "2": 0.5}
    assert report["run"]["samples"] == "<stdin>" and report["model"]["name"] == "<stdin>"


def test_a_damaged_gzip_or_non_utf8_file_is_named(tmp_path):
    with gzip.open(tmp_path / "s.jsonl.gz", "wb") as f:
        f.write(_lines(ROWS * 50))
    blob = (tmp_path / "s.jsonl.gz").read_bytes()
    (tmp_path / "cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    # 500 good lines first: the line named must be the bad one, not where a chunk began
    latin = _lines(ROWS * 125) + b'{"problem_id": "caf\xe9", "correct": true}\n'
    (tmp_path / "latin.jsonl").write_bytes(latin)
    for name, message in (
        ("cut.jsonl.gz", "cut.jsonl.gz:"),
        ("latin.jsonl", "latin.jsonl:501: not UTF-8 text (byte b'\\xe9')"),
    ):
        done, _ = _eval(tmp_path, name)
        assert done.returncode == 2, name
        (line,) = done.stderr.decode().strip().splitlines()
        assert line.startswith(f"passk eval: error: {message}"), line


def test_a_verl_dump_read_as_passk_format_hints_the_flag(tmp_path):
    row = {"input": "What is 2*3?", "output": "6", "gts": "6", "score": 1.0, "step": 3}
    (tmp_path / "3.jsonl").write_bytes(_lines([row]))
    done, _ = _eval(tmp_path, "3.jsonl")
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "3.jsonl:1: no 'problem_id'" in err and "pass --samples-format verl" in err


def test_unknown_task_ids_name_the_file(tmp_path):
    rows = [{"problem_id": "nope-1", "response": "\\boxed{1}"}]
    (tmp_path / "s.jsonl").write_bytes(_lines(rows))
    done, _ = _eval(tmp_path, "s.jsonl", "--task", "mul1")
    assert done.returncode == 2
    (line,) = done.stderr.decode().strip().splitlines()
    assert line.startswith("passk eval: error: s.jsonl:1: 1 problem_id(s) unknown to the task")


def test_help_config_explains_instead_of_asking_for_out(tmp_path):
    done = _passk("eval", "--help-config", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert out.startswith("passk eval takes no config file")
    assert "--training-eval" in out and "required" not in done.stderr.decode()


# --------------------------------------------------------------------------- item 12


def test_control_characters_in_a_source_are_escaped_on_the_terminal(tmp_path):
    rows = [{"problem_id": "a", "correct": True, "source": "math\u202etxt.exe\x1b[31m"}]
    (tmp_path / "s.jsonl").write_bytes(_lines(rows))
    done, report = _eval(tmp_path, "s.jsonl")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "\u202e" not in out and "\x1b[31m" not in out
    assert "math\\u202etxt.exe\\u001b[31m: 1 problems" in out
    assert list(report["by_source"]) == ["math\u202etxt.exe\x1b[31m"]  # the data is kept


def test_report_floats_carry_no_binary_noise():
    """Two problems of n = 4 with c = 0 and 1: pass@1 is 1/8, computed as
    0.12499999999999994; the report says 0.125 (15 significant digits)."""
    config = EvalConfig(n=4, ks=(1,), num_resamples=5)
    problems = [
        ProblemResult(
            f"p{c}",
            "",
            "",
            4,
            c,
            [0.0] * 4,
            [True] * c + [False] * (4 - c),
            [None] * 4,
            [],
            [],
            None,
            [None] * 4,
        )
        for c in (0, 1)
    ]
    result = EvalResult(problems, config)
    # the report and the summary the trainer logs to metrics.jsonl say the same
    assert result.to_dict()["pass_at_k"]["1"] == result.summary()["pass_at_k"]["1"] == 0.125
    assert tidy_floats(0.12499999999999994) == 0.125


def test_in_process_api_keys_problems_on_source_and_id(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(_lines([{"problem_id": "x", "correct": True, "source": "s1"},
                             {"problem_id": "x", "correct": False, "source": "s2"}]))  # fmt: skip
    result = score_samples(read_samples(path), EvalConfig(n=1, num_resamples=5))
    assert [(p.source, p.id, p.c) for p in result.problems] == [("s1", "x", 1), ("s2", "x", 0)]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_samples(tmp_path / "missing.jsonl.gz")
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(SamplesError, match=r"s\.jsonl:1: cannot read the file"):
        read_samples(path)
