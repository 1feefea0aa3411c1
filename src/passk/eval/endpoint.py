"""Sampling from an OpenAI-compatible server (vLLM, SGLang, llama.cpp): ``passk eval --endpoint``.

:func:`sample_endpoint` sends one request per problem, asking for ``n`` choices
(``/v1/chat/completions`` with messages, or ``/v1/completions`` with a raw prompt), with
at most ``concurrency`` requests in flight (threads of the standard library: no client
package). A server that returns fewer choices than asked is asked for the rest.

Failures: connection errors, timeouts, HTTP 429 and 5xx are retried ``retries`` times
with exponential backoff and full jitter (a ``Retry-After`` header is honoured); any
other HTTP error, or a request still failing after its retries, is an
:class:`EndpointError` naming the URL and the last error.

Cache: every finished request is appended to a JSONL file (one line, flushed at once), so
a run that crashed, failed or was interrupted resumes without asking again for what it
has. A line is keyed by a hash of everything that decides its samples: the served model
name, the API, the prompt and system prompt, temperature, top_p, max_tokens and seed.
A line whose key differs from the request's (other options, another model) is ignored,
never reused, and stays in the file; so one cache file can hold several runs. A torn last
line (a crash while writing) is dropped; a line asked for at ``n`` serves any run with
``n`` or fewer (a larger ``n`` asks only for the rest).

Seeds: with ``seed`` set, the request that asks for samples ``offset..`` of a problem
carries ``derive_seed(seed, "endpoint", problem_id, offset)`` (31 bits, which every
server accepts), so a resumed run asks exactly what the first one would have. Whether
a server's seeded samples are reproducible is the server's business.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passk.seeds import derive_seed

__all__ = [
    "EndpointConfig",
    "EndpointError",
    "EndpointRequest",
    "EndpointStats",
    "sample_endpoint",
    "served_model_info",
]

APIS = ("chat", "completions")
# Backoff before retry i (0-based): uniform(0, min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2**i)).
_BACKOFF_BASE_S = 0.5
_BACKOFF_MAX_S = 30.0
# A Retry-After longer than this is cut to it (a misconfigured server must not stall a run).
_RETRY_AFTER_MAX_S = 120.0
_CACHE_VERSION = 1
_SEED_BITS = 31
_USER_AGENT = "passk-endpoint/1"


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to reach an OpenAI-compatible server."""

    url: str
    """Base URL, e.g. ``http://127.0.0.1:8000/v1`` (``/v1`` is added when missing)."""
    model: str
    """The served model name (``--served-model``), as ``/v1/models`` lists it."""
    api: str = "chat"
    """``chat`` (``/v1/chat/completions``, the server applies the chat template) or
    ``completions`` (``/v1/completions``, the prompt is sent as it is)."""
    concurrency: int = 16
    """Requests in flight at once."""
    timeout_s: float = 120.0
    """Seconds a request may wait on the socket (connecting, or for the answer)."""
    retries: int = 5
    """Retries of one request after a connection error, timeout, 429 or 5xx."""
    api_key: str | None = None
    """Sent as ``Authorization: Bearer``; None reads ``$OPENAI_API_KEY`` (unset: no header)."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint url must start with http:// or https://, got {self.url!r}")
        if not self.model:
            raise ValueError("the served model name is empty; pass --served-model NAME")
        if self.api not in APIS:
            raise ValueError(f"unknown endpoint api {self.api!r}; valid: {', '.join(APIS)}")
        if self.concurrency < 1:
            raise ValueError(f"endpoint concurrency must be >= 1, got {self.concurrency}")
        if not self.timeout_s > 0:
            raise ValueError(f"endpoint timeout_s must be > 0, got {self.timeout_s}")
        if self.retries < 0:
            raise ValueError(f"endpoint retries must be >= 0, got {self.retries}")

    @property
    def base_url(self) -> str:
        """The URL ending in ``/v1``.

        >>> EndpointConfig("http://h:8000", "m").base_url
        'http://h:8000/v1'
        >>> EndpointConfig("http://h:8000/v1/", "m").base_url
        'http://h:8000/v1'
        """
        base = self.url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        key = self.api_key if self.api_key is not None else os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


@dataclass(frozen=True)
class EndpointRequest:
    """One problem's prompt."""

    problem_id: str
    prompt: str
    """The user message (``chat``) or the raw prompt text (``completions``)."""
    system_prompt: str | None = None
    """A system message before the user message (``chat`` only)."""


class EndpointError(RuntimeError):
    """The server cannot be used: down, refusing, or not serving the model (a message for
    the user). ``status``: the HTTP status of a refusal (None for other failures)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    """One failed attempt worth retrying; ``retry_after`` is the server's wish, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Stopped(Exception):
    """The run is over (interrupted or failed elsewhere): give up quietly."""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date.

    >>> _retry_after("3"), _retry_after(None), _retry_after("soon")
    (3.0, None, None)
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(body: bytes) -> str:
    """The message of an error body (OpenAI ``{"error": {"message"}}``, FastAPI
    ``{"detail"}``, or the text), cut to one short line."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        msg = err.get("message") if isinstance(err, dict) else err
        text = str(msg or data.get("detail") or data.get("message") or text)
    text = " ".join(text.split())
    return text[:500] or "(empty body)"


class _Client:
    """HTTP with retries for one config; ``stop`` ends backoff waits early."""

    def __init__(self, cfg: EndpointConfig, stop: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.headers = cfg.headers()

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (``body`` None) or POST JSON to ``base_url + path``; the decoded answer."""
        url = self.cfg.base_url + path
        last = ""
        for attempt in range(self.cfg.retries + 1):
            if self.stop.is_set():
                raise _Stopped
            try:
                return self._once(url, body)
            except _Retryable as e:
                last = str(e)
                if attempt == self.cfg.retries:
                    break
                cap = min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2**attempt)
                delay = random.uniform(0, cap)
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, _RETRY_AFTER_MAX_S))
                if self.stop.wait(delay):
                    raise _Stopped from None
        attempts = self.cfg.retries + 1
        raise EndpointError(
            f"endpoint {url} failed {attempts} time{'s' * (attempts > 1)} "
            f"(1 try + {self.cfg.retries} retries); last error: {last}"
        )

    def _once(self, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            with e:
                text = _error_text(e.read())
            if e.code == 429 or (e.code >= 500 and e.code != 501):  # 501: never will
                raise _Retryable(
                    f"HTTP {e.code}: {text}", _retry_after(e.headers.get("Retry-After"))
                ) from None
            hint = ""
            if e.code in (401, 403):
                hint = " (set OPENAI_API_KEY to the server's API key)"
            raise EndpointError(
                f"endpoint {url} refused the request: HTTP {e.code}: {text}{hint}", e.code
            ) from None
        except urllib.error.URLError as e:
            raise _Retryable(f"cannot connect: {e.reason}") from None
        except TimeoutError:  # socket.timeout is TimeoutError since 3.10
            raise _Retryable(f"no answer within {self.cfg.timeout_s:g} s (timeout)") from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise _Retryable(f"connection failed: {type(e).__name__}: {e}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise _Retryable(f"answer is not JSON: {raw[:200]!r}") from None
        if not isinstance(answer, dict):
            raise _Retryable(f"answer is not a JSON object: {raw[:200]!r}")
        return answer


# answers to GET /models that mean "no such route here", not "you may not"
_NO_MODELS_ROUTE = (404, 405, 501)


def served_model_info(cfg: EndpointConfig) -> dict[str, Any]:
    """The ``/v1/models`` entry of ``cfg.model`` (``id``, ``owned_by``, and whatever else the
    server reports: vLLM adds ``max_model_len`` and ``root``, the model directory).

    A server without the route (HTTP 404, 405 or 501) or whose answer has no ``data``
    list may still serve completions: the answer is then ``{"id": cfg.model, "checked":
    False, "why": ...}`` and the name is not checked. An :class:`EndpointError` when the
    server is unreachable, refuses otherwise, or lists models without this one (the
    message lists the models it serves)."""
    try:
        answer = _Client(cfg).call("/models")
    except EndpointError as e:
        if e.status not in _NO_MODELS_ROUTE:
            raise
        why = f"{cfg.base_url}/models answered HTTP {e.status} (no model list there)"
        return {"id": cfg.model, "checked": False, "why": why}
    if not isinstance(answer.get("data"), list):
        why = f"{cfg.base_url}/models answered without a 'data' list"
        return {"id": cfg.model, "checked": False, "why": why}
    entries = [e for e in answer["data"] if isinstance(e, dict)]
    for entry in entries:
        if entry.get("id") == cfg.model:
            return entry
    served = ", ".join(repr(str(e.get("id"))) for e in entries) or "none"
    raise EndpointError(
        f"endpoint {cfg.base_url} does not serve model {cfg.model!r}; it serves: {served} "
        "(pass one of them as --served-model)"
    )


def _cache_key(
    cfg: EndpointConfig, req: EndpointRequest, options: dict[str, Any], seed: int | None
) -> str:
    fields = {
        "v": _CACHE_VERSION,
        "model": cfg.model,
        "api": cfg.api,
        "problem_id": req.problem_id,
        "prompt": req.prompt,
        "system_prompt": req.system_prompt,
        "seed": seed,
        **options,
    }
    blob = json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Cache lines by key (the one with the most responses where a key repeats).

    A torn last line is cut off the file, so the next append starts a fresh line; any
    other line that does not parse is skipped."""
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1  # 0 when the only line is torn
        with path.open("r+b") as f:
            f.truncate(keep)
        raw = raw[:keep]
    entries: dict[str, dict[str, Any]] = {}
    for line in raw.splitlines():
        try:
            entry = json.loads(line)
            key, responses = entry["key"], entry["responses"]
        except (ValueError, TypeError, KeyError):
            continue
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            continue
        if len(responses) >= len(entries.get(key, {}).get("responses", ())):
            entries[key] = entry
    return entries


def _messages(req: EndpointRequest) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": req.system_prompt}] if req.system_prompt else []
    return [*messages, {"role": "user", "content": req.prompt}]


def _choice_texts(answer: dict[str, Any], api: str) -> list[str]:
    choices = [c for c in answer.get("choices") or [] if isinstance(c, dict)]
    choices.sort(key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
    if api == "chat":
        return [str((c.get("message") or {}).get("content") or "") for c in choices]
    return [str(c.get("text") or "") for c in choices]


@dataclass
class EndpointStats:
    """What one :func:`sample_endpoint` call (or several, added up) asked the server for:
    the throughput a report states. Cached samples cost no server time and are counted
    apart."""

    samples: int = 0
    """Samples the server returned in this run."""
    cached_samples: int = 0
    """Samples taken from the cache."""
    completion_tokens: int = 0
    """Completion tokens of the answers that carried ``usage``."""
    unmetered: list[str] = field(default_factory=list)
    """Texts of the answers without ``usage``: counted with a tokenizer if there is one."""


@dataclass
class _Job:
    request: EndpointRequest
    key: str
    responses: list[str]
    cached: int = 0
    """How many of ``responses`` came from the cache."""
    completion_tokens: int = 0
    fresh_tokens: int = 0
    """Completion tokens of this run's answers (``usage``), apart from the cached ones."""
    unmetered: list[str] = field(default_factory=list)
    """This run's texts whose answer carried no ``usage``."""


def _sample_one(
    client: _Client, job: _Job, n: int, options: dict[str, Any], seed: int | None
) -> None:
    """Fill ``job.responses`` up to ``n``, asking again while the server returns fewer."""
    cfg, req = client.cfg, job.request
    path = "/chat/completions" if cfg.api == "chat" else "/completions"
    empty = 0
    while len(job.responses) < n:
        want = n - len(job.responses)
        body: dict[str, Any] = {"model": cfg.model, "n": want, **options}
        if cfg.api == "chat":
            body["messages"] = _messages(req)
        else:
            body["prompt"] = req.prompt
        if seed is not None:
            offset = len(job.responses)
            body["seed"] = derive_seed(seed, "endpoint", req.problem_id, offset) >> (
                63 - _SEED_BITS
            )
        answer = client.call(path, body)
        texts = _choice_texts(answer, cfg.api)[:want]
        usage = answer.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            job.completion_tokens += usage["completion_tokens"]
            job.fresh_tokens += usage["completion_tokens"]
        else:
            job.unmetered.extend(texts)
        if not texts:
            empty += 1
            if empty > cfg.retries:
                raise EndpointError(
                    f"endpoint {cfg.base_url}{path} returned no choices {empty} times "
                    f"for problem {req.problem_id!r} (asked for {want})"
                )
        job.responses.extend(texts)


def sample_endpoint(
    cfg: EndpointConfig,
    requests: Sequence[EndpointRequest],
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int | None,
    cache_path: Path,
    progress: Callable[[int, int], None] | None = None,
    stats: EndpointStats | None = None,
) -> dict[str, list[str]]:
    """``n`` response texts per problem, ``{problem_id: [text, ...]}`` in request order.

    ``progress(done, total)`` counts samples (cached ones included) and is called from
    the calling thread: once at the start, then after each finished request. ``stats``,
    when given, is added to: the samples and completion tokens of this call.

    Raises :class:`EndpointError` when a request fails for good (the cache keeps every
    request finished before); ``KeyboardInterrupt`` propagates with the cache flushed.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    ids = [r.problem_id for r in requests]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"problem ids must be unique; {dup!r} appears more than once")
    if cfg.api == "completions" and any(r.system_prompt for r in requests):
        raise ValueError("a system prompt needs api='chat'; the completions API has no roles")
    options = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
    cache_path = Path(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cached = read_cache(cache_path)

    jobs = []
    for req in requests:
        key = _cache_key(cfg, req, options, seed)
        entry = cached.get(key, {})
        have = list(entry.get("responses", []))[:n]
        tokens = entry.get("completion_tokens")  # of the whole line: kept only when all used
        if not isinstance(tokens, int) or len(have) < len(entry.get("responses", [])):
            tokens = 0
        jobs.append(_Job(req, key, have, cached=len(have), completion_tokens=tokens))
    total = n * len(jobs)
    done = sum(len(j.responses) for j in jobs if len(j.responses) == n)
    if stats is not None:
        stats.cached_samples += sum(j.cached for j in jobs)
    if progress is not None:
        progress(done, total)
    todo: queue.Queue[_Job] = queue.Queue()
    for job in jobs:
        if len(job.responses) < n:
            todo.put(job)
    results: queue.Queue[tuple[_Job, BaseException | None]] = queue.Queue()
    stop = threading.Event()
    client = _Client(cfg, stop)

    def worker() -> None:
        while not stop.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                _sample_one(client, job, n, options, seed)
            except _Stopped:
                return
            except BaseException as e:  # handed to the calling thread, which raises it
                results.put((job, e))
                return
            results.put((job, None))

    remaining = todo.qsize()
    failure: BaseException | None = None
    with cache_path.open("a", encoding="utf-8") as cache:

        def record(job: _Job) -> None:
            if len(job.responses) == job.cached:  # nothing new to keep
                return
            if stats is not None:
                stats.samples += len(job.responses) - job.cached
                stats.completion_tokens += job.fresh_tokens
                stats.unmetered.extend(job.unmetered)
            entry = {
                "key": job.key,
                "problem_id": job.request.problem_id,
                "model": cfg.model,
                "responses": job.responses,
                "completion_tokens": job.completion_tokens,
            }
            cache.write(json.dumps(entry, ensure_ascii=False) + "\n")
            cache.flush()

        threads = [
            threading.Thread(target=worker, name=f"passk-endpoint-{i}", daemon=True)
            for i in range(min(cfg.concurrency, remaining))
        ]
        try:
            for t in threads:
                t.start()
            while remaining and failure is None:
                try:
                    job, error = results.get(timeout=0.2)  # short: Ctrl-C is seen at once
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and results.empty():
                        raise RuntimeError("endpoint workers ended without an answer") from None
                    continue
                remaining -= 1
                record(job)  # a failed request keeps the choices it got
                if error is not None:
                    failure = error
                    continue
                done += n
                if progress is not None:
                    progress(done, total)
        finally:
            stop.set()  # workers stop before their next attempt; daemon threads never block exit
            while True:  # keep what other workers finished meanwhile
                try:
                    job, _ = results.get_nowait()
                except queue.Empty:
                    break
                record(job)
    if failure is not None:
        raise failure
    return {j.request.problem_id: j.responses for j in jobs}
