"""The mixture task: exact proportions, disjoint splits, scoring by part, sources in eval."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passk.tasks import get_task
from passk.tasks.arithmetic import AddTask, ChainTask
from passk.tasks.mixture import MixtureTask, _shares, parse_part


def test_add_digits_b_gives_b_its_own_width_and_its_own_split():
    task = AddTask(digits=2, digits_b=1)
    test, train = task.problems("test", 10_000), task.problems("train", 10_000)
    assert len(test) + len(train) == 90 * 9  # every (a, b) once
    assert not {p.id for p in test} & {p.id for p in train}
    for p in test + train:
        a, b = p.meta["operands"]
        assert 10 <= a <= 99 and 1 <= b <= 9 and int(p.answer) == a + b
    # equal widths keep the split they had before digits_b existed
    same = AddTask(digits=2, digits_b=2).problems("test", 50, seed=4)
    assert [p.id for p in same] == [p.id for p in AddTask(digits=2).problems("test", 50, seed=4)]


def test_add_digits_b_and_chain_reject_bad_values():
    with pytest.raises(ValueError, match=r"digits_b=0 is not valid; expected null or an integer"):
        AddTask(digits=2, digits_b=0)
    with pytest.raises(ValueError, match=r"task 'chain': option digits_b=1"):
        ChainTask(digits_b=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mul1", ("mul1", {})),
        (" add ( digits=2 , digits_b=1 ) ", ("add", {"digits": 2, "digits_b": 1})),
        ("chain(terms=3,digits=1)", ("chain", {"terms": 3, "digits": 1})),
        ("rg:leg_counting(size=4)", ("rg:leg_counting", {"size": 4})),
        ("add(partial_credit=true)", ("add", {"partial_credit": True})),
    ],
)
def test_parse_part(text, expected):
    assert parse_part(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [("add(digits)", r"'digits' is not KEY=VALUE"), ("add(digits=2", "is not NAME or NAME\\(")],
)
def test_parse_part_errors_name_the_part(text, match):
    with pytest.raises(ValueError, match=match):
        parse_part(text)


@given(st.integers(0, 500), st.lists(st.floats(0.01, 10.0), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_shares_sum_to_n_and_stay_within_one_of_exact(n, weights):
    shares = _shares(n, weights)
    assert sum(shares) == n
    total = sum(weights)
    assert all(abs(s - n * w / total) < 1 for s, w in zip(shares, weights))


def test_proportions_are_exact_and_splits_disjoint():
    t = MixtureTask(parts=("mul1", "add(digits=2,digits_b=1)", "add(digits=2)"), weights=(1, 2, 1))
    test = t.problems("test", 64, seed=0)
    counts = Counter(p.meta["source"] for p in test)
    assert counts == {"mul1": 16, "add(digits=2,digits_b=1)": 32, "add(digits=2)": 16}
    train = t.problems("train", 10_000, seed=0)
    # mul1 has 48 train problems at weight 1/4: the mixture stops at 192, proportions kept
    assert Counter(p.meta["source"] for p in train) == {
        "mul1": 48,
        "add(digits=2,digits_b=1)": 96,
        "add(digits=2)": 48,
    }
    assert not {p.id for p in test} & {p.id for p in train}
    assert len({p.id for p in train}) == len(train)
    assert all(t.split_of(p) == "test" for p in test)
    assert all(t.split_of(p) == "train" for p in train)
    # interleaved: the first quarter already holds every part
    assert len({p.meta["source"] for p in test[:16]}) == 3


def test_problems_are_seeded():
    t = MixtureTask()
    a, b = t.problems("test", 40, seed=1), t.problems("test", 40, seed=1)
    assert [p.id for p in a] == [p.id for p in b]
    assert [p.id for p in t.problems("test", 40, seed=2)] != [p.id for p in a]


def test_score_goes_to_the_part():
    t = MixtureTask(parts=("mul1", "add(digits=2)"))
    for p in t.problems("test", 20):
        inner = p.meta["part_id"]
        assert p.id == f"{p.meta['source']}/{inner}"
        right = t.score(p, f"so \\boxed{{{p.answer}}}")
        wrong = t.score(p, f"so \\boxed{{{int(p.answer) + 1}}}")
        assert right.correct and right.reward == 1.0 and not wrong.correct
    stray = AddTask(digits=2).problems("test", 1)[0]
    with pytest.raises(ValueError, match="does not come from this mixture"):
        t.score(stray, "1")


def test_template_reaches_every_part_and_a_part_option_wins():
    t = MixtureTask(
        parts=("mul1", "add(digits=2,template=Q: {expression})"), template="{expression} ="
    )
    prompts = {p.meta["source"]: p.prompt for p in t.problems("test", 10)}
    assert prompts["mul1"].endswith(" =") and prompts[
        "add(digits=2,template=Q: {expression})"
    ].startswith("Q: ")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"parts": []}, r"option parts=\(\) is not valid"),
        ({"parts": ["mul1", "mul1"]}, "distinct parts"),
        ({"parts": ["mul1", "add"], "weights": [1]}, "2 numbers, one per part"),
        ({"parts": ["mul1", "add"], "weights": [1, 0]}, "positive numbers"),
        ({"parts": ["mixture"]}, "tasks other than mixture"),
        ({"parts": ["nope"]}, "unknown task 'nope'"),
        ({"parts": ["add(digitz=2)"]}, r"task 'add': unknown option digitz=2"),
        ({"parts": "mul1"}, r"option parts='mul1' is not valid; expected a list of strings"),
    ],
)
def test_bad_options_name_the_value(options, match):
    with pytest.raises(ValueError, match=match):
        get_task("mixture", **options)


def test_evaluate_reports_metrics_by_source(tiny_model_eos, tiny_tokenizer):
    from passk.eval.evaluate import EvalConfig, evaluate

    t = MixtureTask(parts=("mul1", "add(digits=2)"), weights=(1, 2))
    problems = t.problems("test", 6)
    cfg = EvalConfig(n=2, max_new_tokens=4, batch_size=8, score_timeout=None, num_resamples=50)
    s = evaluate(tiny_model_eos, tiny_tokenizer, t, problems, config=cfg).summary()
    by = s["by_source"]
    assert {k: v["num_problems"] for k, v in by.items()} == {"mul1": 2, "add(digits=2)": 4}
    assert set(by["mul1"]["pass_at_k"]) == set(s["pass_at_k"]) == {"1", "2"}


def test_default_mixture_holds_exactly_96_test_problems_in_equal_parts():
    t = get_task("mixture")
    test, train = t.problems("test", 10_000), t.problems("train", 10_000)
    assert len(test) == 96 and len(train) == 160
    assert set(Counter(p.meta["source"] for p in test).values()) == {24}
    assert not {p.id for p in test} & {p.id for p in train}
