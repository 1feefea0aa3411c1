"""The figures of the evidence study, drawn from ``exploration.json`` alone.

``write_figures(result, directory)`` writes four PNGs and returns their paths:

* ``passk_curves.png``: held-out pass@k for k = 1..n per arm (mean over seeds, band:
  min-max over seeds) and before training;
* ``paired_differences.png``: each arm minus its reference (Pass@1, and Pass@k minus the
  step-size control) at k = 1, 8, 64 with 95% intervals, for pass@k, pass^k and maj@k;
* ``pass1_histograms.png``: problems per pass@1 bin before and after training (all seeds);
* ``entropy.png``: the policy entropy over training per arm, one panel per seed.

An arm keeps its colour in every figure (its place in the sweep's list of arms).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _curve_rows(seeds: Mapping[str, Any], metric: str) -> np.ndarray:
    rows = []
    for view in seeds.values():
        values = view[metric]
        rows.append([values[str(k)] for k in range(1, len(values) + 1)])
    return np.asarray(rows, dtype=float)


BEFORE = "before training"


def _colors(result: Mapping[str, Any]) -> dict[str, str]:
    """Label -> colour, the same in every figure whichever arms have finished."""
    colors = {BEFORE: "black"}
    colors.update({a["label"]: f"C{i % 10}" for i, a in enumerate(result["arms"].values())})
    return colors


def _seeds(count: int) -> str:
    return f"{count} seed" if count == 1 else f"{count} seeds"


def _groups(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = [(BEFORE, result["before"])] if result["before"] else []
    return out + [(a["label"], a["seeds"]) for a in result["arms"].values() if a["seeds"]]


def passk_curves(result: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    colors = _colors(result)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, seeds in _groups(result):
        rows = _curve_rows(seeds, "pass_at_k")
        ks = np.arange(1, rows.shape[1] + 1)
        color = colors[label]
        style = "--" if label == BEFORE else "-"
        for ax in axes:
            name = f"{label} ({_seeds(len(rows))})"
            ax.plot(ks, rows.mean(axis=0), style, color=color, label=name)
            ax.fill_between(ks, rows.min(axis=0), rows.max(axis=0), alpha=0.15, color=color)
    axes[0].set_xscale("log", base=2)
    axes[0].set_title("pass@k (band: min-max over seeds)")
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlim(8, None)
    axes[1].set_title("pass@k, k >= 8")
    for ax in axes:
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"held-out pass@k ({result['eval']['problems']} problems)")
    axes[1].legend(fontsize=8, loc="lower right")
    return _save(plt, fig, path)


def paired_differences(result: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    metrics = ("pass_at_k", "pass_hat_k", "maj_at_k")
    titles = {"pass_at_k": "pass@k", "pass_hat_k": "pass^k", "maj_at_k": "maj@k"}
    arms = result["arms"]
    colors = _colors(result)
    rows = [c for c in result["comparisons"] if c["b"] in arms]  # not the "vs before" rows
    order = list(arms)
    pairs = sorted(
        {(c["a"], c["b"]) for c in rows}, key=lambda p: (p[1] != "pass1", order.index(p[0]))
    )
    ks = sorted({c["k"] for c in rows})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4), sharey=False)
    width = 0.8 / max(1, len(pairs))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for i, (a, b) in enumerate(pairs):
            pts = {c["k"]: c for c in rows if (c["a"], c["b"]) == (a, b) and c["metric"] == metric}
            xs = [j + (i - (len(pairs) - 1) / 2) * width for j, k in enumerate(ks) if k in pts]
            ys = [pts[k]["diff"] for k in ks if k in pts]
            label = f"{arms[a]['label']} - {arms[b]['label']}"
            marker = "o" if b == "pass1" else "s"
            color = colors[arms[a]["label"]]
            # thin: t over the per-seed differences; thick: bootstrap over seeds x problems
            for key, width_ in (("t_ci", 0.9), ("boot_ci", 2.6)):
                have = [k for k in ks if k in pts and pts[k][key] is not None]
                ax.errorbar(
                    [x for x, k in zip(xs, [k for k in ks if k in pts]) if k in have],
                    [pts[k]["diff"] for k in have],
                    yerr=[
                        [pts[k]["diff"] - pts[k][key][0] for k in have],
                        [pts[k][key][1] - pts[k]["diff"] for k in have],
                    ],
                    fmt="none",
                    elinewidth=width_,
                    capsize=3 if key == "t_ci" else 0,
                    color=color,
                    alpha=0.55 if key == "boot_ci" else 1.0,
                )
            ax.plot(
                xs,
                ys,
                marker,
                color=color,
                mfc="white" if b != "pass1" else None,
                label=label,
            )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(ks)), [f"k={k}" for k in ks])
        ax.set_title(f"{titles[metric]}: arm - reference")
        ax.grid(alpha=0.3, axis="y")
    np.atleast_1d(axes)[0].set_ylabel("paired difference (95%: thin t over seeds, thick bootstrap)")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    return _save(plt, fig, path)


def pass1_histograms(result: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    groups = _groups(result)
    colors = _colors(result)
    labels = list(next(iter(groups[0][1].values()))["histogram"])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(groups))
    for i, (name, seeds) in enumerate(groups):
        counts = np.sum([[v["histogram"][b] for b in labels] for v in seeds.values()], axis=0)
        share = counts / counts.sum()
        xs = np.arange(len(labels)) + (i - (len(groups) - 1) / 2) * width
        ax.bar(xs, share, width=width, color=colors[name], label=f"{name} ({_seeds(len(seeds))})")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("per-problem pass@1 (c / n)")
    ax.set_ylabel("fraction of problems (all seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(plt, fig, path)


def entropy_curves(result: Mapping[str, Any], path: Path) -> Path:
    """One panel per seed, every arm in each: the arms share a seed's prompts and starting
    weights, so the panels show whether a gap between arms holds seed by seed."""
    plt = _plt()
    colors = _colors(result)
    seeds = sorted({int(s) for a in result["arms"].values() for s in a["seeds"]})
    fig, axes = plt.subplots(
        1, len(seeds), figsize=(3.6 * len(seeds) + 1, 3.8), sharey=True, squeeze=False
    )
    for ax, seed in zip(axes[0], seeds):
        for a in result["arms"].values():
            run = a["seeds"].get(str(seed))
            if run is None:
                continue
            ys = np.asarray([np.nan if x is None else x for x in run["train"]["entropy"]])
            ax.plot(np.arange(1, len(ys) + 1), ys, color=colors[a["label"]], label=a["label"])
        ax.set_title(f"seed {seed}")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("policy entropy (nats/token, sampled tokens)")
    axes[0][0].legend(fontsize=8)
    return _save(plt, fig, path)


def write_figures(result: Mapping[str, Any], directory: Path) -> list[Path]:
    if not _groups(result):
        return []  # nothing evaluated yet
    directory.mkdir(parents=True, exist_ok=True)
    out = [passk_curves(result, directory / "passk_curves.png")]
    if any(c["b"] in result["arms"] for c in result["comparisons"]):
        out.append(paired_differences(result, directory / "paired_differences.png"))
    out.append(pass1_histograms(result, directory / "pass1_histograms.png"))
    if any(a["seeds"] for a in result["arms"].values()):
        out.append(entropy_curves(result, directory / "entropy.png"))
    return out
