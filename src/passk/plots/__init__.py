"""Figures drawn from logged files only (``eval.json``, ``metrics.jsonl``), never from
live objects (the eta curves are pure numerics from ``passk.core``).

``passk plot`` is a sub-command group: ``passk plot compare A/eval.json B/eval.json
--out cmp.png`` overlays the pass@k, pass^k and maj@k curves (with CI bands); ``passk plot eval DIR`` redraws one run's
figures; ``passk plot run DIR [DIR ...]`` draws training curves from each run's
``metrics.jsonl``; ``passk plot sweep DIR`` redraws a sweep's comparison figures from
``DIR/summary.json``; ``passk plot eta --n 32 --k 4 8 16 --out eta.png`` draws the eta
curves of the advantage estimators (SPEC 1.6) and prints where each one peaks.

One module per figure family: :mod:`~passk.plots.eval_curves` (evaluation reports),
:mod:`~passk.plots.run` (training runs), :mod:`~passk.plots.sweep` (sweeps),
:mod:`~passk.plots.eta` (estimators' eta curves), sharing :mod:`~passk.plots.common`;
:mod:`~passk.plots.cli` holds the sub-commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from passk.lazy import lazy_getattr

if TYPE_CHECKING:
    from passk.plots.cli import add_parser
    from passk.plots.eta import DEFAULT_ETA_ESTIMATORS, eta_estimators, plot_eta
    from passk.plots.eval_curves import (
        DANG_LINES,
        EVAL_METRICS,
        eval_report_path,
        load_eval,
        plot_compare,
        plot_eval_dir,
        plot_maj_curve,
        plot_pass1_hist,
        plot_passk_curve,
    )
    from passk.plots.run import load_metrics, plot_run
    from passk.plots.sweep import plot_sweep, plot_sweep_curves, plot_sweep_entropy

# name -> module, imported on first use: matplotlib (and torch, for the eta curves) load
# only when a figure is drawn
_LAZY: dict[str, str] = {
    "DANG_LINES": "passk.plots.eval_curves",
    "DEFAULT_ETA_ESTIMATORS": "passk.plots.eta",
    "EVAL_METRICS": "passk.plots.eval_curves",
    "add_parser": "passk.plots.cli",
    "eta_estimators": "passk.plots.eta",
    "eval_report_path": "passk.plots.eval_curves",
    "load_eval": "passk.plots.eval_curves",
    "load_metrics": "passk.plots.run",
    "plot_compare": "passk.plots.eval_curves",
    "plot_eta": "passk.plots.eta",
    "plot_eval_dir": "passk.plots.eval_curves",
    "plot_maj_curve": "passk.plots.eval_curves",
    "plot_pass1_hist": "passk.plots.eval_curves",
    "plot_passk_curve": "passk.plots.eval_curves",
    "plot_run": "passk.plots.run",
    "plot_sweep": "passk.plots.sweep",
    "plot_sweep_curves": "passk.plots.sweep",
    "plot_sweep_entropy": "passk.plots.sweep",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "DANG_LINES",
    "DEFAULT_ETA_ESTIMATORS",
    "EVAL_METRICS",
    "add_parser",
    "eta_estimators",
    "eval_report_path",
    "load_eval",
    "load_metrics",
    "plot_compare",
    "plot_eta",
    "plot_eval_dir",
    "plot_maj_curve",
    "plot_pass1_hist",
    "plot_passk_curve",
    "plot_run",
    "plot_sweep",
    "plot_sweep_curves",
    "plot_sweep_entropy",
]
