"""A sweep's results from its run directories: per run, per arm, and arms compared.

Everything here reads files (evaluation reports, ``metrics.jsonl``) and returns plain
dicts; :func:`build_summary` assembles ``summary.json``. Paired comparisons take, for
each seed and problem, the difference of per-problem pass@k between an arm and the
reference arm after training (the same held-out problems; seed s of both arms starts
from the same weights) and hand the seeds x problems array to
:func:`passk.core.compare.compare_values`: a t-interval over the per-seed differences
and a bootstrap over seeds and problems, distinguishable only when both exclude 0.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from passk.core.defaults import NUM_RESAMPLES
from passk.core.metrics import (
    pass_at_k_ci,
    pass_at_k_curve,
    pass_at_k_per_problem,
)
from passk.sweep.plan import Plan, Run, portable
from passk.sweep.runner import read_outcome
from passk.train.run_dir import RunDir, metric_series


def eval_summary(
    report: Mapping[str, Any],
    ks: Sequence[int],
    *,
    resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """pass@k at ``ks`` with bootstrap CIs, the whole curve k = 1..n, and the report's facts."""
    per = report["per_problem"]
    if not per:
        raise ValueError("the evaluation report has no problems")
    ns, cs = [p["n"] for p in per], [p["c"] for p in per]
    n = min(ns)
    ks = [k for k in ks if k <= n]
    curve = pass_at_k_curve(ns, cs, range(1, n + 1))
    ci = pass_at_k_ci(ns, cs, ks, num_resamples=resamples, confidence=confidence, seed=0)
    return {
        "step": report.get("step"),
        "num_problems": len(per),
        "n": n,
        "pass_at_k": {str(k): curve[k] for k in ks},
        "ci95": {str(k): list(ci[k]) for k in ks},
        "curve": [curve[k] for k in range(1, n + 1)],
        "entropy": report.get("mean_entropy"),
        "wrong_diversity": report.get("answer_diversity"),
        "mean_length": report.get("mean_length"),
        "truncated_fraction": report.get("truncated_fraction"),
        "elapsed_s": report.get("elapsed_s"),
        "correct_per_problem": {str(p["id"]): p["c"] for p in per},
    }


def window(steps: int) -> int:
    """Steps averaged for "first" and "last" training values (and figure smoothing)."""
    return max(1, min(5, steps // 8))


_TRAIN_KEYS = (
    ("entropy", "actor/entropy"),
    ("reward", "reward/mean"),
    ("wrong_diversity", "train/wrong_diversity"),
    ("pass1", "train/pass@1"),
    ("length", "response/length_mean"),
)


def train_summary(run: RunDir) -> dict[str, Any]:
    """First / last values (and means over a few steps) of the training curves."""
    train_rows, eval_rows = run.read_metrics("train"), run.read_metrics("eval")
    steps = len({r["step"] for r in train_rows})
    w = window(steps)
    out: dict[str, Any] = {"steps": steps, "window": w}
    for name, key in _TRAIN_KEYS:
        _, values = metric_series(train_rows, key)
        if values:
            out[name] = {
                "first": values[0],
                "last": values[-1],
                "first_mean": statistics.fmean(values[:w]),
                "last_mean": statistics.fmean(values[-w:]),
            }
    switched = [r["step"] for r in train_rows if r.get("stage/switched")]
    if switched:
        out["stage_switch_after_step"] = switched[-1]
    out["step_time_s"] = sum(metric_series(train_rows, "time/step")[1])
    out["eval_time_s"] = sum(metric_series(eval_rows, "time/eval")[1])
    return out


def spread(values: Sequence[float | None]) -> dict[str, Any] | None:
    """mean / std / min / max / n of the finite values (None when there are none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    return {
        "mean": statistics.fmean(xs),
        "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "min": min(xs),
        "max": max(xs),
        "n": len(xs),
    }


def before_view(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("pass_at_k", "ci95", "entropy", "wrong_diversity")}


def summarize_run(
    run: RunDir,
    steps: int,
    before: Mapping[str, Any] | None,
    ks: Sequence[int],
    **bootstrap: Any,
) -> dict[str, Any]:
    """Training curves and the final evaluation of one run, and its change from ``before``."""
    rec: dict[str, Any] = {}
    if before is not None:
        rec["before"] = before_view(before)
    if not run.metrics.is_file():
        return rec
    rec["train"] = train_summary(run)
    rec["eval_history"] = [
        {"step": r["step"], **{k: v for k, v in r.items() if k.startswith("eval/")}}
        for r in run.read_metrics("eval")
    ]
    if run.is_finished(steps) and steps in run.eval_steps():
        after = eval_summary(run.read_eval(steps), ks, **bootstrap)
        rec["after"] = after
        if before is not None:
            rec["delta_pass_at_k"] = {
                k: after["pass_at_k"][k] - before["pass_at_k"][k]
                for k in after["pass_at_k"]
                if k in before["pass_at_k"]
            }
    return rec


def aggregate(
    records: Sequence[Mapping[str, Any]], labels: Mapping[str, str], ks: Sequence[int]
) -> dict[str, Any]:
    """Per arm (in ``labels`` order): mean / std / min / max over seeds of each result."""
    out: dict[str, Any] = {}
    for name, label in labels.items():
        rs = [r for r in records if r["arm"] == name and "after" in r]
        if not rs:
            out[name] = {"label": label, "seeds": []}
            continue
        kk = [str(k) for k in ks if str(k) in rs[0]["after"]["pass_at_k"]]
        n = min(len(r["after"]["curve"]) for r in rs)
        out[name] = {
            "label": label,
            "seeds": [r["seed"] for r in rs],
            **_pass_spreads(rs, kk),
            "curve_after_mean": [
                statistics.fmean(r["after"]["curve"][i] for r in rs) for i in range(n)
            ],
            "curve_after_min": [min(r["after"]["curve"][i] for r in rs) for i in range(n)],
            "curve_after_max": [max(r["after"]["curve"][i] for r in rs) for i in range(n)],
            "eval_entropy_after": spread([r["after"]["entropy"] for r in rs]),
            "eval_wrong_diversity_after": spread([r["after"]["wrong_diversity"] for r in rs]),
            "eval_entropy_before": spread([_get(r, "before", "entropy") for r in rs]),
            "eval_wrong_diversity_before": spread(
                [_get(r, "before", "wrong_diversity") for r in rs]
            ),
            "train_entropy_first": spread([_get(r, "train", "entropy", "first_mean") for r in rs]),
            "train_entropy_last": spread([_get(r, "train", "entropy", "last_mean") for r in rs]),
            "train_reward_first": spread([_get(r, "train", "reward", "first_mean") for r in rs]),
            "train_reward_last": spread([_get(r, "train", "reward", "last_mean") for r in rs]),
            "wall_s": spread([r.get("wall_s") for r in rs]),
        }
    return out


def _pass_spreads(rs: Sequence[Mapping[str, Any]], kk: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "after": {k: spread([r["after"]["pass_at_k"][k] for r in rs]) for k in kk}
    }
    if all("before" in r for r in rs):
        out["before"] = {k: spread([r["before"]["pass_at_k"].get(k) for r in rs]) for k in kk}
    if all("delta_pass_at_k" in r for r in rs):
        out["delta"] = {k: spread([r["delta_pass_at_k"].get(k) for r in rs]) for k in kk}
    return out


def _get(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


# --- paired comparisons ------------------------------------------------------------------------


def per_problem_pass(after: Mapping[str, Any], ks: Sequence[int]) -> dict[str, list[float]]:
    """``{problem id: [pass@k for k in ks]}`` of a run's final evaluation summary."""
    ids = list(after["correct_per_problem"])
    cs = [after["correct_per_problem"][i] for i in ids]
    values = pass_at_k_per_problem([after["n"]] * len(ids), cs, ks).tolist()  # [P, K]
    return dict(zip(ids, values, strict=True))


_TIE = 1e-9  # per-problem differences below this are rounding, not a better or worse arm


def seed_aware_difference(
    arm: Mapping[int, Mapping[str, Sequence[float]]],
    reference: Mapping[int, Mapping[str, Sequence[float]]],
    ks: Sequence[int],
    *,
    resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean pass@k difference ``arm - reference`` over seeds and problems, with intervals.

    ``arm`` and ``reference`` map seed -> problem id -> pass@k at each of ``ks``; seeds
    are paired by id, problems are those every shared seed of both arms evaluated. Per
    k: ``mean``, ``per_seed`` (each seed's mean difference), ``t_ci`` (t over per-seed
    differences, df = seeds - 1; None with one seed), ``boot_ci`` (seeds x problems
    bootstrap), ``distinguishable`` (both exclude 0), and ``better`` / ``worse``: problems
    whose difference, averaged over seeds, is above / below zero.
    """
    from passk.core.compare import compare_values

    seeds = sorted(set(arm) & set(reference))
    if not seeds:
        raise ValueError("no seed has a finished run in both arms")
    problems = sorted(set.intersection(*(set(arm[s]) & set(reference[s]) for s in seeds)))
    if not problems:
        raise ValueError("the arms share no evaluated problem")
    b = np.array([[arm[s][p] for p in problems] for s in seeds], dtype=float)  # [S, P, K]
    a = np.array([[reference[s][p] for p in problems] for s in seeds], dtype=float)
    out: dict[str, Any] = {
        "seeds": seeds,
        "problems": len(problems),
        "confidence": confidence,
        "training_variance_covered": len(seeds) > 1,
    }
    for j, k in enumerate(ks):
        r = compare_values(
            a[:, :, j], b[:, :, j], resamples=resamples, confidence=confidence, seed=seed
        )
        by_problem = (b[:, :, j] - a[:, :, j]).mean(0)  # [P]
        out[str(k)] = {
            "mean": r["diff"],
            "per_seed": r["per_seed"],
            "t_ci": r["t_ci"],
            "boot_ci": r["boot_ci"],
            "distinguishable": r["distinguishable"],
            "better": int((by_problem > _TIE).sum()),
            "worse": int((by_problem < -_TIE).sum()),
        }
    return out


def paired_comparisons(
    records: Sequence[Mapping[str, Any]],
    reference: str,
    ks: Sequence[int],
    *,
    resamples: int = NUM_RESAMPLES,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Every other arm against ``reference`` (arms without finished runs are left out)."""
    finished = [r for r in records if "after" in r]
    ks = [k for k in ks if all(k <= r["after"]["n"] for r in finished)]
    by_arm: dict[str, dict[int, dict[str, list[float]]]] = {}
    for r in finished:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = per_problem_pass(r["after"], ks)
    out: dict[str, Any] = {
        "reference": reference,
        "ks": list(ks),
        "intervals": "t_ci: t over per-seed differences (df = seeds - 1), this test set; "
        "boot_ci: bootstrap over seeds and problems, new problems too; distinguishable when "
        "both exclude 0 (one seed: the bootstrap alone, training variance not covered)",
        "arms": {},
    }
    if reference not in by_arm:
        return out
    for name, seeds in by_arm.items():
        if name == reference:
            continue
        try:
            out["arms"][name] = seed_aware_difference(
                seeds, by_arm[reference], ks, resamples=resamples, confidence=confidence
            )
        except ValueError as e:
            out["arms"][name] = {"error": str(e)}
    return out


def stat_before(befores: Mapping[int, Mapping[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """The shared "before" evaluations: per seed, and mean / range over seeds."""
    kk = [str(k) for k in ks if all(str(k) in b["pass_at_k"] for b in befores.values())]
    return {
        "note": "evaluated once per seed: before the first update all arms of a seed share "
        "weights, problems and evaluation sample seeds; the seeds differ only by sampling",
        "per_seed": {str(s): dict(b) for s, b in befores.items()},
        "mean": {
            "pass_at_k": {k: spread([b["pass_at_k"][k] for b in befores.values()]) for k in kk},
            "entropy": spread([b["entropy"] for b in befores.values()]),
            "wrong_diversity": spread([b["wrong_diversity"] for b in befores.values()]),
        },
    }


# --- summary.json ------------------------------------------------------------------------------


def build_summary(plan: Plan) -> dict[str, Any]:
    """``summary.json`` of a sweep, from its run directories; paths relative to ``plan.out``."""
    spec, out = plan.spec, plan.out
    boot = {"resamples": spec.compare.resamples, "confidence": spec.compare.confidence}
    ks = list(spec.eval.ks)
    befores: dict[int, dict[str, Any]] = {}
    for seed, start in plan.starts.items():
        if start.run_dir.is_finished(0):
            b = eval_summary(start.run_dir.read_eval(0), ks, **boot)
            b["run_dir"] = start.run_dir.path.name
            b["wall_s"] = (start.run_dir.finished() or {}).get("wall_s")
            befores[seed] = b
    records = [_run_record(plan, run, befores, ks, boot) for run in plan.runs]
    labels = {a.name: a.label for a in spec.arms}
    summary: dict[str, Any] = {
        "sweep": spec.to_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": _host(),
        "model": _model_identity(plan),
        "ks": ks,
        "before": stat_before(befores, ks) if befores else None,
        "runs": records,
        "arms": aggregate(records, labels, ks),
        "comparisons": paired_comparisons(records, spec.compare.reference, spec.compare.ks, **boot),
        "status": {f"{r['arm']}_s{r['seed']}": r["status"] for r in records},
        "before_status": {
            start.key: "done" if seed in befores else read_outcome(out, start.key).get("status")
            for seed, start in plan.starts.items()
        },
        "wall_s_all_runs": sum(r.get("wall_s") or 0.0 for r in records)
        + sum(b.get("wall_s") or 0.0 for b in befores.values()),
    }
    return portable(summary, out)


def _run_record(
    plan: Plan,
    run: Run,
    befores: Mapping[int, Mapping[str, Any]],
    ks: Sequence[int],
    boot: Mapping[str, Any],
) -> dict[str, Any]:
    rd, outcome = run.run_dir, read_outcome(plan.out, run.key)
    if run.seed in plan.starts:
        before = befores.get(run.seed)
    else:  # each run evaluated its own starting model
        before = eval_summary(rd.read_eval(0), ks, **boot) if 0 in rd.eval_steps() else None
    finished = rd.is_finished(run.steps)
    status = "done" if finished else outcome.get("status") or "not started"
    return {
        "arm": run.arm.name,
        "label": run.arm.label,
        "seed": run.seed,
        "status": status,
        "run_dir": rd.path.name,
        "config_file": run.arm.config_text or plan.spec.base_config_text,
        "train_command": run.command(plan.out),
        "config": run.config.to_dict(),
        "wall_s": outcome.get("wall_s"),
        "resumed": outcome.get("resumed"),
        **summarize_run(rd, run.steps, before, ks, **boot),
    }


def _model_identity(plan: Plan) -> dict[str, Any] | None:
    for rd in [s.run_dir for s in plan.starts.values()] + [r.run_dir for r in plan.runs]:
        for step in rd.eval_steps()[:1]:
            model = rd.read_eval(step).get("model")
            return model.get("base", model) if isinstance(model, dict) else model  # the base
    return None


def _host() -> dict[str, Any]:
    import os
    import platform

    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
    }
