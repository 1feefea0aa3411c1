"""``passk eval --endpoint`` against a local fake server, as a user runs it: a server
without ``GET /v1/models``, the model-list check skipped, and the cache refreshed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_endpoint import FakeServer


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


def _eval(server: FakeServer, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", "eval", "--endpoint", server.url,
         "--served-model", "tiny", "--task", "mul1", "--problems", "2", "--n", "2",
         "--no-plots", "--num-resamples", "10", "--score-timeout", "0", "--retries", "0",
         "--out", str(out), *extra],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def _gets(server: FakeServer) -> list[str]:
    return [c["path"] for c in server.calls if c["body"] is None]


@pytest.mark.parametrize("status", [404, 405, 501])
def test_a_server_without_the_models_route_is_noted_and_used(server, tmp_path, status):
    server.script = [(status, {}, {"error": "no such route"})]
    done = _eval(server, tmp_path / "ev")
    assert done.returncode == 0, done.stderr
    assert f"/models answered HTTP {status} (no model list there)" in done.stderr
    assert "going on without checking the name 'tiny'" in done.stderr
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["served_model"]["checked"] is False and report["num_problems"] == 2
    assert len(server.posts()) == 2  # both problems were sampled


def test_a_refusal_other_than_a_missing_route_still_stops(server, tmp_path):
    server.script = [(401, {}, {"error": "bad key"})]
    done = _eval(server, tmp_path / "ev")
    assert done.returncode == 2 and "HTTP 401" in done.stderr and not server.posts()


def test_no_models_check_asks_nothing_but_the_samples(server, tmp_path):
    done = _eval(server, tmp_path / "ev", "--no-models-check")
    assert done.returncode == 0, done.stderr
    assert _gets(server) == []
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["served_model"] == {"id": "tiny", "checked": False, "why": "--no-models-check"}


def test_overwrite_reuses_the_cache_and_says_so_refresh_cache_asks_again(server, tmp_path):
    out = tmp_path / "ev"
    assert _eval(server, out).returncode == 0
    assert len(server.posts()) == 2
    done = _eval(server, out, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert len(server.posts()) == 2  # all from the cache
    assert "reusing the answers cached in" in done.stderr and "--refresh-cache" in done.stderr
    done = _eval(server, out, "--overwrite", "--refresh-cache")
    assert done.returncode == 0, done.stderr
    assert len(server.posts()) == 4  # asked again
    assert "--refresh-cache: removed" in done.stderr
    assert json.loads((out / "eval.json").read_text())["run"]["refresh_cache"] is True
