"""``passk train``: the embedded RLVR trainer on the command line.

    passk train                                  # embedded model, mul1, analytic Pass@k
    passk train --config configs/passk_then_pass1.yaml --out runs/pk2p1
    passk train --config configs/prorl.yaml --set optim.lr=1e-6 --set rollout.n=16
    passk train --out runs/pk2p1 --resume --steps 80
    passk train --help-config                    # every knob with its default and meaning

SIGTERM and SIGHUP stop a run as Ctrl-C does. One process at a time writes a run
directory: a second ``passk train`` on it (``--resume`` included) is refused while the
first is alive (``RUN/writer.lock`` names it).

Exit codes: 0 done, 2 bad configuration or run directory, 3 training diverged
(too many non-finite steps), 130 interrupted (the last finished step is saved).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from passk.overrides import add_set_argument


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a policy with Pass@k Training and its relatives",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=None, help="YAML recipe (see configs/); default: built-in")
    p.add_argument(
        "--out", type=Path, default=None, help="run directory (default runs/<timestamp>)"
    )
    p.add_argument("--steps", type=int, default=None, help="training steps (overrides the config)")
    p.add_argument("--seed", type=int, default=None, help="seed (overrides the config)")
    add_set_argument(
        p, "override a config value, e.g. --set optim.lr=1e-6 (repeatable; values are YAML)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="plain log lines, no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--help-config", action="store_true", help="document every config key and exit")
    p.set_defaults(func=run)
    return p


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if args.steps is not None:
        extra.append(f"steps={args.steps}")
    if args.seed is not None:
        extra.append(f"seed={args.seed}")
    if args.no_progress:
        extra.append("log.progress=false")
    return extra


def run(args: argparse.Namespace) -> int:
    from passk.train.checkpoint import CheckpointError
    from passk.train.config import dump_config, load_config, validate
    from passk.train.config_docs import describe_config
    from passk.train.config_validate import warn_config
    from passk.train.run_dir import busy_message

    if args.help_config:
        for key, default, doc in describe_config():
            print(f"{key} = {default}\n    {doc}")
        return 0
    from passk.train.run_dir import RunDir

    try:
        holder = RunDir(args.out).writer() if args.out is not None else None
        if holder is not None:  # first: a live run holds a run too, and may be mid-write
            raise ValueError(busy_message(args.out, holder))
        if args.resume:
            if args.out is None:
                raise ValueError("--resume needs --out DIR (the run to continue)")
            from passk.train.loop import load_run_config

            config = load_run_config(args.out, args.config, _overrides(args))
        else:
            config = load_config(args.config, _overrides(args))
        validate(config)
        if args.print_config:
            print(dump_config(config), end="")
            return 0
        if args.out is None:
            args.out = Path("runs") / time.strftime("train-%Y%m%d-%H%M%S")
        run_dir = RunDir(args.out)
        run_dir.check_start(args.resume)  # with validate() above: once, before torch loads
        warn_config(config)
        with run_dir.lock("passk train"), stop_signals_interrupt():
            return _train(config, args)
    except (ValueError, CheckpointError, FileNotFoundError, ImportError) as e:
        print(f"passk train: error: {e}", file=sys.stderr)
        return 2


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP act as Ctrl-C inside: a run they stop saves its last finished
    step and exits 130 (``passk sweep`` forwards them to its runs; closing the terminal
    sends SIGHUP)."""
    old = {s: signal.signal(s, _as_ctrl_c) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _as_ctrl_c(signum: int, frame: Any) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # the trainer's (it defers to the end of an update) or Python's
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _train(config: Any, args: argparse.Namespace) -> int:
    from rich.console import Console
    from transformers.utils import logging as hf_logging

    from passk.train.loop import TrainingDiverged, train

    hf_logging.disable_progress_bar()
    console = Console(stderr=True)
    out = args.out

    def plain(record: dict[str, Any]) -> None:
        if not config.log.progress:
            keys = ("reward/mean", "train/pass@1", "train/pass@k", "actor/entropy", "adv/zero_frac")
            vals = " ".join(f"{k}={record.get(k)!s:.6}" for k in keys)
            console.print(
                f"step {record['step']}/{config.steps} {vals} ({record['time/step']:.1f}s)"
            )

    console.print(f"[bold]passk train[/] -> {out}  ({config.task.name}, {_recipe(config)})")
    try:
        result = train(
            config, out, resume=args.resume, console=console, on_step=plain, checked=True
        )
    except TrainingDiverged as e:
        console.print(f"[red]passk train: {e}[/red]")
        return 3
    except OSError as e:  # a full disk or a vanished directory while writing the run
        where = f" ({e.filename})" if e.filename else ""
        print(
            f"passk train: error: cannot write the run: {e.strerror or e}{where}; "
            "the last complete checkpoint is intact (resume with --resume)",
            file=sys.stderr,
        )
        return 2
    _report(result, console, config)
    return 130 if result.interrupted else 0


def _recipe(config: Any) -> str:
    stages = config.algorithm.stages
    return " -> ".join(f"{s.estimator}{s.params or ''}" for s in stages)


def _report(result: Any, console: Any, config: Any) -> None:
    from rich.table import Table

    from passk.train.logging import summary
    from passk.train.run_dir import RunDir

    run = RunDir(result.out_dir)
    plots = []
    try:
        from passk.plots import plot_run

        plots.append(plot_run([run.path], run.training_plot))
    except ValueError as e:  # nothing to draw yet (e.g. interrupted before the first step)
        console.print(f"[yellow]no training plot: {e}[/yellow]")
    first, last = result.first_eval, result.final_eval
    if first or last:
        table = Table(title="held-out pass@k")
        keys = sorted(
            {k for rec in (first, last) if rec for k in rec if k.startswith("eval/pass@")},
            key=lambda k: int(k.split("@")[1]),
        )
        table.add_column("")
        for k in keys:
            table.add_column(k.removeprefix("eval/"), justify="right")
        for label, rec in (("start", first), (f"step {last['step']}" if last else "end", last)):
            if rec:
                table.add_row(label, *[f"{rec.get(k, float('nan')):.3f}" for k in keys])
        console.print(table)
    if result.resumed_from is not None:
        console.print(f"resumed from {result.resumed_from}")
    state = "interrupted; resume with --resume" if result.interrupted else "done"
    console.print(f"{state}: {summary(run.read_metrics())}")
    console.print(f"  metrics    {run.metrics}")
    for p in plots:
        console.print(f"  plot       {p}")
    if run.evals_dir.is_dir():
        console.print(f"  evals      {run.evals_dir}")
    ck = result.checkpoint
    if ck is not None and (ck / "adapter_model.safetensors").is_file():
        console.print(f"  checkpoint {ck}  (LoRA adapters only; the base is {config.model.name})")
    elif ck is not None:
        console.print(f"  checkpoint {ck}  (passk eval --model {ck})")
