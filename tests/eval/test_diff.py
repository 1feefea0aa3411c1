"""``passk diff`` end to end: reports written by ``passk eval --samples`` (subprocesses),
compared with counts worked out by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from passk.eval.diff import resolve_report

N = 8
# correct samples of 8 per problem, per arm and seed (12 problems p0..p11)
COUNTS = {
    "a0": [0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 2],
    "a1": [0, 0, 0, 1, 4, 3, 4, 5, 8, 8, 8, 2],
    "b0": [3, 2, 0, 0, 6, 6, 0, 7, 8, 8, 5, 8],
    "b1": [2, 0, 0, 1, 5, 6, 1, 8, 8, 8, 8, 8],
}
IDS = [f"p{i}" for i in range(12)]


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


def _samples(path: Path, counts: list[int], ids: list[str]) -> Path:
    rows = []
    for pid, c in zip(ids, counts):
        for j in range(N):
            ok = j < c
            rows.append({"problem_id": pid, "correct": ok, "answer": "r" if ok else f"w{j % 3}"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diff")
    for name, counts in COUNTS.items():
        f = _samples(root / f"{name}.jsonl", counts, IDS)
        proc = _passk("eval", "--samples", str(f), "--out", name, cwd=root)
        assert proc.returncode == 0, proc.stderr
    # a report on 10 of the 12 problems
    f = _samples(root / "short.jsonl", COUNTS["b0"][:10], IDS[:10])
    proc = _passk("eval", "--samples", str(f), "--out", "short", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root


def test_two_seeds_per_arm_json_figure_and_hand_counts(reports):
    proc = _passk("diff", "--a", "a0", "a1", "--b", "b0", "b1", "--json", "d.json", cwd=reports)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((reports / "d.json").read_text())
    assert (reports / "d.png").stat().st_size > 10_000
    assert out["problems"] == 12 and out["seeds"] == 2
    assert set(out["metrics"]) >= {"pass_at_k", "pass_hat_k", "maj_at_k"}
    row = out["metrics"]["pass_at_k"]["1"]
    assert set(row) >= {"a", "b", "diff", "t_ci", "boot_ci", "per_seed"}
    # pass@1 = c / n: per-seed differences summed over problems by hand
    # seed 0: b0 - a0 = 3+2+0+0+2+2-4+3+0+0-3+6 = 11; seed 1: 2+0+0+0+1+3-3+3+0+0+0+6 = 12
    assert row["per_seed"] == pytest.approx([11 / 96, 12 / 96])
    assert row["diff"] == pytest.approx(23 / 192)
    assert row["t_ci"][0] <= row["diff"] <= row["t_ci"][1]
    t = out["transitions"]
    # seed 0: p0, p1 never -> solved; p6 solved -> never; p10 always -> not always;
    #         p7? (4 -> 7) no; p11 (2 -> 8) not always -> always
    # seed 1: p0 never -> solved; p10 stays always; p7 (5 -> 8) and p11 -> always
    assert t["never_to_solved"] == 3 and t["per_seed"]["never_to_solved"] == [2, 1]
    assert t["solved_to_never"] == 1 and t["problems"]["solved_to_never"] == {"p6": 1}
    assert t["always_to_not_always"] == 1
    assert t["not_always_to_always"] == 3 and t["problems"]["not_always_to_always"] == {
        "p11": 2,
        "p7": 1,
    }
    assert t["problems"]["never_to_solved"] == {"p0": 2, "p1": 1}
    # the pasteable table: a row per metric and k, with the verdict
    assert "| pass@k | 1 | 0.443 |" in proc.stdout  # A: (42 + 43) / 192
    assert "never -> solved 3 [2, 1]" in proc.stdout


def test_one_seed_says_what_it_does_not_cover(reports):
    proc = _passk("diff", "a0", "b0", "--ks", "1", "8", "--json", "one.json", cwd=reports)
    assert proc.returncode == 0, proc.stderr
    assert "not the variance between training runs" in proc.stdout
    out = json.loads((reports / "one.json").read_text())
    assert out["metrics"]["pass_at_k"]["1"]["t_ci"] is None
    assert list(out["metrics"]["pass_hat_k"]) == ["1", "8"]


def test_different_problem_sets_are_refused_unless_intersect(reports):
    proc = _passk("diff", "a0", "short", cwd=reports)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "they share 10" in err[0] and "--intersect" in err[0]
    proc = _passk("diff", "a0", "short", "--intersect", "--json", "i.json", cwd=reports)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((reports / "i.json").read_text())["problems"] == 10


@pytest.mark.parametrize(
    "args, message",
    [
        (["--a", "a0", "a1", "--b", "b0", "b1", "a0"], "A has 2 reports and B 3"),
        (["a0", "missing"], "missing: no such report file or directory"),
        (["a0"], "expected two reports A B, got 1"),
        (["a0", "b0", "--ks", "9"], "k must be in 1..8"),
        (["a0", "b0", "--taus", "1.5"], "--taus must be in [0, 1), got [1.5]"),
    ],
)
def test_bad_input_is_one_line(reports, args, message):
    proc = _passk("diff", *args, cwd=reports)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0], proc.stderr


def test_a_training_run_directory_means_its_final_evaluation(tmp_path):
    run = tmp_path / "run"
    (run / "evals").mkdir(parents=True)
    for step in (0, 10, 20):
        (run / "evals" / f"step_{step:06d}.json").write_text("{}")
    assert resolve_report(run) == run / "evals" / "step_000020.json"
    (run / "done.json").write_text(json.dumps({"final_eval": "evals/step_000010.json"}))
    assert resolve_report(run) == run / "evals" / "step_000010.json"
    (run / "eval.json").write_text("{}")
    assert resolve_report(run) == run / "eval.json"
    with pytest.raises(ValueError, match=r"holds no eval\.json"):
        resolve_report(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_one_report_against_several_seeds_is_paired_with_each(reports):
    from passk.eval.diff import diff_reports, load_report

    a = [load_report(reports / "a0")]
    b = [load_report(reports / n) for n in ("b0", "b1")]
    out = diff_reports(a, b, ks=[1], resamples=200)
    row = out["metrics"]["pass_at_k"]["1"]
    ca, cb0, cb1 = (np.array(COUNTS[n]) / N for n in ("a0", "b0", "b1"))
    assert row["per_seed"] == pytest.approx([(cb0 - ca).mean(), (cb1 - ca).mean()])
    assert any("A has one report" in n for n in out["notes"])


def _report(counts: dict[str, tuple[int, int]]) -> dict:
    """A report dict with ``{id: (c, n)}`` problems (answers: "r" right, "w" wrong)."""
    per = []
    for pid, (c, n) in counts.items():
        correct = [True] * c + [False] * (n - c)
        per.append(
            {
                "id": pid,
                "n": n,
                "c": c,
                "correct": correct,
                "extracted": ["r" if x else "w" for x in correct],
            }
        )
    return {"per_problem": per, "maj_at_k": {"1": 0.0}}


def test_problems_with_fewer_than_k_samples_are_left_out_at_that_k():
    from passk.eval.diff import diff_reports

    a = _report({"p0": (2, 8), "p1": (1, 4), "p2": (0, 8)})
    b = _report({"p0": (4, 8), "p1": (4, 4), "p2": (8, 8)})
    out = diff_reports([a], [b], ks=[1, 8], resamples=200)
    one, eight = out["metrics"]["pass_at_k"]["1"], out["metrics"]["pass_at_k"]["8"]
    assert one["problems"] == 3 and eight["problems"] == 2  # p1 has only 4 samples
    assert one["diff"] == pytest.approx((2 / 8 + 3 / 4 + 1) / 3)
    assert eight["diff"] == pytest.approx(0.5)
    # pass@8 of 8 samples is 1 when any is right: p0 1 -> 1, p2 0 -> 1
    assert eight["a"] == pytest.approx(0.5) and eight["b"] == pytest.approx(1.0)
    assert out["n"] == {"min": 4, "max": 8}
    assert (
        out["transitions"]["never_to_solved"] == 1
        and out["transitions"]["not_always_to_always"] == 2
    )


def test_a_file_that_is_not_a_report_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"pass_at_k": {}}))
    proc = _passk("diff", str(bad), str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "not an evaluation report with per-problem results" in err[0]
