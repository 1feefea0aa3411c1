"""Advantage estimator speed, as ratios against baselines timed in the same process.

    python benchmarks/advantages.py            # G = 4096 groups, N = 32 and N = 256
    python benchmarks/advantages.py --device cuda

Baselines:
- ``pass1`` (GRPO z-score): the cheapest estimator; the target is analytic Pass@k
  within 1.5x of it.
- a per-group Python loop with scipy binomials, the way the paper's public code computes
  the analytic advantage: the target is >= 30x slower than ours.
- ``floor``: one read and one write of the rewards (``rewards * 1.0``), the memory
  traffic no estimator can avoid.

The estimators of SPEC 1.8-1.9 (pass@k mixtures, MaxRL, RS-GRPO, W-REINFORCE, RLOO,
REINFORCE++, unlikeliness) are timed in the same table; their target is within 2x of
``pass1`` at G = 4096, N = 32 and N = 256.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.special import comb

from passk import compute_advantages


def loop_reference(rewards: np.ndarray, k: int) -> np.ndarray:
    """Analytic Pass@k one group at a time with raw binomials (the paper's style)."""
    out = np.zeros_like(rewards)
    n = rewards.shape[1]
    for g in range(rewards.shape[0]):
        n_pos = int(rewards[g].sum())
        n_neg = n - n_pos
        if n_pos == 0 or n_neg < k:
            continue
        rho = 1 - comb(n_neg, k) / comb(n, k)
        sigma = np.sqrt(rho * (1 - rho))
        a_pos = (1 - rho) / sigma
        a_neg = (1 - rho - comb(n_neg - 1, k - 1) / comb(n - 1, k - 1)) / sigma
        out[g] = np.where(rewards[g] > 0, a_pos, a_neg)
    return out


def timeit(fn: Callable[[], object], device: str, repeats: int, min_time: float = 0.2) -> float:
    """Median seconds per call over ``repeats`` batches of calls lasting >= min_time."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--groups", type=int, default=4096)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the loop reference is single-threaded, and "
        "on a loaded 2-core machine more threads mostly measure scheduler waits)",
    )
    args = ap.parse_args()
    dev = args.device
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}")

    for n in args.sizes:
        g = torch.Generator().manual_seed(0)
        acc = torch.rand(args.groups, 1, generator=g)
        rewards = (torch.rand(args.groups, n, generator=g) < acc).float().to(dev)
        partial = torch.rand(args.groups, n, generator=g).to(dev)
        k = min(args.k, n)
        times = {
            "floor (read+write)": timeit(lambda r=rewards: r * 1.0, dev, args.repeats),
            "pass1": timeit(lambda r=rewards: compute_advantages("pass1", r), dev, args.repeats),
            "passk_analytic": timeit(
                lambda r=rewards, k=k: compute_advantages("passk_analytic", r, k=k),
                dev,
                args.repeats,
            ),
            "maxk_analytic (continuous)": timeit(
                lambda r=partial, k=k: compute_advantages("maxk_analytic", r, k=k),
                dev,
                args.repeats,
            ),
            "passk_bootstrap": timeit(
                lambda r=rewards, k=k: compute_advantages("passk_bootstrap", r, k=k),
                dev,
                args.repeats,
            ),
        }
        seq_logp = -torch.rand(args.groups, n, generator=g).to(dev)
        frontier: dict[str, tuple[torch.Tensor, dict]] = {
            "passk_mixture {1, k, N}": (rewards, {"weights": {1: 0.5, k: 0.25, n: 0.25}}),
            "maxrl": (rewards, {}),
            "maxrl order=N": (rewards, {"order": n}),
            "rs_grpo": (rewards, {"beta": 2.0}),
            "w_reinforce": (rewards, {}),
            "rloo": (rewards, {}),
            "reinforce_pp": (rewards, {}),
            "unlikeliness": (rewards, {"seq_logp": seq_logp}),
        }
        for label, (r, params) in frontier.items():
            name = label.split(" ")[0]
            times[label] = timeit(
                lambda r=r, name=name, params=params: compute_advantages(name, r, **params),
                dev,
                args.repeats,
            )
        rewards_np = rewards.cpu().numpy().astype(np.float64)
        times["loop reference (scipy)"] = timeit(
            lambda r=rewards_np, k=k: loop_reference(r, k), "cpu", max(3, args.repeats // 2)
        )
        ours = compute_advantages("passk_analytic", rewards.double(), k=k).cpu().numpy()
        max_err = float(np.abs(ours - loop_reference(rewards_np, k)).max())

        print(f"\nG = {args.groups}, N = {n}, k = {k}  (analytic vs loop max |diff| {max_err:.1e})")
        print(f"{'estimator':30s} {'time':>12s} {'x pass1':>9s} {'x floor':>9s}")
        for name, t in times.items():
            print(
                f"{name:30s} {t * 1e3:10.3f}ms {t / times['pass1']:9.2f} {t / times['floor (read+write)']:9.1f}"
            )
        print(
            f"ratio analytic/pass1: {times['passk_analytic'] / times['pass1']:.2f} (target <= 1.5)"
        )
        speedup = times["loop reference (scipy)"] / times["passk_analytic"]
        print(f"speedup vs loop reference: {speedup:.0f}x (target >= 30)")
        slow = [f"{lab} {times[lab] / times['pass1']:.2f}x" for lab in frontier]
        print("SPEC 1.8-1.9 estimators vs pass1 (target <= 2): " + ", ".join(slow))


if __name__ == "__main__":
    main()
