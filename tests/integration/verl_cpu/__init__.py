"""verl 0.9.1 on CPU, for passk's end-to-end test (tests/integration/test_verl_e2e.py).

Loaded in every verl process through ``VERL_USE_EXTERNAL_MODULES=verl_cpu,
passk.integrations.verl`` (with this directory's parent on ``PYTHONPATH``) and ``VERL_PLATFORM=cpu``.
It patches verl internals, so it is written for one verl version and refuses any other.
Each patch names the verl code it answers:

1. ``platform_cpu``: a ``cpu`` platform (``verl/plugin/platform/platform_manager.py``
   falls back to ``nvidia`` without an accelerator; ``verl/utils/device.py``
   ``auto_set_device`` then turns ``trainer.device=cpu`` into ``cuda``).
2. the default process-group backend: ``verl/utils/distributed.py``
   ``initialize_global_process_group_ray`` builds ``"cpu:gloo,<device>:<backend>"``,
   ``"cpu:gloo,cpu:gloo"`` here, which torch rejects (a device named twice); ``gloo`` alone.
3. the FSDP engine for the ``cpu`` device: ``verl/workers/engine/fsdp/transformer_impl.py``
   registers ``FSDPEngineWithLMHead`` for ``device=["cuda", "npu"]`` only.
4. ``rollout``: an ``hf_cpu`` rollout (``verl/workers/rollout/replica.py``
   ``RolloutReplicaRegistry`` and ``verl/workers/rollout/base.py`` ``_ROLLOUT_REGISTRY``
   hold only vllm / sglang / trtllm).
5. ``verl/models/transformers/monkey_patch.py`` (``apply_monkey_patch``) imports
   ``AutoModelForCausalLMWithValueHead`` from ``trl.experimental.ppo`` or ``trl``;
   trl 1.16 has neither, so ``is_trl_available`` answers False there (the value-head
   model is for critics; this run has none).
6. a dump of what the advantage step saw and wrote, for the test
   (``PASSK_VERL_CPU_DUMP``): wraps ``_compute_advantage`` of the ``passk_sync`` trainer.

Configuration does the rest (see the test): ``actor.strategy=fsdp2`` (FSDP1 needs an
accelerator), ``override_config.attn_implementation=eager`` (flash-attention is verl's
default), one TransferQueue storage unit, one agent-loop and reward worker, and Ray started
with a GPU slot (``ray_kwargs.ray_init.num_gpus=1``) and more logical CPUs than cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import verl

import verl_cpu.platform_cpu  # noqa: F401  (registers the platform, before anything asks for it)

VERL_VERSION = "0.9.1"

if verl.__version__ != VERL_VERSION:
    raise RuntimeError(
        f"tests/integration/verl_cpu patches verl {VERL_VERSION} internals (each patch names "
        f"the verl file it answers) and cannot run verl {verl.__version__}: re-check every "
        "patch against the new verl, then update VERL_VERSION"
    )


def _patch_process_group() -> None:
    import verl.utils.distributed as dist_utils

    original = dist_utils.initialize_global_process_group_ray

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        if backend is None or backend == "cpu:gloo,cpu:gloo":
            backend = "gloo"
        return original(timeout_second=timeout_second, backend=backend)

    dist_utils.initialize_global_process_group_ray = initialize_global_process_group_ray
    # modules that imported the name already keep their own binding
    import sys

    for name in ("verl.workers.engine_workers", "verl.checkpoint_engine.base"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "initialize_global_process_group_ray"):
            module.initialize_global_process_group_ray = initialize_global_process_group_ray


def _patch_engine_registry() -> None:
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import (
        FSDPEngineWithLMHead,
        FSDPEngineWithValueHead,
    )

    for model_type, cls in (
        ("language_model", FSDPEngineWithLMHead),
        ("value_model", FSDPEngineWithValueHead),
    ):
        for backend in ("fsdp", "fsdp2"):
            EngineRegistry._engines[model_type][backend].setdefault("cpu", cls)


def _patch_rollout() -> None:
    from verl.workers.rollout import base, replica

    base._ROLLOUT_REGISTRY[("hf_cpu", "async")] = "verl_cpu.rollout.HFCPUServerAdapter"

    def load():
        from verl_cpu.rollout import HFCPUReplica

        return HFCPUReplica

    replica.RolloutReplicaRegistry.register("hf_cpu", load)


def _patch_trl_value_head() -> None:
    from verl.models.transformers import monkey_patch

    monkey_patch.is_trl_available = lambda: False


def _patch_advantage_dump() -> None:
    dump = os.environ.get("PASSK_VERL_CPU_DUMP")
    if not dump:
        return
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    import passk.integrations.verl

    # idempotent; registers passk_sync if the plugin loaded before this platform existed
    passk.integrations.verl.register()
    cls = TRAINER_REGISTRY["passk_sync"]
    if getattr(cls, "_verl_cpu_dump", False):
        return
    original = cls._compute_advantage

    def _compute_advantage(self, batch, metrics):
        import torch
        import transfer_queue as tq

        out = original(self, batch, metrics)
        fields = ["uid", "rm_scores", "advantages", "response_mask", "old_log_probs"]
        data = tq.kv_batch_get(keys=out.keys, partition_id=out.partition_id, select_fields=fields)
        data = data.to_padded_tensor()  # as verl's _compute_advantage reads them
        record = {"uid": list(data.pop("uid").tolist())}
        for key in fields[1:]:
            record[key] = data[key].clone()
        record["estimator"] = str(self.config.algorithm.adv_estimator)
        torch.save(record, Path(dump) / f"advantages_step{self.global_steps}.pt")
        return out

    cls._compute_advantage = _compute_advantage
    cls._verl_cpu_dump = True


_patch_process_group()
_patch_engine_registry()
_patch_rollout()
_patch_trl_value_head()
_patch_advantage_dump()
