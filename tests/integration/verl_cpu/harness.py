"""Build the tiny model, tokenizer and parquet data, and the ``main_ppo`` command line.

Used by tests/integration/test_verl_e2e.py and runnable by hand (docs/integrations/verl.md,
"Run it on CPU")::

    python tests/integration/verl_cpu/harness.py /tmp/passk_verl_cpu [ESTIMATOR [OVERRIDE ...]]

builds everything under that directory and runs verl's own trainer for 2 steps
(``passk_analytic`` with ``+algorithm.passk.k=2`` by default); ``--vllm`` runs the same
on one GPU with vLLM rollouts (scripts/gpu_check.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PROMPTS = 4  # prompts per step
N = 4  # responses per prompt
STEPS = 2


def build_model(path: Path) -> None:
    """A random Llama (hidden 64, 2 layers) with the byte-level tokenizer of tests/conftest.py."""
    import importlib.util

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = importlib.util.spec_from_file_location(
        "passk_tests_conftest", REPO / "tests" / "conftest.py"
    )
    shared = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shared)
    tok = shared.make_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)


def build_data(path: Path, count: int) -> None:
    """verl's RL parquet layout: data_source, prompt (chat messages), reward_model."""
    import pandas as pd

    rows = [
        {
            "data_source": "tiny",
            "prompt": [{"role": "user", "content": f"say {i}"}],
            "ability": "toy",
            "reward_model": {"style": "rule", "ground_truth": str(i)},
            "extra_info": {"index": i},
        }
        for i in range(count)
    ]
    pd.DataFrame(rows).to_parquet(path)


def overrides(
    root: Path,
    estimator: str,
    extra: list[str] | None = None,
    validate: bool = True,
    vllm: bool = False,
) -> list[str]:
    """Hydra overrides of verl's ``ppo_trainer`` for a 2-step run under ``passk_sync``: on
    CPU with the ``hf_cpu`` rollout, or (``vllm``) on one GPU with vLLM rollouts."""
    model = root / "model"
    val = [
        "trainer.test_freq=2",
        "trainer.val_before_train=false",
        "actor_rollout_ref.rollout.val_kwargs.n=4",
        "actor_rollout_ref.rollout.val_kwargs.do_sample=true",
        "actor_rollout_ref.rollout.val_kwargs.temperature=1.0",
        "+trainer.passk_val.ks=[1,2,4]",
        "+trainer.passk_val.num_resamples=50",
    ]
    return [
        f"algorithm.adv_estimator={estimator}",
        "algorithm.use_kl_in_reward=false",
        "trainer.v1.trainer_mode=passk_sync",
        f"data.train_files={root / 'train.parquet'}",
        f"data.val_files={root / 'val.parquet'}",
        f"data.train_batch_size={PROMPTS}",
        "data.max_prompt_length=32",
        "data.max_response_length=8",
        "data.dataloader_num_workers=0",
        "data.shuffle=false",
        f"actor_rollout_ref.model.path={model}",
        "+actor_rollout_ref.model.override_config.attn_implementation=eager",
        "actor_rollout_ref.model.use_remove_padding=false",
        "actor_rollout_ref.actor.strategy=fsdp2",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={PROMPTS}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        "actor_rollout_ref.actor.fsdp_config.param_offload=false",
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload=false",
        f"actor_rollout_ref.rollout.name={'vllm' if vllm else 'hf_cpu'}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        f"actor_rollout_ref.rollout.n={N}",
        "actor_rollout_ref.rollout.temperature=1.0",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "actor_rollout_ref.rollout.free_cache_engine=false",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
        "reward.num_workers=1",
        f"reward.custom_reward_function.path={HERE / 'reward.py'}",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
        f"trainer.device={'cuda' if vllm else 'cpu'}",
        "trainer.n_gpus_per_node=1",
        "trainer.nnodes=1",
        f"trainer.total_training_steps={STEPS}",
        "trainer.save_freq=-1",
        "trainer.logger=[console,file]",
        "trainer.project_name=passk_e2e",
        f"trainer.experiment_name={estimator}",
        f"trainer.default_local_dir={root / 'ckpt'}",
        f"trainer.rollout_data_dir={root / 'rollouts'}",
        "ray_kwargs.ray_init.num_cpus=16",
        *(
            ["actor_rollout_ref.rollout.gpu_memory_utilization=0.3"]
            if vllm
            else ["+ray_kwargs.ray_init.num_gpus=1"]  # a scheduling slot; no CUDA is used
        ),
        *(val if validate else ["trainer.test_freq=-1", "trainer.val_before_train=false"]),
        *(extra or []),
    ]


def environment(dump: Path, vllm: bool = False) -> dict[str, str]:
    """The driver's environment; Ray's workers inherit it (Ray starts from this process).
    On a GPU (``vllm``) verl detects the platform itself."""
    env = dict(os.environ)
    if not vllm:
        env["VERL_PLATFORM"] = "cpu"
    env.update(
        {
            "VERL_USE_EXTERNAL_MODULES": "verl_cpu,passk.integrations.verl",
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "src"), str(HERE.parent), env.get("PYTHONPATH", "")]
            ),
            "PASSK_VERL_CPU_DUMP": str(dump),
            "VERL_FILE_LOGGER_PATH": str(dump / "metrics.jsonl"),
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "RAY_DEDUP_LOGS": "0",
        }
    )
    return env


def prepare(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "model" / "config.json").exists():
        build_model(root / "model")
    build_data(root / "train.parquet", PROMPTS * STEPS)
    build_data(root / "val.parquet", 2)


def run(
    root: Path,
    estimator: str,
    extra: list[str] | None = None,
    validate: bool = True,
    timeout: float = 900,
    vllm: bool = False,
) -> int:
    """``python -m verl.trainer.main_ppo`` with :func:`overrides`; its output goes to
    ``root/<estimator>.log``, what the hooks dump to ``root/<estimator>/``. Returns the exit
    status; on timeout the whole process group (Ray's processes included) is killed."""
    dump = root / estimator
    dump.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        *overrides(root, estimator, extra, validate, vllm),
    ]
    with open(root / f"{estimator}.log", "w") as log:
        proc = subprocess.Popen(
            cmd,
            env=environment(dump, vllm),
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise


if __name__ == "__main__":
    args = sys.argv[1:]
    vllm = "--vllm" in args
    args = [a for a in args if a != "--vllm"]
    where = Path(args[0] if args else "passk_verl_cpu").resolve()
    prepare(where)
    estimator = args[1] if len(args) > 1 else "passk_analytic"
    extra = args[2:] or ["+algorithm.passk.k=2"]
    status = run(where, estimator, extra, vllm=vllm)
    print(f"main_ppo exit {status}; log: {where / (estimator + '.log')}")
    sys.exit(status)
