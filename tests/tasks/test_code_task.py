"""The code tasks: extraction, problem generation, scoring, JSONL loading."""

from __future__ import annotations

import json

import pytest

from passk.tasks import Problem, Task, get_task, list_tasks
from passk.tasks.code import FAMILIES, CodeTask, extract_code, load_jsonl


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1"),
        (
            "a\n```python\ndef f():\n    return 1\n```\nb\n```python\ndef f():\n    return 2\n```",
            "def f():\n    return 2",
        ),
        ("```py\ndef f(): pass\n```", "def f(): pass"),
        ("```\ndef f(): pass\n```", "def f(): pass"),
        ("```text\nnot code\n```\n```\ndef g(): pass\n```", "def g(): pass"),
        ("Here:\n\ndef f(x):\n    return x\n\nThis returns x.", "def f(x):\n    return x"),
        (
            "import math\ndef f(x):\n    return math.sqrt(x)",
            "import math\ndef f(x):\n    return math.sqrt(x)",
        ),
        ("```python\ndef f():\n    return 1", "def f():\n    return 1"),  # unclosed fence
        ("no code at all", None),
        ("", None),
    ],
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


def test_registered_and_protocol():
    assert {"code", "code_jsonl"} <= set(list_tasks())
    task = get_task("code", difficulty=2, reward="full_pass", timeout_s=3)
    assert isinstance(task, Task) and isinstance(task, CodeTask) and task.name == "code"
    assert task.limits.timeout_s == 3.0


def test_bad_options():
    with pytest.raises(ValueError, match="reward"):
        get_task("code", reward="partial")
    with pytest.raises(ValueError, match="difficulty"):
        get_task("code", difficulty=7).problems("train", 1)
    with pytest.raises(ValueError, match="split"):
        get_task("code").problems("dev", 1)
    with pytest.raises(ValueError, match="unknown code families"):
        get_task("code", families=("nope",)).problems("train", 1)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_splits_disjoint_and_deterministic(difficulty):
    task = get_task("code", difficulty=difficulty)
    train = task.problems("train", 200, seed=0)
    test = task.problems("test", 60, seed=0)
    assert not {p.meta["key"] for p in train} & {p.meta["key"] for p in test}
    assert [p.prompt for p in train[:20]] == [p.prompt for p in task.problems("train", 20, seed=0)]
    assert [p.prompt for p in train[:20]] != [p.prompt for p in task.problems("train", 20, seed=1)]
    assert len({p.id for p in train}) == 200
    assert len({p.meta["family"] for p in train}) >= 10


def test_problem_shape():
    p = get_task("code").problems("train", 1, seed=3)[0]
    assert isinstance(p, Problem)
    assert set(p.answer) == {"entrypoint", "tests"} and len(p.answer["tests"]) == 8
    assert p.answer["entrypoint"] in p.prompt and "```python" in p.prompt
    assert p.meta["signature"] in p.prompt
    assert not any(t in p.prompt for t in p.answer["tests"])  # hidden tests stay hidden


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_reference_solutions_pass_their_tests(difficulty):
    """Proves the generated tests right: every family's reference gets full marks."""
    task = get_task("code", difficulty=difficulty, timeout_s=5)
    problems = []
    for fam in FAMILIES:
        one = get_task("code", difficulty=difficulty, families=(fam,))
        problems += one.problems("train", 1, seed=difficulty) + one.problems("test", 1)
    scores = task.score_many(problems, [f"```python\n{p.meta['reference']}```" for p in problems])
    bad = [(p.meta["key"], s.error) for p, s in zip(problems, scores) if not s.correct]
    assert bad == []
    assert all(s.reward == 1.0 and s.info["pass_rate"] == 1.0 for s in scores)


def test_score_dense_and_sparse():
    p = get_task("code", families=("clamp",)).problems("train", 1, seed=0)[0]
    ref = p.meta["reference"]
    lower = ref.split("max(x, ")[1].split(")")[0]
    lower_only = f"def clamp(x):\n    return max(x, {lower})"  # right for half of the inputs
    dense = get_task("code", reward="pass_rate", timeout_s=3)
    sparse = get_task("code", reward="full_pass", timeout_s=3)
    d = dense.score(p, f"```python\n{lower_only}\n```")
    s = sparse.score(p, f"```python\n{lower_only}\n```")
    assert 0 < d.info["pass_rate"] < 1 and d.reward == d.info["pass_rate"] and not d.correct
    assert d.info["full_pass"] is False and d.extracted == lower_only
    assert s.reward == 0.0 and not s.correct and s.info["pass_rate"] == d.info["pass_rate"]
    full = sparse.score(p, f"```python\n{ref}```")
    assert full.correct and full.reward == 1.0 and full.info["full_pass"] is True
    assert full.info["pass_rate"] == 1.0


def test_score_without_code_and_hostile_completion():
    task = get_task("code", timeout_s=2)
    p = task.problems("test", 1)[0]
    s = task.score(p, "I don't know.")
    assert (s.reward, s.correct, s.extracted) == (0.0, False, None)
    assert s.info["pass_rate"] == 0.0 and s.info["full_pass"] is False
    assert s.error is None and s.info["error"] == "no code found"  # a wrong answer
    s = task.score(p, "```python\nimport os\nos._exit(0)\n```")
    assert s.reward == 0.0 and not s.correct and s.info["total"] == 8


def test_score_many_matches_score():
    task = get_task("code", timeout_s=3)
    ps = task.problems("train", 4, seed=5)
    comps = [
        f"```python\n{p.meta['reference']}```" if i % 2 else "nothing" for i, p in enumerate(ps)
    ]
    many = task.score_many(ps, comps)
    one = [task.score(p, c) for p, c in zip(ps, comps)]
    assert [(s.reward, s.correct, s.extracted) for s in many] == [
        (s.reward, s.correct, s.extracted) for s in one
    ]
    with pytest.raises(ValueError):
        task.score_many(ps, comps[:2])


def _write(tmp_path, rows):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_jsonl_task(tmp_path):
    rows = [
        {"id": f"p{i}", "prompt": f"Write add{i}(a, b).", "entrypoint": f"add{i}",
         "tests": [f"assert add{i}(1, 2) == 3"], "split": "train" if i < 3 else "test", "level": i}
        for i in range(4)
    ]  # fmt: skip
    task = get_task("code_jsonl", path=_write(tmp_path, rows), timeout_s=3)
    train, test = task.problems("train", 10), task.problems("test", 10)
    assert len(train) == 3 and [p.id for p in test] == ["p3"]
    p = test[0]
    assert p.prompt.startswith("Write add3(a, b).") and "```python" in p.prompt
    assert p.meta["level"] == 3 and p.answer["entrypoint"] == "add3"
    good = task.score(p, "```python\ndef add3(a, b):\n    return a + b\n```")
    assert good.correct and good.reward == 1.0
    assert not task.score(p, "```python\ndef add3(a, b):\n    return a - b\n```").correct


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "x", "entrypoint": "f"}, r"p.jsonl:2: missing field\(s\) 'tests'"),
        ({"prompt": "x", "tests": ["assert f()"]}, r"p.jsonl:2: missing field\(s\) 'entrypoint'"),
        ({"prompt": "x", "entrypoint": "f", "tests": "assert f()"}, "p.jsonl:2: 'tests' must be"),
        ({"prompt": "x", "entrypoint": "f g", "tests": ["assert 1"]}, "not an identifier"),
        ({"prompt": "x", "entrypoint": "f", "tests": ["a"], "split": "dev"}, "'split'"),
        ("{not json", "p.jsonl:2: not valid JSON"),
        ("[1, 2]", "p.jsonl:2: expected a JSON object"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, row, message):
    ok = {"prompt": "x", "entrypoint": "f", "tests": ["assert f() == 1"]}
    with pytest.raises(ValueError, match=message):
        load_jsonl(_write(tmp_path, [ok, row]))


def test_jsonl_needs_path():
    with pytest.raises(ValueError, match="path"):
        get_task("code_jsonl")


def test_a_candidate_syntax_error_is_a_wrong_answer_not_a_reward_error():
    from passk.tasks.guard import SafeScorer

    task = get_task("code", timeout_s=3)
    p = task.problems("test", 1)[0]
    broken = f"```python\ndef {p.answer['entrypoint']}(x:\n    return x\n```"
    with SafeScorer(task, timeout=30.0) as scorer:
        s = scorer.score(p, broken)
        none = scorer.score(p, "no code here")
    assert (s.reward, s.correct, s.error) == (0.0, False, None)
    assert "SyntaxError" in s.info["error"]
    assert none.error is None and none.info["error"] == "no code found"
    assert scorer.errors == 0 and scorer.timeouts == 0


def test_a_verifier_failure_is_still_a_reward_error():
    task = get_task("code", timeout_s=3)
    p = task.problems("test", 1)[0]
    no_tests = Problem(p.id, p.prompt, {"entrypoint": p.answer["entrypoint"], "tests": []})
    s = task.score(no_tests, f"```python\n{p.meta['reference']}```")
    assert s.error == "no tests" and not s.correct


def test_code_jsonl_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    ok = json.dumps({"prompt": "x", "entrypoint": "f", "tests": ["assert f() == 1"]})
    path.write_bytes(ok.encode() + b"\n\n" + b'{"prompt": "\xff"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:3: not UTF-8 \(byte 0xff at column 13\)"):
        load_jsonl(path)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"difficulty": "abc"}, "option difficulty='abc' is not valid; expected an integer"),
        ({"n_tests": 0}, "option n_tests=0 is not valid; expected an integer >= 1"),
        ({"families": "clamp"}, "option families='clamp' is not valid; expected a list of"),
        ({"timeout_s": 0}, r"option timeout_s=0.0 is not valid; expected a number of seconds"),
        ({"reward": "partial"}, "option reward='partial' is not valid; expected one of"),
        ({"difficult": 2}, "unknown option difficult=2; valid: .*difficulty"),
    ],
)
def test_code_options_are_checked_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        get_task("code", **options)
    assert get_task("code", families=["clamp"]).families == ("clamp",)  # a JSON list is fine
