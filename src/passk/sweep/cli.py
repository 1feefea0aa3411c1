"""``passk sweep``: train every arm x seed of a sweep file and compare the arms.

    passk sweep configs/sweeps/reproduce.yaml --out runs/reproduce
    passk sweep FILE --out DIR --parallel 2 --threads 1     # two runs side by side
    passk sweep FILE --out DIR --arms pass1 passk --seeds 0 # a part of the sweep
    passk sweep FILE --out DIR --dry-run                    # the plan, nothing runs

Each run is a ``passk train`` subprocess into ``DIR/ARM_sSEED/`` (its log in
``DIR/logs/``). Running the same command again skips finished runs and resumes
interrupted ones from their last checkpoint. When every arm of a seed starts from the
same weights, the starting model is evaluated once per seed (``DIR/before_sSEED/``) and
the arms train with ``eval.at_start=false``. The results go to ``DIR/summary.json``
(paths relative to DIR), the figures ``DIR/passk_curves.png``, ``DIR/training.png`` and
``DIR/entropy.png``, and the tables to stdout (and ``--markdown FILE``).

``--out`` must be a new or empty directory or this sweep's own: a training run
directory, an evaluation directory or a folder holding other files is refused before
anything runs (``--dry-run`` included). One sweep at a time writes a directory.
Ctrl-C, SIGTERM and SIGHUP stop the sweep: its running runs are told to stop, save
their last finished step and are waited for. ``--dry-run`` prints each run's command
with paths as seen from the current directory, ready to paste.

Exit codes: 0 every run finished, 2 a bad sweep file or run directory (nothing ran),
3 some run failed or diverged, 130 interrupted (run the command again to continue).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from passk.overrides import add_set_argument


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep",
        help="train arms x seeds from a sweep file and compare them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="sweep file (YAML; see configs/sweeps/)")
    p.add_argument("--out", type=Path, required=True, help="sweep directory")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--arms", nargs="+", default=None, help="only these arms")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="only these seeds")
    add_set_argument(p, "config override for every run, after the sweep file's (repeatable)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from passk.sweep.plan import plan_sweep
    from passk.sweep.runner import check_sweep_dir, decide
    from passk.sweep.spec import load_sweep
    from passk.train.run_dir import busy_message, lock_holder

    try:
        if args.parallel < 1 or args.threads < 1:
            raise ValueError(
                f"--parallel and --threads must be >= 1, got {args.parallel}, {args.threads}"
            )
        spec = load_sweep(args.file, args.overrides).select(args.arms, args.seeds)
        check_sweep_dir(args.out, _own_extra(args))
        holder = lock_holder(args.out)
        if holder is not None:
            raise ValueError(busy_message(args.out, holder))
        plan = plan_sweep(spec, args.out, threads=args.threads)
        decision = decide(plan)
    except ValueError as e:
        print(f"passk sweep: error: {e}", file=sys.stderr)
        return 2
    _print_plan(plan, decision, commands=args.dry_run)
    if args.dry_run:
        return 0
    return _run(plan, decision, args)


def _own_extra(args: argparse.Namespace) -> tuple[str, ...]:
    """The ``--markdown`` file's name when the sweep writes it into its own directory."""
    md = args.markdown
    if md is not None and md.parent.resolve() == args.out.resolve():
        return (md.name,)
    return ()


def plural(count: int, word: str) -> str:
    """``1 arm``, ``2 arms``.

    >>> plural(1, "seed"), plural(3, "seed")
    ('1 seed', '3 seeds')
    """
    return f"{count} {word}{'' if count == 1 else 's'}"


def _print_plan(plan: Any, decision: Any, *, commands: bool) -> None:
    spec = plan.spec
    print(
        f"passk sweep {spec.name}: {plural(len(spec.arms), 'arm')} x "
        f"{plural(len(spec.seeds), 'seed')} -> {plan.out}; "
        f"{len(decision.jobs)} to run, {len(decision.skipped)} finished earlier"
    )
    for key, why in decision.skipped.items():
        print(f"[{key}] {why} earlier, skipped")
    for job in decision.jobs if commands else ():
        if job.run is not None:
            what = "resume" if job.resume else "run"
            print(f"[{job.key}] {what}: {job.run.command(Path.cwd(), shell=True)}")


def _run(plan: Any, decision: Any, args: argparse.Namespace) -> int:
    from passk.train.run_dir import DirectoryBusy, DirectoryLock

    try:
        lock = DirectoryLock(plan.out, "passk sweep")
        lock.acquire()
    except DirectoryBusy as e:  # another sweep took the directory since the check
        print(f"passk sweep: error: {e}", file=sys.stderr)
        return 2
    try:
        return _run_locked(plan, decision, args)
    finally:
        lock.release()


def _run_locked(plan: Any, decision: Any, args: argparse.Namespace) -> int:
    from passk.eval.report import write_json_atomic
    from passk.plots import plot_sweep
    from passk.sweep.report import markdown_tables, rounded
    from passk.sweep.runner import execute
    from passk.sweep.summary import build_summary
    from passk.train.cli import stop_signals_interrupt

    # a sweep started in the background (``nohup passk sweep ... &``) inherits an ignored
    # SIGINT; it is the signal that stops a sweep cleanly, so it is always honoured
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with stop_signals_interrupt():  # SIGTERM, SIGHUP: the same clean stop
            finished = execute(plan, decision.jobs, parallel=args.parallel, threads=args.threads)
    finally:
        if previous is not None:  # None: a handler installed outside Python, left as it is
            signal.signal(signal.SIGINT, previous)
    if not finished:
        print("passk sweep: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    summary = build_summary(plan)
    summary["figures"] = {k: p.name for k, p in plot_sweep(summary, plan.out).items()}
    write_json_atomic(plan.out / "summary.json", rounded(summary))
    tables = markdown_tables(summary)
    print("\n" + tables)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(tables, encoding="utf-8")
        print(f"wrote {args.markdown}")
    print(f"wrote {plan.out / 'summary.json'}")
    for name in summary["figures"].values():
        print(f"  {plan.out / name}")
    statuses = [*summary["status"].values(), *summary["before_status"].values()]
    return 0 if all(s == "done" for s in statuses) else 3
