"""``benchmarks/exploration.py``: the study JSON, its statistics, tables and figures, from
run directories written by hand (known counts, so every number can be checked)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from passk.core.metrics import pass_at_k
from passk.train.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
N, PROBLEMS, STEPS = 8, 6, 3
ARMS = ("pass1", "passk", "pass1_matched")


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


study = _load("exploration")


def _sweep_file(tmp_path: Path) -> Path:
    recipes = ROOT / "configs"
    sweep = {
        "name": "exploration-test",
        "base": {"set": {"steps": STEPS, "task.name": "mixture", "rollout.n": 8}},
        "arms": [
            {"name": "pass1", "label": "Pass@1", "config": str(recipes / "pass1.yaml")},
            {"name": "passk", "label": "Pass@k", "config": str(recipes / "passk_analytic.yaml")},
            {
                "name": "pass1_matched",
                "label": "Pass@1, |A| matched",
                "config": str(recipes / "pass1_matched.yaml"),
            },
        ],
        "seeds": [0, 1],
        "eval": {"problems": PROBLEMS, "n": N},
        "compare": {"reference": "pass1", "ks": [1, 8]},
        "equal_budgets": True,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep), encoding="utf-8")
    return path


def _report(cs: list[int], entropy: float) -> dict:
    per = []
    for i, c in enumerate(cs):
        correct = [True] * c + [False] * (N - c)
        # wrong answers: two distinct values, so maj@k is not pass@k
        extracted = ["right"] * c + [f"w{j % 2}" for j in range(N - c)]
        per.append(
            {
                "id": f"p{i}",
                "n": N,
                "c": c,
                "correct": correct,
                "extracted": extracted,
                "source": "easy" if i < 3 else "hard",
            }
        )
    return {
        "per_problem": per,
        "mean_entropy": entropy,
        "answer_diversity": 0.5,
        "mean_length": 10.0,
        "truncated_fraction": 0.1,
        "elapsed_s": 1.0,
    }


BEFORE = {0: [4, 2, 0, 0, 1, 8], 1: [4, 3, 0, 1, 0, 8]}
AFTER = {
    "pass1": {0: [8, 6, 0, 0, 0, 8], 1: [7, 5, 0, 0, 0, 8]},
    "passk": {0: [6, 4, 1, 0, 2, 8], 1: [6, 4, 1, 1, 1, 8]},
    "pass1_matched": {0: [8, 6, 0, 0, 0, 8], 1: [7, 5, 0, 0, 0, 8]},  # = pass1
}


def _write_run(path: Path, steps: int, cs: list[int], entropy: float, wall: float) -> None:
    run = RunDir(path)
    run.path.mkdir(parents=True)
    rows = [
        {"step": s, "actor/entropy": entropy + s, "adv/abs_mean": 0.5, "update/delta_norm": s / 100}
        for s in range(1, steps + 1)
    ]
    if steps:  # as the trainer writes it: the steps' time, and the evaluation's on its record
        rows.append({"kind": "eval", "step": steps, "time/eval": 20.0})
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run.evals_dir.mkdir()
    run.eval_path(steps).write_text(json.dumps(_report(cs, entropy)), encoding="utf-8")
    run.mark_finished(steps, {"elapsed_s": wall - 20.0} if steps else {"wall_s": wall})


@pytest.fixture
def result(tmp_path):
    out = tmp_path / "runs"
    for seed, cs in BEFORE.items():
        _write_run(out / f"before_s{seed}", 0, cs, 2.0, 60.0)
    for arm, seeds in AFTER.items():
        for seed, cs in seeds.items():
            _write_run(out / f"{arm}_s{seed}", STEPS, cs, 1.0, 120.0)
    return study.build(out, _sweep_file(tmp_path), resamples=400)


def test_the_json_holds_the_issue_schema(result):
    assert result["task"]["name"] == "mixture" and len(result["task"]["options"]["parts"]) == 4
    assert result["eval"]["problems"] == PROBLEMS and result["eval"]["n"] == N
    assert result["seeds"] == [0, 1]
    assert set(result["before"]) == {"0", "1"}
    assert set(result["before"]["0"]["pass_at_k"]) == {str(k) for k in range(1, N + 1)}
    for arm in ARMS:
        entry = result["arms"][arm]
        assert entry["config"]["recipe"] == f"configs/{entry['config']['recipe'].split('/')[-1]}"
        for seed in ("0", "1"):
            view = entry["seeds"][seed]
            for key in ("pass_at_k", "pass_hat_k", "maj_at_k", "entropy", "wall_s"):
                assert key in view
            # the steps' time plus the evaluation's
            assert view["wall_s"] == 120.0 and view["train"]["steps"] == STEPS
            assert view["train"]["mean_delta_norm"] == pytest.approx(0.02)  # steps 1..3 / 100
    c = result["comparisons"][0]
    assert {"a", "b", "k", "diff", "t_ci", "boot_ci", "per_seed", "metric"} <= set(c)
    json.dumps(result, allow_nan=False)
    assert "/tmp" not in json.dumps(result)  # no machine paths


def test_metrics_match_the_counts(result):
    view = result["arms"]["passk"]["seeds"]["0"]
    cs = AFTER["passk"][0]
    assert view["pass_at_k"]["1"] == pytest.approx(np.mean(cs) / N)
    assert view["pass_at_k"]["4"] == pytest.approx(np.mean([pass_at_k(N, c, 4) for c in cs]))
    # pass^8: only the always-right problem; maj@1 = pass@1
    assert view["pass_hat_k"]["8"] == pytest.approx(1 / PROBLEMS)
    assert view["maj_at_k"]["1"] == pytest.approx(view["pass_at_k"]["1"])
    assert view["histogram"] == {
        "0": 1,
        "(0,1/16)": 0,
        "[1/16,1/4)": 1,
        "[1/4,1/2)": 1,
        "[1/2,1)": 2,
        "1": 1,
    }
    assert view["by_source"]["easy"]["problems"] == 3
    # seed 0: before [4,2,0,0,1,8] -> after [6,4,1,0,2,8]: problem 2 gained, none lost
    assert view["coverage"] == {
        "never_to_solved": 1,
        "solved_to_never": 0,
        "solved_both": 4,
        "never_both": 1,
    }
    lost = result["arms"]["pass1"]["seeds"]["0"]["coverage"]
    assert lost["solved_to_never"] == 1  # problem 4: 1 of 8 before, 0 after


def test_paired_differences_are_means_over_seeds_and_problems(result):
    rows = {(c["a"], c["b"], c["metric"], c["k"]): c for c in result["comparisons"]}
    c = rows[("passk", "pass1", "pass_at_k", 1)]
    expected = np.mean([np.subtract(AFTER["passk"][s], AFTER["pass1"][s]) / N for s in (0, 1)])
    assert c["diff"] == pytest.approx(expected)
    assert c["boot_ci"][0] <= c["diff"] <= c["boot_ci"][1] and c["seeds"] == [0, 1]
    assert c["t_ci"][0] <= c["diff"] <= c["t_ci"][1]
    per_seed = [np.mean(np.subtract(AFTER["passk"][s], AFTER["pass1"][s]) / N) for s in (0, 1)]
    assert c["per_seed"] == pytest.approx(per_seed)
    big = rows[("passk", "pass1", "pass_at_k", 8)]
    assert big["diff"] == pytest.approx(np.mean([1 / 6 * 2, 1 / 6 * 3]))  # problems gained
    same = rows[("pass1_matched", "pass1", "pass_at_k", 1)]
    assert same["diff"] == 0.0 and same["boot_ci"] == [0.0, 0.0] and same["t_ci"] == [0.0, 0.0]
    assert not same["distinguishable"]
    assert ("passk", "pass1_matched", "maj_at_k", 8) in rows
    assert ("passk", "before", "pass_at_k", 1) in rows


def test_the_interval_widens_with_seed_disagreement():
    # every problem agrees within a seed; the three seeds disagree in sign
    def per(shifts: dict[int, float]) -> dict[int, dict]:
        out = {}
        for s, shift in shifts.items():
            vals = np.full((40, 1), 0.5 + shift)
            out[s] = {"ids": [f"p{i}" for i in range(40)]} | {m: vals for m in study.METRICS}
        return out

    rows = study.compare(per({0: 0.3, 1: -0.2, 2: 0.25}), per({0: 0, 1: 0, 2: 0}), "x", "y", [1])
    c = rows[0]
    assert c["diff"] == pytest.approx(0.35 / 3) and c["per_seed"] == pytest.approx(
        [0.3, -0.2, 0.25]
    )
    assert c["t_ci"][0] < 0 < c["t_ci"][1] and not c["distinguishable"]
    agree = study.compare(per({0: 0.1, 1: 0.12, 2: 0.11}), per({0: 0, 1: 0, 2: 0}), "x", "y", [1])
    assert agree[0]["distinguishable"]


def test_transitions_between_arms_by_hand(result):
    moves = {(t["a"], t["b"]): t for t in result["transitions"]}
    t = moves[("passk", "pass1")]
    # seed 0: pass1 [8,6,0,0,0,8] -> passk [6,4,1,0,2,8]: p2, p4 never -> solved; p0 always
    # -> not always. seed 1: pass1 [7,5,0,0,0,8] -> passk [6,4,1,1,1,8]: p2, p3, p4 gained
    assert t["never_to_solved"] == 5 and t["per_seed"]["never_to_solved"] == [2, 3]
    assert t["solved_to_never"] == 0 and t["always_to_not_always"] == 1
    assert t["mcnemar_p_solved"] == pytest.approx(2 / 32)
    assert moves[("pass1_matched", "pass1")]["never_to_solved"] == 0
    assert ("passk", "pass1_matched") in moves and ("pass1", "before") in moves


def test_count_matched_diversity_and_accuracy_among_answers(result):
    view = result["arms"]["passk"]["seeds"]["0"]

    # wrong answers alternate w0, w1: a problem with W wrong samples has ceil(W/2) and
    # floor(W/2) of each; P(two differ) = 2 a b / (W (W - 1)); W >= 2 for p0..p4 of [6,4,1,0,2,8]
    def pair(w: int) -> float:
        a, b = (w + 1) // 2, w // 2
        return 2 * a * b / (w * (w - 1))

    assert view["wrong_pair_diversity"] == pytest.approx(
        np.mean([pair(w) for w in (2, 4, 7, 8, 6)])
    )
    # every sample has an answer in these reports: accuracy among them is pass@1
    easy = view["by_source"]["easy"]
    assert easy["answered_accuracy"] == pytest.approx(easy["pass@1"])
    report = {"per_problem": [{"extracted": ["3", None], "correct": [True, False]}]}
    assert study.answered_accuracy(report["per_problem"]) == 1.0


def test_tables_check_and_figures(result, tmp_path):
    tables = study.markdown_tables(result)
    assert "| Pass@k | 2 |" in tables and "| before training | 2 |" in tables
    assert "| passk | pass1 | pass@k | +0.000<br>seeds -0.021 +0.021<br>t (" in tables
    # pass@8: seeds +1/3 and +1/2, t(0.975, 1) = 12.706: 5/12 +- 12.706 * (1/12) = -0.642, 1.476;
    # the t-interval holds 0, so the difference is not bold whatever the bootstrap says
    assert "| +0.417<br>seeds +0.333 +0.500<br>t (-0.642, +1.476)<br>boot (" in tables
    assert "| passk | pass1 | 5 (2, 3) | 0 (0, 0) | 0.062 |" in tables  # transitions
    # every row of every table has its header's cells (a label's own "|" is escaped);
    # the update-size cells are filled
    assert "| Pass@1, \\|A\\| matched | 2 |" in tables
    widths: list[int] = []
    for line in tables.splitlines():
        bars = len(re.findall(r"(?<!\\)\|", line))
        if not line.startswith("|"):
            widths = []
        elif not widths:
            widths = [bars]
        else:
            assert bars == widths[0], line
    assert "| Pass@k | 10.0 (10.0-10.0) | 0.100 (0.100-0.100) | 0.000 (0.000-0.000) |" in tables
    # |A|, no grad norm logged, the weight change, the wall time
    assert "| 0.500 (0.500-0.500) | - | 2.00e-02 (2.00e-02-2.00e-02) | 2 (2-2) |" in tables
    doc = tmp_path / "results.md"
    doc.write_text(f"intro\n{study.TABLE_BEGIN}\nold\n{study.TABLE_END}\nend\n", encoding="utf-8")
    path = tmp_path / "exploration.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    assert study.main(["tables", "--json", str(path), "--check", str(doc)]) == 1
    assert study.main(["tables", "--json", str(path), "--write", str(doc)]) == 0
    assert study.main(["tables", "--json", str(path), "--check", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8").endswith("end\n")
    figures = _load("exploration_figures").write_figures(result, tmp_path / "fig")
    assert sorted(p.name for p in figures) == [
        "entropy.png",
        "paired_differences.png",
        "pass1_histograms.png",
        "passk_curves.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in figures)


def test_unfinished_runs_are_left_out(tmp_path):
    out = tmp_path / "runs"
    _write_run(out / "before_s0", 0, BEFORE[0], 2.0, 60.0)
    _write_run(out / "pass1_s0", STEPS, AFTER["pass1"][0], 1.0, 100.0)
    result = study.build(out, _sweep_file(tmp_path), resamples=100)
    assert set(result["before"]) == {"0"} and result["arms"]["passk"]["seeds"] == {}
    assert set(result["arms"]["pass1"]["seeds"]) == {"0"}
    assert {c["b"] for c in result["comparisons"]} == {"before"}


def test_the_published_tables_are_those_of_the_published_json():
    result = json.loads((ROOT / "benchmarks" / "results" / "exploration.json").read_text())
    doc = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert study.splice(doc, study.markdown_tables(result)) == doc
    assert "/work/" not in json.dumps(result) and "/tmp/" not in json.dumps(result)


def test_no_answer_fraction_counts_samples_without_an_extracted_answer():
    report = {"per_problem": [{"extracted": ["3", None, None]}, {"extracted": [None, "4"]}]}
    assert study.no_answer_fraction(report) == pytest.approx(3 / 5)
    assert study.no_answer_fraction({"per_problem": [{"extracted": []}]}) is None
