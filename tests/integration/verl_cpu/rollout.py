"""A rollout backend for verl on CPU: ``transformers.generate`` in a Ray actor.

verl 0.9.1's v1 trainer takes rollouts only from server replicas (``vllm``, ``sglang``,
``trtllm``: ``RolloutReplicaRegistry`` in ``verl/workers/rollout/replica.py`` and
``_ROLLOUT_REGISTRY`` in ``verl/workers/rollout/base.py``); none of them runs without an
accelerator. ``actor_rollout_ref.rollout.name=hf_cpu`` selects this one:

- :class:`HFCPUServer`, a Ray actor holding the model, answers verl's token-in/token-out
  ``generate`` (what ``LLMServerClient.generate`` in ``verl/workers/rollout/llm_server.py``
  calls) by sampling with ``transformers``;
- :class:`HFCPUServerAdapter` is the rollout object in the actor worker
  (``engine_workers.py``, "build rollout engine"): ``update_weights`` receives the trainer's
  weights after each step (the sync trainer's "naive" checkpoint engine) and sends them to
  the server;
- :class:`HFCPUReplica` starts the server for ``LLMServerManager``.

Every weight load is recorded when ``PASSK_VERL_CPU_DUMP`` names a directory
(``weights_<n>.pt``), so a test can check that training moved the weights the rollout uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

DUMP_ENV = "PASSK_VERL_CPU_DUMP"


def server_name(replica_rank: int) -> str:
    return f"passk_hf_cpu_server_{replica_rank}"


class HFCPUServer:
    """One replica's model; generates one request at a time (a CPU has no batching to win)."""

    def __init__(self, model_path: str, response_length: int, dtype: str = "float32") -> None:
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(1)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, torch_dtype=getattr(torch, dtype), attn_implementation="eager"
        ).eval()
        self.response_length = response_length
        self.loads = 0
        self.global_steps: int | None = None

    def load_weights(self, named: list[tuple[str, torch.Tensor]], global_steps: Any = None) -> int:
        state = self.model.state_dict()
        for name, tensor in named:
            if name not in state:
                raise KeyError(f"rollout model has no weight {name!r}")
            state[name].copy_(tensor.to(state[name].dtype))
        self.loads += 1
        self.global_steps = global_steps
        dump = os.environ.get(DUMP_ENV)
        if dump:
            torch.save(
                {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                Path(dump) / f"weights_{self.loads}.pt",
            )
        return self.loads

    def generate(
        self, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any], **kwargs: Any
    ) -> TokenOutput:
        temperature = float(sampling_params.get("temperature", 1.0))
        top_p = float(sampling_params.get("top_p", 1.0))
        # verl's servers default to rollout.response_length (vllm_async_server.py, generate)
        limit = sampling_params.get("max_tokens") or sampling_params.get("max_new_tokens")
        max_tokens = min(int(limit or self.response_length), self.response_length)
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
        with torch.no_grad():
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p if temperature > 0 else None,
                top_k=0,
                max_new_tokens=max_tokens,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=self.model.config.pad_token_id,
            )
        tokens = out.sequences[0, ids.shape[1] :]
        logp = [
            float(torch.log_softmax(score[0].float(), -1)[tok])
            for score, tok in zip(out.scores, tokens.tolist())
        ]
        return TokenOutput(
            token_ids=tokens.tolist(),
            log_probs=logp,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    # The control calls verl's replica / checkpoint managers make; nothing to free on CPU.
    def wake_up(self) -> None: ...
    def sleep(self) -> None: ...
    def abort_all_requests(self, reject_request: bool = False) -> None: ...
    def resume_generation(self) -> None: ...
    def clear_kv_cache(self) -> None: ...
    def release_kv_cache(self) -> None: ...
    def resume_kv_cache(self) -> None: ...
    def start_profile(self, **kwargs: Any) -> None: ...
    def stop_profile(self) -> None: ...


class HFCPUServerAdapter(BaseRollout):
    """The rollout inside verl's actor worker: hands the trainer's weights to the server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, *args: Any, **kwargs: Any):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        self.replica_rank = rank
        self.is_leader_rank = True
        self.sleep_level = 2

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(self, weights: Any, wire_format: str = "named_tensors", **kwargs: Any):
        named = [(name, t.detach().to("cpu", torch.float32).clone()) for name, t in weights]
        server = ray.get_actor(server_name(self.replica_rank))
        await server.load_weights.remote(named, kwargs.get("global_steps"))


class HFCPUReplica(RolloutReplica):
    """Starts one :class:`HFCPUServer` per replica (one trainer rank per replica)."""

    async def launch_servers(self) -> None:
        name = server_name(self.replica_rank)
        server = (
            ray.remote(HFCPUServer)
            .options(name=name, num_cpus=0, max_concurrency=1)
            .remote(
                self.model_config.get("local_path") or self.model_config.path,
                self.config.response_length,
            )
        )
        await server.__ray_ready__.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = name
