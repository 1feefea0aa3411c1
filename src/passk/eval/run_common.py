"""What the three ``passk eval`` flows share: the task and its problems, the run facts of
the report, and the report writer (score, write ``eval.json``, draw, print the table).

The flows themselves are :mod:`passk.eval.model_run` (a local model),
:mod:`passk.eval.samples_run` (saved samples) and :mod:`passk.eval.endpoint_run` (an
OpenAI-compatible server); :mod:`passk.eval.cli` holds the arguments only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from passk.eval.evaluate import EvalConfig, EvalInterrupted, EvalResult, ProblemResult
from passk.eval.report import printable, sampled_throughput, summary_table, write_json_atomic

# refresh eval.json at most this often while running
CHECKPOINT_EVERY_S = 20.0


def select_problems(task: Any, split: str, n: int, seed: int) -> list[Any]:
    """``n`` problems of a split; ``all`` takes test first, then train."""
    if split != "all":
        return task.problems(split, n, seed)
    test = task.problems("test", n, seed)
    return test + task.problems("train", n - len(test), seed) if len(test) < n else test


def load_task(args: argparse.Namespace) -> Any:
    """``--task`` with its ``--task-option`` values, scored by ``--reward`` when given."""
    from passk.tasks.registry import get_task
    from passk.tasks.rewards import RewardTask, get_reward

    task = get_task(args.task, **dict(args.task_option))
    if args.reward:
        task = RewardTask(task, get_reward(args.reward))
    return task


def base_run_info(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    """The run facts every report carries (``problems_requested``: None for saved samples,
    whose file decides which problems there are)."""
    return {
        "command": "passk eval",
        "argv": sys.argv[1:],
        "task": task.name if task is not None else None,
        "task_options": dict(args.task_option),
        "reward": args.reward,
        "split": args.split,
        "problems_requested": args.problems,
    }


def config_for(args: argparse.Namespace, n: int) -> EvalConfig:
    """The statistics settings of a run whose samples are scored by
    :func:`score_and_report` (``n``: the most samples any problem has)."""
    ks = tuple(args.k) if args.k else None
    too_big = [k for k in ks or () if k > n]
    if too_big:
        raise ValueError(f"--k {too_big} exceeds the most samples any problem has ({n})")
    sampling = {
        name: getattr(args, name)
        for name in ("temperature", "top_p", "max_new_tokens")
        if getattr(args, name) is not None
    }
    return EvalConfig(
        n=n,
        seed=args.seed,
        ks=ks,
        num_resamples=args.num_resamples,
        score_timeout=args.score_timeout if args.score_timeout > 0 else None,
        with_entropy=False,
        system_prompt=args.system_prompt,
        **sampling,
    )


def finish_outputs(
    args: argparse.Namespace, report: dict[str, Any], result: EvalResult, *, title: str
) -> None:
    """The figures beside the report (unless ``--no-plots``) and the summary table."""
    from rich.console import Console

    if not args.no_plots and result.problems:
        from passk.plots import plot_eval_dir

        plot_eval_dir(args.out)
    Console().print(summary_table(report, title=printable(title)))


def score_and_report(
    args: argparse.Namespace,
    records: list[Any],
    task: Any,
    problems: dict[Any, Any],
    *,
    config: EvalConfig,
    run_info: dict[str, Any],
    model_info: dict[str, Any],
    title: str,
    interrupted: bool = False,
    extra: dict[str, Any] | None = None,
    sampling: dict[str, Any] | None = None,
) -> int:
    """Score saved or freshly sampled records (one code path) and write the report;
    ``extra`` entries replace the report's own (e.g. a ``config`` that says what is not
    known about saved samples); ``sampling`` (a server's run: its time and tokens) makes
    the report's throughput :func:`~passk.eval.report.sampled_throughput`."""
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
        throughput = {} if sampling is None else sampled_throughput(sampling, result.elapsed_s)
        report = result.to_dict(run=run_info, model=model_info, **(extra or {}) | throughput)
        write_json_atomic(eval_path, report)
        return report

    def checkpoint(pr: ProblemResult) -> None:
        finished.append(pr)
        if time.perf_counter() - last_write[0] > CHECKPOINT_EVERY_S:
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
    finish_outputs(args, report, result, title=title)
    console.print(
        f"wrote {eval_path}"
        + (" (partial: interrupted)" if status else "")
        + f" | {len(records)} samples scored in {result.elapsed_s:.2f}s"
    )
    return status
