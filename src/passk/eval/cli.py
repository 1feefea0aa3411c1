"""``passk eval``: pass@k, pass^k and maj@k curves with bootstrap error bars.

Three sources of samples, one report:

* ``--model embedded|CHECKPOINT_DIR`` (the default): sample a local model on ``--task``;
* ``--samples FILE.jsonl``: saved generations, no model (``--samples-format passk`` or
  ``verl``; see :mod:`passk.eval.samples`);
* ``--endpoint URL --served-model NAME``: an OpenAI-compatible server (vLLM, SGLang, ...)
  on ``--task``'s problems, cached in ``OUT/endpoint_cache.jsonl`` so a rerun resumes.

Writes ``OUT/eval.json`` (atomically; refreshed while running, so a killed run keeps
what it finished), ``OUT/passk_curve.png``, ``OUT/maj_curve.png`` and
``OUT/pass1_hist.png``. Ctrl-C writes the problems finished so far
(``"interrupted": true``) and exits with status 130; such a report may be replaced by a
rerun without ``--overwrite``.
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
DEFAULT_TASK = "mul1"
DEFAULT_MODEL = "embedded"
# an endpoint run is sampled in chunks of problems holding at least this many requests
# per unit of concurrency: a finished chunk is what Ctrl-C keeps in the report
_ENDPOINT_CHUNK_PER_SLOT = 8


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
    p.add_argument(
        "--model",
        default=None,
        help=f"'embedded' or a local HF checkpoint dir (default {DEFAULT_MODEL!r}, "
        "unless --samples or --endpoint)",
    )
    p.add_argument(
        "--task",
        default=None,
        help="task name (see passk.tasks.list_tasks), rg:NAME or module:factory "
        f"(default {DEFAULT_TASK!r}; with --samples: none, unless responses need scoring)",
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
    src = p.add_argument_group("saved samples (no model)")
    src.add_argument(
        "--samples", type=Path, default=None, metavar="FILE", help="JSONL of saved samples"
    )
    src.add_argument(
        "--samples-format",
        default="passk",
        choices=["passk", "verl"],
        help="passk: problem_id + correct/score/response lines; verl: a validation dump",
    )
    src.add_argument(
        "--correct-threshold",
        type=float,
        default=1.0,
        help="a line's 'score' counts as correct when >= this",
    )
    src.add_argument(
        "--score-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="declared range of 'score'; a score outside it is an error (default: any)",
    )
    ep = p.add_argument_group("OpenAI-compatible endpoint")
    ep.add_argument("--endpoint", default=None, metavar="URL", help="e.g. http://127.0.0.1:8000/v1")
    ep.add_argument("--served-model", default=None, help="the model name the server serves")
    ep.add_argument(
        "--api",
        default="chat",
        choices=["chat", "completions"],
        help="chat: the prompt as a user message (the server applies the chat template); "
        "completions: the raw prompt text (the system prompt, if any, and a blank line first)",
    )
    ep.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    ep.add_argument("--request-timeout", type=float, default=120.0, help="seconds per request")
    ep.add_argument("--retries", type=int, default=5, help="retries per failing request")
    ep.add_argument(
        "--no-request-seed",
        action="store_true",
        help="send no per-request seed (derived from --seed by default): for servers that "
        "reject seeds; vLLM's CPU build needs --no-enable-chunked-prefill to honour them",
    )
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
        (
            not (args.samples is not None and args.endpoint is not None),
            "--samples and --endpoint are two sources of samples; give one",
        ),
        (
            args.model is None or (args.samples is None and args.endpoint is None),
            "--model samples a local model; it does not go with --samples or --endpoint",
        ),
        (
            args.endpoint is None or bool(args.served_model),
            "--endpoint needs --served-model NAME (the model name the server serves)",
        ),
        (args.concurrency >= 1, f"--concurrency must be >= 1, got {args.concurrency}"),
        (args.request_timeout > 0, f"--request-timeout must be > 0, got {args.request_timeout}"),
        (args.retries >= 0, f"--retries must be >= 0, got {args.retries}"),
        (
            args.score_range is None or args.score_range[0] <= args.score_range[1],
            f"--score-range LO HI needs LO <= HI, got {args.score_range}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    for k in args.k or ():
        if k < 1:
            raise ValueError(f"--k values must be >= 1, got {k}")


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
    if args.samples is not None:
        return _run_samples(args)
    if args.endpoint is not None:
        from passk.eval.endpoint_run import run_endpoint

        return run_endpoint(args)
    return _run_model(args, batch_size)


def _run_model(args: argparse.Namespace, batch_size: int | Literal["auto"]) -> int:
    args.model = args.model or DEFAULT_MODEL
    args.task = args.task or DEFAULT_TASK
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

    hf_logging.disable_progress_bar()  # our own progress bar is enough
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    task = _load_task(args)
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
    run_info = _base_run_info(args, task) | {
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
    _finish_outputs(args, report, result, title=f"{task.name} | {loaded.identity.name}")
    console.print(f"wrote {eval_path}" + (" (partial: interrupted)" if status else ""))
    return status


def _finish_outputs(
    args: argparse.Namespace, report: dict[str, Any], result: EvalResult, *, title: str
) -> None:
    from rich.console import Console

    if not args.no_plots and result.problems:
        from passk.plots import plot_eval_dir

        plot_eval_dir(args.out)
    Console().print(summary_table(report, title=title))


def _load_task(args: argparse.Namespace) -> Any:
    from passk.tasks.registry import get_task
    from passk.tasks.rewards import RewardTask, get_reward

    task = get_task(args.task, **dict(args.task_option))
    if args.reward:
        task = RewardTask(task, get_reward(args.reward))
    return task


def _base_run_info(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    return {
        "command": "passk eval",
        "argv": sys.argv[1:],
        "task": task.name if task is not None else None,
        "task_options": dict(args.task_option),
        "reward": args.reward,
        "split": args.split,
        "problems_requested": args.problems,
    }


def _score_and_report(
    args: argparse.Namespace,
    records: list[Any],
    task: Any,
    problems: dict[str, Any],
    *,
    config: EvalConfig,
    run_info: dict[str, Any],
    model_info: dict[str, Any],
    title: str,
    interrupted: bool = False,
    extra: dict[str, Any] | None = None,
) -> int:
    """Score saved or freshly sampled records (one code path) and write the report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from passk.eval.samples import score_samples

    console = Console(stderr=True)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    eval_path = out / "eval.json"
    finished: list[ProblemResult] = []
    last_write = [time.perf_counter()]

    def write(result: EvalResult) -> dict[str, Any]:
        report = result.to_dict(run=run_info, model=model_info, **(extra or {}))
        write_json_atomic(eval_path, report)
        return report

    def checkpoint(pr: ProblemResult) -> None:
        finished.append(pr)
        if time.perf_counter() - last_write[0] > _CHECKPOINT_EVERY_S:
            partial = EvalResult(list(finished), config, interrupted=True)
            partial.answers_available = answers_available
            write(partial)
            last_write[0] = time.perf_counter()

    answers_available = task is not None or any(r.answer is not None for r in records)
    status = 130 if interrupted else 0
    columns = (
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        job = bar.add_task("scoring", total=len(records))
        try:
            result = score_samples(
                records,
                config,
                task=task,
                problems=problems,
                correct_threshold=args.correct_threshold,
                progress=lambda k: bar.advance(job, k),
                on_problem=checkpoint,
            )
        except EvalInterrupted as e:
            result = e.partial
            status = 130
    result.interrupted = status != 0
    report = write(result)
    _finish_outputs(args, report, result, title=title)
    console.print(
        f"wrote {eval_path}"
        + (" (partial: interrupted)" if status else "")
        + f" | {len(records)} samples scored in {result.elapsed_s:.2f}s"
    )
    return status


def _config_for(args: argparse.Namespace, n: int) -> EvalConfig:
    ks = tuple(args.k) if args.k else None
    too_big = [k for k in ks or () if k > n]
    if too_big:
        raise ValueError(f"--k {too_big} exceeds the most samples any problem has ({n})")
    return EvalConfig(
        n=n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        ks=ks,
        num_resamples=args.num_resamples,
        score_timeout=args.score_timeout if args.score_timeout > 0 else None,
        with_entropy=False,
        system_prompt=args.system_prompt,
    )


def _task_candidates(task: Any, args: argparse.Namespace) -> Any:
    """The task problems an id is looked up in: ``--split``'s first
    ``max(--problems, count)`` problems (in ``--seed`` order), then both splits."""

    def candidates(count: int) -> list[Any]:
        size = max(args.problems, count)
        found = select_problems(task, args.split, size, args.seed)
        if args.split != "all":
            found = found + select_problems(task, "all", size, args.seed)
        return found

    return candidates


def _run_samples(args: argparse.Namespace) -> int:
    """``--samples FILE``: read and check every line, then score and report."""
    from passk.eval.samples import read_samples, resolve_problems

    task = _load_task(args) if args.task else None
    score_range = tuple(args.score_range) if args.score_range else None
    records = read_samples(
        args.samples, args.samples_format, has_task=task is not None, score_range=score_range
    )
    problems = resolve_problems(records, _task_candidates(task, args)) if task else {}
    counts: dict[str, int] = {}
    for r in records:
        counts[r.problem_id] = counts.get(r.problem_id, 0) + 1
    config = _config_for(args, max(counts.values()))
    run_info = _base_run_info(args, task) | {
        "samples": str(args.samples),
        "samples_format": args.samples_format,
        "correct_threshold": args.correct_threshold,
        "score_range": list(score_range) if score_range else None,
        "samples_per_problem": {"min": min(counts.values()), "max": max(counts.values())},
    }
    model_info = {"name": args.samples.stem, "samples": str(args.samples)}
    title = f"{task.name if task else 'samples'} | {args.samples.name}"
    return _score_and_report(
        args,
        records,
        task,
        problems,
        config=config,
        run_info=run_info,
        model_info=model_info,
        title=title,
    )
