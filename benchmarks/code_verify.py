"""Throughput of the code sandbox: candidates verified per second, pool vs sequential.

Run: ``python benchmarks/code_verify.py [--n 64] [--workers N]``. Both modes verify the same
simple candidates (reference solutions of the built-in problems, 8 tests each, half of them
broken) in the same process; the ratio is what the bounded pool buys on this machine.
"""

from __future__ import annotations

import argparse
import os
import time

from passk.tasks import get_task
from passk.tasks.code import verify, verify_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="candidates per mode")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: CPUs)")
    args = parser.parse_args()

    problems = get_task("code").problems("train", args.n, seed=0)
    jobs = []
    for i, p in enumerate(problems):
        code, entry = p.meta["reference"], p.answer["entrypoint"]
        if i % 2:  # a wrong answer: same cost, different verdicts
            code += f"\n{entry} = lambda *args: None\n"
        jobs.append((code, entry, p.answer["tests"]))
    verify(*jobs[0])  # warm-up (imports, page cache)

    t = time.perf_counter()
    seq = [verify(*job) for job in jobs]
    t_seq = time.perf_counter() - t
    t = time.perf_counter()
    pooled = verify_many(jobs, max_workers=args.workers)
    t_pool = time.perf_counter() - t

    assert [r.passed for r in seq] == [r.passed for r in pooled]
    assert [r.full_pass for r in seq] == [i % 2 == 0 for i in range(len(jobs))]
    workers = args.workers or os.cpu_count()
    print(f"candidates: {len(jobs)} x {len(jobs[0][2])} tests, CPUs: {os.cpu_count()}")
    print(f"isolation: {', '.join(seq[0].isolation) or 'none'}")
    print(f"sequential:          {len(jobs) / t_seq:7.1f} candidates/s")
    print(f"pool ({workers} workers): {len(jobs) / t_pool:7.1f} candidates/s")
    print(f"pool / sequential:   {t_seq / t_pool:7.2f}x")


if __name__ == "__main__":
    main()
