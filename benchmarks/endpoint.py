"""Throughput of ``passk.eval.endpoint`` against a real vLLM server (CPU build).

    bash scripts/setup_vllm.sh                      # .venv-vllm, once
    python benchmarks/endpoint.py                    # starts the server on the embedded model
    python benchmarks/endpoint.py --url http://127.0.0.1:8000/v1 --served-model NAME

Starts ``.venv-vllm``'s OpenAI-compatible server on the embedded model's converted HF
checkpoint (unless ``--url``), times its start (process start to ``/v1/models`` answering),
then samples ``--problems`` ``add`` problems x ``--n`` at each ``--concurrency`` with a
fresh cache, and prints samples/s and completion tokens/s (the server's ``usage``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from passk.eval.endpoint import EndpointConfig, EndpointRequest, sample_endpoint

REPO = Path(__file__).resolve().parents[1]
# seeded requests crash vLLM 0.32's CPU engine under chunked prefill (docs/endpoint.md)
SEED_SAFE_ARGS = ("--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_server(
    venv: Path, served: str, threads: int, log: Path, *, torch_compile: bool = False
) -> tuple[subprocess.Popen, str]:
    from passk.rollout.models import build_embedded_cache

    model_dir = build_embedded_cache()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "OMP_NUM_THREADS": str(threads),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    cmd = [
        str(venv / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", served,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "bfloat16", "--max-model-len", "1024", "--max-num-seqs", "64",
        "--disable-log-stats", *SEED_SAFE_ARGS, *(() if torch_compile else ("--enforce-eager",)),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return proc, f"http://127.0.0.1:{port}/v1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None, help="a running server (default: start one)")
    ap.add_argument("--served-model", default="smollm2")
    ap.add_argument("--venv", type=Path, default=REPO / ".venv-vllm")
    ap.add_argument("--server-threads", type=int, default=2)
    ap.add_argument(
        "--compile", action="store_true", help="let vLLM torch.compile (default: --enforce-eager)"
    )
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--api", default="chat", choices=["chat", "completions"])
    ap.add_argument("--no-seed", action="store_true", help="send no per-request seed")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from passk.tasks.registry import get_task

    problems = get_task("add", digits=2).problems("test", args.problems, 0)
    requests = [EndpointRequest(p.id, p.prompt) for p in problems]
    workdir = Path(tempfile.mkdtemp(prefix="passk-endpoint-bench-"))
    proc = None
    url = args.url
    results: dict = {
        "problems": len(requests),
        "n": args.n,
        "max_tokens": args.max_tokens,
        "seeded": not args.no_seed,
    }
    try:
        if url is None:
            log = workdir / "server.log"
            t0 = time.perf_counter()
            proc, url = start_server(
                args.venv, args.served_model, args.server_threads, log, torch_compile=args.compile
            )
            while not _ready(url):
                if proc.poll() is not None:
                    sys.exit(f"server exited {proc.returncode}; see {log}")
                time.sleep(0.5)
            results["server_load_s"] = round(time.perf_counter() - t0, 1)
            print(f"server ready in {results['server_load_s']} s ({log})")
        runs = []
        for conc in args.concurrency:
            cache = workdir / f"cache-{conc}.jsonl"
            cfg = EndpointConfig(url, args.served_model, api=args.api, concurrency=conc)
            t0 = time.perf_counter()
            out = sample_endpoint(
                cfg, requests, n=args.n, temperature=1.0, top_p=1.0,
                max_tokens=args.max_tokens, seed=None if args.no_seed else 0, cache_path=cache,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            samples = sum(len(v) for v in out.values())
            tokens = sum(
                json.loads(line)["completion_tokens"] for line in cache.read_text().splitlines()
            )
            run = {
                "concurrency": conc,
                "wall_s": round(wall, 1),
                "samples_per_s": round(samples / wall, 2),
                "completion_tokens_per_s": round(tokens / wall, 1),
                "mean_completion_tokens": round(tokens / samples, 1),
            }
            runs.append(run)
            print(json.dumps(run))
        results["runs"] = runs
        if len(runs) > 1:
            ratio = runs[-1]["completion_tokens_per_s"] / runs[0]["completion_tokens_per_s"]
            print(f"tokens/s at concurrency {runs[-1]['concurrency']} vs {runs[0]['concurrency']}:"
                  f" {ratio:.2f}x")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
