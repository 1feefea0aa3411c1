"""Figures of evaluation reports (``eval.json``, ``RUN/evals/step_N.json``): the pass@k
curve with the Dang et al. line, the pass@1 histogram, the maj@k curve, and the overlay
of several reports (``passk plot compare``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passk.plots.common import pyplot, save_figure, style_k_axis


def eval_report_path(path: str | Path) -> Path:
    """The report ``path`` names: a file as it is, ``DIR/eval.json`` of a ``passk eval``
    directory, or the newest ``RUN/evals/step_N.json`` of a training run directory.
    A ValueError names what is missing."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist (give eval.json files, eval or run directories)")
    if not path.is_dir():
        return path
    if (path / "eval.json").is_file():
        return path / "eval.json"
    steps = sorted((path / "evals").glob("step_*.json"))
    if steps:
        return steps[-1]
    raise ValueError(
        f"{path} is a directory with neither an eval.json (a passk eval directory) nor "
        "evals/step_N.json (a training run that has evaluated)"
    )


def load_eval(path: str | Path) -> dict[str, Any]:
    """Read an ``eval.json`` (or what :func:`eval_report_path` finds in a directory); a
    file that is not a JSON object is a ValueError naming it."""
    path = eval_report_path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not an eval report (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is not an eval report (not JSON: {e.msg} at line {e.lineno})"
        ) from None
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(report, dict):
        raise ValueError(f"{path} is not an eval report (a JSON {type(report).__name__})")
    return report


# metric key in eval.json -> (its CI key, legend name, line style in comparisons)
EVAL_METRICS: dict[str, tuple[str, str, Any]] = {
    "pass_at_k": ("ci95", "pass@k", "-"),
    "maj_at_k": ("maj_at_k_ci95", "maj@k", "--"),
    "pass_hat_k": ("pass_hat_k_ci95", "pass^k", ":"),
}


# (report key, line style, legend) of the Dang et al. bound and of what it bounds
DANG_LINES: tuple[tuple[str, str, str], ...] = (
    ("pass_at_k_with_replacement", ":", "mean 1-(1-pass@1)^k (with replacement)"),
    ("dang_bound", "--", "Dang et al. bound on the dotted line (k >= 2)"),
)


def _curve(
    report: dict[str, Any], metric: str = "pass_at_k"
) -> tuple[list[int], list[float], list[float], list[float]]:
    """k, values and CI bounds of one metric (empty lists when the report lacks it)."""
    ci_key = EVAL_METRICS[metric][0]
    items = sorted((int(k), v) for k, v in report.get(metric, {}).items())
    ks = [k for k, _ in items]
    values = [v for _, v in items]
    ci = report.get(ci_key, {})
    lo = [ci.get(str(k), [v, v])[0] for k, v in items]
    hi = [ci.get(str(k), [v, v])[1] for k, v in items]
    return ks, values, lo, hi


def report_label(report: dict[str, Any], fallback: str) -> str:
    """The label of an eval report in figures: model name, task and step (else ``fallback``)."""
    run = report.get("run", {})
    model = report.get("model", {}).get("name", "")
    task = run.get("task", "")
    step = "" if report.get("step") is None else f"step {report['step']}"
    return " | ".join(x for x in (model, task, step) if x) or fallback


def plot_passk_curve(report: dict[str, Any], out: str | Path, *, title: str | None = None) -> Path:
    """pass@k vs k (log2 axis) with the bootstrap CI band, the with-replacement mean
    ``1 - (1 - pass@1)^k`` and the Dang et al. bound on it (not on the unbiased pass@k,
    which may lie above the bound)."""
    plt = pyplot()
    ks, values, lo, hi = _curve(report)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, values, marker="o", label="pass@k (unbiased)")
    ax.fill_between(ks, lo, hi, alpha=0.25, label="95% bootstrap CI")
    for key, style, label in DANG_LINES:
        line_ks = [k for k in ks if str(k) in report.get(key, {})]
        if line_ks:
            line = [report[key][str(k)] for k in line_ks]
            ax.plot(line_ks, line, linestyle=style, color="gray", label=label)
    style_k_axis(ax, ks)
    n_problems = report.get("num_problems", len(report.get("per_problem", [])))
    ax.set_title(title or f"{report_label(report, 'pass@k')} ({n_problems} problems)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


def plot_pass1_hist(report: dict[str, Any], out: str | Path, *, bins: int | None = None) -> Path:
    """Histogram of per-problem pass@1 (c / n).

    With one n for every problem (and no ``bins``), there is one bar per possible value
    c / n, c = 0..n, so no bar straddles two values.
    """
    plt = pyplot()
    problems = report.get("per_problem", [])
    pass1 = [p["c"] / p["n"] for p in problems]
    ns = {p["n"] for p in problems}
    if bins is None and len(ns) == 1 and (n := ns.pop()) <= 64:
        edges: Any = [(c - 0.5) / n for c in range(n + 2)]
    else:
        edges = bins or 10
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(pass1, bins=edges, edgecolor="black")
    ax.set_xlim(-0.05, 1.05)
    ax.set_xlabel("per-problem pass@1 (c / n)")
    ax.set_ylabel("problems")
    ax.set_title(f"{report_label(report, 'pass@1')}: pass@1 distribution", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


def plot_maj_curve(report: dict[str, Any], out: str | Path, *, title: str | None = None) -> Path:
    """maj@k vs k (log2 axis) with its bootstrap CI band, pass@k above and pass^k below
    it for reference (thin lines)."""
    plt = pyplot()
    ks, values, lo, hi = _curve(report, "maj_at_k")
    fig, ax = plt.subplots(figsize=(6, 4))
    (line,) = ax.plot(ks, values, marker="o", label="maj@k (majority vote)")
    ax.fill_between(ks, lo, hi, alpha=0.25, color=line.get_color(), label="95% bootstrap CI")
    for metric, color in (("pass_at_k", "gray"), ("pass_hat_k", "gray")):
        mks, mvalues, _, _ = _curve(report, metric)
        if mks:
            name, style = EVAL_METRICS[metric][1], EVAL_METRICS[metric][2]
            ax.plot(mks, mvalues, color=color, linestyle=style, linewidth=1, label=name)
    style_k_axis(ax, ks)
    ax.set_ylabel("maj@k")
    n_problems = report.get("num_problems", len(report.get("per_problem", [])))
    ax.set_title(title or f"{report_label(report, 'maj@k')} ({n_problems} problems)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


def plot_eval_dir(directory: str | Path) -> list[Path]:
    """Draw ``passk_curve.png``, ``pass1_hist.png`` and (when the report has maj@k)
    ``maj_curve.png`` from ``DIR/eval.json``."""
    directory = Path(directory)
    report = load_eval(directory / "eval.json")
    if not report.get("pass_at_k"):
        return []
    paths = [
        plot_passk_curve(report, directory / "passk_curve.png"),
        plot_pass1_hist(report, directory / "pass1_hist.png"),
    ]
    if report.get("maj_at_k"):
        paths.append(plot_maj_curve(report, directory / "maj_curve.png"))
    return paths


def plot_compare(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    labels: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> Path:
    """Overlay the curves (with CI bands) of several ``eval.json`` files.

    Colour is the file; line style the metric: solid pass@k, dashed maj@k, dotted pass^k
    (``metrics`` picks some of ``pass_at_k``, ``maj_at_k``, ``pass_hat_k``; default all).
    A metric a report lacks (an older report, maj@k without answers) is skipped for it.
    """
    plt = pyplot()
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} files")
    metrics = list(metrics) if metrics else list(EVAL_METRICS)
    unknown = [m for m in metrics if m not in EVAL_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(EVAL_METRICS)}")
    fig, ax = plt.subplots(figsize=(7, 4.8))
    all_ks: set[int] = set()
    drawn: set[str] = set()
    run_handles = []
    for i, path in enumerate(paths):
        report = load_eval(path)
        color = f"C{i % 10}"
        label = labels[i] if labels else report_label(report, str(path))
        run_handles.append((plt.Line2D([], [], color=color), label))
        for metric in metrics:
            ks, values, lo, hi = _curve(report, metric)
            if not ks:
                continue
            all_ks.update(ks)
            drawn.add(metric)
            style = EVAL_METRICS[metric][2]
            ax.plot(ks, values, marker="o", ms=3, color=color, linestyle=style)
            ax.fill_between(ks, lo, hi, alpha=0.15, color=color)
    if not all_ks:
        raise ValueError(f"no {'/'.join(metrics)} curve in {', '.join(map(str, paths))}")
    style_k_axis(ax, sorted(all_ks))
    ax.set_ylabel(" / ".join(EVAL_METRICS[m][1] for m in metrics if m in drawn))
    ax.set_title(
        f"{' / '.join(EVAL_METRICS[m][1] for m in metrics if m in drawn)} comparison "
        "(bands: 95% bootstrap CI)",
        fontsize=9,
    )
    style_handles = [
        (plt.Line2D([], [], color="gray", linestyle=EVAL_METRICS[m][2]), EVAL_METRICS[m][1])
        for m in metrics
        if m in drawn
    ]
    handles = run_handles + style_handles
    ax.legend([h for h, _ in handles], [t for _, t in handles], fontsize=8)
    return save_figure(fig, out)
