"""Figures drawn from logged files only (``eval.json``), never from live objects.

``passk plot`` is a sub-command group: ``passk plot compare A/eval.json B/eval.json
--out cmp.png`` overlays pass@k curves; ``passk plot eval DIR`` redraws one run's
figures. Other groups (training runs, eta curves) are added as further sub-commands.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def load_eval(path: str | Path) -> dict[str, Any]:
    """Read an ``eval.json`` (or the ``eval.json`` inside a directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _curve(report: dict[str, Any]) -> tuple[list[int], list[float], list[float], list[float]]:
    items = sorted((int(k), v) for k, v in report["pass_at_k"].items())
    ks = [k for k, _ in items]
    values = [v for _, v in items]
    lo = [report["ci95"][str(k)][0] for k in ks]
    hi = [report["ci95"][str(k)][1] for k in ks]
    return ks, values, lo, hi


def _label(report: dict[str, Any], fallback: str) -> str:
    run = report.get("run", {})
    model = report.get("model", {}).get("name", "")
    task = run.get("task", "")
    return " | ".join(x for x in (model, task) if x) or fallback


def _style_k_axis(ax: Any, ks: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks))
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)


def plot_passk_curve(report: dict[str, Any], out: str | Path, *, title: str | None = None) -> Path:
    """pass@k vs k (log2 axis) with the bootstrap CI band and the Dang et al. bound."""
    plt = _pyplot()
    ks, values, lo, hi = _curve(report)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, values, marker="o", label="pass@k (unbiased)")
    ax.fill_between(ks, lo, hi, alpha=0.25, label="95% bootstrap CI")
    bound_ks = [k for k in ks if str(k) in report.get("dang_bound", {})]
    if bound_ks:
        bound = [report["dang_bound"][str(k)] for k in bound_ks]
        ax.plot(bound_ks, bound, linestyle="--", color="gray", label="Dang et al. bound (k >= 2)")
    _style_k_axis(ax, ks)
    n_problems = report.get("num_problems", len(report.get("per_problem", [])))
    ax.set_title(title or f"{_label(report, 'pass@k')} ({n_problems} problems)", fontsize=9)
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
    plt = _pyplot()
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
    ax.set_title(f"{_label(report, 'pass@1')}: pass@1 distribution", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


def plot_eval_dir(directory: str | Path) -> list[Path]:
    """Draw ``passk_curve.png`` and ``pass1_hist.png`` from ``DIR/eval.json``."""
    directory = Path(directory)
    report = load_eval(directory / "eval.json")
    if not report.get("pass_at_k"):
        return []
    return [
        plot_passk_curve(report, directory / "passk_curve.png"),
        plot_pass1_hist(report, directory / "pass1_hist.png"),
    ]


def plot_compare(
    paths: Sequence[str | Path], out: str | Path, *, labels: Sequence[str] | None = None
) -> Path:
    """Overlay the pass@k curves (with CI bands) of several ``eval.json`` files."""
    plt = _pyplot()
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} files")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    all_ks: set[int] = set()
    for i, path in enumerate(paths):
        report = load_eval(path)
        ks, values, lo, hi = _curve(report)
        all_ks.update(ks)
        label = labels[i] if labels else _label(report, str(path))
        (line,) = ax.plot(ks, values, marker="o", label=label)
        ax.fill_between(ks, lo, hi, alpha=0.2, color=line.get_color())
    _style_k_axis(ax, sorted(all_ks))
    ax.set_title("pass@k comparison", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


def _run_compare(args: argparse.Namespace) -> int:
    out = plot_compare(args.files, args.out, labels=args.labels)
    print(f"wrote {out}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    for path in plot_eval_dir(args.dir):
        print(f"wrote {path}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``passk plot <what>``; each figure family is its own sub-command."""
    p = subparsers.add_parser("plot", help="figures from logged files")
    group = p.add_subparsers(dest="plot_command", metavar="WHAT")
    cmp = group.add_parser("compare", help="overlay pass@k curves of several eval.json files")
    cmp.add_argument("files", nargs="+", type=Path, help="eval.json files or run directories")
    cmp.add_argument("--out", required=True, type=Path, help="output PNG")
    cmp.add_argument("--labels", nargs="+", default=None, help="one legend label per file")
    cmp.set_defaults(func=_run_compare)
    ev = group.add_parser("eval", help="redraw passk_curve.png and pass1_hist.png of an eval dir")
    ev.add_argument("dir", type=Path)
    ev.set_defaults(func=_run_eval)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p
