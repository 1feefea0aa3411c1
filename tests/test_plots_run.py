"""``passk plot run`` (training curves from metrics.jsonl) and ``passk plot eta``."""

from __future__ import annotations

import json
import math

import pytest

from passk.cli import main
from passk.plots import load_metrics, plot_eta, plot_run

PNG = b"\x89PNG"


def _train_line(step: int, *, kl: bool = True, reset: bool = False) -> dict:
    row = {
        "kind": "train",
        "step": step,
        "reward/mean": 0.3 + 0.05 * step,
        "train/pass@1": 0.3 + 0.05 * step,
        "train/pass@k": 0.6 + 0.03 * step,
        "train/k": 4,
        "actor/entropy": 1.0 - 0.1 * step,
        "adv/zero_frac": 0.2,
        "response/length_mean": 100 + step,
        "train/wrong_diversity": None,  # logged as missing: skipped, not drawn
    }
    if kl:
        row["actor/kl"] = 0.01 * step
        row["ref/reset"] = int(reset)
    return row


def _write_run(run_dir, *, truncated: bool = True, offset: float = 0.0):
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        _train_line(1),
        {"step": 2, "reward/mean": 0.4 + offset, "actor/entropy": float("nan")},  # no kind
        _train_line(3, reset=True),
        {"kind": "eval", "step": 3, "eval/pass@1": 0.3, "eval/pass@4": 0.5, "eval/pass@16": 0.7},
        _train_line(4, kl=False),
        {"kind": "eval", "step": 4, "eval/pass@1": 0.35, "eval/pass@4": 0.55, "eval/entropy": 0.8},
    ]
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    if truncated:
        text += '{"kind": "train", "step": 5, "reward/me'  # a writer mid-line
    (run_dir / "metrics.jsonl").write_text(text)
    return rows


def test_load_metrics_splits_and_skips_truncated_last_line(tmp_path):
    rows = _write_run(tmp_path / "r")
    train, evals = load_metrics(tmp_path / "r")
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert [r["step"] for r in evals] == [3, 4]
    assert train[0] == rows[0] and evals[1] == rows[5]
    assert "kind" not in train[1] and math.isnan(train[1]["actor/entropy"])
    # the metrics.jsonl path itself is accepted too
    assert load_metrics(tmp_path / "r" / "metrics.jsonl") == (train, evals)


def test_load_metrics_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no metrics file at .*missing"):
        load_metrics(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="has no records"):
        load_metrics(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    good = json.dumps({"step": 1, "reward/mean": 0.1})
    (tmp_path / "bad" / "metrics.jsonl").write_text(f"{good}\n{{oops\n{good}\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not valid JSON"):
        load_metrics(tmp_path / "bad")
    (tmp_path / "bad" / "metrics.jsonl").write_text(f'{good}\n{{"reward/mean": 1}}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: expected a JSON object with a 'step'"):
        load_metrics(tmp_path / "bad")


def test_plot_run_one_and_two_runs(tmp_path):
    _write_run(tmp_path / "a")
    _write_run(tmp_path / "b", truncated=False, offset=0.1)
    out = plot_run([tmp_path / "a"])
    assert out == tmp_path / "a" / "training.png"
    assert out.read_bytes()[:4] == PNG
    out2 = plot_run(
        [tmp_path / "a", tmp_path / "b"], tmp_path / "figs" / "cmp.png", labels=["x", "y"], smooth=2
    )
    assert out2.read_bytes()[:4] == PNG
    with pytest.raises(ValueError, match="give --out"):
        plot_run([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="1 labels for 2 runs"):
        plot_run([tmp_path / "a", tmp_path / "b"], tmp_path / "c.png", labels=["x"])
    with pytest.raises(ValueError, match="smooth must be >= 1"):
        plot_run([tmp_path / "a"], smooth=0)


def test_plot_run_only_some_keys(tmp_path):
    # a run that logs a single quantity still draws (one panel)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "actor/entropy": 1 / s}) + "\n" for s in (1, 2, 3))
    )
    assert plot_run([tmp_path / "r"]).read_bytes()[:4] == PNG
    (tmp_path / "r" / "metrics.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    with pytest.raises(ValueError, match="no plottable metrics"):
        plot_run([tmp_path / "r"])


def test_cli_plot_run(tmp_path, capsys):
    _write_run(tmp_path / "a")
    _write_run(tmp_path / "b")
    assert main(["plot", "run", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "training.png").read_bytes()[:4] == PNG
    out = tmp_path / "two.png"
    args = ["plot", "run", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]
    assert main([*args, "--labels", "A", "B", "--smooth", "3"]) == 0
    assert out.read_bytes()[:4] == PNG
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["plot", "run", str(tmp_path / "a"), str(tmp_path / "b")])
    assert exc.value.code == 2
    assert "give --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["plot", "run", str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    assert "no metrics file at" in capsys.readouterr().err


# --------------------------------------------------------------------------- eta


def test_plot_eta_peaks(tmp_path):
    out, peaks = plot_eta(32, [4, 8, 16], tmp_path / "eta.png")
    assert out.read_bytes()[:4] == PNG
    assert set(peaks) == {"pass1"} | {
        f"{name} k={k}"
        for name in ("passk_analytic", "passk_exceed", "passk_combination")
        for k in (4, 8, 16)
    }
    assert peaks["pass1"] == 0.5
    assert 0.15 <= peaks["passk_analytic k=4"] <= 0.35
    analytic = [peaks[f"passk_analytic k={k}"] for k in (4, 8, 16)]
    assert analytic[0] > analytic[1] > analytic[2]


def test_plot_eta_estimator_choice_and_errors(tmp_path):
    _, peaks = plot_eta(8, [2], tmp_path / "e.png", estimators=["passk_analytic"])
    assert list(peaks) == ["passk_analytic k=2"]
    with pytest.raises(ValueError, match=r"no eta curve for estimator\(s\) \['nope'\]; valid: "):
        plot_eta(8, [2], tmp_path / "e.png", estimators=["nope"])
    # needs per-group entropy, so it has no eta curve
    with pytest.raises(ValueError, match="passk_adaptive"):
        plot_eta(8, [2], tmp_path / "e.png", estimators=["passk_adaptive"])
    for k in (0, 9):
        with pytest.raises(ValueError, match=rf"k must be in 1..8 .*\[{k}\]"):
            plot_eta(8, [2, k], tmp_path / "e.png")


def test_cli_plot_eta(tmp_path, capsys):
    out = tmp_path / "eta.png"
    assert main(["plot", "eta", "--n", "32", "--k", "4", "8", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == PNG
    table = capsys.readouterr().out
    assert "passk_analytic k=4" in table and "0.2500" in table
    with pytest.raises(SystemExit) as exc:
        main(["plot", "eta", "--n", "32", "--k", "64", "--out", str(out)])
    assert exc.value.code == 2
    assert "k must be in 1..32" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["plot", "eta", "--estimators", "bogus", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "passk_analytic" in err
