"""``passk eval --endpoint URL``: sample an OpenAI-compatible server, then score and report.

The sampling itself (retries, concurrency, the cache) is :mod:`passk.eval.endpoint`; this
module is the CLI's side: the requests built from ``--task``'s problems, the progress
bar, chunking for Ctrl-C, and the report through the same scoring path as ``--samples``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from passk.eval.report import printable
from passk.eval.run_common import (
    base_run_info,
    config_for,
    load_task,
    score_and_report,
    select_problems,
)

ENDPOINT_CACHE = "endpoint_cache.jsonl"
# an endpoint run is sampled in chunks of problems holding at least this many requests
# per unit of concurrency: a finished chunk is what Ctrl-C keeps in the report
ENDPOINT_CHUNK_PER_SLOT = 8


def completion_prompt(prompt: str, system_prompt: str | None) -> str:
    """The raw prompt of ``--api completions``: the problem's prompt text, as the embedded
    path feeds a tokenizer without a chat template, after the system prompt and a blank
    line when one is given.

    >>> completion_prompt("What is 2*3?", None), completion_prompt("Q", "Be brief.")
    ('What is 2*3?', 'Be brief.\\n\\nQ')
    """
    return prompt if system_prompt is None else f"{system_prompt}\n\n{prompt}"


def count_tokens(stats: Any, tokenizer: str | None) -> dict[str, Any]:
    """``tokens`` (this run's completion tokens) and ``tokens_counted_by``: the server's
    ``usage``; a local tokenizer (``--tokenizer``) for answers that carried none; or
    ``unknown`` (``tokens`` None) when some answers carried none and no tokenizer was given.

    >>> from passk.eval.endpoint import EndpointStats
    >>> count_tokens(EndpointStats(samples=4, completion_tokens=96), None)
    {'tokens': 96, 'tokens_counted_by': 'usage'}
    >>> count_tokens(EndpointStats(samples=4, unmetered=["a"] * 4), None)
    {'tokens': None, 'tokens_counted_by': 'unknown'}
    """
    if not stats.samples:
        return {"tokens": 0, "tokens_counted_by": "none sampled"}
    if not stats.unmetered:
        return {"tokens": stats.completion_tokens, "tokens_counted_by": "usage"}
    if tokenizer is None:
        return {"tokens": None, "tokens_counted_by": "unknown"}
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"--tokenizer {tokenizer}: cannot load a tokenizer there ({e})") from None
    counted = sum(len(tok(text, add_special_tokens=False)["input_ids"]) for text in stats.unmetered)
    by = "tokenizer" if stats.completion_tokens == 0 else "usage + tokenizer"
    return {"tokens": stats.completion_tokens + counted, "tokens_counted_by": by}


def run_endpoint(args: argparse.Namespace) -> int:
    """``--endpoint URL``: sample the server (cached, resumable), then score like
    ``--samples`` with responses."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from passk.eval.endpoint import (
        EndpointConfig,
        EndpointError,
        EndpointRequest,
        EndpointStats,
        sample_endpoint,
        served_model_info,
    )
    from passk.eval.samples import SampleRecord

    console = Console(stderr=True)
    task = load_task(args)
    problems = select_problems(task, args.split, args.problems, args.problem_seed)
    if not problems:
        raise ValueError(f"task {args.task!r} has no {args.split} problems")
    config = config_for(args, args.n)
    cfg = EndpointConfig(
        url=args.endpoint,
        model=args.served_model,
        api=args.api,
        concurrency=args.concurrency,
        timeout_s=args.request_timeout,
        retries=args.retries,
    )
    served: dict[str, Any]
    if args.no_models_check:
        served = {"id": args.served_model, "checked": False, "why": "--no-models-check"}
    else:
        try:
            served = served_model_info(cfg)
        except EndpointError as e:
            raise ValueError(str(e)) from None  # its message names the URL
        if served.get("checked") is False:
            console.print(
                f"note: {printable(served['why'])}; going on without checking the "
                f"name {printable(args.served_model)!r} (a wrong name fails at the first "
                "request)",
                style="yellow",
                markup=False,
            )
    if args.api == "chat":
        requests = [EndpointRequest(p.id, p.prompt, args.system_prompt) for p in problems]
    else:
        requests = [
            EndpointRequest(p.id, completion_prompt(p.prompt, args.system_prompt)) for p in problems
        ]
    per_chunk = max(1, -(-ENDPOINT_CHUNK_PER_SLOT * args.concurrency // args.n))
    cache_path = args.out / ENDPOINT_CACHE
    args.out.mkdir(parents=True, exist_ok=True)
    if cache_path.is_file() and args.refresh_cache:
        cache_path.unlink()
        console.print(
            f"--refresh-cache: removed {cache_path}; every request goes to the server",
            markup=False,
        )
    elif cache_path.is_file() and cache_path.stat().st_size:
        console.print(
            f"reusing the answers cached in {cache_path} for the same served model name and "
            "options (if the model behind the name changed, pass --refresh-cache)",
            markup=False,
        )
    responses: dict[str, list[str]] = {}
    interrupted, failure = False, None
    stats = EndpointStats()
    t0 = time.perf_counter()
    columns = (
        TextColumn("[bold]sampling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        job = bar.add_task("sampling", total=len(requests) * args.n)
        for start in range(0, len(requests), per_chunk):
            chunk = requests[start : start + per_chunk]
            base = start * args.n
            try:
                got = sample_endpoint(
                    cfg,
                    chunk,
                    n=args.n,
                    temperature=args.temperature,
                    top_p=args.top_p,
                    max_tokens=args.max_new_tokens,
                    seed=None if args.no_request_seed else args.seed,
                    cache_path=cache_path,
                    progress=lambda done, total, base=base: bar.update(job, completed=base + done),
                    stats=stats,
                )
            except KeyboardInterrupt:
                interrupted = True
                break
            except EndpointError as e:
                failure = e
                break
            responses |= {req.problem_id: list(got[req.problem_id]) for req in chunk}
    sampling_s = time.perf_counter() - t0
    sampling = {"sampling_s": sampling_s, "samples": stats.samples}
    sampling |= {"cached_samples": stats.cached_samples} | count_tokens(
        stats, getattr(args, "tokenizer", None)
    )
    rate = sampling["tokens"] / sampling_s if sampling["tokens"] and sampling_s > 0 else None
    console.print(
        f"sampled {stats.samples} samples ({stats.cached_samples} cached) in {sampling_s:.2f}s"
        f" | {sampling['tokens'] if sampling['tokens'] is not None else 'unknown'} completion "
        f"tokens ({sampling['tokens_counted_by']})"
        + (f" | {rate:.1f} tokens/s" if rate is not None else ""),
        markup=False,
    )
    by_id = {p.id: p for p in problems}

    def source(pid: str) -> str | None:
        value = by_id[pid].meta.get("source")
        return None if value is None else str(value)

    records = [
        SampleRecord(problem_id=pid, response=text, prompt=by_id[pid].prompt, source=source(pid))
        for pid, texts in responses.items()
        for text in texts
    ]
    run_info = base_run_info(args, task) | {
        "endpoint": args.endpoint,
        "api": args.api,
        "concurrency": args.concurrency,
        "endpoint_cache": str(cache_path),
        "sampling_s": round(sampling_s, 3),
        "problems_sampled": len(responses),
        "problem_seed": args.problem_seed,
        "refresh_cache": bool(args.refresh_cache),
    }
    model_info = {"name": args.served_model, "endpoint": args.endpoint, "api": args.api}
    status = score_and_report(
        args,
        records,
        task,
        {(source(pid), pid): by_id[pid] for pid in responses},
        config=config,
        run_info=run_info,
        model_info=model_info,
        title=f"{task.name} | {args.served_model}",
        interrupted=interrupted or failure is not None,
        extra={"served_model": served},
        sampling=sampling,
    )
    if failure is not None:
        raise ValueError(
            f"{failure} ({len(responses)} of {len(requests)} "
            f"problems sampled are in the partial report; rerun with the same --out to resume "
            f"from {cache_path})"
        )
    return status
