"""Start-up time of the commands that load no model, against a bare interpreter.

    python benchmarks/startup.py                # 5 rounds, interleaved
    python benchmarks/startup.py --rounds 9

Each round runs, in turn: ``python -c pass`` (the baseline), ``passk --help``, ``passk
eval --samples`` on a 100-line file with ``--no-plots`` and with its figures, and
``passk eval --endpoint`` on 8 problems x 4 against a local fake server (no sampling
cost: what is left is passk's own start, scoring and writing). Prints the median wall
time of each and its ratio to the baseline; targets: ``--help`` < 0.5 s, ``--samples``
< 1.5 s. Writes ``benchmarks/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from machine import machine_info, write_result

TARGETS = {"passk --help": 0.5, "eval --samples --no-plots": 1.5}


class _Answers(BaseHTTPRequestHandler):
    """An OpenAI-style server that answers at once: ``= <the product>`` for mul1 prompts."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "tiny"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        choices = [
            {"index": i, "message": {"role": "assistant", "content": "= 42"}}
            for i in range(body["n"])
        ]
        self._send({"choices": choices, "usage": {"completion_tokens": 3 * body["n"]}})

    def _send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    env = os.environ | {"PYTHONWARNINGS": "ignore", "COLUMNS": "120"}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        rows = [{"problem_id": f"p{i // 10}", "correct": i % 3 == 0} for i in range(100)]
        samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
        passk = [py, "-m", "passk.cli"]
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "passk --help": [*passk, "--help"],
            "eval --samples --no-plots": [
                *passk, "eval", "--samples", str(samples), "--no-plots", "--overwrite",
                "--out", f"{tmp}/a",
            ],
            "eval --samples (figures)": [
                *passk, "eval", "--samples", str(samples), "--overwrite", "--out", f"{tmp}/b",
            ],
            "eval --endpoint --no-plots": [
                *passk, "eval", "--endpoint", url, "--served-model", "tiny", "--task", "mul1",
                "--problems", "8", "--n", "4", "--no-plots", "--overwrite", "--refresh-cache",
                "--out", f"{tmp}/c",
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in commands}
        load_begin = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                times[name].append(_time(cmd, env))
    httpd.shutdown()
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<28} {'median s':>9} {'vs python -c pass':>18}  target")
    result: dict[str, Any] = {"rounds": args.rounds, "commands": {}}
    for name, walls in times.items():
        med = statistics.median(walls)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"< {target} s: {'met' if med < target else 'MISSED'}"
        print(f"{name:<28} {med:>9.3f} {med / base:>17.1f}x  {verdict}")
        result["commands"][name] = {"median_s": med, "walls_s": walls, "ratio": med / base}
    result["load_avg_begin"] = load_begin
    info = machine_info()
    print(f"load avg {info['load_avg'][0]:.2f}, bf16 flags {info['cpu_bf16_flags']}")
    print(f"wrote {write_result('startup', result)}")


if __name__ == "__main__":
    main()
