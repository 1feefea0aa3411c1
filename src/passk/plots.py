"""Figures drawn from logged files only (``eval.json``, ``metrics.jsonl``), never from
live objects (the eta curves are pure numerics from ``passk.core``).

``passk plot`` is a sub-command group: ``passk plot compare A/eval.json B/eval.json
--out cmp.png`` overlays the pass@k, pass^k and maj@k curves (with CI bands); ``passk plot eval DIR`` redraws one run's
figures; ``passk plot run DIR [DIR ...]`` draws training curves from each run's
``metrics.jsonl``; ``passk plot sweep DIR`` redraws a sweep's comparison figures from
``DIR/summary.json``; ``passk plot eta --n 32 --k 4 8 16 --out eta.png`` draws the eta
curves of the advantage estimators (SPEC 1.6) and prints where each one peaks.
"""

from __future__ import annotations

import argparse
import json
import math
import re
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


# metric key in eval.json -> (its CI key, legend name, line style in comparisons)
EVAL_METRICS: dict[str, tuple[str, str, Any]] = {
    "pass_at_k": ("ci95", "pass@k", "-"),
    "maj_at_k": ("maj_at_k_ci95", "maj@k", "--"),
    "pass_hat_k": ("pass_hat_k_ci95", "pass^k", ":"),
}


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


def _label(report: dict[str, Any], fallback: str) -> str:
    run = report.get("run", {})
    model = report.get("model", {}).get("name", "")
    task = run.get("task", "")
    return " | ".join(x for x in (model, task) if x) or fallback


def _k_axis(ax: Any, ks: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks))
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k (samples)")


def _style_k_axis(ax: Any, ks: Sequence[int]) -> None:
    _k_axis(ax, ks)
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


def plot_maj_curve(report: dict[str, Any], out: str | Path, *, title: str | None = None) -> Path:
    """maj@k vs k (log2 axis) with its bootstrap CI band, pass@k above and pass^k below
    it for reference (thin lines)."""
    plt = _pyplot()
    ks, values, lo, hi = _curve(report, "maj_at_k")
    fig, ax = plt.subplots(figsize=(6, 4))
    (line,) = ax.plot(ks, values, marker="o", label="maj@k (majority vote)")
    ax.fill_between(ks, lo, hi, alpha=0.25, color=line.get_color(), label="95% bootstrap CI")
    for metric, color in (("pass_at_k", "gray"), ("pass_hat_k", "gray")):
        mks, mvalues, _, _ = _curve(report, metric)
        if mks:
            name, style = EVAL_METRICS[metric][1], EVAL_METRICS[metric][2]
            ax.plot(mks, mvalues, color=color, linestyle=style, linewidth=1, label=name)
    _style_k_axis(ax, ks)
    ax.set_ylabel("maj@k")
    n_problems = report.get("num_problems", len(report.get("per_problem", [])))
    ax.set_title(title or f"{_label(report, 'maj@k')} ({n_problems} problems)", fontsize=9)
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
    plt = _pyplot()
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
        label = labels[i] if labels else _label(report, str(path))
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
    _style_k_axis(ax, sorted(all_ks))
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
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


# --------------------------------------------------------------------------- training runs

# (title, keys) of the training-step panels, in drawing order; a panel with no data is
# left out. Several keys share a panel and are told apart by line style.
_TRAIN_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mean reward", ("reward/mean",)),
    ("train pass@1 / pass@k", ("train/pass@1", "train/pass@k")),
    ("policy entropy", ("actor/entropy",)),
    ("groups with all-zero advantages", ("adv/zero_frac",)),
    ("KL to reference (dotted: reset)", ("actor/kl",)),
    ("mean response length", ("response/length_mean",)),
    ("wrong-answer diversity", ("train/wrong_diversity",)),
)
_STYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_EVAL_PASSK = re.compile(r"^eval/pass@(\d+)$")


def _run_dir(path: str | Path) -> Any:
    """The run directory of ``path`` (a run directory or its ``metrics.jsonl``)."""
    from passk.train.run_dir import METRICS_FILE, RunDir

    path = Path(path)
    if path.suffix == ".jsonl":
        if path.name != METRICS_FILE:
            raise ValueError(f"{path}: expected a run directory or its {METRICS_FILE}")
        path = path.parent
    return RunDir(path)


def load_metrics(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read ``run_dir/metrics.jsonl`` (or that path) into (train rows, eval rows).

    Rows with ``"kind": "eval"`` are evaluation records, all others training steps.
    A last line that does not parse is skipped (the run may be writing it); a bad line
    anywhere else is a ValueError naming its number (see ``RunDir.read_metrics``).
    """
    run = _run_dir(run_dir)
    if not run.metrics.is_file():
        raise ValueError(f"no metrics file at {run.metrics}")
    rows = run.read_metrics()
    if not rows:
        raise ValueError(f"metrics file {run.metrics} has no records")
    evals = [row for row in rows if row.get("kind") == "eval"]
    return [row for row in rows if row.get("kind") != "eval"], evals


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None  # None, NaN/inf, or not a number: nothing to draw


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    from passk.train.run_dir import metric_series

    return metric_series(rows, key)


def _trailing_mean(values: Sequence[float], width: int) -> list[float]:
    """Mean of the last ``width`` values at each point (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def _train_k_label(rows: Sequence[dict[str, Any]]) -> str:
    """``pass@4`` when every row (of every run) used one k, else the range of k."""
    ks = sorted({int(k) for row in rows if (k := _number(row.get("train/k"))) is not None})
    if len(ks) == 1:
        return f"pass@{ks[0]}"
    return f"pass@k (k={ks[0]}..{ks[-1]})" if ks else "pass@k"


def _run_label(run_dir: str | Path) -> str:
    return _run_dir(run_dir).path.resolve().name


def plot_run(
    dirs: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    labels: Sequence[str] | None = None,
    smooth: int = 1,
) -> Path:
    """Training curves of one or several runs from their ``metrics.jsonl``, overlaid.

    Colour is the run; line style tells apart quantities sharing a panel (pass@1 /
    pass@k, eval pass@K). ``smooth`` is the width of a trailing moving average applied
    to the training curves (not to evaluations or resets). ``out`` defaults to
    ``DIR/training.png`` for a single run.
    """
    if not dirs:
        raise ValueError("plot_run needs at least one run directory")
    if labels is not None and len(labels) != len(dirs):
        raise ValueError(f"{len(labels)} labels for {len(dirs)} runs")
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    if out is None:
        if len(dirs) > 1:
            raise ValueError(f"{len(dirs)} runs: give --out (the default is DIR/training.png)")
        out = _run_dir(dirs[0]).training_plot
    runs = [load_metrics(d) for d in dirs]
    names = list(labels) if labels else [_run_label(d) for d in dirs]

    def has(part: int, key: str) -> bool:  # part 0: training rows, 1: eval rows
        return any(_series(run[part], key)[0] for run in runs)

    panels: list[tuple[str, tuple[str, ...]]] = [
        (title, keys)
        for title, keys in _TRAIN_PANELS
        if any(has(0, k) for k in keys) or (keys == ("actor/kl",) and has(0, "ref/reset"))
    ]
    eval_ks = sorted(
        {
            int(m.group(1))
            for run in runs
            for row in run[1]
            for key in row
            if (m := _EVAL_PASSK.match(key))
        }
    )
    if any(has(1, f"eval/pass@{k}") for k in eval_ks):
        panels.append(("eval pass@k", tuple(f"eval/pass@{k}" for k in eval_ks)))
    if has(1, "eval/entropy"):
        panels.append(("eval entropy", ("eval/entropy",)))
    if not panels:
        raise ValueError(f"no plottable metrics in {', '.join(str(d) for d in dirs)}")

    plt = _pyplot()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.1 * nrows + 0.6), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, keys) in zip(flat, panels, strict=False):
        is_eval = title.startswith("eval")
        style_handles: dict[str, Any] = {}
        for r, (train, evals) in enumerate(runs):
            color = f"C{r % 10}"
            for j, key in enumerate(keys):
                steps, values = _series(evals if is_eval else train, key)
                if not steps:
                    continue
                style = _STYLES[j % len(_STYLES)]
                if is_eval:
                    marker = _MARKERS[j % len(_MARKERS)]
                    ax.plot(steps, values, color=color, linestyle=style, marker=marker, ms=3)
                else:
                    marker = None
                    ax.plot(steps, _trailing_mean(values, smooth), color=color, linestyle=style)
                if len(keys) > 1:
                    name = key.rsplit("/", 1)[-1]
                    if key == "train/pass@k":
                        name = _train_k_label([row for run in runs for row in run[0]])
                    style_handles.setdefault(
                        name,
                        plt.Line2D([], [], color="gray", linestyle=style, marker=marker, ms=3),
                    )
            if keys == ("actor/kl",):
                resets = [s for s, v in zip(*_series(train, "ref/reset"), strict=True) if v]
                for step in resets:
                    ax.axvline(step, color=color, linestyle=":", linewidth=1, alpha=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(keys[0] if len(keys) == 1 else ("pass@k" if is_eval else "train pass"))
        ax.grid(True, alpha=0.3)
        if style_handles:
            ax.legend(style_handles.values(), style_handles.keys(), fontsize=7)
    run_handles = [plt.Line2D([], [], color=f"C{r % 10}") for r in range(len(runs))]
    fig.legend(run_handles, names, loc="upper center", ncol=min(len(names), 4), fontsize=8)
    if smooth > 1:
        fig.text(
            0.99,
            0.99,
            f"training curves: trailing mean over {smooth} steps",
            ha="right",
            va="top",
            fontsize=7,
            color="gray",
        )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------- sweeps


def _arm_colors(summary: dict[str, Any]) -> dict[str, str]:
    """One colour per arm, in the sweep's arm order, in every figure."""
    return {name: f"C{i % 10}" for i, name in enumerate(summary["arms"])}


_ARM_LINES = ("-", (0, (6, 2)), (0, (1, 1.5)), (0, (4, 1.5, 1, 1.5)))
_ARM_MARKERS = "osD^v<>P"


def _arm_styles(summary: dict[str, Any], points: int) -> dict[str, dict[str, Any]]:
    """Colour, line style and marker per arm; the markers of arm i sit on every m-th of
    ``points`` points from i on (m arms), so arms with the same numbers stay visible."""
    names = list(summary["arms"])
    m = len(names)
    colors = _arm_colors(summary)
    return {
        name: {
            "color": colors[name],
            "linestyle": _ARM_LINES[i % len(_ARM_LINES)],
            "marker": _ARM_MARKERS[i % len(_ARM_MARKERS)],
            "markevery": (i % max(1, min(m, points)), max(1, min(m, points))),
            "markersize": 4,
        }
        for i, name in enumerate(names)
    }


def _befores(summary: dict[str, Any]) -> list[list[float]]:
    per_seed = (summary.get("before") or {}).get("per_seed") or {}
    return [b["curve"] for b in per_seed.values() if b.get("curve")]


def plot_sweep_curves(summary: dict[str, Any], out: str | Path) -> Path:
    """pass@k vs k before and after training per arm (mean over seeds, band: min-max),
    and the change from the shared "before" evaluation."""
    arms = {n: a for n, a in summary["arms"].items() if "curve_after_mean" in a}
    if not arms:
        raise ValueError("no arm has a finished run: no pass@k curves to draw")
    befores = _befores(summary)
    n = min(len(c) for c in [*befores, *(a["curve_after_mean"] for a in arms.values())])
    ks = list(range(1, n + 1))
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if befores else 1, figsize=(12 if befores else 6.5, 4.5))
    ax, dax = (axes[0], axes[1]) if befores else (axes, None)
    b_mean: list[float] = []
    if befores:
        b_mean = [sum(c[i] for c in befores) / len(befores) for i in range(n)]
        seeds = f"{len(befores)} seed{'' if len(befores) == 1 else 's'}"
        ax.plot(ks, b_mean, color="black", linestyle="--", label=f"before ({seeds})")
        lo = [min(c[i] for c in befores) for i in range(n)]
        hi = [max(c[i] for c in befores) for i in range(n)]
        ax.fill_between(ks, lo, hi, color="black", alpha=0.1)
        dax.axhline(0.0, color="black", linestyle="--", linewidth=1)
    styles = _arm_styles(summary, n)
    for name, a in arms.items():
        mean = a["curve_after_mean"][:n]
        seeds = len(a["seeds"])
        label = f"{a['label']} ({seeds} seed{'' if seeds == 1 else 's'})"
        ax.plot(ks, mean, label=label, **styles[name])
        band = (a["curve_after_min"][:n], a["curve_after_max"][:n])
        ax.fill_between(ks, *band, color=styles[name]["color"], alpha=0.15)
        if dax is not None:
            delta = [m - b for m, b in zip(mean, b_mean)]
            dax.plot(ks, delta, label=a["label"], **styles[name])
    ticks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if k <= n]
    _style_k_axis(ax, ticks)
    ax.set_title("pass@k after training (mean over seeds; band: min-max)", fontsize=9)
    if dax is not None:
        _k_axis(dax, ticks)
        dax.grid(True, alpha=0.3)
        dax.set_ylabel("pass@k after - before")
        dax.set_title("change from the initial model (mean over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, out)


_SWEEP_PANELS = (
    ("actor/entropy", "entropy", "policy entropy (token mean)"),
    ("train/wrong_diversity", "wrong_diversity", "wrong-answer diversity"),
)


def plot_sweep_entropy(summary: dict[str, Any], root: str | Path, out: str | Path) -> Path:
    """Policy entropy and wrong-answer diversity over training per arm (thin: each seed,
    thick: mean over seeds), with the held-out values before (X) and after (diamonds).

    ``root`` is the sweep directory the summary's ``run_dir`` paths are relative to.
    """
    from passk.train.run_dir import RunDir

    records = [r for r in summary["runs"] if r.get("train")]
    if not records:
        raise ValueError("no run has logged a training step: no entropy curves to draw")
    steps_total = max(r["train"]["steps"] for r in records)
    width = max(1, min(5, steps_total // 8))
    colors = _arm_colors(summary)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for name, arm in summary["arms"].items():
        mine = [r for r in records if r["arm"] == name]
        if not mine:
            continue
        rows = [RunDir(Path(root) / r["run_dir"]).read_metrics("train") for r in mine]
        for ax, (key, field, _) in zip(axes, _SWEEP_PANELS, strict=True):
            per_seed = [dict(zip(*_series(train, key), strict=True)) for train in rows]
            for seed in per_seed:
                xs = sorted(seed)
                ys = _trailing_mean([seed[x] for x in xs], width)
                ax.plot(xs, ys, color=colors[name], alpha=0.25, linewidth=0.8)
            steps = sorted(set().union(*per_seed))
            mean = [_mean([s[x] for s in per_seed if x in s]) for x in steps]
            ax.plot(steps, _trailing_mean(mean, width), color=colors[name], label=arm["label"])
            finals = [_number((r.get("after") or {}).get(field)) for r in mine]
            finals = [v for v in finals if v is not None]
            if finals:
                ax.plot([steps_total], [_mean(finals)], marker="D", color=colors[name], ms=6)
    for ax, (_, field, title) in zip(axes, _SWEEP_PANELS, strict=True):
        befores = [_number((r.get("before") or {}).get(field)) for r in records]
        befores = [v for v in befores if v is not None]
        if befores:
            ax.plot([0], [_mean(befores)], marker="X", color="black", ms=7)
        smoothed = f"; trailing mean over {width} steps" if width > 1 else ""
        ax.set_title(
            f"{title} over training (mean over seeds{smoothed})\n"
            "X: held-out eval before, diamonds: after",
            fontsize=9,
        )
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, out)


def plot_sweep(summary: dict[str, Any], root: str | Path) -> dict[str, Path]:
    """A sweep's figures in ``root``: ``passk_curves.png``, ``training.png``, ``entropy.png``
    (each drawn when there is something to draw)."""
    root = Path(root)
    figures: dict[str, Path] = {}
    if any("curve_after_mean" in a for a in summary["arms"].values()):
        figures["passk_curves"] = plot_sweep_curves(summary, root / "passk_curves.png")
    trained = [r for r in summary["runs"] if r.get("train")]
    if trained:
        steps = max(r["train"]["steps"] for r in trained)
        figures["training"] = plot_run(
            [root / r["run_dir"] for r in trained],
            root / "training.png",
            labels=[f"{r['arm']} s{r['seed']}" for r in trained],
            smooth=max(1, min(5, steps // 8)),
        )
        figures["entropy"] = plot_sweep_entropy(summary, root, root / "entropy.png")
    return figures


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _save(fig: Any, out: str | Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------- eta curves
# (passk.plots_eta; re-exported here, imported at the end: it uses the helpers above)


def _run_compare(args: argparse.Namespace) -> int:
    out = plot_compare(args.files, args.out, labels=args.labels, metrics=args.metrics)
    print(f"wrote {out}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    for path in plot_eval_dir(args.dir):
        print(f"wrote {path}")
    return 0


def _run_run(args: argparse.Namespace) -> int:
    out = plot_run(args.dirs, args.out, labels=args.labels, smooth=args.smooth)
    print(f"wrote {out}")
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    path = args.dir / "summary.json"
    if not path.is_file():
        raise ValueError(f"no sweep summary at {path} (run passk sweep first)")
    summary = json.loads(path.read_text(encoding="utf-8"))
    for out in plot_sweep(summary, args.dir).values():
        print(f"wrote {out}")
    return 0


def _run_eta(args: argparse.Namespace) -> int:
    out, peaks = plot_eta(args.n, args.k, args.out, estimators=args.estimators)
    width = max(len(label) for label in peaks)
    print(f"{'curve':<{width}}  peak accuracy  N_pos (N = {args.n})")
    for label, acc in peaks.items():
        n_pos = "-" if math.isnan(acc) else str(round(acc * args.n))
        print(f"{label:<{width}}  {acc:>13.4f}  {n_pos:>5}")
    print(f"wrote {out}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``passk plot <what>``; each figure family is its own sub-command."""
    p = subparsers.add_parser("plot", help="figures from logged files")
    group = p.add_subparsers(dest="plot_command", metavar="WHAT")
    cmp = group.add_parser(
        "compare", help="overlay pass@k, pass^k and maj@k curves of several eval.json files"
    )
    cmp.add_argument("files", nargs="+", type=Path, help="eval.json files or run directories")
    cmp.add_argument("--out", required=True, type=Path, help="output PNG")
    cmp.add_argument("--labels", nargs="+", default=None, help="one legend label per file")
    cmp.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        choices=list(EVAL_METRICS),
        help="curves to draw (default: all the reports have)",
    )
    cmp.set_defaults(func=_run_compare)
    ev = group.add_parser(
        "eval", help="redraw passk_curve.png, pass1_hist.png and maj_curve.png of an eval dir"
    )
    ev.add_argument("dir", type=Path)
    ev.set_defaults(func=_run_eval)
    run = group.add_parser("run", help="training curves from runs' metrics.jsonl")
    run.add_argument("dirs", nargs="+", type=Path, help="run directories (or metrics.jsonl)")
    run.add_argument(
        "--out", type=Path, default=None, help="output PNG (default DIR/training.png, one run)"
    )
    run.add_argument("--labels", nargs="+", default=None, help="one legend label per run")
    run.add_argument(
        "--smooth", type=int, default=1, help="trailing moving-average width (1 = raw)"
    )
    run.set_defaults(func=_run_run)
    sw = group.add_parser("sweep", help="redraw a sweep's figures from DIR/summary.json")
    sw.add_argument("dir", type=Path, help="the sweep's --out directory")
    sw.set_defaults(func=_run_sweep)
    eta = group.add_parser("eta", help="eta(accuracy) curves of advantage estimators")
    eta.add_argument("--n", type=int, default=32, help="group size N")
    eta.add_argument("--k", type=int, nargs="+", default=[4, 8, 16], help="k of Pass@k")
    eta.add_argument("--out", required=True, type=Path, help="output PNG")
    eta.add_argument(
        "--estimators",
        nargs="+",
        default=None,
        help=f"estimators to draw (default: {' '.join(DEFAULT_ETA_ESTIMATORS)})",
    )
    eta.set_defaults(func=_run_eta)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


from passk.plots_eta import (  # noqa: E402, F401  (re-exported)
    DEFAULT_ETA_ESTIMATORS,
    eta_estimators,
    plot_eta,
)
