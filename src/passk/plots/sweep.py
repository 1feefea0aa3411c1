"""A sweep's comparison figures from its ``summary.json`` (``passk plot sweep``, and
``passk sweep`` when it finishes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from passk.plots.common import (
    average,
    finite_number,
    k_axis,
    pyplot,
    save_figure,
    style_k_axis,
    trailing_mean,
)
from passk.plots.run import plot_run, series


def _arm_colors(summary: dict[str, Any]) -> dict[str, str]:
    """One colour per arm, in the sweep's arm order, in every figure."""
    return {name: f"C{i % 10}" for i, name in enumerate(summary["arms"])}


_ARM_LINES = ("-", (0, (6, 2)), (0, (1, 1.5)), (0, (4, 1.5, 1, 1.5)))
_ARM_MARKERS = "osD^v<>P"


def _arm_styles(summary: dict[str, Any], points: int) -> dict[str, dict[str, Any]]:
    """Colour, line style and marker per arm; the markers of arm i sit on every m-th of
    ``points`` points from i on (m arms), so arms with the same numbers stay visible."""
    names = list(summary["arms"])
    m = max(1, min(len(names), points))
    colors = _arm_colors(summary)
    return {
        name: {
            "color": colors[name],
            "linestyle": _ARM_LINES[i % len(_ARM_LINES)],
            "marker": _ARM_MARKERS[i % len(_ARM_MARKERS)],
            "markevery": (i % m, m),
            "markersize": 4,
        }
        for i, name in enumerate(names)
    }


def _seeds(count: int) -> str:
    return f"{count} seed{'' if count == 1 else 's'}"


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
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if befores else 1, figsize=(12 if befores else 6.5, 4.5))
    ax, dax = (axes[0], axes[1]) if befores else (axes, None)
    b_mean: list[float] = []
    if befores:
        b_mean = [sum(c[i] for c in befores) / len(befores) for i in range(n)]
        ax.plot(ks, b_mean, color="black", linestyle="--", label=f"before ({_seeds(len(befores))})")
        lo = [min(c[i] for c in befores) for i in range(n)]
        hi = [max(c[i] for c in befores) for i in range(n)]
        ax.fill_between(ks, lo, hi, color="black", alpha=0.1)
        dax.axhline(0.0, color="black", linestyle="--", linewidth=1)
    styles = _arm_styles(summary, n)
    for name, a in arms.items():
        mean = a["curve_after_mean"][:n]
        ax.plot(ks, mean, label=f"{a['label']} ({_seeds(len(a['seeds']))})", **styles[name])
        band = (a["curve_after_min"][:n], a["curve_after_max"][:n])
        ax.fill_between(ks, *band, color=styles[name]["color"], alpha=0.15)
        if dax is not None:
            delta = [m - b for m, b in zip(mean, b_mean)]
            dax.plot(ks, delta, label=a["label"], **styles[name])
    ticks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if k <= n]
    style_k_axis(ax, ticks)
    ax.set_title("pass@k after training (mean over seeds; band: min-max)", fontsize=9)
    if dax is not None:
        k_axis(dax, ticks)
        dax.grid(True, alpha=0.3)
        dax.set_ylabel("pass@k after - before")
        dax.set_title("change from the initial model (mean over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


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
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for name, arm in summary["arms"].items():
        mine = [r for r in records if r["arm"] == name]
        if not mine:
            continue
        rows = [RunDir(Path(root) / r["run_dir"]).read_metrics("train") for r in mine]
        for ax, (key, field, _) in zip(axes, _SWEEP_PANELS, strict=True):
            per_seed = [dict(zip(*series(train, key), strict=True)) for train in rows]
            for seed in per_seed:
                xs = sorted(seed)
                ys = trailing_mean([seed[x] for x in xs], width)
                ax.plot(xs, ys, color=colors[name], alpha=0.25, linewidth=0.8)
            steps = sorted(set().union(*per_seed))
            mean = [average([s[x] for s in per_seed if x in s]) for x in steps]
            ax.plot(steps, trailing_mean(mean, width), color=colors[name], label=arm["label"])
            finals = [finite_number((r.get("after") or {}).get(field)) for r in mine]
            finals = [v for v in finals if v is not None]
            if finals:
                ax.plot([steps_total], [average(finals)], marker="D", color=colors[name], ms=6)
    for ax, (_, field, title) in zip(axes, _SWEEP_PANELS, strict=True):
        befores = [finite_number((r.get("before") or {}).get(field)) for r in records]
        befores = [v for v in befores if v is not None]
        if befores:
            ax.plot([0], [average(befores)], marker="X", color="black", ms=7)
        smoothed = f"; trailing mean over {width} steps" if width > 1 else ""
        ax.set_title(
            f"{title} over training (mean over seeds{smoothed})\n"
            "X: held-out eval before, diamonds: after",
            fontsize=9,
        )
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    return save_figure(fig, out)


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
