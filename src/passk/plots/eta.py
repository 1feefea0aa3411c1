"""The eta figure: total optimisation strength of a group vs its accuracy, per estimator.

``passk plot eta`` draws it (:func:`plot_eta`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passk.plots.common import STYLES, pyplot

DEFAULT_ETA_ESTIMATORS = ("pass1", "passk_analytic", "passk_exceed", "passk_combination")
# line style per estimator; colour is k (pass1 does not depend on k and is drawn black)
_ETA_STYLES: dict[str, Any] = {
    "pass1": "-",
    "passk_analytic": "-",
    "passk_exceed": "--",
    "passk_combination": ":",
}


def eta_estimators() -> list[str]:
    """Estimators with an eta curve at their default parameters (those needing per-group
    inputs have none; ``passk_mixture`` needs its weights: call ``eta_curve`` with them)."""
    # imported here, not at the top: torch is slow to load and the CLI imports this module
    from passk.core.advantages import get_estimator, list_estimators

    def plain(name: str) -> bool:  # no per-group inputs, and every parameter has a default
        spec = get_estimator(name)
        try:
            spec.make_params()
        except (ValueError, TypeError):
            return False
        return not spec.needs

    return [name for name in list_estimators() if plain(name)]


def plot_eta(
    n: int, ks: Sequence[int], out: str | Path, *, estimators: Sequence[str] | None = None
) -> tuple[Path, dict[str, float]]:
    """eta(accuracy) = sum_i |A_i| of a group of ``n`` for each estimator and k (SPEC 1.6).

    Left: eta itself; right: each curve divided by its peak, so peak positions compare
    across scales. Returns the output path and each curve's peak accuracy, keyed
    ``"pass1"`` or ``"<estimator> k=<k>"`` (NaN for a curve that is zero everywhere).
    """
    from passk.core.advantages import eta_curve, get_estimator

    valid = eta_estimators()
    names = list(estimators) if estimators else list(DEFAULT_ETA_ESTIMATORS)
    unknown = [e for e in names if e not in valid]
    if unknown:
        raise ValueError(f"no eta curve for estimator(s) {unknown}; valid: {', '.join(valid)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    bad = [k for k in ks if not 1 <= k <= n]
    if bad:
        raise ValueError(f"k must be in 1..{n} (the group size), got {bad}")
    ks = sorted(set(ks))
    if not ks and any(get_estimator(e).uses_k for e in names):
        raise ValueError("give at least one k for the Pass@k estimators")

    plt = pyplot()
    fig, (ax_abs, ax_rel) = plt.subplots(1, 2, figsize=(12, 4.3))
    extra_styles = iter(STYLES[3:] * 3)
    # one colour per k for the Pass@k family; estimators without k get their own colours
    # (pass1, the reference, stays black), from the end of the cycle
    plain_colors = iter(["black"] + [f"C{9 - i}" for i in range(10)] * 3)
    peaks: dict[str, float] = {}
    for name in dict.fromkeys(names):  # drop repeats, keep order
        uses_k = get_estimator(name).uses_k
        style = _ETA_STYLES.get(name) or next(extra_styles, "-.")
        for i, k in enumerate(ks if uses_k else [None]):
            acc_t, eta_t = eta_curve(name, n, **({"k": k} if uses_k else {}))  # [n+1]
            acc, eta = acc_t.tolist(), eta_t.tolist()
            label = f"{name} k={k}" if uses_k else name
            color = f"C{i % 10}" if uses_k else next(plain_colors)
            top = max(eta)
            peak = eta.index(top)  # first of tied maxima
            peaks[label] = acc[peak] if top > 0 else math.nan
            shown = f"{label} (peak {peaks[label]:.3g})"
            ax_abs.plot(acc, eta, color=color, linestyle=style, label=shown)
            if top > 0:
                ax_abs.plot([acc[peak]], [top], marker="o", color=color, ms=5)
                ax_rel.plot(acc, [e / top for e in eta], color=color, linestyle=style, label=shown)
                ax_rel.plot([acc[peak]], [1.0], marker="o", color=color, ms=5)
    ax_abs.set_ylabel("eta = N_pos|A_pos| + N_neg|A_neg|")
    ax_abs.set_title(f"eta vs group accuracy (N = {n})", fontsize=9)
    ax_rel.set_ylabel("eta / peak eta")
    ax_rel.set_title("normalised to each curve's peak (dots: peaks)", fontsize=9)
    for ax in (ax_abs, ax_rel):
        ax.set_xlabel("accuracy N_pos / N")
        ax.set_xlim(0, 1)
        ax.grid(True, alpha=0.3)
    # the legend gets its own column: inside, it would hide the Pass@1 curve's top
    handles, labels = ax_abs.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.8, 0.5), fontsize=7)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out, peaks
