"""``passk simulate`` end to end: every example config runs, bad input gets one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from passk.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "configs" / "simulate").glob("*.yaml"))


def test_there_are_examples():
    assert {p.stem for p in EXAMPLES} >= {"two_mode", "matched_control", "random"}


@pytest.mark.parametrize("config", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_runs_and_writes_its_report(config, tmp_path):
    out = tmp_path / "sim"
    proc = subprocess.run(
        [sys.executable, "-m", "passk.cli", "simulate", str(config), "--out", str(out),
         "--steps", "20", "--seeds", "0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml", "pass_at_k.png", "pass_at_k_curve.png", "result.json", "shares.png",
    ]  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert result["format"] == "passk.simulate/1"
    assert result["config"]["steps"] == 20
    ks = [str(k) for k in result["config"]["ks"]]
    for est in result["estimators"]:
        traj = est["runs"][0]["trajectory"]
        assert traj["step"][0] == 0 and traj["step"][-1] == 20
        for series in (traj["pass_at_k"], traj["pass_hat_k"]):
            assert sorted(series) == sorted(ks)
            assert all(0 <= v <= 1 for k in ks for v in series[k])
        assert abs(sum(v[-1] for v in traj["shares"].values()) - 1) < 1e-9
        assert len(traj["entropy"]) == len(traj["step"])
        # pass@k never decreases in k, pass^k never increases
        last = [traj["pass_at_k"][k][-1] for k in ks]
        assert last == sorted(last)
    assert est["label"] in proc.stdout  # the summary table names every estimator


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sim.yaml"
    path.write_text(text)
    return path


BASE = """
population: {kind: two_mode, frac_common: 0.75, problems: 4}
policy: {parameters: shared, init: [2.0, -1.0, 0.0]}
steps: 5
estimators:
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  - {estimator: pass1_matched}\n", "is batch-level"),
        ("  - {estimator: passk_full}\n", "stochastic"),
        ("  - {estimator: unlikeliness}\n", "per-response inputs"),
        ("  - {estimator: pass2}\n", "unknown advantage estimator 'pass2'; valid:"),
        ("  - {estimator: passk_analytic, params: {k: 40}}\n", "k=40 is larger"),
        ("  - {estimator: pass1, lr: 3}\n", "unknown key estimators[0].lr"),
        ("  - {estimator: pass1}\nsteps_total: 4\n", "unknown key steps_total"),
        ("  - {estimator: pass1}\n  - {estimator: pass1}\n", "used twice"),
        (
            "  - schedule: [{estimator: passk_analytic, params: {k: 4}, steps: 10}, {estimator: pass1}]\n",
            "the last phase would never run",
        ),
    ],
)
def test_bad_files_get_one_line_and_write_nothing(body, message, tmp_path, capsys):
    path = _write(tmp_path, BASE + body)
    out = tmp_path / "out"
    code, _, err = _run(["simulate", str(path), "--out", str(out)], capsys)
    assert code == 2
    assert message in err
    assert str(path) in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_population_errors_name_the_value(tmp_path, capsys):
    path = _write(tmp_path, BASE.replace("problems: 4", "problems: 3") + "  - {estimator: pass1}\n")
    code, _, err = _run(["simulate", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "frac_common * problems must be a whole number" in err


def test_policy_init_must_match_the_strategies(tmp_path, capsys):
    path = _write(
        tmp_path, BASE.replace("[2.0, -1.0, 0.0]", "[2.0, -1.0]") + "  - {estimator: pass1}\n"
    )
    code, _, err = _run(["simulate", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "2 logits for 3 strategies" in err


def test_out_must_be_new_empty_or_its_own(tmp_path, capsys):
    path = _write(tmp_path, BASE + "  - {estimator: pass1}\n")
    foreign = tmp_path / "run"
    foreign.mkdir()
    (foreign / "metrics.jsonl").write_text("{}\n")
    code, _, err = _run(["simulate", str(path), "--out", str(foreign), "--no-figures"], capsys)
    assert code == 2 and "metrics.jsonl" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["metrics.jsonl"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, _, err = _run(["simulate", str(path), "--out", str(a_file)], capsys)
    assert code == 2 and "is a file" in err
    own = tmp_path / "own"
    assert _run(["simulate", str(path), "--out", str(own), "--no-figures"], capsys)[0] == 0
    first = json.loads((own / "result.json").read_text())
    # an earlier simulation's directory is replaced, with the same numbers for the same file
    assert _run(["simulate", str(path), "--out", str(own), "--no-figures"], capsys)[0] == 0
    again = json.loads((own / "result.json").read_text())
    assert first["estimators"][0]["final"] == again["estimators"][0]["final"]
    (own / "result.json").write_text('{"format": "something else"}')
    code, _, err = _run(["simulate", str(path), "--out", str(own)], capsys)
    assert code == 2 and "did not write" in err


def test_stochastic_seeds_each_run_and_exact_runs_once(tmp_path, capsys):
    exact = _write(tmp_path, BASE + "  - {estimator: pass1}\nseeds: [0, 1, 2]\n")
    assert (
        _run(["simulate", str(exact), "--out", str(tmp_path / "e"), "--no-figures"], capsys)[0] == 0
    )
    runs = json.loads((tmp_path / "e" / "result.json").read_text())["estimators"][0]["runs"]
    assert [r["seed"] for r in runs] == [0]  # nothing random: one run stands for every seed
    sampled = tmp_path / "s.yaml"
    sampled.write_text(BASE + "  - {estimator: pass1_matched}\nseeds: [0, 1]\nmode: stochastic\n")
    assert (
        _run(["simulate", str(sampled), "--out", str(tmp_path / "s"), "--no-figures"], capsys)[0]
        == 0
    )
    runs = json.loads((tmp_path / "s" / "result.json").read_text())["estimators"][0]["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    assert runs[0]["trajectory"] != runs[1]["trajectory"]


def test_mechanism_doc_statements_hold():
    """benchmarks/mechanism.py --check: every statement of docs/mechanism.md still holds."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "mechanism.py"), "--check"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every statement holds" in proc.stdout


def test_set_changes_the_file_and_bad_paths_get_one_line(tmp_path, capsys):
    path = _write(tmp_path, BASE + "  - {estimator: passk_analytic, params: {k: 4}}\n")
    out = tmp_path / "o"
    argv = ["simulate", str(path), "--out", str(out), "--no-figures",
            "--set", "n=8", "--set", "estimators.0.params.k=2", "--set", "optimizer.lr=0.25"]  # fmt: skip
    assert _run(argv, capsys)[0] == 0
    config = json.loads((out / "result.json").read_text())["config"]
    assert config["n"] == 8 and config["optimizer"]["lr"] == 0.25
    assert config["estimators"][0]["schedule"][0]["params"] == {"k": 2}
    code, _, err = _run(["simulate", str(path), "--out", str(tmp_path / "p"),
                         "--set", "estimators.5.params.k=2"], capsys)  # fmt: skip
    assert code == 2 and "is not an index of a list of 1" in err and str(path) in err
