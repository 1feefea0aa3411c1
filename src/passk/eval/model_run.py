"""``passk eval --model``: sample a local model on ``--task``'s problems and report.

``--model`` is ``embedded``, a checkpoint directory, a LoRA adapter checkpoint or a run
directory (its newest checkpoint): see :mod:`passk.eval.adapters`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Literal

from passk.eval.evaluate import EvalConfig, EvalInterrupted, EvalResult, ProblemResult, evaluate
from passk.eval.report import write_json_atomic
from passk.eval.run_common import (
    CHECKPOINT_EVERY_S,
    base_run_info,
    finish_outputs,
    load_task,
    select_problems,
)


def load_eval_model(
    spec: str, *, dtype: str, device: str, base_model: str | None = None
) -> tuple[Any, str | None]:
    """The :class:`~passk.rollout.models.LoadedModel` that ``--model spec`` names, and a
    note when it is not ``spec`` itself (a run directory's newest checkpoint)."""
    from passk.eval.adapters import is_adapter_checkpoint, load_adapter_model, resolve_model_dir
    from passk.rollout.models import load_model

    path, note = resolve_model_dir(spec)
    if path != "embedded" and is_adapter_checkpoint(path):
        return load_adapter_model(path, dtype=dtype, device=device, base_model=base_model), note
    if base_model:
        raise ValueError(f"--base-model is for LoRA adapter checkpoints; {path} is not one")
    return load_model(path, dtype=dtype, device=device), note


def cast_for_sampling(loaded: Any, dtype: str, device: str) -> Any:
    """``loaded`` with its model cast to ``dtype`` (``auto``: as the trainer resolves
    ``model.rollout_dtype``), as the trainer makes its sampling copy."""
    from dataclasses import replace

    from passk.rollout.models import resolve_device, resolve_dtype

    dt = resolve_dtype(dtype, resolve_device(device))
    if dt != next(loaded.model.parameters()).dtype:
        loaded.model.to(dt)
        loaded.identity = replace(loaded.identity, dtype=str(dt).removeprefix("torch."))
    return loaded


def run_model(args: argparse.Namespace, batch_size: int | Literal["auto"]) -> int:
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

    hf_logging.disable_progress_bar()  # our own progress bar is enough
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    task = load_task(args)
    problems = select_problems(task, args.split, args.problems, args.problem_seed)
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
        loaded, note = load_eval_model(
            args.model, dtype=args.dtype, device=args.device, base_model=args.base_model
        )
    if note:
        console.print(note, markup=False)
    if args.sample_dtype is not None:
        loaded = cast_for_sampling(loaded, args.sample_dtype, args.device)
    load_s = time.perf_counter() - t0
    run_info = base_run_info(args, task) | {
        "model_spec": args.model,
        "model_load_s": round(load_s, 3),
        "torch_threads": torch.get_num_threads(),
        "problem_seed": args.problem_seed,
        "training_eval": None if args.training_eval is None else str(args.training_eval),
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
        if time.perf_counter() - last_write[0] > CHECKPOINT_EVERY_S:
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
    finish_outputs(args, report, result, title=f"{task.name} | {loaded.identity.name}")
    console.print(f"wrote {eval_path}" + (" (partial: interrupted)" if status else ""))
    return status
