"""Figures of a simulation, drawn from its ``result.json`` data only.

- ``pass_at_k.png``: pass@k over training for a few k (columns), the whole population and
  each group (rows), one colour per estimator (each seed's run drawn thin where several);
- ``shares.png``: the mean strategy shares over training, one panel per estimator;
- ``pass_at_k_curve.png``: pass@k against k at the start (grey) and at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from passk.plots.common import pyplot

__all__ = ["draw_all", "figure_ks"]

_STYLES = ("-", "--", ":", "-.")


def figure_ks(ks: Sequence[int], most: int = 3) -> list[int]:
    """Up to ``most`` of ``ks`` for the over-training figure: the first, the last and the
    one nearest the middle on a log scale.

    >>> figure_ks([1, 2, 4, 8, 16, 32, 64])
    [1, 8, 64]
    """
    ks = sorted(set(ks))
    if len(ks) <= most:
        return ks
    mid = math.sqrt(ks[0] * ks[-1])
    middle = min(ks[1:-1], key=lambda k: abs(math.log(k) - math.log(mid)))
    return [ks[0], middle, ks[-1]]


def _series(traj: Mapping[str, Any], group: str | None) -> Mapping[str, Any]:
    return traj if group is None else traj["by_group"][group]


def draw_pass_at_k(result: Mapping[str, Any], path: Path) -> None:
    plt = pyplot()
    ks = figure_ks(result["config"]["ks"])
    groups = list(result["population"]["groups"]) if len(result["population"]["groups"]) > 1 else []
    rows: list[str | None] = [None, *groups]
    fig, axes = plt.subplots(
        len(rows), len(ks), figsize=(3.6 * len(ks), 2.6 * len(rows)), squeeze=False, sharex=True
    )
    for j, est in enumerate(result["estimators"]):
        colour = f"C{j % 10}"
        many = len(est["runs"]) > 1
        for run_i, run in enumerate(est["runs"]):
            traj = run["trajectory"]
            for r, group in enumerate(rows):
                for c, k in enumerate(ks):
                    axes[r][c].plot(
                        traj["step"],
                        _series(traj, group)["pass_at_k"][str(k)],
                        color=colour,
                        linestyle=_STYLES[j // 10 % len(_STYLES)],
                        lw=0.8 if many else 1.6,
                        alpha=0.6 if many else 1.0,
                        label=est["label"] if run_i == 0 and r == 0 and c == 0 else None,
                    )
    for r, group in enumerate(rows):
        for c, k in enumerate(ks):
            ax = axes[r][c]
            ax.set_title(f"{group or 'all problems'}: pass@{k}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            if r == len(rows) - 1:
                ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_shares(result: Mapping[str, Any], path: Path) -> None:
    plt = pyplot()
    ests = result["estimators"]
    cols = min(3, len(ests))
    rows = -(-len(ests) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.8 * cols, 2.8 * rows), squeeze=False, sharey=True
    )
    strategies = result["population"]["strategies"]
    for ax in axes.flat[len(ests) :]:
        ax.set_visible(False)
    for j, est in enumerate(ests):
        ax = axes.flat[j]
        for s_i, s in enumerate(strategies):
            for run_i, run in enumerate(est["runs"]):
                traj = run["trajectory"]
                ax.plot(
                    traj["step"],
                    traj["shares"][s],
                    color=f"C{s_i % 10}",
                    lw=0.8 if len(est["runs"]) > 1 else 1.6,
                    label=s if run_i == 0 else None,
                )
        ax.set_title(est["label"], fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for r in range(rows):
        axes[r][0].set_ylabel("mean strategy share")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_curve(result: Mapping[str, Any], path: Path) -> None:
    plt = pyplot()
    ks = sorted(int(k) for k in result["config"]["ks"])
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    first = result["estimators"][0]["runs"][0]["trajectory"]
    ax.plot(ks, [first["pass_at_k"][str(k)][0] for k in ks], color="grey", lw=1.2, label="start")
    for j, est in enumerate(result["estimators"]):
        ax.plot(
            ks,
            [est["final"]["pass_at_k"][str(k)] for k in ks],
            color=f"C{j % 10}",
            marker="o",
            ms=3,
            linestyle=_STYLES[j // 10 % len(_STYLES)],
            label=est["label"],
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k at the end")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_all(result: Mapping[str, Any], out: Path) -> list[Path]:
    """Write the three figures into ``out``; return their paths."""
    paths = [out / "pass_at_k.png", out / "shares.png", out / "pass_at_k_curve.png"]
    draw_pass_at_k(result, paths[0])
    draw_shares(result, paths[1])
    draw_curve(result, paths[2])
    return paths
