"""JSONL / math / reasoning-gym tasks, verifiers, reward registry and task registry."""

from __future__ import annotations

import json

import pytest

from passk.tasks import get_task, list_tasks
from passk.tasks.registry import register_task
from passk.tasks.rewards import RewardTask, get_reward, list_rewards, register_reward
from passk.tasks.verifiers import exact_verifier, math_verifier, numeric_verifier


@pytest.fixture
def jsonl_file(tmp_path):
    rows = [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(40)]
    rows += [{"prompt": "Capital of France?", "answer": "Paris", "split": "test"}]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return path


def test_jsonl_task_splits_and_verifiers(jsonl_file):
    task = get_task("jsonl", path=str(jsonl_file), verifier="numeric")
    train, test = task.problems("train", 100), task.problems("test", 100)
    assert len(train) + len(test) == 41
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert any(p.answer == "Paris" for p in test)  # the explicit split field wins
    p = train[0]
    assert task.score(p, f"so it is \\boxed{{{p.answer}}}.").correct
    assert not task.score(p, "I don't know").correct
    exact = get_task("jsonl", path=str(jsonl_file), verifier="exact")
    paris = next(p for p in exact.problems("test", 100) if p.answer == "Paris")
    assert exact.score(paris, "The answer is: paris.").correct


def test_jsonl_errors(tmp_path, jsonl_file):
    with pytest.raises(ValueError, match="verifier"):
        get_task("jsonl", path=str(jsonl_file), verifier="fuzzy")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(ValueError, match="lacks"):
        get_task("jsonl", path=str(bad))
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=":1:"):
        get_task("jsonl", path=str(bad))


def test_verifiers():
    assert numeric_verifier("Total = 1,024 apples", "1024") == (True, "1024")
    assert exact_verifier("<answer> Blue </answer>", "blue")[0]
    assert math_verifier(r"thus $\frac{10}{12}$", r"\frac{5}{6}")[0]
    assert math_verifier(r"\boxed{x^2+2x+1}", "(x+1)^2")[0]
    assert not math_verifier(r"\boxed{3}", "4")[0]
    assert math_verifier("no math here", "4") == (False, None)


def test_math_task_builtin_and_file(tmp_path):
    task = get_task("math")
    probs = task.problems("train", 100) + task.problems("test", 100)
    assert len(probs) >= 30 and all(p.prompt.endswith("\\boxed{}.") for p in probs)
    p = next(p for p in probs if p.answer == "\\frac{5}{6}")
    assert task.score(p, r"The sum is \boxed{\dfrac{5}{6}}").correct
    assert not task.score(p, r"\boxed{2/5}").correct
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "solution": "2", "split": "test"}) + "\n")
    t2 = get_task("math", path=str(path), prompt_field="question", answer_field="solution")
    assert t2.score(t2.problems("test", 1)[0], r"\boxed{2}").correct


def test_reasoning_gym_adapter():
    pytest.importorskip("reasoning_gym")
    task = get_task("rg:leg_counting")
    assert task.name == "rg:leg_counting"
    test = task.problems("test", 8, seed=0)
    train = task.problems("train", 30, seed=0)
    assert len(test) == 8 and len(train) == 30
    assert not {p.prompt for p in test} & {p.prompt for p in train}
    p = test[0]
    assert "<answer>" in p.prompt
    good = task.score(p, f"Counting... <answer>{p.answer}</answer>")
    assert good.correct and good.reward == 1.0 and good.extracted == p.answer
    assert not task.score(p, "<answer>-1</answer>").correct
    same = get_task("reasoning_gym", dataset="leg_counting").problems("test", 8, seed=0)
    assert [q.prompt for q in same] == [q.prompt for q in test]
    with pytest.raises(ValueError, match="unknown reasoning-gym dataset"):
        get_task("rg:no_such_dataset")


def module_level_reward(completion: str, answer: str) -> float:
    return 0.5 if answer in completion else 0.0


def test_reward_registry_and_dotted_path():
    assert {"exact", "math", "numeric"} <= set(list_rewards())
    fn = get_reward(f"{__name__}:module_level_reward")
    task = RewardTask(get_task("mul1"), fn, correct_threshold=0.5)
    p = task.problems("test", 1)[0]
    s = task.score(p, f"= {p.answer}")
    assert s.reward == 0.5 and s.correct and s.extracted == p.answer
    register_reward("test_const_reward")(lambda c, a: 1.0)
    assert get_reward("test_const_reward")("x", "y") == 1.0
    with pytest.raises(ValueError, match="already registered"):
        register_reward("test_const_reward")(lambda c, a: 0.0)
    with pytest.raises(ValueError, match="unknown reward"):
        get_reward("nope")
    with pytest.raises(ValueError, match="cannot load reward"):
        get_reward("no.such.module:fn")


def test_task_registry():
    names = list_tasks()
    assert {"mul1", "add", "chain", "jsonl", "math", "reasoning_gym"} <= set(names)
    with pytest.raises(ValueError, match=r"valid: .*mul1.*rg:NAME"):
        get_task("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_task("mul1")(object)
    assert get_task("passk.tasks.arithmetic:AddTask", digits=2).name == "add"


def test_jsonl_errors_count_lines_from_one_everywhere(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "answer": "1"}\n\n{"prompt": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: lacks 'prompt' or 'answer'"):
        get_task("jsonl", path=str(bad))
    bad.write_text('{"prompt": "a", "answer": "1"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected a JSON object, got list"):
        get_task("jsonl", path=str(bad))
    bad.write_bytes(b'{"prompt": "a", "answer": "1"}\n{"prompt": "\xc3("}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not UTF-8 \(byte 0xc3 at column 13\)"):
        get_task("math", path=str(bad))
    with pytest.raises(ValueError, match=r"cannot read .*missing.jsonl: No such file"):
        get_task("jsonl", path=str(tmp_path / "missing.jsonl"))


def test_dataset_options_are_checked(jsonl_file):
    with pytest.raises(ValueError, match=r"option verifier='fuzzy' is not valid; expected one of"):
        get_task("jsonl", path=str(jsonl_file), verifier="fuzzy")
    with pytest.raises(ValueError, match=r"option test_fraction=2.0 is not valid"):
        get_task("jsonl", path=str(jsonl_file), test_fraction=2)
    with pytest.raises(ValueError, match=r"option prompt_field=3 is not valid; expected a string"):
        get_task("math", prompt_field=3)
    with pytest.raises(ValueError, match=r"task 'math': unknown option colour='red'"):
        get_task("math", colour="red")
