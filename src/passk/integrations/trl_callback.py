"""pass@k, pass^k and maj@k evaluation inside TRL's ``GRPOTrainer`` (and ``PassKGRPOTrainer``).

TRL's evaluation computes the GRPO loss on eval prompts and logs the mean reward; it has no
pass@k. :class:`PassKEvalCallback` samples ``num_generations`` completions per eval prompt
with the trainer's own generation path (HF generate, vLLM, continuous batching: whatever the
trainer uses), scores them with the trainer's reward functions, and logs through
``trainer.log``::

    eval_pass@k, eval_pass@k/ci_lo, eval_pass@k/ci_hi   unbiased pass@k, bootstrap CI over prompts
    eval_pass^k, ...                                    all k correct, C(c, k)/C(n, k)
    eval_maj@k, ...                                     majority vote of k (with ``answer_fn``)

A completion is correct when its reward (the weighted sum of the reward functions, as TRL
sums them, or the one picked by ``reward_index``) is ``> threshold``.

It runs after each ``trainer.evaluate()`` (``eval_strategy``; the values are also added to
the metrics ``evaluate()`` returns) or, with ``eval_steps``, every ``eval_steps`` optimiser
steps on its own schedule (no TRL eval loop needed). Prompts are split across processes;
every process must run it (callbacks do).

TRL private API behind this one door (written for TRL 1.16): ``trainer._generate(prompts)``
(returns token ids and decoded completions of the already-repeated prompts) and
``trainer._calculate_rewards`` (rewards of all processes, gathered). The side-metrics
``_generate`` records (completion lengths) are discarded so they do not leak into TRL's own
eval log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from passk.core.defaults import NUM_RESAMPLES
from passk.integrations.trl import group_rewards
from passk.integrations.validation_table import grouped_metrics

__all__ = ["PassKEvalCallback"]

_TESTED_TRL = "1.16"

try:
    from transformers import TrainerCallback as _TrainerCallback
except ImportError:  # optional extra

    class _TrainerCallback:  # type: ignore[no-redef]
        """Placeholder so the module imports without transformers."""


class PassKEvalCallback(_TrainerCallback):
    """Log unbiased pass@k / pass^k (/ maj@k) of the policy on eval prompts.

    Args:
        trainer: the ``GRPOTrainer`` (or ``PassKGRPOTrainer``); add the callback with
            ``trainer.add_callback(callback)``.
        eval_dataset: rows with a ``prompt`` (and the columns the reward functions read);
            default ``trainer.eval_dataset``.
        num_generations: completions per prompt, n (default ``trainer.num_generations_eval``).
        ks: k values (default 1, 2, 4, ... n).
        eval_steps: run every ``eval_steps`` optimiser steps; None: after each evaluate().
        threshold: reward above which a completion counts as correct.
        reward_index: score with this reward function only (index into ``reward_funcs``);
            None: the weighted sum of all of them.
        answer_fn: ``(completion text, eval row) -> answer | None``; enables maj@k (the
            row is the dataset row of the completion's prompt, for a task's own parser).
        prompts_per_batch: prompts per process per generation call (default
            ``per_device_eval_batch_size // n``, at least 1).
        num_resamples, confidence, seed: the bootstrap interval over prompts.
        prefix: metric-name prefix (``eval`` -> ``eval_pass@4``).
    """

    def __init__(
        self,
        trainer: Any,
        eval_dataset: Any = None,
        *,
        num_generations: int | None = None,
        ks: Sequence[int] | None = None,
        eval_steps: int | None = None,
        threshold: float = 0.5,
        reward_index: int | None = None,
        answer_fn: Callable[[str, dict[str, Any]], Hashable | None] | None = None,
        prompts_per_batch: int | None = None,
        num_resamples: int = NUM_RESAMPLES,
        confidence: float = 0.95,
        seed: int = 0,
        prefix: str = "eval",
    ) -> None:
        self.trainer = trainer
        self.eval_dataset = eval_dataset
        n = num_generations if num_generations is not None else trainer.num_generations_eval
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"num_generations must be an integer >= 1, got {n!r}")
        bad = [k for k in (ks or []) if not (isinstance(k, int) and 1 <= k <= n)]
        if bad:
            raise ValueError(f"ks {bad} out of range: each k must be in [1, num_generations={n}]")
        if eval_steps is not None and (not isinstance(eval_steps, int) or eval_steps < 1):
            raise ValueError(f"eval_steps must be an integer >= 1 or None, got {eval_steps!r}")
        n_funcs = len(trainer.reward_funcs)
        if reward_index is not None and not 0 <= reward_index < n_funcs:
            raise ValueError(f"reward_index must be in [0, {n_funcs}), got {reward_index!r}")
        self.num_generations = n
        self.ks = list(ks) if ks is not None else None
        self.eval_steps = eval_steps
        self.threshold = float(threshold)
        self.reward_index = reward_index
        self.answer_fn = answer_fn
        self.prompts_per_batch = prompts_per_batch
        self.num_resamples = num_resamples
        self.confidence = confidence
        self.seed = seed
        self.prefix = prefix
        #: the metrics of the latest run (floats, prefixed), for tests and scripts.
        self.last_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ TRL hooks

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.eval_steps is None:
            metrics = self.evaluate()
            if isinstance(kwargs.get("metrics"), dict):
                kwargs["metrics"].update(metrics)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.eval_steps is not None and state.global_step % self.eval_steps == 0:
            self.evaluate()

    # ------------------------------------------------------------------ the run

    def evaluate(self) -> dict[str, float]:
        """Sample, score and log once; returns the logged metrics."""
        t = self.trainer
        dataset = self.eval_dataset if self.eval_dataset is not None else t.eval_dataset
        if dataset is None or isinstance(dataset, dict):
            raise ValueError(
                "PassKEvalCallback needs one eval dataset (eval_dataset=... or the trainer's); "
                f"got {type(dataset).__name__}"
            )
        rows = [dict(row) for row in dataset]
        if not rows:
            raise ValueError("the eval dataset is empty")
        n = self.num_generations
        world, rank = t.accelerator.num_processes, t.accelerator.process_index
        per = self.prompts_per_batch or max(1, t.args.per_device_eval_batch_size // n)
        step = per * world
        padded = rows + [rows[-1]] * (-len(rows) % step)  # every process runs every call

        was_training = t.model.training
        saved_metrics, saved_n = t._metrics["eval"], t.num_generations_eval
        correct: list[list[bool]] = []
        answers: list[list[Hashable | None]] = []
        try:
            t.model.eval()
            t.num_generations_eval = n  # what _generate / vLLM server mode read in eval mode
            for start in range(0, len(padded), step):
                chunk = padded[start + rank * per : start + (rank + 1) * per]
                flags, texts = self._score_chunk(chunk)
                correct += flags
                if self.answer_fn is not None:
                    answers += self._gather_answers(texts, chunk, n)
        finally:
            t._metrics["eval"] = defaultdict(list)  # drop _generate's side-metrics
            t.num_generations_eval = saved_n
            if was_training:
                t.model.train()
        correct, answers = correct[: len(rows)], answers[: len(rows)]
        values = grouped_metrics(
            correct,
            answers if self.answer_fn is not None else None,
            self.ks,
            num_resamples=self.num_resamples,
            confidence=self.confidence,
            seed=self.seed,
        )
        metrics = {f"{self.prefix}_{name}": value for name, value in values.items()}
        metrics[f"{self.prefix}_passk/num_prompts"] = float(len(rows))
        metrics[f"{self.prefix}_passk/num_generations"] = float(n)
        try:  # log in eval mode: TRL's log() then adds (and clears) the eval metrics only
            t.model.eval()
            t.log(dict(metrics))
        finally:
            t._metrics["eval"] = saved_metrics
            if was_training:
                t.model.train()
        self.last_metrics = metrics
        return metrics

    def _score_chunk(self, chunk: list[dict[str, Any]]) -> tuple[list[list[bool]], list[str]]:
        """Generate n completions per prompt of this process's ``chunk``; return the
        correctness flags of all processes' prompts ``[P_global][n]`` and the local texts."""
        t, n = self.trainer, self.num_generations
        inputs = [row for row in chunk for _ in range(n)]  # TRL's layout: a group is contiguous
        prompts = [x["prompt"] for x in inputs]
        with torch.no_grad():
            generated = t._generate(prompts)
            if not isinstance(generated, tuple) or len(generated) < 4:
                raise RuntimeError(
                    f"GRPOTrainer._generate returned {type(generated).__name__}; "
                    f"PassKEvalCallback was written for TRL {_TESTED_TRL}"
                )
            completion_ids, completions = generated[1], generated[3]
            rewards_per_func = t._calculate_rewards(inputs, prompts, completions, completion_ids)
        if self.reward_index is not None:
            scores = rewards_per_func[:, self.reward_index].view(-1, n)  # [P_global, n]
            scored = ~torch.isnan(scores)
        else:
            scores, scored = group_rewards(rewards_per_func, t.reward_weights, n)
        flags = (scored & (scores > self.threshold)).tolist()
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        return flags, texts

    def _gather_answers(
        self, texts: list[str], chunk: list[dict[str, Any]], n: int
    ) -> list[list[Hashable | None]]:
        rows = [row for row in chunk for _ in range(n)]
        local = [self.answer_fn(text, row) for text, row in zip(texts, rows)]  # type: ignore[misc]
        if self.trainer.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            local = gather_object(local)
        return [local[i : i + n] for i in range(0, len(local), n)]
