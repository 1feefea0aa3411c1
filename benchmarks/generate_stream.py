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

``--versus`` runs the stream once per KV cache in child processes (the in-place slots and
transformers' concatenating cache, ``sample_stream(in_place=False)``; ``--rounds 2``: in
ABBA order) and prints the slots' tokens/s and peak memory as ratios to the
concatenating cache's. ``--cache-only`` swaps the model for one that only writes its
(zero) keys and values into the cache, with the real model's cache geometry, and ends
each sequence with probability 1/``--cache-only-mean`` per token: the cache's memory
traffic alone, in minutes on a busy machine (tokens/s then mean nothing).

    python benchmarks/generate_stream.py --versus --cache-only --prompts add \
        --max-new-tokens 256 --waves 4 --threads 1
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from machine import machine_info, write_result


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> None:
    """Start the peak RSS over (Linux >= 4.0), so that loading the model is not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_bytes() -> int:
    """The peak RSS since :func:`_reset_peak` (``VmHWM``), else since the process began."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _write(args: argparse.Namespace, result: dict) -> str:
    if args.out is None:
        return str(write_result(args.result_name, result))
    with open(args.out, "w") as f:
        json.dump(result | {"machine": machine_info()}, f, indent=1)
    return args.out


class CacheOnly(nn.Module):
    """A stand-in for ``model`` that computes nothing: each forward writes zero keys and
    values of ``model``'s cache geometry into every layer of the cache, and its logits over
    8 tokens end a sequence (token 0) with probability ``1 / mean`` per step."""

    def __init__(self, model: nn.Module, mean: float) -> None:
        super().__init__()
        cfg = model.config
        self.config = cfg
        self.layers = cfg.num_hidden_layers
        self.heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.anchor = nn.Parameter(torch.zeros(1, dtype=next(model.parameters()).dtype))
        p = 1.0 / mean
        self.stop_logit = math.log(p * 7 / (1 - p))  # 7 other tokens at logit 0

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, **kw):
        A, s = input_ids.shape
        for layer in range(self.layers):
            kv = torch.zeros(A, self.heads, s, self.head_dim, dtype=self.anchor.dtype)
            cache.update(kv, kv.clone(), layer)
        logits = torch.zeros(A, s, 8)
        logits[..., 0] = self.stop_logit
        return type("Out", (), {"logits": logits})()


def versus(args: argparse.Namespace) -> None:
    """Each cache in its own child process; ratios of the slots to the concatenating cache."""
    argv = [a for a in sys.argv[1:] if a != "--versus"]
    # ABBA...: dynamic, slots, slots, dynamic, dynamic, slots, ...
    order = [c for r in range(args.rounds) for c in (["dynamic", "slots"][:: 1 - 2 * (r % 2)])]
    runs: dict[str, list[dict]] = {"dynamic": [], "slots": []}
    for cache in order:
        print(f"--- {cache}", flush=True)
        cmd = [sys.executable, __file__, *argv, "--cache", cache, "--json", "--no-write"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines()[:-1]:
            print("  " + line, flush=True)
        runs[cache].append(json.loads(out.splitlines()[-1]))

    def median(cache: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[cache])

    result = {
        "order": order,
        "runs": runs,
        "slots_over_dynamic_tok_per_s": median("slots", "tok_per_s")
        / median("dynamic", "tok_per_s"),
        "slots_over_dynamic_peak_rss": median("slots", "peak_rss_gb")
        / median("dynamic", "peak_rss_gb"),
    }
    for cache in ("dynamic", "slots"):
        print(
            f"{cache:8s} tok/s {median(cache, 'tok_per_s'):7.1f}  peak {median(cache, 'peak_rss_gb'):.2f} GB  "
            f"last/first wave: tok/s {median(cache, 'last_over_first_tok_per_s'):.2f}, "
            f"rss {median(cache, 'last_over_first_rss'):.2f}"
        )
    print(
        f"slots / concatenating cache: tok/s {result['slots_over_dynamic_tok_per_s']:.2f}x, "
        f"peak memory {result['slots_over_dynamic_peak_rss']:.2f}x"
    )
    result["settings"] = vars(args)
    print(f"wrote {_write(args, result)}")


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
    ap.add_argument(
        "--cache",
        default="slots",
        choices=["slots", "dynamic"],
        help="slots: the in-place cache (default); dynamic: transformers' concatenating one",
    )
    ap.add_argument("--versus", action="store_true", help="both caches, in child processes")
    ap.add_argument("--rounds", type=int, default=1, help="with --versus: runs per cache (ABBA)")
    ap.add_argument("--cache-only", action="store_true", help="a model that only writes the cache")
    ap.add_argument("--cache-only-mean", type=float, default=64.0, help="mean tokens per sequence")
    ap.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--out", default=None, help="write the JSON here instead of benchmarks/results/"
    )
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ap.add_argument(
        "--result-name",
        default="generate_stream",
        help="benchmarks/results/NAME.json receives the result (with the machine's facts)",
    )
    args = ap.parse_args()
    if args.versus:
        versus(args)
        return
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
    if args.cache_only:
        model = CacheOnly(model, args.cache_only_mean)
        loaded.model = model  # the real model can go
    gc.collect()
    _reset_peak()
    print(f"peak RSS counted from here: {_peak_rss_bytes() / 1e9:.2f} GB", flush=True)
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
        stop_ids=[0]
        if args.cache_only
        else gen.stop_token_ids(model, tok) + list(range(1000, 1000 + args.extra_stops)),
        pad_id=pad,
        batch_size=args.batch_size,
        on_done=on_done,
        in_place=args.cache == "slots",
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
        "peak_rss_gb": _peak_rss_bytes() / 1e9,
        "cache": args.cache,
        "waves": waves,
    }
    if kwargs:
        result["stats"] = stats
    print(
        f"overall {result['tok_per_s']:.1f} tok/s; last full / first wave: tok/s "
        f"{result['last_over_first_tok_per_s']:.2f}, rss {result['last_over_first_rss']:.2f} "
        f"(waves 1..{len(full)}; wave {len(waves)} is the drain)"
    )
    result["settings"] = vars(args) | {"sequences": total}
    if args.json:
        print(json.dumps(result))
    if not args.no_write:
        print(f"wrote {_write(args, result)}")


if __name__ == "__main__":
    main()
