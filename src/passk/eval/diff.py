"""``passk diff A B``: did B expand or shrink what A can solve, with intervals that count seeds.

A and B are evaluation reports (``passk eval``'s ``eval.json``, from a local model,
``--samples`` or ``--endpoint``), directories holding one, or training run directories
(their last evaluation). Several of each are seeds, paired by position::

    passk diff runs/base/eval.json runs/trained/eval.json
    passk diff --a a_s0 a_s1 a_s2 --b b_s0 b_s1 b_s2 --json diff.json

The numbers come from :mod:`passk.core.compare` (intervals, verdicts, transitions);
this module reads reports, builds the per-seed per-problem arrays, prints the table and
writes the JSON and the figure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from passk.core.compare import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    compare_metrics,
    cover_at_tau,
    transitions,
)

METRIC_NAMES = {
    "pass_at_k": "pass@k",
    "pass_hat_k": "pass^k",
    "maj_at_k": "maj@k",
    "cover_at_tau": "Cover@tau",
}
DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75)


# --- reading ------------------------------------------------------------------------------------


def resolve_report(path: str | Path) -> Path:
    """The report file behind ``path``: the file itself, ``DIR/eval.json``, or a training
    run's final evaluation (``done.json``'s ``final_eval``, else its latest ``evals/``)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ValueError(f"{path}: no such report file or directory")
    if (path / "eval.json").is_file():
        return path / "eval.json"
    done = path / "done.json"
    if done.is_file():
        final = json.loads(done.read_text(encoding="utf-8")).get("final_eval")
        if final and (path / final).is_file():
            return path / final
    steps = sorted((path / "evals").glob("step_*.json"))
    if steps:
        return steps[-1]
    raise ValueError(f"{path}: holds no eval.json and no evals/step_*.json")


def load_report(path: str | Path) -> dict[str, Any]:
    """A report with its per-problem records checked (ids unique, counts consistent)."""
    file = resolve_report(path)
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not JSON ({e.msg} at line {e.lineno})") from None
    per = report.get("per_problem") if isinstance(report, dict) else None
    if not per:
        raise ValueError(f"{file}: not an evaluation report with per-problem results")
    ids = [str(p["id"]) for p in per]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{file}: problem ids repeat; they must identify problems")
    report["_path"] = str(file)
    return report


def _has_answers(report: Mapping[str, Any]) -> bool:
    return bool(report.get("maj_at_k")) and all(
        len(p.get("extracted") or []) == p["n"] for p in report["per_problem"]
    )


def shared_problems(reports: Sequence[Mapping[str, Any]], intersect: bool) -> list[str]:
    """The problem ids every report holds (in the first report's order); unless
    ``intersect``, refuse reports whose problem sets differ."""
    sets = [{str(p["id"]) for p in r["per_problem"]} for r in reports]
    common = set.intersection(*sets)
    if not intersect and any(s != sets[0] for s in sets):
        sizes = "/".join(str(len(s)) for s in sets)
        raise ValueError(
            f"the reports hold different problems ({sizes}); they share {len(common)}: "
            "pass --intersect to compare on those"
        )
    if not common:
        raise ValueError("the reports share no problem")
    return [str(p["id"]) for p in reports[0]["per_problem"] if str(p["id"]) in common]


def arm_arrays(
    reports: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    ks: Sequence[int],
    taus: Sequence[float],
    answers: bool,
) -> dict[str, np.ndarray]:
    """Per seed and problem: ``n``, ``c`` ``[S, P]`` and each metric ``[S, P, K]`` (NaN
    where a problem has fewer than k samples)."""
    from passk.core.majority import maj_at_k_per_problem
    from passk.core.metrics import pass_at_k_table, pass_hat_k_table

    out: dict[str, list[Any]] = {m: [] for m in ("n", "c", "pass_at_k", "pass_hat_k")}
    out |= {"cover_at_tau": []} | ({"maj_at_k": []} if answers else {})
    for report in reports:
        by_id = {str(p["id"]): p for p in report["per_problem"]}
        per = [by_id[i] for i in ids]
        ns, cs = [int(p["n"]) for p in per], [int(p["c"]) for p in per]
        out["n"].append(ns)
        out["c"].append(cs)
        out["pass_at_k"].append(pass_at_k_table(ns, cs, ks))
        out["pass_hat_k"].append(pass_hat_k_table(ns, cs, ks))
        out["cover_at_tau"].append(cover_at_tau(np.array(cs), np.array(ns), taus))
        if answers:
            # the report's own seed breaks ties among k-subsets drawn for very large n
            seed = int((report.get("config") or {}).get("seed") or 0)
            maj, _, _ = maj_at_k_per_problem(
                [p["extracted"] for p in per], [p["correct"] for p in per], ks, seed=seed
            )
            out["maj_at_k"].append(maj)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


# --- the comparison -----------------------------------------------------------------------------


def diff_reports(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    *,
    ks: Sequence[int] | None = None,
    taus: Sequence[float] = DEFAULT_TAUS,
    threshold: float = 0.0,
    intersect: bool = False,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparison of arm B against arm A (lists of reports, seeds paired by position;
    an arm of one report is paired with every seed of the other)."""
    if not a or not b:
        raise ValueError("each arm needs at least one report")
    if len(a) > 1 and len(b) > 1 and len(a) != len(b):
        raise ValueError(
            f"A has {len(a)} reports and B {len(b)}: seeds are paired by position, so give "
            "as many of each (or one for either arm)"
        )
    seeds = max(len(a), len(b))
    ids = shared_problems([*a, *b], intersect)
    n_min = min(int(p["n"]) for r in (*a, *b) for p in r["per_problem"] if str(p["id"]) in ids)
    n_max = max(int(p["n"]) for r in (*a, *b) for p in r["per_problem"] if str(p["id"]) in ids)
    if ks is None:
        from passk.core.metrics import default_ks

        ks = default_ks(n_min)
    ks = sorted({int(k) for k in ks})
    if ks[0] < 1 or ks[-1] > n_max:
        raise ValueError(f"k must be in 1..{n_max} (the largest n of a problem), got {ks}")
    answers = all(_has_answers(r) for r in (*a, *b))
    arrays = [arm_arrays(arm, ids, ks, taus, answers) for arm in (a, b)]
    # one report against several seeds: the single one stands for each of them
    arrays = [{k: np.repeat(v, seeds // len(v), axis=0) for k, v in x.items()} for x in arrays]
    metric_ks: dict[str, list[Any]] = {"pass_at_k": ks, "pass_hat_k": ks}
    if answers:
        metric_ks["maj_at_k"] = ks
    metric_ks["cover_at_tau"] = list(taus)
    metrics = compare_metrics(
        arrays[0], arrays[1], metric_ks, resamples=resamples, confidence=confidence, seed=seed
    )
    (xa, xb) = arrays
    moves = transitions(xa["c"], xa["n"], xb["c"], xb["n"], ids, threshold=threshold)
    notes = []
    if seeds == 1:
        notes.append(
            "one seed per arm: the intervals cover problems and evaluation samples, not the "
            "variance between training runs"
        )
    if len(a) != len(b):
        notes.append(
            f"{'A' if len(a) == 1 else 'B'} has one report, paired with each of the other's {seeds}"
        )
    if not answers:
        notes.append("maj@k left out: some report carries no extracted answers")
    return {
        "a": {"reports": [r["_path"] for r in a if "_path" in r]},
        "b": {"reports": [r["_path"] for r in b if "_path" in r]},
        "problems": len(ids),
        "seeds": seeds,
        "n": {"min": n_min, "max": n_max},
        "ks": ks,
        "taus": list(taus),
        "confidence": confidence,
        "resamples": resamples,
        "metrics": metrics,
        "transitions": moves,
        "notes": notes,
    }


# --- output -------------------------------------------------------------------------------------


def verdict(r: Mapping[str, Any]) -> str:
    if not r["distinguishable"]:
        return "not distinguishable"
    return "B higher" if r["diff"] > 0 else "B lower"


def signed(x: float) -> str:
    """``x`` with its sign to 3 decimals; a rounding residue prints as +0.000, not -0.000."""
    return f"{round(x, 3) + 0.0:+.3f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "-" if ci is None else f"({signed(ci[0])}, {signed(ci[1])})"


def format_table(result: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table, the transitions and the notes."""
    pct = round(result["confidence"] * 100)
    lines = [
        f"{result['problems']} problems, {result['seeds']} seed(s), n = "
        + (
            str(result["n"]["min"])
            if result["n"]["min"] == result["n"]["max"]
            else f"{result['n']['min']}..{result['n']['max']}"
        )
        + f"; {pct}% intervals: t over per-seed differences (df = seeds - 1), bootstrap over "
        "seeds and problems (widened to a score interval for 0/1 values). Distinguishable: "
        "both exclude 0.",
        "",
        "| metric | k | A | B | B - A | t-interval | bootstrap | per seed | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for metric, rows in result["metrics"].items():
        for k, r in rows.items():
            seeds = " ".join(signed(x) for x in r["per_seed"])
            diff = signed(r["diff"])
            if r["distinguishable"]:
                diff = f"**{diff}**"
            lines.append(
                f"| {METRIC_NAMES[metric]} | {k} | {r['a']:.3f} | {r['b']:.3f} | {diff} | "
                f"{_ci(r['t_ci'])} | {_ci(r['boot_ci'])} | {seeds} | {verdict(r)} |"
            )
    t = result["transitions"]
    per_seed = t["per_seed"]
    lines += [
        "",
        f"Transitions (solved: pass@1 > {t['threshold']:g}; summed over seeds, per seed "
        "in brackets):",
        f"  never -> solved {t['never_to_solved']} {per_seed['never_to_solved']}, "
        f"solved -> never {t['solved_to_never']} {per_seed['solved_to_never']}: "
        f"exact McNemar p = {t['mcnemar_p_solved']:.3g}",
        f"  not always -> always {t['not_always_to_always']} "
        f"{per_seed['not_always_to_always']}, always -> not always "
        f"{t['always_to_not_always']} {per_seed['always_to_not_always']}: "
        f"exact McNemar p = {t['mcnemar_p_always']:.3g}",
        f"  pass@1 per problem (mean over seeds): {t['sign_test']['better']} higher, "
        f"{t['sign_test']['worse']} lower in B: sign test p = {t['sign_test']['p']:.3g}",
    ]
    for name in ("never_to_solved", "solved_to_never"):
        ids = list(t["problems"][name])
        if ids:
            more = f" and {len(ids) - 8} more" if len(ids) > 8 else ""
            lines.append(f"  {name.replace('_', ' ')}: {', '.join(ids[:8])}{more}")
    lines += [f"Note: {n}." for n in result["notes"]]
    return "\n".join(lines) + "\n"


def draw(result: Mapping[str, Any], path: str | Path, labels: Sequence[str] = ("A", "B")) -> Path:
    """The two pass@k curves with their bands, B - A with both intervals, the transitions."""
    from passk.plots.common import k_axis, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    rows = result["metrics"]["pass_at_k"]
    ks = [int(k) for k in rows]
    ax = axes[0]
    for arm, label, colour in (("a", labels[0], "tab:blue"), ("b", labels[1], "tab:orange")):
        ax.plot(ks, [rows[str(k)][arm] for k in ks], "o-", color=colour, label=label)
        lo = [rows[str(k)][f"{arm}_ci"][0] for k in ks]
        hi = [rows[str(k)][f"{arm}_ci"][1] for k in ks]
        ax.fill_between(ks, lo, hi, color=colour, alpha=0.2)
    k_axis(ax, ks)
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1.02)
    ax.set_title("pass@k (bands: each arm's interval)")
    ax.legend()
    ax = axes[1]
    for metric, style in (("pass_at_k", "o-"), ("pass_hat_k", "s:"), ("maj_at_k", "^--")):
        if metric not in result["metrics"]:
            continue
        mr = result["metrics"][metric]
        mk = [int(k) for k in mr]
        line = ax.plot(mk, [mr[str(k)]["diff"] for k in mk], style, label=METRIC_NAMES[metric])
        colour = line[0].get_color()
        ax.fill_between(
            mk,
            [mr[str(k)]["boot_ci"][0] for k in mk],
            [mr[str(k)]["boot_ci"][1] for k in mk],
            color=colour,
            alpha=0.15,
        )
        if all(mr[str(k)]["t_ci"] is not None for k in mk):
            ax.plot(mk, [mr[str(k)]["t_ci"][0] for k in mk], ":", color=colour, lw=0.8)
            ax.plot(mk, [mr[str(k)]["t_ci"][1] for k in mk], ":", color=colour, lw=0.8)
    ax.axhline(0, color="grey", lw=0.8)
    k_axis(ax, ks)
    ax.set_ylabel(f"{labels[1]} - {labels[0]}")
    ax.set_title("difference (band: bootstrap; dotted: t over seeds)")
    ax.legend()
    ax = axes[2]
    t = result["transitions"]
    names = ["never_to_solved", "solved_to_never", "not_always_to_always", "always_to_not_always"]
    colours = ["tab:green", "tab:red", "tab:green", "tab:red"]
    ax.bar(range(4), [t[n] for n in names], color=colours)
    ax.set_xticks(range(4))
    ax.set_xticklabels(
        ["never ->\nsolved", "solved ->\nnever", "not always\n-> always", "always ->\nnot always"]
    )
    ax.set_ylabel(f"problems (summed over {result['seeds']} seed(s))")
    ax.set_title(f"transitions, {labels[0]} -> {labels[1]}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- command line -------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two arms of evaluation reports (B - A) with seed-aware intervals",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("reports", nargs="*", type=Path, help="A B: two reports or directories")
    p.add_argument("--a", nargs="+", type=Path, default=[], help="arm A's reports (one per seed)")
    p.add_argument("--b", nargs="+", type=Path, default=[], help="arm B's reports (one per seed)")
    p.add_argument(
        "--intersect",
        action="store_true",
        help="compare on the problems every report holds (default: refuse differing sets)",
    )
    p.add_argument("--ks", nargs="+", type=int, help="k values (default 1, 2, 4, ..., n)")
    p.add_argument(
        "--taus", nargs="+", type=float, default=list(DEFAULT_TAUS), help="Cover@tau thresholds"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="a problem is solved when its pass@1 exceeds this (transitions; default 0)",
    )
    p.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=DEFAULT_CONFIDENCE,
        help=f"interval level (default {DEFAULT_CONFIDENCE})",
    )
    p.add_argument(
        "--labels", nargs=2, default=["A", "B"], metavar=("A", "B"), help="names in the output"
    )
    p.add_argument("--json", type=Path, help="write the comparison here")
    p.add_argument(
        "--figure", type=Path, help="write the figure here (default: beside --json, .png)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.reports and (args.a or args.b):
        raise ValueError("give A B as two arguments or --a ... --b ..., not both")
    if args.reports:
        if len(args.reports) != 2:
            raise ValueError(f"expected two reports A B, got {len(args.reports)}")
        paths_a, paths_b = [args.reports[0]], [args.reports[1]]
    else:
        if not args.a or not args.b:
            raise ValueError("give A B, or --a REPORT... and --b REPORT...")
        paths_a, paths_b = args.a, args.b
    if any(not 0 <= t < 1 for t in args.taus):
        raise ValueError(f"--taus must be in [0, 1), got {args.taus}")
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {args.confidence}")
    if args.resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {args.resamples}")
    a = [load_report(p) for p in paths_a]
    b = [load_report(p) for p in paths_b]
    result = diff_reports(
        a,
        b,
        ks=args.ks,
        taus=args.taus,
        threshold=args.threshold,
        intersect=args.intersect,
        resamples=args.resamples,
        confidence=args.confidence,
    )
    result["labels"] = list(args.labels)
    print(f"B = {args.labels[1]} minus A = {args.labels[0]}")
    print(format_table(result), end="")
    figure = args.figure or (args.json.with_suffix(".png") if args.json else None)
    if args.json:
        from passk.eval.report import write_json_atomic

        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")
    if figure:
        print(f"wrote {draw(result, figure, args.labels)}")
    return 0
