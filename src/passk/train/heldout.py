"""A run's held-out evaluation, built from its config alone: no optimizer, no reference.

The trainer evaluates its sampling policy on ``eval.problems`` problems of ``eval.split``
(picked with seed 0, whatever the run's seed, so every run of a comparison sees the same
problems), with the samples' seed ``derive_seed(seed, "eval")``. :class:`HeldOut` holds
what that needs (task, problems, tokenizer, settings, the base model's identity, the run
directory) and :meth:`HeldOut.evaluate` writes ``RUN/evals/step_N.json`` and returns the
metrics record. The trainer's evaluation hook and the sweep's shared start evaluation
(:mod:`passk.sweep.start_eval`) both use it; :func:`build_task` and :func:`load_policy`
are the trainer's own construction of the task and of the sampling policy, so the start
evaluation samples exactly as the trainer would at step 0.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from passk.seeds import derive_seed
from passk.train.config import TrainConfig
from passk.train.lora import apply_lora
from passk.train.run_dir import RunDir

__all__ = ["PROBLEM_SEED", "HeldOut", "Policy", "build_task", "heldout_settings", "load_policy"]

# tokens budgeted per row for the prompt when sizing batches automatically
PROMPT_ALLOWANCE = 256
# the held-out problems are picked with this seed, whatever the run's seed, so that every
# run of a comparison is evaluated on the same problems
PROBLEM_SEED = 0


def build_task(c: TrainConfig) -> Any:
    """The run's task (with its reward, if the config names one)."""
    from passk.tasks.registry import get_task
    from passk.tasks.rewards import RewardTask, get_reward

    task = get_task(c.task.name, **c.task.options)
    return task if c.task.reward is None else RewardTask(task, get_reward(c.task.reward))


@dataclass
class Policy:
    """The loaded model: ``model`` is trained, ``sampler`` samples (the model itself or a
    copy in ``model.rollout_dtype``); ``identity`` names the loaded base."""

    identity: Any
    model: Any
    tokenizer: Any
    sampler: Any
    device: Any


def load_policy(c: TrainConfig) -> Policy:
    """Load ``model.name``, add LoRA adapters if configured, and make the sampling copy."""
    from passk.rollout.models import load_model, resolve_device, resolve_dtype

    device = resolve_device(c.model.device)
    loaded = load_model(c.model.name, dtype=c.model.dtype, device=c.model.device)
    model = loaded.model
    model.config.use_cache = False
    if c.model.lora is not None:
        model = apply_lora(model, c.model.lora, derive_seed(c.seed, "lora-init"))
    sampler = model  # the sampling copy: the policy itself, or a low-precision copy
    rollout_dtype = resolve_dtype(c.model.rollout_dtype, device)
    if rollout_dtype != next(model.parameters()).dtype:
        sampler = copy.deepcopy(model).to(rollout_dtype)
        sampler.eval().requires_grad_(False)
    return Policy(loaded.identity, model, loaded.tokenizer, sampler, device)


def heldout_settings(c: TrainConfig, batch_size: int | str = "auto") -> Any:
    """The :class:`~passk.eval.evaluate.EvalConfig` of a run's held-out evaluations (also
    what ``passk eval --training-eval RUN`` reproduces); its problems are ``eval.problems``
    of ``eval.split`` picked with :data:`PROBLEM_SEED`."""
    from passk.eval.evaluate import EvalConfig

    e = c.eval
    return dataclasses.replace(
        EvalConfig(),
        n=e.n,
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=e.max_new_tokens or c.rollout.max_new_tokens,
        seed=derive_seed(c.seed, "eval"),  # the same samples' seeds at every evaluation
        batch_size=batch_size,
        score_timeout=c.task.score_timeout,
        keep_completions=False,
        system_prompt=c.task.system_prompt,
    )


@dataclass
class HeldOut:
    """The run's held-out problems and evaluation settings."""

    config: TrainConfig
    task: Any
    problems: list[Any]
    tokenizer: Any
    batch_size: int | str
    base: Any
    """The loaded model's identity (``ModelIdentity``)."""
    run: RunDir

    @classmethod
    def from_config(cls, c: TrainConfig, task: Any, policy: Policy, run: RunDir) -> HeldOut:
        from passk.rollout.generate import auto_batch_size

        e = c.eval
        problems = task.problems(e.split, e.problems, PROBLEM_SEED) if e.problems else []
        batch_size = c.rollout.batch_size
        if batch_size == "auto":
            budget = (c.eval.max_new_tokens or c.rollout.max_new_tokens) + PROMPT_ALLOWANCE
            batch_size = auto_batch_size(policy.sampler, max(len(problems) * c.eval.n, 1), budget)
        return cls(c, task, problems, policy.tokenizer, batch_size, policy.identity, run)

    def settings(self) -> Any:
        """The :class:`~passk.eval.evaluate.EvalConfig` of every evaluation of the run."""
        return heldout_settings(self.config, self.batch_size)

    def identity_at(self, step: int) -> dict[str, Any]:
        """The evaluated policy, for a report: the run at ``step``, with the base it started from.

        ``name`` is ``RUN step N`` (what a comparison of two reports labels them by);
        ``fingerprint`` tells apart the weights of two runs or two steps without hashing them
        (the base's fingerprint, the config's and the step); ``base`` is the loaded model's
        identity (name, source, file fingerprint).
        """
        base = self.base.to_dict()
        key = f"{base.get('fingerprint')}|{self.config.fingerprint()}|{step}"
        return {
            **base,
            "name": f"{self.run.path.name} step {step}",
            "source": str(self.run.path),
            "fingerprint": hashlib.sha256(key.encode()).hexdigest()[:16],
            "run": self.run.path.name,
            "step": step,
            "base": base,
        }

    def evaluate(
        self, sampler: Any, step: int, notify: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Evaluate ``sampler`` on the held-out problems; write its report; a record."""
        from passk.eval.evaluate import evaluate as run_eval
        from passk.eval.evaluate import progress_lines
        from passk.eval.report import write_json_atomic

        cfg = self.settings()
        progress = None
        if notify is not None:
            total = len(self.problems) * cfg.n
            progress = progress_lines(notify, total, f"eval at step {step}") if total else None
        result = run_eval(
            sampler, self.tokenizer, self.task, self.problems, config=cfg, progress=progress
        )
        report = result.to_dict(step=step, model=self.identity_at(step))
        write_json_atomic(self.run.eval_path(step), report)
        s = result.summary()
        rec: dict[str, Any] = {"kind": "eval", "step": step}
        for k, v in s["pass_at_k"].items():
            rec[f"eval/pass@{k}"] = v
        rec["eval/entropy"] = s.get("mean_entropy")
        rec["eval/wrong_diversity"] = s.get("answer_diversity")
        rec["eval/length_mean"] = s.get("mean_length")
        rec["eval/reward_mean"] = s.get("mean_reward")
        rec["time/eval"] = s.get("elapsed_s")
        return rec
