"""What every figure family shares: a headless pyplot, line styles and markers, the
log2 k axis, saving, and the small numerics of smoothing and averaging."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only; never needs a display)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


# line styles and markers that tell apart the quantities of one panel
STYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def k_axis(ax: Any, ks: Sequence[int]) -> None:
    """A log2 x axis ticked at ``ks``."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks))
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k (samples)")


def style_k_axis(ax: Any, ks: Sequence[int]) -> None:
    """:func:`k_axis` plus a pass@k y axis in [0, 1] and a grid."""
    k_axis(ax, ks)
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (nothing to draw)."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None  # None, NaN/inf, or not a number: nothing to draw


def trailing_mean(values: Sequence[float], width: int) -> list[float]:
    """Mean of the last ``width`` values at each point (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def average(values: Sequence[float]) -> float:
    """The arithmetic mean of a non-empty sequence."""
    return sum(values) / len(values)


def save_figure(fig: Any, out: str | Path) -> Path:
    """Lay out, save (missing folders made) and close ``fig``; the path written."""
    plt = pyplot()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
