"""Throughput of ``passk.eval.endpoint`` against a real vLLM server (CPU build).

    bash scripts/setup_vllm.sh                      # .venv-vllm, once
    python benchmarks/endpoint.py                    # starts the server on the embedded model
    python benchmarks/endpoint.py --url http://127.0.0.1:8000/v1 --served-model NAME

Starts ``.venv-vllm``'s OpenAI-compatible server on the embedded model's converted HF
checkpoint (unless ``--url``), times its start (process start to ``/v1/models`` answering),
then samples ``--problems`` ``add`` problems x ``--n`` at each ``--concurrency`` with a
fresh cache, and prints samples/s and completion tokens/s (the server's ``usage``).

``--versus-plain`` measures passk's client against a plain concurrent client (a thread
pool of bare HTTP requests, the same bodies, the same concurrency) on the same server,
interleaved over ``--rounds``, and prints two ratios (plain wall time / passk's): while
sampling (``sample_endpoint`` in this process) and end to end (``passk eval --endpoint``
as a user runs it: start, sampling, scoring, report, with and without figures).
``--fake`` serves the requests from a local server that answers each request after
``--fake-delay`` seconds (default 4.8 s: the 32 x 4 workload at concurrency 16 then
samples for ~9.6 s, as vLLM's CPU server did for it at ~600 tokens/s), for a machine
without vLLM::

    python benchmarks/endpoint.py --fake --versus-plain --concurrency 16 --max-tokens 64
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from machine import write_result
from passk.eval.endpoint import EndpointConfig, EndpointRequest, EndpointStats, sample_endpoint

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


def _serve_fake(delay_s: float, tokens_per_choice: int, port_out: Any) -> None:
    """An OpenAI-style server (its own process, so it takes no time from the clients)
    that answers each request after ``delay_s`` with ``= 42`` per choice."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": "fake", "max_model_len": 1024}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            time.sleep(delay_s)
            n = int(body.get("n", 1))
            choices = [
                {"index": i, "message": {"role": "assistant", "content": "= 42"}} for i in range(n)
            ]
            self._send({"choices": choices, "usage": {"completion_tokens": tokens_per_choice * n}})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        # listen() backlog: the default 5 drops the SYNs of a burst of 16 connections,
        # which then wait a 1 s retransmit (uvicorn, vLLM's server, listens with 2048)
        request_queue_size = 256

    httpd = Server(("127.0.0.1", 0), Handler)
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


def start_fake(delay_s: float, tokens_per_choice: int = 45) -> tuple[mp.Process, str]:
    ports: Any = mp.Queue()
    proc = mp.Process(target=_serve_fake, args=(delay_s, tokens_per_choice, ports), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{ports.get(timeout=30)}/v1"


def plain_client(
    url: str, served: str, requests: list[EndpointRequest], n: int, max_tokens: int, conc: int
) -> tuple[float, int, int]:
    """The baseline: one bare POST per problem from a thread pool of ``conc``. Returns
    (wall seconds, samples, completion tokens)."""

    def one(req: EndpointRequest) -> tuple[int, int]:
        body = {
            "model": served, "messages": [{"role": "user", "content": req.prompt}], "n": n,
            "temperature": 1.0, "top_p": 1.0, "max_tokens": max_tokens,
        }  # fmt: skip
        http = urllib.request.Request(
            f"{url}/chat/completions", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(http, timeout=600) as resp:
            answer = json.loads(resp.read())
        return len(answer["choices"]), int(answer.get("usage", {}).get("completion_tokens", 0))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        got = list(pool.map(one, requests))
    return time.perf_counter() - t0, sum(g[0] for g in got), sum(g[1] for g in got)


def passk_client(
    url: str, served: str, requests: list[EndpointRequest], n: int, max_tokens: int,
    conc: int, cache: Path,
) -> tuple[float, int, int]:  # fmt: skip
    """passk's client on the same work, in this process, with a fresh cache."""
    cache.unlink(missing_ok=True)
    stats = EndpointStats()
    cfg = EndpointConfig(url, served, concurrency=conc)
    t0 = time.perf_counter()
    sample_endpoint(
        cfg, requests, n=n, temperature=1.0, top_p=1.0, max_tokens=max_tokens, seed=None,
        cache_path=cache, stats=stats,
    )  # fmt: skip
    return time.perf_counter() - t0, stats.samples, stats.completion_tokens


def passk_eval(
    url: str, served: str, problems: int, n: int, max_tokens: int, conc: int, out: Path,
    plots: bool,
) -> tuple[float, dict[str, Any]]:  # fmt: skip
    """``passk eval --endpoint`` as a user runs it: (wall seconds, its report)."""
    cmd = [
        sys.executable, "-m", "passk.cli", "eval", "--endpoint", url, "--served-model", served,
        "--task", "add", "--task-option", "digits=2", "--problems", str(problems),
        "--problem-seed", "0", "--n", str(n), "--max-new-tokens", str(max_tokens),
        "--concurrency", str(conc), "--no-request-seed", "--no-models-check",
        "--refresh-cache", "--overwrite", "--out", str(out), *(() if plots else ("--no-plots",)),
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"passk eval failed:\n{done.stderr[-3000:]}")
    return wall, json.loads((out / "eval.json").read_text())


def versus_plain(url: str, args: argparse.Namespace, requests: list[EndpointRequest]) -> dict:
    """Both ratios, arms interleaved (the order reversed every other round)."""
    conc = args.concurrency[-1]
    work = (url, args.served_model, requests, args.n, args.max_tokens, conc)
    tmp = Path(tempfile.mkdtemp(prefix="passk-endpoint-vs-"))
    arms = {
        "plain": lambda: plain_client(*work)[0],
        "passk_sampling": lambda: passk_client(*work, tmp / "cache.jsonl")[0],
        "passk_eval": lambda: passk_eval(
            url, args.served_model, len(requests), args.n, args.max_tokens, conc,
            tmp / "e2e", plots=True,
        )[0],
        "passk_eval_no_plots": lambda: passk_eval(
            url, args.served_model, len(requests), args.n, args.max_tokens, conc,
            tmp / "e2e-np", plots=False,
        )[0],
    }  # fmt: skip
    walls: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(args.rounds):
        for name in list(arms) if r % 2 == 0 else list(arms)[::-1]:
            walls[name].append(arms[name]())
            print(f"round {r + 1} {name}: {walls[name][-1]:.2f} s", flush=True)
    _, report = passk_eval(
        url, args.served_model, len(requests), args.n, args.max_tokens, conc, tmp / "last",
        plots=False,
    )  # fmt: skip
    med = {name: statistics.median(v) for name, v in walls.items()}
    ratios = {
        "sampling": med["plain"] / med["passk_sampling"],
        "end_to_end": med["plain"] / med["passk_eval"],
        "end_to_end_no_plots": med["plain"] / med["passk_eval_no_plots"],
    }
    print(f"median wall s: {json.dumps({k: round(v, 2) for k, v in med.items()})}")
    print(f"passk vs plain client (plain wall / passk wall; targets 0.95 and 0.9): "
          f"sampling {ratios['sampling']:.2f}x, end to end {ratios['end_to_end']:.2f}x "
          f"({ratios['end_to_end_no_plots']:.2f}x with --no-plots)")  # fmt: skip
    parts = {k: report.get(k) for k in ("elapsed_s", "sampling_s", "scoring_s", "tokens",
                                        "tokens_per_s", "tokens_counted_by")}  # fmt: skip
    print(f"the passk eval report: {json.dumps(parts)}")
    return {"concurrency": conc, "walls_s": walls, "median_s": med, "ratios": ratios,
            "report": parts}  # fmt: skip


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
    ap.add_argument("--fake", action="store_true", help="a local fake server, not vLLM")
    ap.add_argument("--fake-delay", type=float, default=4.8, help="seconds per fake request")
    ap.add_argument(
        "--versus-plain",
        action="store_true",
        help="passk's client against a plain concurrent client (at the last --concurrency)",
    )
    ap.add_argument("--rounds", type=int, default=2, help="rounds of --versus-plain")
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
    fake = None
    try:
        if args.fake:
            fake, url = start_fake(args.fake_delay)
            results["server"] = f"fake: {args.fake_delay} s per request"
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
        if args.versus_plain:
            results["versus_plain"] = versus_plain(url, args, requests)
            print(f"wrote {write_result('endpoint', results)}")
            return
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
        if fake is not None:
            fake.kill()
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
