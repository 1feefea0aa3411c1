"""``passk sweep``: sweep-file validation, paired comparisons, paths, shared "before"
evaluation, and skip / resume on a tiny model (each run a real ``passk train`` process)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from passk.cli import main
from passk.sweep.plan import portable, portable_path
from passk.sweep.report import rounded
from passk.sweep.spec import SweepError, parse_sweep
from passk.sweep.summary import paired_comparisons, seed_aware_difference

ROOT = Path(__file__).resolve().parents[1]
TRAIN_TESTS = ROOT / "tests" / "train"
if str(TRAIN_TESTS) not in sys.path:  # passk_test_rewards, importable in-process
    sys.path.insert(0, str(TRAIN_TESTS))


def tiny_base(checkpoint: Path) -> dict:
    """Overrides that make a run take seconds on the tiny random model."""
    return {
        "model.name": str(checkpoint),
        "model.device": "cpu",
        "task.reward": "passk_test_rewards:parity",
        "task.score_timeout": None,
        "steps": 2,
        "rollout.prompts_per_step": 2,
        "rollout.n": 6,  # > k = 4: with n = k the analytic Pass@k advantage is zero
        "rollout.max_new_tokens": 12,
        "optim.lr": 1.0e-3,
        "checkpoint.every": 1,
        "checkpoint.keep": 2,
    }


def tiny_sweep(checkpoint: Path, **extra: object) -> dict:
    return {
        "name": "tiny",
        "base": {"set": tiny_base(checkpoint)},
        "arms": [
            {"name": "pass1", "label": "(a) Pass@1", "config": str(ROOT / "configs/pass1.yaml")},
            {"name": "passk", "config": str(ROOT / "configs/passk_analytic.yaml")},
        ],
        "seeds": [0],
        "eval": {"problems": 2, "n": 8, "ks": [1, 2, 4, 8]},
        "compare": {"reference": "pass1", "ks": [1, 8], "resamples": 200},
        **extra,
    }


@pytest.fixture()
def train_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``passk train`` subprocesses import the test reward and use one thread."""
    path = os.pathsep.join([str(TRAIN_TESTS), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _write(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


# --- the sweep file ---------------------------------------------------------------------------

GOOD = {
    "arms": [{"name": "a"}, {"name": "b", "set": ["optim.lr=1e-4"]}],
    "seeds": [0],
    "eval": {"problems": 2, "n": 4},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arm": [1]}, r"^arm: unknown key; valid: name, base, arms"),
        ({"arms": []}, r"^arms: expected a non-empty list"),
        (
            {"arms": [{"name": "a"}, {"name": "a"}]},
            r"^arms\[1\]\.name: 'a' is used by an earlier arm",
        ),
        ({"arms": [{"name": "a b"}]}, r"^arms\[0\]\.name: expected letters"),
        ({"arms": [{"name": "before"}]}, r"^arms\[0\]\.name: 'before' is reserved"),
        ({"arms": [{"name": "a", "recipe": "x"}]}, r"^arms\[0\]\.recipe: unknown key"),
        (
            {"arms": [{"name": "a", "config": "nope.yaml"}]},
            r"^arms\[0\]\.config: recipe 'nope.yaml' not found",
        ),
        (
            {"arms": [{"name": "a", "set": ["lr"]}]},
            r"^arms\[0\]\.set\[0\]: expected 'key=value', got 'lr'",
        ),
        (
            {"arms": [{"name": "a", "set": ["seed=3"]}]},
            r"^arms\[0\]\.set: 'seed' is set by the sweep's 'seeds'",
        ),
        ({"base": {"set": {"eval.n": 8}}}, r"^base\.set: 'eval\.n' is set by the sweep's 'eval'"),
        ({"seeds": [0, 0]}, r"^seeds: \[0, 0\] has repeats"),
        ({"seeds": ["0"]}, r"^seeds: expected a non-empty list of integers"),
        ({"eval": None}, r"^eval: missing"),
        (
            {"eval": {"n": 4, "ks": [1, 8]}},
            r"^eval\.ks: every k must be an integer in 1\.\.eval\.n=4, got \[8\]",
        ),
        ({"eval": {"n": 0}}, r"^eval\.n: expected an integer >= 1, got 0"),
        ({"eval": {"n": 4, "samples": 4}}, r"^eval\.samples: unknown key"),
        ({"compare": {"reference": "c"}}, r"^compare\.reference: 'c' is not an arm; arms: a, b"),
        ({"compare": {"confidence": 1.5}}, r"^compare\.confidence: must be in \(0, 1\)"),
        ({"equal_budgets": "yes"}, r"^equal_budgets: expected true or false"),
    ],
)
def test_bad_sweep_files_name_the_key(change, message):
    with pytest.raises(SweepError, match=message):
        parse_sweep({**GOOD, **change}, ROOT)


def test_a_good_sweep_file_and_its_defaults():
    spec = parse_sweep({**GOOD, "base": {"set": {"task.name": "mul1", "task.options": {}}}}, ROOT)
    assert [a.name for a in spec.arms] == ["a", "b"] and spec.arms[0].label == "a"
    assert spec.base_overrides == ("task.name=mul1", "task.options={}")
    assert spec.eval.ks == (1, 2, 4) and spec.compare.reference == "a"
    assert spec.compare.ks == (1, 2, 4) and spec.compare.resamples == 1000
    part = spec.select(["b"], [0])
    assert [a.name for a in part.arms] == ["b"] and part.compare.reference == "b"
    with pytest.raises(SweepError, match=r"no arm 'c'; arms: a, b"):
        spec.select(["c"], None)
    with pytest.raises(SweepError, match=r"--seeds \[5\]: not in the sweep's seeds \[0\]"):
        spec.select(None, [5])


def test_the_cli_refuses_a_bad_sweep_in_one_line_before_anything_runs(tmp_path, capsys):
    bad = {**GOOD, "arms": [{"name": "a", "set": ["optim.lrr=1"]}]}
    out = tmp_path / "out"
    assert main(["sweep", str(_write(tmp_path / "s.yaml", bad)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "arm 'a', seed 0: unknown config key 'optim.lrr'" in err[0]
    assert not out.exists()
    bad = {**GOOD, "eval": {"problems": 2, "n": 4, "ks": [5]}}
    assert main(["sweep", str(_write(tmp_path / "s.yaml", bad)), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("passk sweep: error: eval.ks: every k")


def test_reproduce_sweep_file_plans_four_arms_with_equal_budgets(tmp_path, capsys):
    file = ROOT / "configs" / "sweeps" / "reproduce.yaml"
    assert main(["sweep", str(file), "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "4 arms x 2 seeds" in printed and "10 to run" in printed
    assert printed.count("--set eval.at_start=false") == 8  # "before" shared per seed
    assert "--set algorithm.stages.0.steps=8" in printed
    assert not (tmp_path / "r").exists()


def test_run_directories_are_checked_before_anything_runs_and_dry_run_changes_nothing(
    tmp_path, capsys
):
    from passk.sweep.plan import plan_sweep
    from passk.train.config import dump_config

    file, out = _write(tmp_path / "s.yaml", GOOD), tmp_path / "out"
    cut = out / "a_s0"  # started, cut before its first checkpoint: restarted when it runs
    cut.mkdir(parents=True)
    run_a = plan_sweep(parse_sweep(GOOD, ROOT), out).runs[0]
    (cut / "config.yaml").write_text(dump_config(run_a.config))
    (cut / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n')
    assert main(["sweep", str(file), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "3 to run, 0 finished earlier" in printed and "[a_s0] run: passk train" in printed
    assert (cut / "metrics.jsonl").is_file()  # a dry run deletes nothing
    from passk.sweep.runner import decide

    plan = plan_sweep(parse_sweep(GOOD, ROOT), out)
    jobs = {j.key: j for j in decide(plan).jobs}
    assert (jobs["a_s0"].resume, jobs["a_s0"].clear) == (False, True)  # restarted from scratch
    (cut / "checkpoints" / "step_000001").mkdir(parents=True)
    (cut / "checkpoints" / "step_000001" / "state.json").write_text("{}")
    (cut / "checkpoints" / "latest").write_text("step_000001\n")
    jobs = {j.key: j for j in decide(plan).jobs}
    assert (jobs["a_s0"].resume, jobs["a_s0"].clear) == (True, False)  # its checkpoint kept

    (out / "b_s0").mkdir()
    (out / "b_s0" / "notes.txt").write_text("mine")
    assert main(["sweep", str(file), "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "b_s0" in err and "not part of a passk run (notes.txt)" in err
    assert (cut / "metrics.jsonl").is_file()

    (cut / "config.yaml").write_text(
        dump_config(plan_sweep(parse_sweep(GOOD, ROOT), out).runs[1].config)
    )
    assert main(["sweep", str(file), "--out", str(out), "--dry-run"]) == 2
    assert "a_s0" in capsys.readouterr().err  # b's config in a's directory: another config


def test_parallel_runs_side_by_side_and_a_failed_run_is_reported(tmp_path, monkeypatch):
    """Two stand-in jobs (a script, not a trainer) overlap with --parallel 2; one that
    exits 1 is "failed" and its log tail is shown."""
    from passk.sweep import runner
    from passk.sweep.plan import plan_sweep

    plan = plan_sweep(parse_sweep(GOOD, ROOT), tmp_path / "out")
    stamps = tmp_path / "stamps"
    script = (
        "import sys, time; open(sys.argv[1], 'a').write(f'{time.time()} '); time.sleep(1.5); "
        "open(sys.argv[1], 'a').write(f'{time.time()}\\n'); print('boom'); sys.exit(1)"
    )
    stamps.mkdir()
    monkeypatch.setattr(
        runner.Job, "argv", lambda job: [sys.executable, "-c", script, str(stamps / job.key)]
    )
    jobs = [runner.Job(r.key, r.run_dir, run=r) for r in plan.runs]
    said: list[str] = []
    assert runner.execute(plan, jobs, parallel=2, say=said.append)
    (s0, e0), (s1, e1) = (map(float, (stamps / r.key).read_text().split()) for r in plan.runs)
    assert max(s0, s1) < min(e0, e1)  # both were running at once
    assert [runner.read_outcome(plan.out, r.key)["status"] for r in plan.runs] == ["failed"] * 2
    assert sum("] failed in" in line for line in said) == 2 and any("boom" in x for x in said)


def test_a_run_stopped_from_outside_stops_the_sweep(tmp_path, monkeypatch):
    """A run that exits 130 (someone sent it SIGINT) ends the sweep: no further run starts,
    and the caller is told it was interrupted (the sweep resumes it when run again)."""
    from passk.sweep import runner
    from passk.sweep.plan import plan_sweep

    plan = plan_sweep(parse_sweep(GOOD, ROOT), tmp_path / "out")
    started = tmp_path / "started"
    started.mkdir()
    script = "import sys; open(sys.argv[1], 'w').close(); sys.exit(130)"
    monkeypatch.setattr(
        runner.Job, "argv", lambda job: [sys.executable, "-c", script, str(started / job.key)]
    )
    jobs = [runner.Job(r.key, r.run_dir, run=r) for r in plan.runs]
    assert len(jobs) == 2
    said: list[str] = []
    assert runner.execute(plan, jobs, parallel=1, say=said.append) is False
    assert sorted(p.name for p in started.iterdir()) == [jobs[0].key]
    assert runner.read_outcome(plan.out, jobs[0].key)["status"] == "interrupted"
    assert any(f"[{jobs[0].key}] interrupted in" in line for line in said)


# --- paired comparisons -----------------------------------------------------------------------


def _after(cs: list[int], n: int = 4) -> dict:
    return {"n": n, "correct_per_problem": {f"p{i}": c for i, c in enumerate(cs)}}


def test_paired_comparison_against_a_hand_computed_example():
    # n = 4. pass@1 = c / 4; pass@2 = 1 - C(4 - c, 2) / 6: c = 0..4 -> 0, 1/2, 5/6, 1, 1
    records = [
        {"arm": "ref", "seed": 0, "after": _after([0, 2, 4])},
        {"arm": "ref", "seed": 1, "after": _after([1, 2, 4])},
        {"arm": "new", "seed": 0, "after": _after([1, 2, 3])},
        {"arm": "new", "seed": 1, "after": _after([1, 4, 4])},
    ]
    got = paired_comparisons(records, "ref", [1, 2], resamples=4000)["arms"]["new"]
    # k = 1: per-problem differences s0 (1/4, 0, -1/4), s1 (0, 1/2, 0): seed means 0, 1/6
    assert got["1"]["mean"] == pytest.approx(1 / 12)
    assert got["1"]["per_seed"] == pytest.approx([0, 1 / 6])
    assert (got["1"]["better"], got["1"]["worse"]) == (2, 1)
    # t over the two seed means: 1/12 +- t(0.975, df=1) * sd / sqrt(2), sd = (1/6) / sqrt(2)
    half = 12.706204736174707 * (1 / 6) / 2
    assert got["1"]["t_ci"] == pytest.approx([1 / 12 - half, 1 / 12 + half])
    # k = 2: s0 (1/2, 0, 0), s1 (0, 1/6, 0): seed means 1/6, 1/18
    assert got["2"]["mean"] == pytest.approx(1 / 9)
    assert got["2"]["per_seed"] == pytest.approx([1 / 6, 1 / 18])
    assert (got["2"]["better"], got["2"]["worse"]) == (2, 0)
    assert got["seeds"] == [0, 1] and got["problems"] == 3
    assert not got["1"]["distinguishable"] and got["training_variance_covered"]


def test_the_sweep_counts_the_variance_between_seeds():
    # every problem moves with its seed: +0.3, -0.2, +0.25. Averaging seeds first and
    # bootstrapping problems (the sweep's former interval) calls this certain; it is not.
    rng = np.random.default_rng(0)
    ref = {s: {f"p{i}": [float(v)] for i, v in enumerate(rng.uniform(0.2, 0.6, 40))} for s in (0,)}
    ref = {s: ref[0] for s in (0, 1, 2)}
    shift = {0: 0.3, 1: -0.2, 2: 0.25}
    arm = {s: {p: [v[0] + shift[s]] for p, v in ref[s].items()} for s in (0, 1, 2)}
    d = seed_aware_difference(arm, ref, [1])["1"]
    assert d["mean"] == pytest.approx(0.35 / 3)
    assert d["t_ci"][0] < 0 < d["t_ci"][1] and not d["distinguishable"]
    from passk.core.metrics import bootstrap_mean_ci

    lo, _ = bootstrap_mean_ci(np.full((40, 1), 0.35 / 3) + 1e-3 * rng.standard_normal((40, 1)))
    assert lo[0] > 0  # what the problems-only interval said


def test_seed_aware_difference_degenerate_cases():
    same = {0: {"p": [0.5]}, 1: {"p": [0.25]}}
    d = seed_aware_difference(same, same, [1])
    assert d["1"]["mean"] == 0.0 and d["1"]["per_seed"] == [0.0, 0.0]
    assert not d["1"]["distinguishable"] and (d["1"]["better"], d["1"]["worse"]) == (0, 0)
    one = seed_aware_difference({0: {"p": [0.5], "q": [0.7]}}, {0: {"p": [0.25], "q": [0.5]}}, [1])
    assert one["1"]["t_ci"] is None and not one["training_variance_covered"]
    with pytest.raises(ValueError, match="no seed has a finished run in both arms"):
        seed_aware_difference({0: {"p": [1.0]}}, {1: {"p": [1.0]}}, [1])
    with pytest.raises(ValueError, match="the arms share no evaluated problem"):
        seed_aware_difference({0: {"p": [1.0]}}, {0: {"q": [1.0]}}, [1])


def test_the_comparison_table_prints_per_seed_differences_and_names_its_intervals():
    from passk.sweep.report import markdown_tables

    records = [
        {"arm": a, "seed": s, "after": _after(cs)}
        for a, s, cs in [
            ("ref", 0, [0, 2, 4]),
            ("ref", 1, [1, 2, 4]),
            ("new", 0, [1, 2, 3]),
            ("new", 1, [1, 4, 4]),
        ]
    ]
    comparisons = paired_comparisons(records, "ref", [1], resamples=500)
    from passk.sweep.report import comparison_table

    table = comparison_table(comparisons, {"new": {"label": "New"}})
    assert "| New | 1 | +0.083 | +0.000 +0.167 |" in table
    assert "| t over seeds | bootstrap seeds x problems |" in table
    summary = {"ks": [1], "arms": {}, "runs": [], "comparisons": comparisons}
    assert "t over the per-seed differences (df = seeds - 1" in markdown_tables(summary)


def test_portable_paths_never_keep_a_machine_path(tmp_path):
    root = tmp_path / "sweep"
    assert portable_path(root / "a_s0" / "evals", root) == os.path.join("a_s0", "evals")
    assert portable_path(tmp_path / "model", root) == os.path.join("..", "model")
    site = "/opt/py/lib/python3.11/site-packages/llm_pkg/model.gguf"
    assert portable_path(site, root) == "llm_pkg/model.gguf"
    obj = {"a": [f"model.name={tmp_path / 'm'}", "eval/pass@1", 3], "b": str(root / "x.png")}
    assert portable(obj, root) == {"a": ["model.name=../m", "eval/pass@1", 3], "b": "x.png"}


# --- summaries from run directories (fabricated: no model) -----------------------------------


def _fake_eval(run_dir: Path, step: int, cs: list[int], n: int = 4) -> None:
    per = [{"id": f"q{i}", "n": n, "c": c} for i, c in enumerate(cs)]
    report = {"step": step, "per_problem": per, "mean_entropy": 1.0 - 0.1 * step}
    report |= {"answer_diversity": 0.5, "mean_length": 10.0, "model": {"name": "m"}}
    (run_dir / "evals").mkdir(parents=True, exist_ok=True)
    (run_dir / "evals" / f"step_{step:06d}.json").write_text(json.dumps(report))


def _fake_run(run, cs_after: list[int], cs_before: list[int] | None = None) -> None:
    from passk.train.config import dump_config

    rd = run.run_dir
    rd.path.mkdir(parents=True)
    rd.config.write_text(dump_config(run.config))
    rows = [
        {"kind": "train", "step": s, "actor/entropy": 2.0 - s, "reward/mean": 0.1 * s}
        for s in (1, 2)
    ]
    rd.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if cs_before is not None:
        _fake_eval(rd.path, 0, cs_before)
    _fake_eval(rd.path, run.steps, cs_after)
    rd.mark_finished(run.steps)


def test_summary_when_arms_evaluate_their_own_start(tmp_path):
    """Arms that differ in what the evaluation depends on share no "before": each run's
    own step-0 evaluation is its "before"; tables and figures do without the shared row."""
    from passk.plots import plot_sweep
    from passk.sweep.plan import plan_sweep
    from passk.sweep.report import markdown_tables
    from passk.sweep.summary import build_summary

    tree = {**GOOD, "base": {"set": {"steps": 2}}}
    tree["arms"] = [{"name": "a"}, {"name": "b", "set": {"rollout.max_new_tokens": 32}}]
    plan = plan_sweep(parse_sweep(tree, ROOT), tmp_path / "out")
    assert plan.starts == {} and all(r.config.eval.at_start for r in plan.runs)
    _fake_run(plan.runs[0], [2, 4, 0], cs_before=[1, 1, 0])
    _fake_run(plan.runs[1], [3, 4, 1], cs_before=[1, 2, 0])
    summary = build_summary(plan)
    assert summary["before"] is None and summary["status"] == {"a_s0": "done", "b_s0": "done"}
    assert summary["before_status"] == {}
    a, b = summary["runs"]
    assert a["before"]["pass_at_k"]["1"] == pytest.approx(2 / 12)
    assert b["delta_pass_at_k"]["1"] == pytest.approx(8 / 12 - 3 / 12)
    assert summary["arms"]["b"]["delta"]["1"]["mean"] == pytest.approx(5 / 12)
    assert summary["comparisons"]["arms"]["b"]["1"]["mean"] == pytest.approx(2 / 12)
    assert summary["comparisons"]["arms"]["b"]["1"]["better"] == 2
    text = markdown_tables(summary)
    assert "| before |" not in text and "| b | 0.667 |" in text and "| b | +0.417 |" in text
    figures = plot_sweep(summary, plan.out)
    assert sorted(figures) == ["entropy", "passk_curves", "training"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in figures.values())
    # passk plot sweep redraws them from summary.json
    (plan.out / "summary.json").write_text(json.dumps(summary))
    for p in figures.values():
        p.unlink()
    assert main(["plot", "sweep", str(plan.out)]) == 0
    assert all(p.is_file() for p in figures.values())
    with pytest.raises(SystemExit, match="2"):
        main(["plot", "sweep", str(tmp_path)])  # no summary.json: one line, exit 2


def test_summary_of_a_sweep_with_unfinished_runs(tmp_path):
    from passk.sweep.plan import plan_sweep
    from passk.sweep.report import markdown_tables
    from passk.sweep.summary import build_summary

    plan = plan_sweep(parse_sweep({**GOOD, "base": {"set": {"steps": 2}}}, ROOT), tmp_path / "o")
    _fake_eval(plan.starts[0].run_dir.path, 0, [1, 2, 0])
    plan.starts[0].run_dir.mark_finished(0)
    _fake_run(plan.runs[0], [2, 4, 0])
    summary = build_summary(plan)  # b never ran
    assert summary["status"] == {"a_s0": "done", "b_s0": "not started"}
    assert summary["before_status"] == {"before_s0": "done"}
    assert summary["arms"]["b"] == {"label": "b", "seeds": []}
    assert summary["comparisons"]["arms"] == {}
    assert summary["before"]["mean"]["pass_at_k"]["1"]["mean"] == pytest.approx(3 / 12)
    assert "| b | 0 | not started |" in markdown_tables(summary)


# --- on a tiny model --------------------------------------------------------------------------


def _sweep(file: Path, out: Path, *extra: str) -> int:
    return main(["sweep", str(file), "--out", str(out), *extra])


def _absolute_strings(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _absolute_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _absolute_strings(v)]
    return [obj] if isinstance(obj, str) and re.search(r"(^|[\s=])/", obj) else []


def test_shared_before_equals_a_runs_own_step0_evaluation(
    tiny_checkpoint, tmp_path, train_env, capsys
):
    """The claim behind evaluating "before" once per seed."""
    from passk.sweep.plan import plan_sweep
    from passk.sweep.start_eval import evaluate_start
    from passk.train.config import dump_config, load_config
    from passk.train.loop import train
    from passk.train.run_dir import RunDir

    spec = parse_sweep(tiny_sweep(tiny_checkpoint), ROOT)
    plan = plan_sweep(spec, tmp_path / "sweep")
    start = plan.starts[0]
    config_file = tmp_path / "before.yaml"
    config_file.write_text(dump_config(start.config))
    shared = evaluate_start(config_file, tmp_path / "before").read_eval(0)
    total = shared["num_problems"] * shared["config"]["n"]
    # a long evaluation reports its progress to the run's log
    assert f"eval at step 0: {total}/{total} samples (100%)" in capsys.readouterr().err

    run = plan.runs[1]  # any arm: the initial model is the same
    own_cfg = load_config(run.recipe, [*run.overrides, "eval.at_start=true", "steps=1"])
    train(own_cfg, tmp_path / "own")
    own = RunDir(tmp_path / "own").read_eval(0)
    assert [p["c"] for p in own["per_problem"]] == [p["c"] for p in shared["per_problem"]]
    assert own["pass_at_k"] == shared["pass_at_k"]
    assert own["mean_entropy"] == pytest.approx(shared["mean_entropy"], rel=1e-6)


def test_resume_an_interrupted_run_and_skip_the_finished(
    tiny_checkpoint, tmp_path, train_env, capsys
):
    """One arm: its run is cut after step 1 and resumed; the shared "before" is not redone."""
    file = _write(tmp_path / "s.yaml", tiny_sweep(tiny_checkpoint, keep_checkpoints=True))
    out = tmp_path / "sweep"
    assert _sweep(file, out, "--arms", "passk") == 0
    first = json.loads((out / "summary.json").read_text())
    assert _absolute_strings(first) == []
    assert rounded(first) == first  # no float carries its sums' rounding noise
    assert first["model"]["name"] == tiny_checkpoint.name  # the base, not "before_s0 step 0"
    assert first["status"] == {"passk_s0": "done"} and first["before"]["per_seed"]["0"]
    capsys.readouterr()

    # cut passk_s0 back to its step-1 checkpoint, as if it had been killed after step 1
    run = out / "passk_s0"
    (run / "done.json").unlink()
    shutil.rmtree(run / "checkpoints" / "step_000002")
    (run / "checkpoints" / "latest").write_text("step_000001\n")
    assert _sweep(file, out, "--arms", "passk") == 0
    printed = capsys.readouterr().out
    assert "[before_s0] finished earlier, skipped" in printed
    assert "[passk_s0] resuming seed 0, 2 steps" in printed and "[passk_s0] training" not in printed
    invocations = (out / "logs" / "passk_s0.log").read_text().split("\n# ")[1:]
    assert len(invocations) == 2 and invocations[1].splitlines()[0].endswith(" --resume")
    assert "step 2/2" in invocations[1] and "step 1/2" not in invocations[1]
    (resumed,), (straight,) = json.loads((out / "summary.json").read_text())["runs"], first["runs"]
    assert resumed["resumed"] is True and straight["resumed"] is False
    assert resumed["after"]["correct_per_problem"] == straight["after"]["correct_per_problem"]
    assert resumed["train"]["reward"] == straight["train"]["reward"]
    assert resumed["wall_s"] > straight["wall_s"]  # both invocations' time

    # a different config for a finished run is refused before anything runs
    changed = tiny_sweep(tiny_checkpoint, keep_checkpoints=True)
    changed["base"]["set"]["optim.lr"] = 5.0e-4
    assert _sweep(_write(tmp_path / "s2.yaml", changed), out, "--arms", "passk") == 2
    err = capsys.readouterr().err
    assert "passk_s0" in err and "another config" in err and "optim" in err


# --- whose directory, one writer, signals -------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _fake_run_dir(path: Path) -> Path:
    """A finished ``passk train`` run as the trainer leaves it."""
    from passk.train.config import dump_config, load_config

    (path / "checkpoints" / "step_000002").mkdir(parents=True)
    (path / "evals").mkdir()
    (path / "config.yaml").write_text(dump_config(load_config(None, [])))
    (path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n{"step": 2}\n')
    (path / "training.png").write_bytes(b"png")
    (path / "done.json").write_text('{"steps": 2}\n')
    return path


def _fake_eval_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "eval.json").write_text("{}")
    (path / "passk_curve.png").write_bytes(b"png")
    return path


def _foreign_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_fake_run_dir, "is a training run directory (passk train's)"),
        (_fake_eval_dir, "is an evaluation directory (passk eval's)"),
        (_foreign_dir, "holds files that are not a passk sweep's (notes.txt)"),
    ],
    ids=["run", "eval", "foreign"],
)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_a_sweep_refuses_an_out_it_does_not_own(tmp_path, capsys, make, message, dry_run):
    # a model that cannot load: a sweep that went ahead would fail its runs at once
    no_model = {**GOOD, "base": {"set": {"model.name": str(tmp_path / "no-model")}}}
    file = _write(tmp_path / "s.yaml", no_model)
    out = make(tmp_path / "out")
    before = _snapshot(out)
    assert _sweep(file, out, *(["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "choose another --out" in err[0]
    assert _snapshot(out) == before  # nothing written, nothing replaced


def test_a_sweep_accepts_its_own_directory(tmp_path, capsys):
    file, out = _write(tmp_path / "s.yaml", GOOD), tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "a_s0.log").write_text("")
    (out / "logs" / "a_s0.json").write_text('{"status": "interrupted"}')
    (out / "other_s3").mkdir()  # a run of an arm or seed not selected now
    for name in ("summary.json", "passk_curves.png", "training.png", "entropy.png", "tables.md"):
        (out / name).write_text("")
    md = ["--markdown", str(out / "tables.md")]
    assert _sweep(file, out, "--dry-run", *md) == 0
    assert "2 arms x 1 seed ->" in capsys.readouterr().out
    assert _sweep(file, out, "--dry-run") == 2  # tables.md is no file of the sweep's
    assert "(tables.md)" in capsys.readouterr().err


def test_a_stage_without_signal_is_refused_before_any_run(tmp_path, capsys):
    """Analytic Pass@k with k = rollout.n trains on all-zero advantages: refused, with the fix."""
    bad = {**GOOD, "base": {"set": {"rollout.n": 4, "algorithm.params": {"k": 4}}}}
    out = tmp_path / "out"
    assert _sweep(_write(tmp_path / "s.yaml", bad), out, "--dry-run") == 2
    err = capsys.readouterr().err
    assert "arm 'a', seed 0: algorithm.stages.0: passk_analytic with params.k=4" in err
    assert "zero advantage" in err and "use k <= 3 or rollout.n >= 5" in err
    assert not out.exists()


def test_dry_run_commands_paste_into_a_shell_at_the_current_directory(
    tmp_path, subprocess_env_root
):
    """The sweep file lives elsewhere; --out is relative: every printed command, run from
    the same directory, resolves the recipe and names the run directory the sweep uses."""
    import shlex
    import subprocess

    spec = {**GOOD, "arms": [{"name": "a", "config": str(ROOT / "configs" / "pass1.yaml")}]}
    file = _write(tmp_path / "elsewhere.yaml", spec)
    cwd = tmp_path / "work"
    cwd.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "passk.cli", "sweep", str(file), "--out", "sw", "--dry-run"],
        cwd=cwd,
        env=subprocess_env_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "1 arm x 1 seed -> sw;" in run.stdout
    (line,) = [x for x in run.stdout.splitlines() if x.startswith("[a_s0] run: ")]
    argv = shlex.split(line.removeprefix("[a_s0] run: "))
    assert argv[:2] == ["passk", "train"] and argv[argv.index("--out") + 1] == "sw/a_s0"
    pasted = subprocess.run(
        [sys.executable, "-m", "passk.cli", *argv[1:], "--print-config"],
        cwd=cwd,
        env=subprocess_env_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pasted.returncode == 0, pasted.stderr
    assert "eval.at_start" not in pasted.stderr and "seed: 0" in pasted.stdout


@pytest.fixture()
def subprocess_env_root() -> dict[str, str]:
    """Subprocesses import this checkout's passk from any directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(TRAIN_TESTS)])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # exited, not yet reaped: gone


def _descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, their children, ...)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return {c for c in found if _alive(c)}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_to_a_sweep_stops_its_runs_and_leaves_no_process(
    tiny_checkpoint, tmp_path, subprocess_env_root, capsys
):
    """SIGTERM to ``passk sweep``: its ``passk train`` child is told to stop and waited for
    (no orphan writing on), the sweep exits 130; a second sweep on the same directory
    is refused while the first runs, naming it."""
    import signal
    import subprocess
    import time

    from passk.train.run_dir import RunDir

    tree = tiny_sweep(tiny_checkpoint)
    tree["base"]["set"]["steps"] = 400
    file, out = _write(tmp_path / "s.yaml", tree), tmp_path / "sweep"
    argv = ["sweep", str(file), "--out", str(out), "--arms", "passk"]
    log = (tmp_path / "sweep.log").open("w")
    sweep = subprocess.Popen(
        [sys.executable, "-m", "passk.cli", *argv],
        env=subprocess_env_root,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children: set[int] = set()
    run = RunDir(out / "passk_s0")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not run.last_train_step():
            assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()
            time.sleep(0.2)
        children = _descendants(sweep.pid)
        assert children, "the sweep's run is not running"
        assert _sweep(file, out, "--arms", "passk", "--dry-run") == 2
        assert f"pid {sweep.pid} (passk sweep" in capsys.readouterr().err
        sweep.send_signal(signal.SIGTERM)
        sweep.wait(timeout=150)
        time.sleep(1.0)  # an orphan would still be running now
        left = {c for c in children if _alive(c)}
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        for c in children:
            if _alive(c):
                os.kill(c, signal.SIGKILL)
        log.close()
    output = (tmp_path / "sweep.log").read_text()
    assert left == set(), output[-3000:]
    assert sweep.returncode == 130, output[-3000:]
    assert "interrupted; run the same command again to continue" in output
    assert run.writer() is None and not (out / "writer.lock").exists()
    assert json.loads((out / "logs" / "passk_s0.json").read_text())["status"] == "interrupted"
    assert (run.checkpoints / f"step_{run.last_train_step():06d}").is_dir()  # saved on the way


def test_summary_floats_are_rounded_to_twelve_significant_digits():
    noisy = {"pass@2": 0.49999999999999983, "ci": [1 / 3, 2.0000000000000004], "n": 7}
    assert rounded(noisy) == {"pass@2": 0.5, "ci": [0.333333333333, 2.0], "n": 7}
    assert json.dumps(rounded({"x": sum([0.1] * 10)})) == '{"x": 1.0}'
    assert rounded(float("nan")) != rounded(float("nan")) and rounded(True) is True


def test_arms_with_the_same_numbers_stay_visible_in_the_sweep_figure(tmp_path, monkeypatch):
    from passk.plots import sweep as sweep_figures

    curve = [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.65]
    same = {
        "seeds": [0],
        "curve_after_mean": curve,
        "curve_after_min": curve,
        "curve_after_max": curve,
    }
    summary = {
        "arms": {"a": {"label": "A", **same}, "b": {"label": "B", **same}},
        "before": {"per_seed": {"0": {"curve": [0.1] * 8}}},
    }
    figures = []
    monkeypatch.setattr(
        sweep_figures, "save_figure", lambda fig, out: figures.append(fig) or Path(out)
    )
    sweep_figures.plot_sweep_curves(summary, tmp_path / "c.png")
    ax = figures[0].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"before (1 seed)", "A (1 seed)", "B (1 seed)"}
    a, b = lines["A (1 seed)"], lines["B (1 seed)"]
    assert a.get_linestyle() != b.get_linestyle() and a.get_marker() != b.get_marker()

    def marked(line) -> set[int]:  # indices of the points that carry a marker
        start, step = line.get_markevery()
        return set(range(start, len(line.get_xdata()), step))

    assert marked(a) and marked(b) and not marked(a) & marked(b)


def test_a_run_directory_with_a_live_writer_is_refused_naming_it(tmp_path, capsys):
    """A run left writing by an earlier sweep (or started by hand) is not given a second
    writer: the sweep stops before anything runs and names the process."""
    import subprocess

    hold = (
        "import sys, time; from passk.train.run_dir import DirectoryLock; "
        "DirectoryLock(sys.argv[1], 'passk train').acquire(); print('held', flush=True); "
        "time.sleep(120)"
    )
    no_model = {**GOOD, "base": {"set": {"model.name": str(tmp_path / "no-model")}}}
    file, out = _write(tmp_path / "s.yaml", no_model), tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(out / "b_s0")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for extra in (["--dry-run"], []):
            assert _sweep(file, out, *extra) == 2
            err = capsys.readouterr().err
            assert (
                f"b_s0: {out / 'b_s0'} is being written by another process: pid {holder.pid}" in err
            )
        assert sorted(p.name for p in out.iterdir()) == ["b_s0"]  # nothing else written
    finally:
        holder.kill()
        holder.wait()


def test_a_sweep_warns_about_an_arm_whose_passk_part_vanishes(tmp_path, capsys):
    weak = {"algorithm.estimator": "passk_combination", "algorithm.params": {"k": 4}}
    weak["rollout.n"] = 4
    tree = {**GOOD, "seeds": [0, 1]}
    tree["arms"] = [{"name": "a", "set": weak}, {"name": "b", "set": ["optim.lr=1e-4"]}]
    file = _write(tmp_path / "s.yaml", tree)
    with pytest.warns(UserWarning) as said:
        assert _sweep(file, tmp_path / "out", "--dry-run") == 0
    texts = [str(w.message) for w in said]
    assert texts == [
        "arm 'a': algorithm.stages.0: passk_combination with k = rollout.n = 4 has a zero "
        "Pass@k part (every k-subset is the whole group), so it trains on (1 - accuracy) x "
        "Pass@1 alone; set k below 4 or raise rollout.n"
    ]
