#!/usr/bin/env bash
# Multi-node Pass@k Training with verl + passk (see docs/integrations/verl.md).
#
# On every node, the same Python environment:
#   pip install torch==2.11.0 "verl[vllm]==0.9.1"   # verl's GPU stack, as verl documents it
#   pip install "passk[verl]"                        # registers the verl.plugins entry point
# On the head node:     bash run_passk_qwen7b.sh head
# On each other node:   HEAD_IP=<head address> bash run_passk_qwen7b.sh worker
# Then on the head:     bash run_passk_qwen7b.sh train [extra hydra overrides ...]
#
# PASSK_TRAIN_FILES, PASSK_VAL_FILES and PASSK_MODEL (optional; defaults in
# passk_trainer.yaml) are read here, on the driver, and passed as Hydra overrides: verl
# resolves the config inside a Ray actor that may run on another node, whose environment
# is the one `ray start` had there.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

# The entry point loads the plugin in every process that imports verl. The env var is a
# second, explicit route; Ray workers inherit it from `ray start`, so export it first.
export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:-passk.integrations.verl}"

case "${1:-train}" in
  head)
    ray start --head --port=6379 --num-gpus="${GPUS_PER_NODE:-8}"
    ;;
  worker)
    ray start --address="${HEAD_IP:?set HEAD_IP}:6379" --num-gpus="${GPUS_PER_NODE:-8}"
    ;;
  train)
    shift || true
    overrides=(trainer.nnodes="${NNODES:-2}" trainer.n_gpus_per_node="${GPUS_PER_NODE:-8}")
    if [[ -n "${PASSK_TRAIN_FILES:-}" ]]; then overrides+=(data.train_files="$PASSK_TRAIN_FILES"); fi
    if [[ -n "${PASSK_VAL_FILES:-}" ]]; then overrides+=(data.val_files="$PASSK_VAL_FILES"); fi
    if [[ -n "${PASSK_MODEL:-}" ]]; then overrides+=(actor_rollout_ref.model.path="$PASSK_MODEL"); fi
    "${PYTHON:-python3}" -m verl.trainer.main_ppo \
      --config-path "$HERE" --config-name passk_trainer \
      "${overrides[@]}" "$@"
    ;;
  *)
    echo "usage: $0 head|worker|train [hydra overrides]" >&2
    exit 2
    ;;
esac
