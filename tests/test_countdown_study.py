"""``benchmarks/countdown_modes.py``: the pre-registered pilot rule and endpoints of the
countdown_modes study, on evaluation reports written by hand (known counts)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from passk.core.metrics import pass_at_k

ROOT = Path(__file__).resolve().parents[1]
N = 64


def _load():
    spec = importlib.util.spec_from_file_location(
        "countdown_modes_study", ROOT / "benchmarks" / "countdown_modes.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["countdown_modes_study"] = module
    spec.loader.exec_module(module)
    return module


study = _load()
FINAL = study.FINAL_STEP  # where the verdicts are read (amendment 2: 30)
MID = FINAL // 2  # an evaluation before it


def report(common: list[int], rare: list[int], n: int = N) -> dict:
    per = [{"id": f"c{i}", "source": "common", "c": c, "n": n} for i, c in enumerate(common)]
    per += [{"id": f"r{i}", "source": "rare", "c": c, "n": n} for i, c in enumerate(rare)]
    return {"per_problem": per}


def _mean_pass(cs: list[int], k: int) -> float:
    return float(np.mean([pass_at_k(N, c, k) for c in cs]))


def test_pilot_goes_when_rare_coverage_falls_and_pass1_rises():
    start = report(common=[20] * 6, rare=[3, 2, 1, 1, 4, 2])
    final = report(common=[50] * 6, rare=[3, 0, 0, 0, 0, 2])  # 4 rare problems solved -> never
    v = study.pilot_verdict(start, final)
    assert v["solved_to_never"] == ["r1", "r2", "r3", "r4"] and v["never_to_solved"] == []
    assert v["rare_pass@32"]["start"] == pytest.approx(_mean_pass([3, 2, 1, 1, 4, 2], 32))
    assert v["rare_pass@32"]["final"] == pytest.approx(_mean_pass([3, 0, 0, 0, 0, 2], 32))
    p1 = (np.mean([50] * 6 + [3, 0, 0, 0, 0, 2]) - np.mean([20] * 6 + [3, 2, 1, 1, 4, 2])) / N
    assert v["pass@1"]["change"] == pytest.approx(p1)
    assert v["coverage_lost"] and v["pass1_rose"] and v["go"]


def test_pilot_says_no_go_without_loss_or_without_learning():
    start = report(common=[20] * 6, rare=[3, 2, 1, 1, 4, 2])
    kept = report(common=[50] * 6, rare=[3, 2, 1, 1, 4, 2])  # learned, lost nothing
    v = study.pilot_verdict(start, kept)
    assert not v["coverage_lost"] and v["pass1_rose"] and not v["go"]
    idle = report(common=[20] * 6, rare=[0, 0, 0, 0, 0, 0])  # lost all, learned nothing
    v = study.pilot_verdict(start, idle)
    assert v["coverage_lost"] and not v["pass1_rose"] and not v["go"]
    # three solved -> never is not enough by itself; a drop of 0.10 in pass@32 is
    few = report(common=[50] * 6, rare=[3, 2, 1, 0, 0, 0])
    drop = _mean_pass([3, 2, 1, 1, 4, 2], 32) - _mean_pass([3, 2, 1, 0, 0, 0], 32)
    assert study.pilot_verdict(start, few)["coverage_lost"] == (drop >= 0.10)


def _write_sweep(root: Path, finals: dict[str, list[dict]], starts: list[dict]) -> None:
    for seed, start in enumerate(starts):
        d = root / f"before_s{seed}" / "evals"
        d.mkdir(parents=True)
        (d / "step_000000.json").write_text(json.dumps(start))
    for arm, per_seed in finals.items():
        for seed, final in enumerate(per_seed):
            d = root / f"{arm}_s{seed}" / "evals"
            d.mkdir(parents=True)
            (d / f"step_{MID:06d}.json").write_text(json.dumps(starts[seed]))
            (d / f"step_{FINAL:06d}.json").write_text(json.dumps(final))


def test_endpoints_from_a_sweep_directory(tmp_path):
    starts = [report([20] * 4, [4, 4, 4, 4, 4]) for _ in range(3)]
    finals = {
        "pass1": [report([50] * 4, r) for r in ([1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [1, 0, 1, 0, 0])],
        "passk": [report([45] * 4, r) for r in ([5, 3, 4, 2, 6], [4, 5, 3, 3, 2], [6, 2, 4, 5, 3])],
        "pass1_matched": [report([50] * 4, [1, 1, 0, 0, 1]) for _ in range(3)],
        "passk_then_pass1": [report([52] * 4, [1, 0, 0, 0, 1]) for _ in range(3)],
    }
    _write_sweep(tmp_path, finals, starts)
    result = study.build(tmp_path)
    prim = result["endpoints"]["primary"]
    expected = np.mean(
        [
            _mean_pass(k, 64) - _mean_pass(p, 64)
            for k, p in zip(
                ([5, 3, 4, 2, 6], [4, 5, 3, 3, 2], [6, 2, 4, 5, 3]),
                ([1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [1, 0, 1, 0, 0]),
                strict=True,
            )
        ]
    )
    assert prim["diff"] == pytest.approx(expected) and prim["seed_ids"] == [0, 1, 2]
    assert prim["t_ci"][0] > 0 and prim["supported"]
    sec = result["endpoints"]["secondary"]
    assert set(sec) == {"passk_vs_matched", "then_pass1_vs_pass1", "collapse"}
    assert sorted(s["holm_rank"] for s in sec.values()) == [0, 1, 2]
    # Holm: the j-th is tested at 1 - 0.05 / (3 - j)
    for s in sec.values():
        assert s["confidence"] == pytest.approx(1 - 0.05 / (3 - s["holm_rank"]))
    collapse = sec["collapse"]
    assert collapse["diff"] < 0 and collapse["what"] == "rare pass@64, pass1 - start"
    # pass@1 of passk_then_pass1 minus pass1, overall: counts 52 vs 50 on 4 of 9 problems
    then = sec["then_pass1_vs_pass1"]
    seed0 = (np.mean([52] * 4 + [1, 0, 0, 0, 1]) - np.mean([50] * 4 + [1, 0, 0, 1, 0])) / N
    assert then["per_seed"][0] == pytest.approx(seed0)
    # the pilot's verdict is in the JSON too (pass1 seed 0 against its start)
    assert result["pilot"]["step"] == FINAL and result["pilot"]["go"] is True
    traj = result["trajectories"]["pass1"]["0"]
    assert [r["step"] for r in traj] == [0, MID, FINAL]


def test_holm_stops_at_the_first_failure():
    rng = np.random.default_rng(0)
    strong = (rng.random((3, 20)) * 0.1, rng.random((3, 20)) * 0.1 + 0.5)
    none = (np.full((3, 20), 0.5), np.full((3, 20), 0.5))
    out = study.holm(
        [
            ("a", "strong", [0, 1, 2], *strong),
            ("b", "nothing", [0, 1, 2], *none),
        ]
    )
    assert out["a"]["supported"] and out["a"]["holm_rank"] == 0
    assert not out["b"]["supported"]


def test_unpaired_reports_and_empty_directories_are_refused(tmp_path):
    with pytest.raises(ValueError, match="same problems"):
        study.matrix([report([1], [1, 2]), report([1], [1])], 1, "rare")
    with pytest.raises(ValueError, match="holds no evaluation report"):
        study.build(tmp_path)
    assert study.main(["build", str(tmp_path / "missing"), "--out", str(tmp_path / "o.json")]) == 2
    assert not (tmp_path / "o.json").exists()


def test_no_verdict_and_no_endpoint_before_the_final_step(tmp_path):
    starts = [report([20] * 4, [4, 4, 4, 4, 4]) for _ in range(2)]
    finals = {"pass1": [report([50] * 4, [0] * 5)] * 2, "passk": [report([45] * 4, [5] * 5)] * 2}
    _write_sweep(tmp_path, finals, starts)
    # passk seed 1 is still running: its evaluations stop before the final step
    (tmp_path / "passk_s1" / "evals" / f"step_{FINAL:06d}.json").rename(
        tmp_path / "passk_s1" / "evals" / f"step_{FINAL - 1:06d}.json"
    )
    result = study.build(tmp_path)
    assert result["endpoints"]["primary"]["seed_ids"] == [0]  # not seed 1's earlier step
    # the pilot's run in progress: the rule is read, never called a verdict
    (tmp_path / "pass1_s0" / "evals" / f"step_{FINAL:06d}.json").unlink()
    result = study.build(tmp_path)
    assert "pilot" not in result and result["pilot_interim"]["step"] == MID
    assert study.main(["pilot", str(tmp_path)]) == 1


def test_the_final_step_is_a_setting_of_the_build(tmp_path):
    """Amendment 2 reads the verdicts at step 30; the first pass at its registered 200: the
    same reports give a verdict at the step asked for and none at another."""
    starts = [report([20] * 4, [4, 4, 4, 4, 4])]
    _write_sweep(tmp_path, {"pass1": [report([50] * 4, [0] * 5)]}, starts)
    assert study.build(tmp_path)["pilot"]["step"] == FINAL
    at_mid = study.build(tmp_path, final_step=MID)
    assert at_mid["final_step"] == MID and at_mid["pilot"]["step"] == MID
    assert at_mid["pilot"]["go"] is False  # the mid-run report is the start's copy
    other = study.build(tmp_path, final_step=study.REGISTERED_FINAL_STEP)
    assert "pilot" not in other and other["pilot_interim"]["step"] == FINAL
    assert study.main(["pilot", str(tmp_path), "--final-step", str(MID)]) == 0
    assert study.main(["pilot", str(tmp_path), "--final-step", "0"]) == 2


def test_readout_counts_templates_per_subset():
    r = report([64, 10], [2, 0])
    r["per_problem"][0]["extracted"] = ["1+2+3", "3+2+1", None]
    r["per_problem"][2]["extracted"] = ["7*8-5", "(7+8)*5", "7/8", "8*7-5"]
    out = study.readout(r)
    assert out["templates"] == {
        "common": {"none": 1, "sum": 2},
        "rare": {"invalid": 1, "other": 1, "product_minus": 2},
    }
    assert out["rare_solved"] == 1 and out["rare_problems"] == 2
    assert out["pass@1"] == pytest.approx((64 + 10 + 2 + 0) / (4 * N))
    assert out["rare_pass@64"] == pytest.approx(0.5)


def test_tables_splice_into_a_doc_and_check_it(tmp_path):
    starts = [report([20] * 4, [4, 4, 4, 4, 4]) for _ in range(3)]
    finals = {
        "pass1": [report([50] * 4, [0, 0, 0, 1, 0])] * 3,
        "passk": [report([45] * 4, r) for r in ([5, 3, 4, 2, 6], [4, 5, 3, 3, 2], [6, 2, 4, 5, 3])],
    }
    _write_sweep(tmp_path / "runs", finals, starts)
    out = tmp_path / "study.json"
    assert study.main(["build", str(tmp_path / "runs"), "--out", str(out)]) == 0
    doc = tmp_path / "results.md"
    doc.write_text(f"intro\n{study.TABLE_BEGIN}\nold\n{study.TABLE_END}\nend\n", encoding="utf-8")
    assert study.main(["tables", "--json", str(out), "--check", str(doc)]) == 1
    assert study.main(["tables", "--json", str(out), "--write", str(doc)]) == 0
    assert study.main(["tables", "--json", str(out), "--check", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith(f"{study.TABLE_END}\nend\n")
    assert f"Pilot verdict, step {FINAL}" in text and ": **go**." in text
    primary = json.loads(out.read_text())["endpoints"]["primary"]
    assert f"| {primary['diff']:+.3f} |" in text
    assert "| 0 | 0.174 |" in text  # the pilot's start row: pass@1 (4*20 + 5*4) / (9*64)


def test_the_docs_tables_are_those_of_the_committed_json():
    doc = ROOT / "docs" / "results.md"
    if study.TABLE_BEGIN not in doc.read_text(encoding="utf-8"):
        pytest.skip("docs/results.md has no countdown_modes tables yet")
    assert study.main(["tables", "--check", str(doc)]) == 0


def test_collect_copies_reports_and_metrics_without_machine_paths(tmp_path):
    runs = tmp_path / "runs"
    starts = [report([20] * 2, [4, 4])]
    _write_sweep(runs, {"pass1": [report([50] * 2, [0, 1])]}, starts)
    run = runs / "pass1_s0"
    (run / "metrics.jsonl").write_text(json.dumps({"model": f"{ROOT}/runs/x/model"}) + "\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "weights.bin").write_bytes(b"x")
    (run / "samples.jsonl").write_text("{}\n")
    into = tmp_path / "committed"
    assert study.main(["collect", str(runs), "--into", str(into)]) == 0
    got = sorted(str(p.relative_to(into)) for p in into.rglob("*") if p.is_file())
    assert got == [
        "before_s0/evals/step_000000.json",
        f"pass1_s0/evals/step_{MID:06d}.json",
        f"pass1_s0/evals/step_{FINAL:06d}.json",
        "pass1_s0/metrics.jsonl",
    ]
    assert json.loads((into / "pass1_s0" / "metrics.jsonl").read_text()) == {
        "model": "runs/x/model"
    }
    assert study.collect(runs, into) == []  # nothing new the second time
    assert study.build(into)["pilot"]["go"] is True  # the study reads the copy alone


def test_the_lab_prediction_is_read_from_a_simulate_result(tmp_path):
    lab = tmp_path / "lab.json"
    curve = {"32": [0.6, 0.1, 0.0], "64": [0.7, 0.2, 0.0]}
    traj = {"step": [0, 25, 30], "pass_at_k": {"1": [0.5, 0.7, 0.8]}}
    traj["by_group"] = {"rare": {"pass_at_k": curve}}
    lab.write_text(json.dumps({"estimators": [{"label": "P1", "runs": [{"trajectory": traj}]}]}))
    got = study.lab_prediction(lab)
    assert got == [
        {
            "label": "P1",
            "steps": [  # step 30 is not one of the table's steps
                {"step": 0, "rare_pass@32": 0.6, "rare_pass@64": 0.7, "pass@1": 0.5},
                {"step": 25, "rare_pass@32": 0.1, "rare_pass@64": 0.2, "pass@1": 0.7},
            ],
        }
    ]
    assert study.lab_prediction(tmp_path / "missing.json") is None
    text = study.markdown_tables({"lab": got})
    assert "| P1 | 0.60 / 0.50 | 0.10 / 0.70 |" in text


def test_one_seed_supports_nothing_even_when_the_bootstrap_excludes_zero():
    # a single seed has no seed-level interval: the bootstrap over problems alone is not
    # the registered test (an interval over problems is not one over training runs)
    r = {"t_ci": None, "distinguishable": True, "boot_ci": [0.2, 0.4], "diff": 0.3}
    assert not study.both_exclude_zero(r)
    assert study.both_exclude_zero(r | {"t_ci": [0.1, 0.5]})
    a, b = np.zeros((1, 30)), np.ones((1, 30))
    out = study.holm([("only", "one seed", [0], a, b)])
    assert out["only"]["boot_ci"][0] > 0 and not out["only"]["supported"]


def test_the_first_pass_is_rebuilt_from_its_committed_reports_and_shown_as_built():
    """The bf16 first pass (amendment 1) stays reproducible from git: its study JSON is
    what `build` makes of its committed reports, and docs/results.md shows its tables."""
    first = ROOT / "benchmarks" / "results" / "countdown_modes" / "bf16_start"
    committed = json.loads((first / "countdown_modes.json").read_text(encoding="utf-8"))
    rebuilt = study.build(first / "runs", final_step=study.REGISTERED_FINAL_STEP)
    rebuilt = json.loads(json.dumps(rebuilt, sort_keys=True))
    assert rebuilt == committed
    doc = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert study.markdown_tables(committed) in doc
