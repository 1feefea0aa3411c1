"""passk.plots draws from logged files only."""

from __future__ import annotations

import json

import pytest

from passk.eval.report import write_json_atomic
from passk.plots import load_eval, plot_compare, plot_eval_dir


def _fake_report(scale: float) -> dict:
    ks = [1, 2, 4, 8]
    values = {str(k): min(1.0, scale * k**0.5 / 3) for k in ks}
    return {
        "pass_at_k": values,
        "ci95": {k: [max(0.0, v - 0.05), min(1.0, v + 0.05)] for k, v in values.items()},
        "dang_bound": {k: min(1.0, v + 0.1) for k, v in values.items()},
        "num_problems": 3,
        "per_problem": [{"n": 8, "c": c} for c in (0, 3, 8)],
        "model": {"name": "fake"},
        "run": {"task": "mul1"},
    }


def test_plot_eval_dir_and_compare(tmp_path):
    for i, scale in enumerate((0.5, 1.0)):
        write_json_atomic(tmp_path / f"r{i}" / "eval.json", _fake_report(scale))
    paths = plot_eval_dir(tmp_path / "r0")
    assert [p.name for p in paths] == ["passk_curve.png", "pass1_hist.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    out = plot_compare(
        [tmp_path / "r0", tmp_path / "r1" / "eval.json"], tmp_path / "c.png", labels=["a", "b"]
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert load_eval(tmp_path / "r1") == json.loads((tmp_path / "r1" / "eval.json").read_text())


def test_empty_report_draws_nothing(tmp_path):
    write_json_atomic(tmp_path / "eval.json", {"pass_at_k": {}, "per_problem": []})
    assert plot_eval_dir(tmp_path) == []


def _with_all_metrics(scale: float) -> dict:
    report = _fake_report(scale)
    for name, ci in (("maj_at_k", "maj_at_k_ci95"), ("pass_hat_k", "pass_hat_k_ci95")):
        factor = 0.8 if name == "maj_at_k" else 0.4
        report[name] = {k: v * factor for k, v in report["pass_at_k"].items()}
        report[ci] = {k: [v * 0.9, min(1.0, v * 1.1)] for k, v in report[name].items()}
    return report


def test_maj_curve_and_three_metric_compare(tmp_path):
    write_json_atomic(tmp_path / "a" / "eval.json", _with_all_metrics(0.5))
    write_json_atomic(tmp_path / "b" / "eval.json", _fake_report(1.0))  # pass@k only
    paths = plot_eval_dir(tmp_path / "a")
    assert [p.name for p in paths] == ["passk_curve.png", "pass1_hist.png", "maj_curve.png"]
    assert (tmp_path / "a" / "maj_curve.png").read_bytes()[:4] == b"\x89PNG"
    out = plot_compare([tmp_path / "a", tmp_path / "b"], tmp_path / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    only = plot_compare([tmp_path / "a"], tmp_path / "m.png", metrics=["maj_at_k"])
    assert only.is_file()
    with pytest.raises(ValueError, match="no maj_at_k curve"):
        plot_compare([tmp_path / "b"], tmp_path / "x.png", metrics=["maj_at_k"])
    with pytest.raises(ValueError, match="unknown metric"):
        plot_compare([tmp_path / "a"], tmp_path / "x.png", metrics=["best_at_k"])


def test_plot_compare_cli_takes_metrics(tmp_path):
    from passk.cli import build_parser

    write_json_atomic(tmp_path / "a" / "eval.json", _with_all_metrics(0.5))
    args = build_parser().parse_args(
        ["plot", "compare", str(tmp_path / "a"), "--out", str(tmp_path / "c.png"),
         "--metrics", "pass_at_k", "pass_hat_k"]
    )  # fmt: skip
    assert args.func(args) == 0 and (tmp_path / "c.png").is_file()


def test_eta_plot_overlays_the_new_estimators_by_name(tmp_path):
    from passk.plots import eta_estimators, plot_eta

    names = eta_estimators()
    assert {"maxrl", "rs_grpo", "w_reinforce", "rloo", "reinforce_pp"} <= set(names)
    assert "passk_mixture" not in names  # its weights have no default
    assert "unlikeliness" not in names  # needs per-response log-probs
    out, peaks = plot_eta(8, [2], tmp_path / "eta.png", estimators=["pass1", "maxrl", "rs_grpo"])
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert peaks["maxrl"] == 0.125 and peaks["pass1"] == 0.5  # MaxRL pushes the hardest groups
