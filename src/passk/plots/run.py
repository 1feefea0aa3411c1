"""Training curves of one or several runs from their ``metrics.jsonl``
(``passk plot run``)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passk.plots.common import MARKERS, STYLES, finite_number, pyplot, trailing_mean

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


def series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    from passk.train.run_dir import metric_series

    return metric_series(rows, key)


def _train_k_label(rows: Sequence[dict[str, Any]]) -> str:
    """``pass@4`` when every row (of every run) used one k, else the range of k."""
    ks = sorted({int(k) for row in rows if (k := finite_number(row.get("train/k"))) is not None})
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
        return any(series(run[part], key)[0] for run in runs)

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

    plt = pyplot()
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
                steps, values = series(evals if is_eval else train, key)
                if not steps:
                    continue
                style = STYLES[j % len(STYLES)]
                if is_eval:
                    marker = MARKERS[j % len(MARKERS)]
                    ax.plot(steps, values, color=color, linestyle=style, marker=marker, ms=3)
                else:
                    marker = None
                    ax.plot(steps, trailing_mean(values, smooth), color=color, linestyle=style)
                if len(keys) > 1:
                    name = key.rsplit("/", 1)[-1]
                    if key == "train/pass@k":
                        name = _train_k_label([row for run in runs for row in run[0]])
                    style_handles.setdefault(
                        name,
                        plt.Line2D([], [], color="gray", linestyle=style, marker=marker, ms=3),
                    )
            if keys == ("actor/kl",):
                resets = [s for s, v in zip(*series(train, "ref/reset"), strict=True) if v]
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
