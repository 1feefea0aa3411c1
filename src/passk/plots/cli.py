"""``passk plot <what>``: one sub-command per figure family."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from passk.plots.eta import DEFAULT_ETA_ESTIMATORS, plot_eta
from passk.plots.eval_curves import EVAL_METRICS, plot_compare, plot_eval_dir
from passk.plots.run import plot_run
from passk.plots.sweep import plot_sweep


def _run_compare(args: argparse.Namespace) -> int:
    if args.out.is_dir():
        raise ValueError(
            f"--out {args.out} is a directory; give a file name, e.g. {args.out}/cmp.png"
        )
    try:
        out = plot_compare(args.files, args.out, labels=args.labels, metrics=args.metrics)
    except OSError as e:
        raise ValueError(f"cannot write --out {args.out}: {e.strerror or e}") from None
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
    cmp.add_argument(
        "files",
        nargs="+",
        type=Path,
        help="eval.json files, passk eval directories or training run directories (their "
        "newest evals/step_N.json)",
    )
    cmp.add_argument(
        "--out", required=True, type=Path, help="output PNG (missing folders are created)"
    )
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
