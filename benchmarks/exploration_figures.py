"""The figures of the evidence study, drawn from ``exploration.json`` alone.

``write_figures(result, directory)`` writes four PNGs and returns their paths:

* ``passk_curves.png``: held-out pass@k for k = 1..n per arm (mean over seeds, band:
  min-max over seeds) and before training;
* ``paired_differences.png``: each arm minus Pass@1 at k = 1, 8, 64 with 95% intervals,
  for pass@k, pass^k and maj@k;
* ``pass1_histograms.png``: problems per pass@1 bin before and after training (all seeds);
* ``entropy.png``: the policy entropy over training per arm (mean over seeds).
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


def _groups(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = [("before training", result["before"])] if result["before"] else []
    return out + [(a["label"], a["seeds"]) for a in result["arms"].values() if a["seeds"]]


def passk_curves(result: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, seeds in _groups(result):
        rows = _curve_rows(seeds, "pass_at_k")
        ks = np.arange(1, rows.shape[1] + 1)
        style = {"color": "black", "linestyle": "--"} if label == "before training" else {}
        for ax in axes:
            line = ax.plot(ks, rows.mean(axis=0), label=f"{label} ({len(rows)})", **style)[0]
            ax.fill_between(
                ks, rows.min(axis=0), rows.max(axis=0), alpha=0.15, color=line.get_color()
            )
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
    rows = [c for c in result["comparisons"] if c["b"] == "pass1"]
    arms = sorted({c["a"] for c in rows}, key=list(result["arms"]).index)
    ks = sorted({c["k"] for c in rows})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4), sharey=False)
    width = 0.8 / max(1, len(arms))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for i, arm in enumerate(arms):
            pts = {c["k"]: c for c in rows if c["a"] == arm and c["metric"] == metric}
            xs = [j + (i - (len(arms) - 1) / 2) * width for j, k in enumerate(ks) if k in pts]
            ys = [pts[k]["diff"] for k in ks if k in pts]
            lo = [pts[k]["diff"] - pts[k]["ci95"][0] for k in ks if k in pts]
            hi = [pts[k]["ci95"][1] - pts[k]["diff"] for k in ks if k in pts]
            label = result["arms"][arm]["label"]
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=label)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(ks)), [f"k={k}" for k in ks])
        ax.set_title(f"{titles[metric]}: arm - Pass@1")
        ax.grid(alpha=0.3, axis="y")
    np.atleast_1d(axes)[0].set_ylabel("paired difference (95% CI, seeds x problems)")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    return _save(plt, fig, path)


def pass1_histograms(result: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    groups = _groups(result)
    labels = list(next(iter(groups[0][1].values()))["histogram"])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(groups))
    for i, (name, seeds) in enumerate(groups):
        counts = np.sum([[v["histogram"][b] for b in labels] for v in seeds.values()], axis=0)
        share = counts / counts.sum()
        xs = np.arange(len(labels)) + (i - (len(groups) - 1) / 2) * width
        ax.bar(xs, share, width=width, label=f"{name} ({len(seeds)} seeds)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("per-problem pass@1 (c / n)")
    ax.set_ylabel("fraction of problems (all seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(plt, fig, path)


def entropy_curves(result: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for a in result["arms"].values():
        series = [v["train"]["entropy"] for v in a["seeds"].values()]
        if not series:
            continue
        length = min(len(s) for s in series)
        rows = np.asarray([[np.nan if x is None else x for x in s[:length]] for s in series])
        steps = np.arange(1, length + 1)
        line = ax.plot(steps, np.nanmean(rows, axis=0), label=a["label"])[0]
        ax.fill_between(
            steps,
            np.nanmin(rows, axis=0),
            np.nanmax(rows, axis=0),
            alpha=0.12,
            color=line.get_color(),
        )
    ax.set_xlabel("training step")
    ax.set_ylabel("policy entropy (nats/token, sampled tokens)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def write_figures(result: Mapping[str, Any], directory: Path) -> list[Path]:
    if not _groups(result):
        return []  # nothing evaluated yet
    directory.mkdir(parents=True, exist_ok=True)
    out = [passk_curves(result, directory / "passk_curves.png")]
    if any(c["b"] == "pass1" for c in result["comparisons"]):
        out.append(paired_differences(result, directory / "paired_differences.png"))
    out.append(pass1_histograms(result, directory / "pass1_histograms.png"))
    if any(a["seeds"] for a in result["arms"].values()):
        out.append(entropy_curves(result, directory / "entropy.png"))
    return out
