"""``passk simulate``: run estimators through the mechanism lab and write the report.

    passk simulate configs/simulate/two_mode.yaml --out runs/sim
    passk simulate FILE --out DIR --steps 200 --seeds 0 1   # shorter, other seeds
    passk simulate FILE --out DIR --set optimizer.lr=0.5 --set n=32

Writes ``DIR/result.json`` (the trajectories of every estimator: pass@k and pass^k for
the file's ks, per group, strategy shares, entropy), ``DIR/config.yaml`` (the file as
parsed) and the figures ``DIR/pass_at_k.png``, ``DIR/shares.png`` and
``DIR/pass_at_k_curve.png``, then prints the final values. DIR must be new, empty or an
earlier ``passk simulate`` output (which is replaced). Exact runs take seconds.

Exit codes: 0 done, 2 a bad simulation file or output directory (nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from passk.overrides import add_set_argument

OUTPUTS = ("result.json", "config.yaml", "pass_at_k.png", "shares.png", "pass_at_k_curve.png")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate",
        help="exact model of what an advantage design does to exploration (no model)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="simulation file (YAML; see configs/simulate/)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="override the file's steps (schedules' phase lengths scale in proportion)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the file's seeds")
    add_set_argument(p, "change the file: optimizer.lr=0.5, estimators.1.params.k=8 (repeatable)")
    p.add_argument("--no-figures", action="store_true", help="write result.json only")
    p.set_defaults(func=run)
    return p


def check_out_dir(out: Path) -> None:
    """Refuse a directory that holds anything but an earlier simulation's own files."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a directory")
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
    if foreign:
        raise ValueError(
            f"--out {str(out)!r} holds files that passk simulate did not write "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); give a new or "
            "empty directory"
        )
    result = out / "result.json"
    if result.exists():
        from passk.sim.run import FORMAT

        try:
            fmt = json.loads(result.read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if fmt != FORMAT:
            raise ValueError(
                f"--out {str(out)!r} holds a result.json that passk simulate did not write; give a "
                "new or empty directory"
            )


def run(args: argparse.Namespace) -> int:
    import yaml

    from passk.sim.config import load_simulate, parse_simulate
    from passk.sim.run import simulate, total_steps

    try:
        spec = load_simulate(args.file, args.overrides)
        if args.steps is not None or args.seeds is not None:
            tree = spec.to_dict()
            if args.steps is not None:
                _scale_schedules(tree, args.steps)
            if args.seeds is not None:
                tree["seeds"] = args.seeds
            spec = parse_simulate(tree)
        check_out_dir(args.out)
    except ValueError as e:
        print(f"passk simulate: error: {e}", file=sys.stderr)
        return 2
    result = _run_with_progress(spec, simulate, total_steps(spec))
    args.out.mkdir(parents=True, exist_ok=True)
    _write_atomic(args.out / "result.json", json.dumps(result, indent=1) + "\n")
    _write_atomic(args.out / "config.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False))
    if not args.no_figures:
        from passk.sim.figures import draw_all

        draw_all(result, args.out)
    _print_summary(result)
    print(f"wrote {args.out / 'result.json'}" + ("" if args.no_figures else " and 3 figures"))
    return 0


def _scale_schedules(tree: dict[str, Any], steps: int) -> None:
    """Set ``steps`` and scale every schedule's phase lengths by the same factor (at least
    one step each), so that a shorter run keeps the schedule's shape."""
    old = tree["steps"]
    tree["steps"] = steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or old < 1:
        return  # parse_simulate names the bad value
    for entry in tree["estimators"]:
        for phase in entry["schedule"][:-1]:
            phase["steps"] = max(1, round(phase["steps"] * steps / old))


def _run_with_progress(spec: Any, simulate: Any, total: int) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("simulate", total=total)
        every = max(1, total // 200)

        def tick(done: int) -> None:
            if done % every == 0 or done == total:
                bar.update(task, completed=done)

        return simulate(spec, on_step=tick)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _print_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from passk.sim.figures import figure_ks

    ks = [str(k) for k in figure_ks(result["config"]["ks"])]
    groups = list(result["population"]["groups"]) if len(result["population"]["groups"]) > 1 else []
    table = Table(title=f"after {result['config']['steps']} steps ({result['config']['mode']})")
    table.add_column("estimator")
    for k in ks:
        table.add_column(f"pass@{k}", justify="right")
    for g in groups:
        for k in ks[1:]:
            table.add_column(f"{g}\npass@{k}", justify="right")
    table.add_column("entropy", justify="right")
    table.add_column("strategy shares")
    for est in result["estimators"]:
        final = est["final"]
        shares = sorted(final["shares"].items(), key=lambda kv: -kv[1])[:4]
        table.add_row(
            est["label"],
            *(f"{final['pass_at_k'][k]:.3f}" for k in ks),
            *(f"{final['by_group'][g]['pass_at_k'][k]:.3f}" for g in groups for k in ks[1:]),
            f"{final['entropy']:.3f}",
            " ".join(f"{s}={v:.3f}" for s, v in shares),
        )
    Console(width=160).print(table)
