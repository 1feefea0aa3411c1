"""Evaluate a run's starting model exactly as its trainer would at step 0.

    python -m passk.sweep.start_eval CONFIG.yaml OUT_DIR

The sweep runs this once per seed instead of once per arm. It builds the run's held-out
evaluation from the config as the trainer does (:mod:`passk.train.heldout`), without the
trainer's optimizer, reference model or collectors, so the report is the one every arm of
the seed would have written (``tests/test_sweep.py`` checks the equality on a tiny model).
``OUT_DIR`` becomes a run directory: ``config.yaml``, ``metrics.jsonl`` (the evaluation
record), ``evals/step_000000.json`` and ``done.json``. Exit 0 done, 2 bad config, 130
interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from passk.train.run_dir import RunDir


def evaluate_start(config_path: Path, out: Path) -> RunDir:
    """Write the step-0 evaluation of ``config_path``'s model into run directory ``out``.

    Builds only what the evaluation needs (task, sampling policy, held-out problems), the
    way the trainer builds them: no optimizer, reference model or collectors."""
    import torch

    from passk.train.config import dump_config, load_config, validate
    from passk.train.heldout import HeldOut, build_task, load_policy

    config = load_config(config_path)
    validate(config)
    run = RunDir(out)
    t0 = time.perf_counter()
    with run.lock("passk sweep start evaluation"):
        if config.model.threads:
            torch.set_num_threads(config.model.threads)
        task = build_task(config)
        policy = load_policy(config)
        heldout = HeldOut.from_config(config, task, policy, run)
        record = heldout.evaluate(
            policy.sampler, 0, lambda line: print(line, file=sys.stderr, flush=True)
        )
        run.write_config(dump_config(config))
        run.metrics.write_text(json.dumps(record) + "\n", encoding="utf-8")
        run.mark_finished(0, {"wall_s": time.perf_counter() - t0, "kind": "start_eval"})
    return run


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m passk.sweep.start_eval CONFIG.yaml OUT_DIR", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    from passk.train.cli import stop_signals_interrupt

    hf_logging.disable_progress_bar()
    try:
        with stop_signals_interrupt():
            run = evaluate_start(Path(args[0]), Path(args[1]))
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"passk sweep: start evaluation: error: {e}", file=sys.stderr)
        return 2
    report = run.read_eval(0)
    pairs = " ".join(f"pass@{k}={v:.3f}" for k, v in report.get("pass_at_k", {}).items())
    print(f"start evaluation -> {run.eval_path(0)}: {pairs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
