"""The endpoint report's throughput: completion tokens (the server's ``usage``, else a
local tokenizer, else unknown), sampling time apart from scoring, tokens/s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_endpoint import FakeServer, reqs, sample

from passk.eval.endpoint import EndpointConfig, EndpointStats


class NoUsageServer(FakeServer):
    """A server whose answers carry no ``usage``."""

    def _default(self, path: str, body: dict[str, Any] | None) -> tuple[int, dict, Any]:
        status, headers, payload = super()._default(path, body)
        if isinstance(payload, dict):
            payload.pop("usage", None)
        return status, headers, payload


def _eval(url: str, out: Path, *extra: str) -> dict[str, Any]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "passk.cli", "eval", "--endpoint", url, "--served-model", "tiny",
         "--task", "mul1", "--problems", "3", "--n", "2", "--no-plots", "--num-resamples", "10",
         "--retries", "0", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    return report | {"stderr": done.stderr}


def test_the_report_counts_the_servers_tokens_and_times_sampling_apart(tmp_path: Path):
    server = FakeServer()
    server.delay_s = 0.4  # each of the 3 requests (one per problem, n = 2 each)
    try:
        report = _eval(server.url, tmp_path / "out", "--concurrency", "1")
    finally:
        server.close()
    assert report["tokens"] == 3 * 2 * 3  # the fake's usage: 3 tokens per choice
    assert report["tokens_counted_by"] == "usage"
    assert report["samples_sampled"] == 6 and report["samples_cached"] == 0
    assert report["sampling_s"] >= 3 * 0.4
    assert report["elapsed_s"] == pytest.approx(
        report["sampling_s"] + report["scoring_s"], abs=2e-3
    )
    assert report["tokens_per_s"] == pytest.approx(
        report["tokens"] / report["sampling_s"], rel=1e-2
    )
    assert "18 completion tokens (usage)" in report["stderr"]


def test_a_rerun_from_the_cache_samples_nothing_and_claims_no_rate(tmp_path: Path):
    server = FakeServer()
    try:
        _eval(server.url, tmp_path / "out")
        report = _eval(server.url, tmp_path / "out", "--overwrite")
    finally:
        server.close()
    assert report["samples_sampled"] == 0 and report["samples_cached"] == 6
    assert report["tokens"] == 0 and report["tokens_per_s"] is None


def test_without_usage_tokens_are_unknown_unless_a_tokenizer_counts_them(
    tmp_path: Path, tiny_tokenizer: Any
):
    server = NoUsageServer()
    try:
        report = _eval(server.url, tmp_path / "a")
        tok_dir = tmp_path / "tok"
        tiny_tokenizer.save_pretrained(tok_dir)
        counted = _eval(server.url, tmp_path / "b", "--tokenizer", str(tok_dir))
    finally:
        server.close()
    assert report["tokens"] is None and report["tokens_per_s"] is None
    assert report["tokens_counted_by"] == "unknown"
    # the tiny tokenizer is byte-level: one token per byte of each answer
    cache = (tmp_path / "b" / "endpoint_cache.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [t for line in cache for t in json.loads(line)["responses"]]
    assert len(texts) == 6
    assert counted["tokens_counted_by"] == "tokenizer"
    assert counted["tokens"] == sum(len(t.encode()) for t in texts) > 0


def test_stats_add_up_fresh_and_cached_samples(tmp_path: Path):
    server = FakeServer()
    try:
        cfg = EndpointConfig(url=server.url, model="tiny", concurrency=2)
        first, again = EndpointStats(), EndpointStats()
        sample(cfg, reqs(3), tmp_path / "c.jsonl", stats=first)
        sample(cfg, reqs(4), tmp_path / "c.jsonl", stats=again)
    finally:
        server.close()
    assert (first.samples, first.cached_samples, first.completion_tokens) == (12, 0, 36)
    assert (again.samples, again.cached_samples, again.completion_tokens) == (4, 12, 12)
    assert first.unmetered == [] and again.unmetered == []


def test_tokenizer_without_an_endpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    from passk.cli import main

    samples = tmp_path / "s.jsonl"
    samples.write_text('{"problem_id": "a", "correct": true}\n', encoding="utf-8")
    argv = ["eval", "--samples", str(samples), "--tokenizer", "x", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--tokenizer counts the tokens of an --endpoint's answers" in capsys.readouterr().err
