"""``passk eval --training-eval RUN``: the settings of a training run's own evaluation.

The trainer evaluates its held-out problems (``RUN/evals/step_N.json``) with settings
that ``passk eval``'s defaults do not give: the problems are ``eval.problems`` of
``eval.split`` picked with seed 0 (whatever the run's seed), the samples are drawn with
seed ``derive_seed(seed, "eval")``, the batch size is the trainer's (``auto`` resolves
to another number than ``passk eval``'s), the budget is ``eval.max_new_tokens`` or the
rollout's, and the model samples in ``model.rollout_dtype``. This module reads them from
``RUN/config.yaml`` (and the batch size from the newest ``RUN/evals/step_N.json``), so
``passk eval --training-eval RUN --model RUN/checkpoints/step_N`` draws the same samples
as the trainer's evaluation at step N (``--model`` of the base model: step 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# flags --training-eval sets; giving one of them too is refused (the run decides them)
SET_BY_RUN = {
    "task": "--task",
    "reward": "--reward",
    "split": "--split",
    "problems": "--problems",
    "problem_seed": "--problem-seed",
    "seed": "--seed",
    "n": "--n",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "max_new_tokens": "--max-new-tokens",
    "system_prompt": "--system-prompt",
}


def _recorded_batch_size(run: Path) -> int | None:
    """The batch size of the run's newest evaluation report (None: no report yet)."""
    reports = sorted((run / "evals").glob("step_*.json"))
    for path in reversed(reports):
        try:
            size = json.loads(path.read_text(encoding="utf-8")).get("config", {}).get("batch_size")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(size, int) and size >= 1:
            return size
    return None


def apply_training_eval(args: argparse.Namespace, defaults: dict[str, Any]) -> list[str]:
    """Fill ``args`` with the evaluation settings of run ``args.training_eval``; notes
    to print. ``defaults``: the parser's defaults (a flag still at its default is set
    from the run; ``--batch-size``, ``--dtype``, ``--device``, ``--threads`` and
    ``--score-timeout`` given explicitly win)."""
    from passk.train.config import load_config
    from passk.train.heldout import PROBLEM_SEED, heldout_settings

    run = Path(args.training_eval)
    config_file = run / "config.yaml"
    if not config_file.is_file():
        raise ValueError(
            f"--training-eval {run}: no config.yaml there (not a training run directory)"
        )
    given = [flag for name, flag in SET_BY_RUN.items() if getattr(args, name) is not None]
    if args.task_option:
        given.append("--task-option")
    if given:
        raise ValueError(
            f"--training-eval {run} sets {', '.join(given)} from the run's config; leave "
            f"{'it' if len(given) == 1 else 'them'} out"
        )
    if args.samples is not None or args.endpoint is not None:
        raise ValueError("--training-eval samples a local model; not with --samples or --endpoint")
    c = load_config(config_file)
    e = c.eval
    if e.split not in ("train", "test"):
        raise ValueError(f"--training-eval {run}: eval.split {e.split!r} is not train or test")
    args.task, args.task_option, args.reward = (
        c.task.name,
        list(c.task.options.items()),
        c.task.reward,
    )
    args.split, args.problems, args.problem_seed = e.split, e.problems, PROBLEM_SEED
    s = heldout_settings(c)  # the trainer's own settings of its evaluations
    args.seed, args.n, args.temperature, args.top_p = s.seed, s.n, s.temperature, s.top_p
    args.max_new_tokens, args.system_prompt = s.max_new_tokens, s.system_prompt
    notes = []
    if args.model is None:
        args.model = str(run)  # its newest checkpoint
    at_default = {name for name, value in defaults.items() if getattr(args, name, None) == value}
    if "dtype" in at_default:
        # loaded as the trainer loads it, then cast as its sampling copy is
        args.dtype, args.sample_dtype = c.model.dtype, c.model.rollout_dtype
    if "device" in at_default:
        args.device = c.model.device
    if "threads" in at_default:
        args.threads = c.model.threads
    if "score_timeout" in at_default:
        args.score_timeout = c.task.score_timeout or 0.0
    if "batch_size" in at_default:
        recorded = _recorded_batch_size(run)
        if recorded is not None:
            args.batch_size = str(recorded)
        elif c.rollout.batch_size != "auto":
            args.batch_size = str(c.rollout.batch_size)
        else:
            notes.append(
                f"{run} has no evaluation report to take the batch size from: 'auto' may "
                "pick another one than the trainer did, and the samples may then differ"
            )
    if not e.problems:
        raise ValueError(f"--training-eval {run}: the run evaluates no problems (eval.problems=0)")
    return notes
