"""What ``rollout.prompts_per_step`` buys: a training step's throughput by the rows it samples.

A decoding step of a small model costs nearly the same for 32 or 256 concurrent sequences
(per-step overhead, not arithmetic, bounds it on a CPU), while the update's cost grows
with the rows. This benchmark trains the default recipe in this process for each
``--prompts`` value (``rollout.prompts_per_step``; ``rollout.n`` stays at its default, so
the step samples ``prompts x n`` sequences at once), one warm-up step and ``--steps``
measured ones each, arms interleaved ``ABC CBA`` so load drift hits all alike, and prints
per arm the generation tokens/s, the update's trained tokens/s and the whole step's
generated tokens/s, each as a ratio to the first arm (the default, 4 prompts).

    python benchmarks/step_batch.py --threads 2                 # 4, 8, 16, 32 prompts
    python benchmarks/step_batch.py --prompts 4 32 --steps 1    # quicker
    python benchmarks/step_batch.py --quick                     # smoke run (seconds)

The result lands in ``benchmarks/results/step_batch.json`` with the machine's bf16 flags.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from machine import write_result

METRICS = {
    "gen_tok_s": "perf/gen_tokens_per_s",
    "step_tok_s": "perf/tokens_per_s",
    "generate_s": "time/generate",
    "update_s": "time/update",
    "step_s": "time/step",
    "trained_tokens": "perf/trained_tokens",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--prompts", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--steps", type=int, default=2, help="measured steps per arm and round")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (ABC, CBA, ...)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 and 2 prompts, 8 tokens")
    p.add_argument("--result-name", default="step_batch")
    return p


def _overrides(args: argparse.Namespace, prompts: int, steps: int) -> list[str]:
    base = [
        f"steps={steps}",
        f"rollout.prompts_per_step={prompts}",
        "eval.problems=0",
        "eval.at_start=false",
        "eval.at_end=false",
        "checkpoint.every=1000",  # only the final one, after the measured steps
    ]
    return base + list(args.set)


def run_arm(args: argparse.Namespace, prompts: int, root: Path, index: int) -> list[dict]:
    """One warm-up + ``args.steps`` steps of the recipe at ``prompts`` prompts per step."""
    from passk.train.config import load_config
    from passk.train.loop import train

    config = load_config(None, _overrides(args, prompts, 1 + args.steps))
    records: list[dict[str, Any]] = []
    train(config, root / f"run{index}", on_step=records.append)
    return records[1:]  # the warm-up step pays the first-call costs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.prompts, args.steps, args.rounds = [1, 2], 1, 1
        args.set = [*args.set, "rollout.max_new_tokens=8"]
    import torch

    torch.set_num_threads(args.threads)
    order: list[int] = []
    for r in range(args.rounds):
        order += args.prompts if r % 2 == 0 else args.prompts[::-1]
    got: dict[int, list[dict]] = {p: [] for p in args.prompts}
    with tempfile.TemporaryDirectory(prefix="passk-step-batch-") as tmp:
        for i, prompts in enumerate(order):
            got[prompts] += run_arm(args, prompts, Path(tmp), i)
    table = {
        p: {name: statistics.median(float(r[key]) for r in recs) for name, key in METRICS.items()}
        for p, recs in got.items()
    }
    base = table[args.prompts[0]]
    n = _n(args)
    print(
        f"{'prompts':>7} {'rows':>5} {'gen tok/s':>10} {'x':>5} {'update tok/s':>12} {'x':>5} "
        f"{'step tok/s':>10} {'x':>5} {'generate s':>10} {'update s':>9}"
    )
    for p, m in table.items():
        update_tok_s = m["trained_tokens"] / m["update_s"]
        base_update = base["trained_tokens"] / base["update_s"]
        m["update_tok_s"] = update_tok_s
        print(
            f"{p:7d} {p * n:5d} {m['gen_tok_s']:10.1f} {m['gen_tok_s'] / base['gen_tok_s']:5.2f} "
            f"{update_tok_s:12.1f} {update_tok_s / base_update:5.2f} "
            f"{m['step_tok_s']:10.1f} {m['step_tok_s'] / base['step_tok_s']:5.2f} "
            f"{m['generate_s']:10.2f} {m['update_s']:9.2f}"
        )
    result = {
        "arms": {str(p): m for p, m in table.items()},
        "ratios_to_first": {
            str(p): {
                "gen_tok_s": m["gen_tok_s"] / base["gen_tok_s"],
                "step_tok_s": m["step_tok_s"] / base["step_tok_s"],
            }
            for p, m in table.items()
        },
        "settings": vars(args) | {"n": n},
    }
    print(f"wrote {write_result(args.result_name, result)}")
    return 0


def _n(args: argparse.Namespace) -> int:
    from passk.train.config import load_config

    return load_config(None, list(args.set)).rollout.n


if __name__ == "__main__":
    raise SystemExit(main())
