"""How long the mechanism lab's exact dynamics take, per estimator per 1,000 steps.

    python benchmarks/simulate.py                      # print the table
    python benchmarks/simulate.py --json benchmarks/results/simulate.json

Two populations: the two-mode case of docs/mechanism.md (4 problems x 3 strategies, shared
logits) and a random one (256 problems x 16 strategies, shared + per-problem logits, Adam).
Groups of 16. Each estimator runs ``--steps`` exact updates ``--repeats`` times, interleaved
with Pass@1 (the baseline of the ratio) in the same process; the table gives the median
seconds per 1,000 steps and the ratio to Pass@1's. A sampled-mode row (8 problems x 16
responses per step) shows what the batch-level control costs. float64 on the CPU; the
CPU's native-bf16 capability is recorded with the results (the lab does not use bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from passk.sim import Arm, Optimizer, Phase, PolicySpec, random_population, run_arm, two_mode

ESTIMATORS = [
    ("pass1", {}),
    ("passk_analytic", {"k": 4}),
    ("pkpo_loo", {"k": 4}),
    ("maxrl", {}),
    ("passk_mixture", {"weights": {1: 0.5, 4: 0.5}}),
    ("rloo", {}),
    ("w_reinforce", {}),
    ("rs_grpo", {}),
]


def _cpu_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _time(pop, arm, steps: int, **kw) -> float:
    start = time.perf_counter()
    run_arm(pop, arm, n=16, steps=steps, log_every=steps, **kw)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = {
        "two_mode (4 x 3, shared, sgd)": (
            two_mode(0.75, 4),
            {"policy": PolicySpec(init=(2.0, -1.0, 0.0)), "optimizer": Optimizer(lr=1.0)},
        ),
        "random (256 x 16, both, adam)": (
            random_population(256, 16, density=0.15, seed=0),
            {"policy": PolicySpec(parameters="both"), "optimizer": Optimizer("adam", lr=0.02)},
        ),
    }
    rows = []
    per_k = 1000 / args.steps
    for case, (pop, kw) in cases.items():
        base_arm = Arm("pass1", (Phase("pass1"),))
        for name, params in ESTIMATORS:
            arm = Arm(name, (Phase(name, params),))
            mine, base = [], []
            for _ in range(args.repeats):  # interleaved with the baseline
                base.append(_time(pop, base_arm, args.steps, **kw))
                mine.append(_time(pop, arm, args.steps, **kw))
            rows.append(
                {
                    "case": case,
                    "mode": "exact",
                    "estimator": name,
                    "s_per_1000_steps": statistics.median(mine) * per_k,
                    "ratio_vs_pass1": statistics.median(mine) / statistics.median(base),
                }
            )
            print(f"{case:32s} exact   {name:16s} {rows[-1]['s_per_1000_steps']:7.3f} s/1000 steps"
                  f"  x{rows[-1]['ratio_vs_pass1']:.2f} of pass1")  # fmt: skip
    pop, kw = cases["two_mode (4 x 3, shared, sgd)"]
    exact = Arm("pass1", (Phase("pass1"),))
    for name, params in [("pass1", {}), ("pass1_matched", {"k": 4})]:
        arm = Arm(name, (Phase(name, params),))
        mine, base = [], []
        for _ in range(args.repeats):
            base.append(_time(pop, exact, args.steps, **kw))
            mine.append(_time(pop, arm, args.steps, mode="stochastic", batch_problems=8, **kw))
        rows.append(
            {
                "case": "two_mode (4 x 3, shared, sgd)",
                "mode": "stochastic (8 problems x 16)",
                "estimator": name,
                "s_per_1000_steps": statistics.median(mine) * per_k,
                "ratio_vs_pass1": statistics.median(mine) / statistics.median(base),
            }
        )
        print(f"{'two_mode (4 x 3, shared, sgd)':32s} sampled {name:16s} "
              f"{rows[-1]['s_per_1000_steps']:7.3f} s/1000 steps  x{rows[-1]['ratio_vs_pass1']:.2f} "
              "of exact pass1")  # fmt: skip
    if args.json:
        out = {
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "cpu_native_bf16": _cpu_bf16(),
            "threads": args.threads,
            "steps": args.steps,
            "repeats": args.repeats,
            "load_avg_end": os.getloadavg()[0],
            "rows": rows,
        }
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
