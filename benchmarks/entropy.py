"""Chunked vs naive entropy + log-prob from bf16 logits: peak memory and time, as ratios.

Forward and backward of ``logp.sum() + entropy.sum()`` on ``[B, T, V]`` bf16
logits (V = 49152 by default, SmolLM2's vocabulary). The naive version upcasts
the whole tensor to float32 and uses ``log_softmax``, as most trainers do.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the logits;
on CPU each measurement runs in a fresh subprocess and reports the growth of
the peak resident set size (``ru_maxrss``) after the logits are allocated.

    python benchmarks/entropy.py            # B=2, T=1024
    python benchmarks/entropy.py --tokens 4096 --chunk 512
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from passk.core.entropy import logprobs_and_entropy


def naive(logits: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logq = torch.log_softmax(logits.float(), dim=-1)  # [B, T, V] float32
    ent = -(logq.exp() * logq).sum(-1)
    return logq.gather(-1, ids[..., None]).squeeze(-1), ent


def measure(method: str, tokens: int, vocab: int, chunk: int, device: str) -> dict[str, float]:
    g = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(1, tokens, vocab, generator=g, device=device).bfloat16()
    logits.requires_grad_(True)
    ids = torch.randint(0, vocab, (1, tokens), generator=g, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    if method == "naive":
        logp, ent = naive(logits, ids)
    else:
        logp, ent = logprobs_and_entropy(logits, ids, chunk_size=chunk)
    (logp.sum() + ent.sum()).backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"seconds": time.perf_counter() - t0, "peak_bytes": float(peak)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048, help="B * T rows of logits")
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--one", choices=["naive", "chunked"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:  # child process: one measurement, JSON on stdout
        print(json.dumps(measure(args.one, args.tokens, args.vocab, args.chunk, args.device)))
        return

    results = {}
    for method in ("naive", "chunked"):
        if args.device == "cuda":
            measure(method, args.tokens, args.vocab, args.chunk, "cuda")  # warm-up
            results[method] = measure(method, args.tokens, args.vocab, args.chunk, "cuda")
        else:
            cmd = [sys.executable, __file__, "--one", method, "--tokens", str(args.tokens),
                   "--vocab", str(args.vocab), "--chunk", str(args.chunk), "--device", "cpu"]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[method] = json.loads(out.strip().splitlines()[-1])
    n, c = results["naive"], results["chunked"]
    logits_mb = args.tokens * args.vocab * 2 / 2**20
    print(f"device={args.device} tokens={args.tokens} vocab={args.vocab} chunk={args.chunk} "
          f"(bf16 logits {logits_mb:.0f} MiB)")  # fmt: skip
    for name, r in results.items():
        print(
            f"  {name:8s} {r['seconds'] * 1e3:9.1f} ms   peak +{r['peak_bytes'] / 2**20:8.0f} MiB"
        )
    print(f"  memory naive/chunked: {n['peak_bytes'] / max(c['peak_bytes'], 1.0):.1f}x")
    print(f"  time   naive/chunked: {n['seconds'] / c['seconds']:.2f}x")


if __name__ == "__main__":
    main()
