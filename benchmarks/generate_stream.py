"""Continuous batching over a long stream: tokens/s and memory per wave should stay flat.

Streams ``--waves`` (default 4) times as many sequences as the batch holds through
:func:`passk.rollout.generate.sample_stream` and reports, for each wave of
``batch_size`` finished sequences, the tokens generated per second during it (all live
rows count), the resident set size at its end and the peak so far, and the widest
attention mask so far. The figure of merit is the ratio of the last full wave's
tokens/s to the first one's, measured in the same process: 1.0 means the stream does not
slow down as it runs (a cache whose width grows with the stream gives well under 1, with
memory climbing wave by wave). The final wave is the drain (no sequences left to admit,
the batch empties), slower by nature, so it is printed but left out of the ratio.

    python benchmarks/generate_stream.py --threads 1                 # embedded, 256 rows
    python benchmarks/generate_stream.py --batch-size 64 --prompts add --max-new-tokens 64
    python benchmarks/generate_stream.py --model path/to/checkpoint --dtype fp32
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import time

import torch

from machine import write_result


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--waves", type=int, default=4, help="sequences = waves * batch size")
    ap.add_argument("--prompts", default="mul1", choices=["mul1", "add"])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument(
        "--n", type=int, default=None, help="samples per problem (default: enough for the stream)"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--layers",
        type=int,
        default=0,
        help="keep only the first LAYERS decoder layers (0: all): a cheap model for memory "
        "diagnostics on a busy machine; its samples mean nothing",
    )
    ap.add_argument(
        "--extra-stops",
        type=int,
        default=0,
        help="treat token ids 1000 .. 1000+EXTRA_STOPS-1 as stops too, so that a truncated "
        "model's sequences end at varied lengths and the stream refills as a real one does",
    )
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ap.add_argument(
        "--result-name",
        default="generate_stream",
        help="benchmarks/results/NAME.json receives the result (with the machine's facts)",
    )
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from passk.rollout import generate as gen
    from passk.rollout.models import load_model
    from passk.seeds import derive_seed
    from passk.tasks.registry import get_task

    loaded = load_model(args.model, dtype=args.dtype, device=args.device)
    model, tok = loaded.model, loaded.tokenizer
    if args.layers:
        model.model.layers = model.model.layers[: args.layers]
        model.config.num_hidden_layers = args.layers
    total = args.waves * args.batch_size
    task = get_task("mul1") if args.prompts == "mul1" else get_task("add", digits=2)
    if args.n is None:  # as few samples per problem as the task's train split allows
        problems = task.problems("train", total, args.seed)
        n = -(-total // len(problems))
    else:
        n = args.n
        problems = task.problems("train", -(-total // n), args.seed)
    if len(problems) * n < total:
        raise SystemExit(f"task {args.prompts!r} has only {len(problems)} problems; raise --n")
    prompt_ids = [gen.chat_prompt_ids(tok, p.prompt) for p in problems]
    rows = [(i, j) for i in range(len(problems)) for j in range(n)][:total]
    seeds = [derive_seed(args.seed, problems[i].id, j) for i, j in rows]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    waves: list[dict[str, float]] = []
    finished = [0]
    mark = {"t": time.perf_counter(), "tokens": 0}
    widths: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda m, a, kw: widths.append(int(kw["attention_mask"].shape[1])), with_kwargs=True
    )

    def on_done(i: int, out: dict[str, torch.Tensor]) -> None:
        finished[0] += 1
        if finished[0] % args.batch_size:
            return
        now, tokens = time.perf_counter(), int(out["lengths"].sum())
        waves.append(
            {
                "wave": len(waves) + 1,
                "tok_per_s": (tokens - mark["tokens"]) / (now - mark["t"]),
                "seconds": now - mark["t"],
                "rss_gb": _rss_bytes() / 1e9,
                "peak_rss_gb": _peak_rss_bytes() / 1e9,
                "max_width": max(widths, default=0),
            }
        )
        w = waves[-1]
        print(
            f"wave {w['wave']:.0f}: {w['tok_per_s']:7.1f} tok/s  {w['seconds']:6.1f} s  "
            f"rss {w['rss_gb']:.2f} GB  peak {w['peak_rss_gb']:.2f} GB  "
            f"width {w['max_width']}",
            flush=True,
        )
        mark.update(t=now, tokens=tokens)

    kwargs = {}
    if "stats" in inspect.signature(gen.sample_stream).parameters:
        kwargs["stats"] = stats = {}
    print(
        f"{loaded.identity.name} {loaded.identity.dtype} on {loaded.identity.device}, "
        f"{torch.get_num_threads()} threads: {total} sequences of {args.prompts}, "
        f"batch {args.batch_size}, max_new_tokens {args.max_new_tokens}",
        flush=True,
    )
    start = time.perf_counter()
    out = gen.sample_stream(
        model,
        [prompt_ids[i] for i, _ in rows],
        seeds,
        gen.SamplingParams(max_new_tokens=args.max_new_tokens),
        stop_ids=gen.stop_token_ids(model, tok) + list(range(1000, 1000 + args.extra_stops)),
        pad_id=pad,
        batch_size=args.batch_size,
        on_done=on_done,
        **kwargs,
    )
    hook.remove()
    elapsed = time.perf_counter() - start
    full = waves[:-1] if len(waves) > 1 else waves  # the last wave is the drain
    result = {
        "tokens": int(out["lengths"].sum()),
        "tok_per_s": int(out["lengths"].sum()) / elapsed,
        "last_over_first_tok_per_s": full[-1]["tok_per_s"] / full[0]["tok_per_s"],
        "last_over_first_rss": full[-1]["rss_gb"] / full[0]["rss_gb"],
        "max_width": max(widths, default=0),
        "waves": waves,
    }
    if kwargs:
        result["stats"] = stats
    print(
        f"overall {result['tok_per_s']:.1f} tok/s; last full / first wave: tok/s "
        f"{result['last_over_first_tok_per_s']:.2f}, rss {result['last_over_first_rss']:.2f} "
        f"(waves 1..{len(full)}; wave {len(waves)} is the drain)"
    )
    if args.json:
        print(json.dumps(result))
    result["settings"] = vars(args) | {"sequences": total}
    print(f"wrote {write_result(args.result_name, result)}")


if __name__ == "__main__":
    main()
