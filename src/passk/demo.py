"""`passk demo`: what the numerics core computes, on one screen.

Prints the advantages every binary estimator gives a correct and a wrong response at
several group accuracies, the eta curves (total optimisation strength per group), and
where each curve peaks. Pure tensor math: no model, runs in a second.
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from passk.core.advantages import compute_advantages, eta_curve

ESTIMATORS: dict[str, dict] = {
    "pass1": {},
    "passk_analytic": {"k": None},
    "passk_combination": {"k": None},
    "passk_exceed": {"k": None},
    "maxk_analytic": {"k": None},
    "pkpo_loo": {"k": None, "normalize": True},
}


def _params(name: str, k: int) -> dict:
    return {key: (k if value is None else value) for key, value in ESTIMATORS[name].items()}


def run(n: int, k: int, console: Console) -> None:
    console.print(f"[bold]passk demo[/]: groups of N = {n} binary rewards, k = {k}\n")
    accs = [1, n // 8, n // 4, n // 2, 3 * n // 4, n - k, n - 1]
    accs = sorted({a for a in accs if 0 < a < n})

    table = Table(title="advantage of a correct / a wrong response, N_pos correct of N")
    table.add_column("N_pos", justify="right")
    for name in ESTIMATORS:
        table.add_column(name, justify="right", no_wrap=True)
    rows = torch.zeros(len(accs), n)
    for i, n_pos in enumerate(accs):
        rows[i, :n_pos] = 1
    advs = {name: compute_advantages(name, rows, **_params(name, k)) for name in ESTIMATORS}
    for i, n_pos in enumerate(accs):
        cells = [f"{advs[nm][i, 0]:+.3f}/{advs[nm][i, -1]:+.3f}" for nm in ESTIMATORS]
        table.add_row(str(n_pos), *cells)
    console.print(table)

    eta_table = Table(title="eta = sum |A| over the group, by accuracy N_pos / N")
    eta_table.add_column("accuracy", justify="right")
    curves = {name: eta_curve(name, n, **_params(name, k)) for name in ESTIMATORS}
    for name in curves:
        eta_table.add_column(name, justify="right", no_wrap=True)
    step = max(1, n // 16)
    for n_pos in range(0, n + 1, step):
        acc = n_pos / n
        eta_table.add_row(f"{acc:.2f}", *[f"{curves[nm][1][n_pos]:.2f}" for nm in curves])
    console.print(eta_table)
    for name, (acc, eta) in curves.items():
        console.print(f"  {name:18s} peaks at accuracy {acc[eta.argmax()].item():.2f}")
    console.print(
        "\nPass@1 pushes hardest at 50% accuracy; analytic Pass@k moves the push to hard "
        "prompts and stops pushing once a k-group is sure to contain a correct answer."
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="print advantages and eta curves of the core estimators")
    p.add_argument("--n", type=int, default=32, help="group size N (default 32)")
    p.add_argument("--k", type=int, default=4, help="pass@k group size k (default 4)")
    p.set_defaults(func=lambda args: run(args.n, args.k, Console(width=max(Console().width, 120))))
