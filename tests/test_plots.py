"""plots.py draws from logged files only."""

from __future__ import annotations

import json

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
