"""passk.eval.endpoint against a small fake OpenAI-compatible server (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from passk.eval import endpoint as ep
from passk.eval.endpoint import (
    EndpointConfig,
    EndpointError,
    EndpointRequest,
    sample_endpoint,
    served_model_info,
)

# (status, headers, body) or None for the default answer
Reply = tuple[int, dict[str, str], Any] | None


class FakeServer:
    """Answers like an OpenAI server; ``script`` can replace any answer, in order."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.script: list[Reply] = []
        self.max_choices: int | None = None  # a server that returns fewer than asked
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                fake._handle(self, json.loads(self.rfile.read(length)))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def _handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any] | None) -> None:
        with self.lock:
            self.calls.append(
                {"path": h.path, "body": body, "headers": dict(h.headers), "t": time.monotonic()}
            )
            reply = self.script.pop(0) if self.script else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        done = False
        try:
            time.sleep(self.delay_s)
            status, headers, payload = reply or self._default(h.path, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            # the request ends before its answer leaves: a client that sends its next
            # request on receiving it must not find this one still counted (on a busy
            # machine this thread may run its next line only after that request arrives)
            with self.lock:
                self.in_flight -= 1
            done = True
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout)
        finally:
            if not done:
                with self.lock:
                    self.in_flight -= 1

    def _default(self, path: str, body: dict[str, Any] | None) -> tuple[int, dict, Any]:
        if path == "/v1/models":
            return 200, {}, {"object": "list", "data": [{"id": "tiny", "max_model_len": 1024}]}
        assert body is not None
        n = body["n"] if self.max_choices is None else min(body["n"], self.max_choices)
        text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        with self.lock:
            serial = len(self.calls)
        choices = []
        for i in range(n):
            out = f"{text}#{serial}.{i}"
            if "messages" in body:
                choices.append({"index": i, "message": {"role": "assistant", "content": out}})
            else:
                choices.append({"index": i, "text": out})
        usage = {"completion_tokens": 3 * n}
        return 200, {}, {"choices": choices, "usage": usage}

    def posts(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["body"] is not None]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ep, "_BACKOFF_BASE_S", 0.01)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def reqs(k: int) -> list[EndpointRequest]:
    return [EndpointRequest(f"p{i}", f"q{i}") for i in range(k)]


def sample(cfg: EndpointConfig, requests: list[EndpointRequest], cache: Path, **kw: Any) -> dict:
    opts: dict[str, Any] = dict(n=4, temperature=0.7, top_p=0.9, max_tokens=16, seed=3)
    opts.update(kw)
    return sample_endpoint(cfg, requests, cache_path=cache, **opts)


def test_request_carries_sampling_options_and_chat_messages(server: FakeServer, tmp_path: Path):
    cfg = EndpointConfig(server.url, "tiny")
    requests = [EndpointRequest("a", "hello", system_prompt="be brief")]
    out = sample(cfg, requests, tmp_path / "c.jsonl")
    assert out == {"a": [f"hello#1.{i}" for i in range(4)]}
    (call,) = server.posts()
    assert call["path"] == "/v1/chat/completions"
    body = call["body"]
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert (body["model"], body["n"], body["temperature"], body["top_p"], body["max_tokens"]) == (
        "tiny",
        4,
        0.7,
        0.9,
        16,
    )
    assert isinstance(body["seed"], int) and 0 <= body["seed"] < 2**31
    assert "Authorization" not in call["headers"]


def test_completions_api_sends_raw_prompt_and_no_seed_when_none(server: FakeServer, tmp_path: Path):
    cfg = EndpointConfig(server.url.removesuffix("/v1"), "tiny", api="completions")
    out = sample(cfg, reqs(2), tmp_path / "c.jsonl", seed=None, n=2)
    assert sorted(out) == ["p0", "p1"] and all(len(v) == 2 for v in out.values())
    assert {c["path"] for c in server.posts()} == {"/v1/completions"}
    assert all("seed" not in c["body"] and "prompt" in c["body"] for c in server.posts())


def test_seeds_are_derived_from_seed_and_problem_id(server: FakeServer, tmp_path: Path):
    cfg = EndpointConfig(server.url, "tiny")
    sample(cfg, reqs(2), tmp_path / "a.jsonl", seed=3)
    sample(cfg, reqs(2), tmp_path / "b.jsonl", seed=3)
    sample(cfg, reqs(2), tmp_path / "c.jsonl", seed=4)
    seeds = {}
    for c in server.posts():
        seeds.setdefault(c["body"]["messages"][-1]["content"], []).append(c["body"]["seed"])
    assert seeds["q0"][0] == seeds["q0"][1] != seeds["q0"][2]
    assert seeds["q0"][0] != seeds["q1"][0]


def test_api_key_header(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    sample(EndpointConfig(server.url, "tiny"), reqs(1), tmp_path / "a.jsonl")
    sample(EndpointConfig(server.url, "tiny", api_key="sk-given"), reqs(1), tmp_path / "b.jsonl")
    auth = [c["headers"].get("Authorization") for c in server.posts()]
    assert auth == ["Bearer sk-env", "Bearer sk-given"]


def test_429_then_success_honours_retry_after(server: FakeServer, tmp_path: Path):
    busy = {"error": {"message": "rate limited"}}
    server.script = [(429, {"Retry-After": "1"}, busy)]
    out = sample(EndpointConfig(server.url, "tiny"), reqs(1), tmp_path / "c.jsonl")
    assert len(out["p0"]) == 4
    first, second = server.posts()
    assert second["t"] - first["t"] >= 0.95  # waited as told, not the 10 ms backoff


def test_5xx_are_retried(server: FakeServer, tmp_path: Path):
    server.script = [(500, {}, b"boom"), (503, {}, {"detail": "loading"}), (502, {}, b"")]
    out = sample(EndpointConfig(server.url, "tiny"), reqs(1), tmp_path / "c.jsonl")
    assert len(out["p0"]) == 4 and len(server.posts()) == 4


def test_4xx_is_not_retried_and_names_the_error(server: FakeServer, tmp_path: Path):
    server.script = [(400, {}, {"error": {"message": "max_tokens is too large"}})]
    with pytest.raises(EndpointError, match=r"HTTP 400: max_tokens is too large"):
        sample(EndpointConfig(server.url, "tiny"), reqs(1), tmp_path / "c.jsonl")
    assert len(server.posts()) == 1


def test_retries_exhausted_on_5xx(server: FakeServer, tmp_path: Path):
    server.script = [(500, {}, b"boom")] * 3
    with pytest.raises(EndpointError, match=r"failed 3 times.*HTTP 500: boom"):
        sample(EndpointConfig(server.url, "tiny", retries=2), reqs(1), tmp_path / "c.jsonl")


def test_fewer_choices_than_asked_asks_for_the_rest(server: FakeServer, tmp_path: Path):
    server.max_choices = 3
    out = sample(EndpointConfig(server.url, "tiny"), reqs(1), tmp_path / "c.jsonl", n=8)
    assert len(out["p0"]) == 8
    asked = [c["body"]["n"] for c in server.posts()]
    assert asked == [8, 5, 2]
    assert len({c["body"]["seed"] for c in server.posts()}) == 3  # each offset its own seed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_down_endpoint_is_an_error_with_url_and_last_error(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = EndpointConfig(url, "tiny", retries=2, timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(EndpointError) as info:
        sample(cfg, reqs(3), tmp_path / "c.jsonl")
    assert time.monotonic() - t0 < 10
    message = str(info.value)
    assert f"{url}/chat/completions" in message and "failed 3 times" in message
    assert "refused" in message.lower() or "cannot connect" in message
    with pytest.raises(EndpointError, match=r"/v1/models"):
        served_model_info(cfg)


def test_failure_keeps_what_finished_in_the_cache(server: FakeServer, tmp_path: Path):
    cache = tmp_path / "c.jsonl"
    cfg = EndpointConfig(server.url, "tiny", concurrency=1, retries=0)
    server.script = [None, None, (400, {}, b"bad prompt")]
    with pytest.raises(EndpointError, match="bad prompt"):
        sample(cfg, reqs(4), cache)
    assert len(cache.read_text().splitlines()) == 2
    out = sample(cfg, reqs(4), cache)
    assert len(server.posts()) == 3 + 2 and all(len(v) == 4 for v in out.values())


def test_cache_resume_makes_no_requests(server: FakeServer, tmp_path: Path):
    cache = tmp_path / "c.jsonl"
    cfg = EndpointConfig(server.url, "tiny")
    seen: list[tuple[int, int]] = []
    first = sample(cfg, reqs(5), cache)
    calls = len(server.calls)
    again = sample(cfg, reqs(5), cache, progress=lambda d, t: seen.append((d, t)))
    assert again == first and len(server.calls) == calls == 5
    assert seen == [(20, 20)]
    # fewer samples: served from the same lines; more: only the rest is asked for
    assert sample(cfg, reqs(5), cache, n=2) == {k: v[:2] for k, v in first.items()}
    assert len(server.calls) == 5
    more = sample(cfg, reqs(5), cache, n=6)
    assert [c["body"]["n"] for c in server.posts()[5:]] == [2] * 5
    assert all(more[k][:4] == first[k] for k in first)


def test_cache_is_keyed_by_options_and_model(server: FakeServer, tmp_path: Path):
    cache = tmp_path / "c.jsonl"
    cfg = EndpointConfig(server.url, "tiny")
    sample(cfg, reqs(2), cache)
    sample(cfg, reqs(2), cache, temperature=1.0)
    sample(cfg, reqs(2), cache, seed=4)
    sample(cfg, reqs(2), cache, max_tokens=17)
    sample(EndpointConfig(server.url, "tiny", api="completions"), reqs(2), cache)
    sample(EndpointConfig(server.url, "other"), reqs(2), cache)
    assert len(server.posts()) == 12  # nothing reused across options or models
    assert len(cache.read_text().splitlines()) == 12  # and nothing overwritten


def test_truncated_cache_line_is_dropped_and_resumed(server: FakeServer, tmp_path: Path):
    cache = tmp_path / "c.jsonl"
    cfg = EndpointConfig(server.url, "tiny", concurrency=1)
    first = sample(cfg, reqs(3), cache)
    lines = cache.read_text().splitlines(keepends=True)
    torn = lines[2][: len(lines[2]) // 2]  # a crash in the middle of the last write
    cache.write_text(lines[0] + lines[1] + torn)
    again = sample(cfg, reqs(3), cache)
    assert len(server.posts()) == 4  # only the torn request is asked again
    assert again["p0"] == first["p0"] and again["p1"] == first["p1"] and len(again["p2"]) == 4
    text = cache.read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())


def test_concurrency_limit(server: FakeServer, tmp_path: Path):
    server.delay_s = 0.1
    cfg = EndpointConfig(server.url, "tiny", concurrency=3)
    out = sample(cfg, reqs(9), tmp_path / "c.jsonl")
    assert len(out) == 9 and server.max_in_flight == 3
    assert list(out) == [f"p{i}" for i in range(9)]


def test_timeout_is_retried(server: FakeServer, tmp_path: Path):
    server.delay_s = 1.0
    cfg = EndpointConfig(server.url, "tiny", timeout_s=0.3, retries=1)
    with pytest.raises(EndpointError, match="timeout"):
        sample(cfg, reqs(1), tmp_path / "c.jsonl")
    assert len(server.posts()) == 2


def test_keyboard_interrupt_propagates_after_flush(server: FakeServer, tmp_path: Path):
    cache = tmp_path / "c.jsonl"
    cfg = EndpointConfig(server.url, "tiny", concurrency=1)
    server.delay_s = 0.05

    def progress(done: int, total: int) -> None:
        if done == 8:  # two requests finished
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(cfg, reqs(6), cache, progress=progress)
    kept = len(cache.read_text().splitlines())
    assert kept >= 2
    time.sleep(0.3)  # the request in flight at Ctrl-C ends; its answer is dropped
    server.delay_s = 0.0
    calls = len(server.posts())
    out = sample(cfg, reqs(6), cache)
    assert len(out) == 6 and len(server.posts()) - calls == 6 - kept


def test_served_model_info(server: FakeServer):
    info = served_model_info(EndpointConfig(server.url, "tiny"))
    assert info["id"] == "tiny" and info["max_model_len"] == 1024
    with pytest.raises(EndpointError, match=r"does not serve model 'nope'.*'tiny'"):
        served_model_info(EndpointConfig(server.url, "nope"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url": "127.0.0.1:8000"}, "http://"),
        ({"api": "responses"}, "valid: chat, completions"),
        ({"concurrency": 0}, "concurrency"),
        ({"retries": -1}, "retries"),
    ],
)
def test_bad_config(kwargs: dict[str, Any], match: str):
    args: dict[str, Any] = {"url": "http://x/v1", "model": "m"} | kwargs
    with pytest.raises(ValueError, match=match):
        EndpointConfig(**args)


def test_bad_requests(tmp_path: Path):
    cfg = EndpointConfig("http://127.0.0.1:9/v1", "m", api="completions")
    call: Callable[..., Any] = sample
    with pytest.raises(ValueError, match="unique"):
        call(cfg, [EndpointRequest("a", "x"), EndpointRequest("a", "y")], tmp_path / "c")
    with pytest.raises(ValueError, match="system prompt needs api='chat'"):
        call(cfg, [EndpointRequest("a", "x", system_prompt="s")], tmp_path / "c")
