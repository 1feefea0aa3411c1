"""``passk eval``: pass@k curves with bootstrap error bars for a model on a task.

Writes ``OUT/eval.json`` (atomically; refreshed while running, so a killed run keeps
what it finished), ``OUT/passk_curve.png`` and ``OUT/pass1_hist.png``. Ctrl-C writes
the problems finished so far (``"interrupted": true``) and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

from passk.eval.evaluate import EvalConfig, EvalInterrupted, EvalResult, ProblemResult, evaluate
from passk.eval.report import summary_table, write_json_atomic
from passk.rollout.models import DEVICE_CHOICES, DTYPE_CHOICES

# refresh eval.json at most this often while running
_CHECKPOINT_EVERY_S = 20.0


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, lists), else a string.

    >>> parse_option("digits=4"), parse_option("dataset=leg_counting")
    (('digits', 4), ('dataset', 'leg_counting'))
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_batch_size(text: str) -> int | Literal["auto"]:
    """``auto`` or a positive integer.

    >>> parse_batch_size("auto"), parse_batch_size("64")
    ('auto', 64)
    >>> parse_batch_size("0")
    Traceback (most recent call last):
    ...
    ValueError: --batch-size must be 'auto' or an integer >= 1, got '0'
    """
    text = str(text).strip()
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--batch-size must be 'auto' or an integer >= 1, got {text!r}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="pass@k evaluation with bootstrap confidence intervals",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="embedded", help="'embedded' or a local HF checkpoint dir")
    p.add_argument(
        "--task",
        default="mul1",
        help="task name (see passk.tasks.list_tasks), rg:NAME or module:factory",
    )
    p.add_argument(
        "--task-option",
        action="append",
        default=[],
        type=parse_option,
        metavar="KEY=VALUE",
        help="task constructor option (repeatable), e.g. digits=4",
    )
    p.add_argument(
        "--reward",
        default=None,
        help="score with this reward (registry name or module:function) instead of the task's",
    )
    p.add_argument("--split", default="test", choices=["test", "train", "all"])
    p.add_argument(
        "--problems",
        type=int,
        default=50,
        help="number of problems (fewer if the split is smaller)",
    )
    p.add_argument("--n", type=int, default=16, help="samples per problem")
    p.add_argument(
        "--k", type=int, nargs="+", default=None, help="k values (default 1, 2, 4, ..., n)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument(
        "--batch-size",
        default="auto",
        help="sequences in flight: an integer >= 1, or 'auto' (up to 256, as memory allows)",
    )
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES)
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} or cuda:N")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (0: torch's default); 1 is often faster on a busy machine",
    )
    p.add_argument(
        "--score-timeout",
        type=float,
        default=30.0,
        help="seconds per scoring call; 0 scores in-process without a timeout",
    )
    p.add_argument("--num-resamples", type=int, default=1000, help="bootstrap resamples for the CI")
    p.add_argument("--system-prompt", default=None)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished report in --out (without it such a directory is refused)",
    )
    p.set_defaults(func=run)
    return p


def select_problems(task: Any, split: str, n: int, seed: int) -> list[Any]:
    """``n`` problems of a split; ``all`` takes test first, then train."""
    if split != "all":
        return task.problems(split, n, seed)
    test = task.problems("test", n, seed)
    return test + task.problems("train", n - len(test), seed) if len(test) < n else test


def run(args: argparse.Namespace) -> int:
    """Entry point of ``passk eval``: bad settings print one clear line and exit with 2."""
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"passk eval: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk or a vanished directory while writing the report
        where = f" ({e.filename})" if e.filename else ""
        print(
            f"passk eval: error: cannot write the report: {e.strerror or e}{where}", file=sys.stderr
        )
        return 2


def check_args(args: argparse.Namespace) -> None:
    """Every setting that can be checked without a model, named by its flag."""
    checks = [
        (args.n >= 1, f"--n must be >= 1, got {args.n}"),
        (args.problems >= 1, f"--problems must be >= 1, got {args.problems}"),
        (args.threads >= 0, f"--threads must be >= 0 (0: torch's default), got {args.threads}"),
        (
            args.score_timeout >= 0,
            f"--score-timeout must be >= 0 (0: no timeout), got {args.score_timeout}",
        ),
        (args.temperature >= 0, f"--temperature must be >= 0, got {args.temperature}"),
        (0 < args.top_p <= 1, f"--top-p must be in (0, 1], got {args.top_p}"),
        (args.max_new_tokens >= 1, f"--max-new-tokens must be >= 1, got {args.max_new_tokens}"),
        (args.num_resamples >= 1, f"--num-resamples must be >= 1, got {args.num_resamples}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """``--out`` must be a writable directory that holds no finished report (unless
    ``--overwrite``): an interrupted new run must not destroy a complete old one."""
    from passk.train.run_dir import check_output_dir

    check_output_dir(out)
    report = out / "eval.json"
    if report.is_file() and not overwrite:
        try:
            finished = not json.loads(report.read_text(encoding="utf-8")).get("interrupted")
        except (OSError, ValueError):
            finished = False  # unreadable: not a report worth keeping
        if finished:
            raise ValueError(
                f"{report} holds a finished report; pass --overwrite to replace it or "
                "choose another --out"
            )


def _run(args: argparse.Namespace) -> int:
    batch_size = parse_batch_size(args.batch_size)  # bad values fail before anything loads
    check_args(args)
    check_out_dir(args.out, args.overwrite)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers.utils import logging as hf_logging

    from passk.rollout.models import load_model
    from passk.tasks.registry import get_task
    from passk.tasks.rewards import RewardTask, get_reward

    hf_logging.disable_progress_bar()  # our own progress bar is enough
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    task = get_task(args.task, **dict(args.task_option))
    if args.reward:
        task = RewardTask(task, get_reward(args.reward))
    problems = select_problems(task, args.split, args.problems, args.seed)
    if not problems:
        raise ValueError(f"task {args.task!r} has no {args.split} problems")
    if len(problems) < args.problems:
        console.print(
            f"[yellow]task {task.name!r} split {args.split!r} has only {len(problems)} problems; "
            f"evaluating {len(problems)} (asked for {args.problems})[/yellow]"
        )
    config = EvalConfig(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=batch_size,
        ks=tuple(args.k) if args.k else None,
        num_resamples=args.num_resamples,
        score_timeout=args.score_timeout if args.score_timeout > 0 else None,
        system_prompt=args.system_prompt,
    )
    t0 = time.perf_counter()
    with console.status(f"loading model {args.model!r}"):
        loaded = load_model(args.model, dtype=args.dtype, device=args.device)
    load_s = time.perf_counter() - t0
    run_info = {
        "command": "passk eval",
        "argv": sys.argv[1:],
        "task": task.name,
        "task_options": dict(args.task_option),
        "reward": args.reward,
        "split": args.split,
        "problems_requested": args.problems,
        "model_spec": args.model,
        "model_load_s": round(load_s, 3),
        "torch_threads": torch.get_num_threads(),
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    eval_path = out / "eval.json"
    finished: list[ProblemResult] = []
    last_write = [time.perf_counter()]

    def write(result: EvalResult) -> dict[str, Any]:
        report = result.to_dict(run=run_info, model=loaded.identity.to_dict())
        write_json_atomic(eval_path, report)
        return report

    def checkpoint(pr: ProblemResult) -> None:
        finished.append(pr)
        if time.perf_counter() - last_write[0] > _CHECKPOINT_EVERY_S:
            elapsed = time.perf_counter() - t_sampling
            write(EvalResult(list(finished), config, elapsed_s=elapsed, interrupted=True))
            last_write[0] = time.perf_counter()

    columns = (
        TextColumn("[bold]sampling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sequences"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    status = 0
    t_sampling = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as bar:
        job = bar.add_task("sampling", total=len(problems) * config.n)
        try:
            result = evaluate(
                loaded.model,
                loaded.tokenizer,
                task,
                problems,
                config=config,
                progress=lambda k: bar.advance(job, k),
                on_problem=checkpoint,
            )
        except EvalInterrupted as e:
            result = e.partial
            status = 130
    report = write(result)
    if not args.no_plots and result.problems:
        from passk.plots import plot_eval_dir

        plot_eval_dir(out)
    Console().print(summary_table(report, title=f"{task.name} | {loaded.identity.name}"))
    console.print(f"wrote {eval_path}" + (" (partial: interrupted)" if status else ""))
    return status
