#!/usr/bin/env bash
# Set up .venv, then run lint, format check and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# vLLM's CPU build in .venv-vllm, for the real-server endpoint test
# (tests/eval/test_endpoint_vllm.py): ~2.5 min the first time, ~10 s once built.
bash scripts/setup_vllm.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
# pytest exits 5 when it collects no test: with `set -e` that fails the run.
.venv/bin/python -m pytest -q "$@"
