"""How often do the intervals of ``passk diff`` hold a true difference of zero?

Simulated studies of two arms drawn from the same distribution (so every true difference
is 0), shaped like the evidence study: P problems with logit difficulty ~ N(mu, 1.5),
each training run (arm x seed) shifting every logit by its own N(0, sd_seed) and each
problem's by N(0, sd_problem) more, then c ~ Binomial(n, p) correct of n samples. For
each study and metric the script computes the engine's t-interval over per-seed
differences, its bootstrap over seeds and problems and the verdict (both exclude 0),
and, for comparison, the two intervals passk used before: a bootstrap over problems of
the seed-averaged differences (``passk sweep``) and a two-level bootstrap that redraws a
seeds x problems sub-array (``benchmarks/exploration.py``)::

    python benchmarks/diff_coverage.py                     # ~5 min on 2 CPU cores
    python benchmarks/diff_coverage.py --studies 100       # a quick look

It prints a Markdown table (coverage: the share of studies whose interval holds 0) and
writes ``benchmarks/results/diff_coverage.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "diff_coverage.json"
# (seeds, sd between training runs, sd of a run's per-problem change)
SCENARIOS = (
    (3, 0.0, 0.3),
    (3, 0.3, 0.3),
    (3, 0.6, 0.3),
    (5, 0.3, 0.3),
    (10, 0.3, 0.3),
    (1, 0.3, 0.3),
)
METRICS = (("pass_at_k", 1), ("pass_at_k", 64), ("pass_hat_k", 8), ("cover_at_tau", 0.5))


def simulate(
    rng: np.random.Generator, seeds: int, sd_seed: float, sd_problem: float, problems: int, n: int
) -> dict[str, np.ndarray]:
    """Correct counts ``c[2, S, P]`` of two arms on one set of problems."""
    difficulty = rng.normal(0.0, 1.5, problems)  # logit of pass@1 before any run's change
    shift = rng.normal(0.0, sd_seed, (2, seeds, 1)) + rng.normal(
        0.0, sd_problem, (2, seeds, problems)
    )
    p = 1 / (1 + np.exp(-(difficulty + shift)))
    return {"c": rng.binomial(n, p), "n": np.full(p.shape, n)}


def metric_values(c: np.ndarray, n: np.ndarray, metric: str, k: float) -> np.ndarray:
    from passk.core.compare import cover_at_tau
    from passk.core.metrics import pass_at_k_per_problem, pass_hat_k_per_problem

    if metric == "cover_at_tau":
        return cover_at_tau(c, n, [k])[..., 0]
    fn = pass_at_k_per_problem if metric == "pass_at_k" else pass_hat_k_per_problem
    flat = fn(n.ravel().tolist(), c.ravel().tolist(), [int(k)]).numpy()[:, 0]
    return flat.reshape(c.shape)


def former_intervals(
    diff: np.ndarray, rng: np.random.Generator, resamples: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The problems-only bootstrap of seed-averaged differences and the sub-array one."""
    from passk.core.metrics import bootstrap_mean_ci

    lo, hi = bootstrap_mean_ci(diff.mean(0)[:, None], resamples, seed=int(rng.integers(1 << 31)))
    s, p = diff.shape
    draws = [
        diff[np.ix_(rng.integers(0, s, s), rng.integers(0, p, p))].mean() for _ in range(resamples)
    ]
    q = np.quantile(draws, [0.025, 0.975])
    return (float(lo[0]), float(hi[0])), (float(q[0]), float(q[1]))


def run(studies: int, problems: int, n: int, resamples: int, seed: int) -> list[dict[str, Any]]:
    from passk.core.compare import compare_values

    rng = np.random.default_rng(seed)
    rows = []
    for seeds, sd_seed, sd_problem in SCENARIOS:
        hits = {
            m: {"t": 0, "boot": 0, "verdict": 0, "problems_only": 0, "sub_array": 0}
            for m in METRICS
        }
        for i in range(studies):
            sim = simulate(rng, seeds, sd_seed, sd_problem, problems, n)
            for metric, k in METRICS:
                v = metric_values(sim["c"], sim["n"], metric, k)  # [2, S, P]
                r = compare_values(v[0], v[1], resamples=resamples, seed=i)
                h = hits[(metric, k)]
                if r["t_ci"] is not None:
                    h["t"] += r["t_ci"][0] <= 0 <= r["t_ci"][1]
                h["boot"] += r["boot_ci"][0] <= 0 <= r["boot_ci"][1]
                h["verdict"] += not r["distinguishable"]
                old, sub = former_intervals(v[1] - v[0], rng, resamples)
                h["problems_only"] += old[0] <= 0 <= old[1]
                h["sub_array"] += sub[0] <= 0 <= sub[1]
        for (metric, k), h in hits.items():
            row = {
                "seeds": seeds,
                "sd_seed": sd_seed,
                "sd_problem": sd_problem,
                "metric": metric,
                "k": k,
                "studies": studies,
            }
            row |= {name: count / studies for name, count in h.items()}
            if seeds == 1:
                row["t"] = None
            rows.append(row)
            print(_row(row), flush=True)
    return rows


def _row(r: dict[str, Any]) -> str:
    name = {"pass_at_k": "pass@", "pass_hat_k": "pass^", "cover_at_tau": "Cover@"}[r["metric"]]
    t = "-" if r["t"] is None else f"{r['t']:.3f}"
    return (
        f"| {r['seeds']} | {r['sd_seed']} | {name}{r['k']} | {t} | {r['boot']:.3f} | "
        f"{r['verdict']:.3f} | {r['problems_only']:.3f} | {r['sub_array']:.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--problems", type=int, default=96)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    print(
        "| seeds | sd between runs | metric | t | bootstrap | not distinguishable | "
        "problems-only (former sweep) | sub-array (former study) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    rows = run(args.studies, args.problems, args.n, args.resamples, args.seed)
    result = {
        "what": "coverage of 95% intervals of a zero difference over simulated studies "
        "(benchmarks/diff_coverage.py)",
        "command": "python benchmarks/diff_coverage.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "problems": args.problems,
        "n": args.n,
        "resamples": args.resamples,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.json} ({result['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
