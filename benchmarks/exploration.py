"""The evidence study of docs/results.md: does Pass@k-style training keep coverage that
Pass@1 training loses, once the update size is controlled for?

The experiment is ``configs/sweeps/exploration.yaml`` (its comments give the design, the
budget and the measurements behind them). This script runs it with ``passk sweep``,
builds ``benchmarks/results/exploration.json`` from the run directories, and writes the
tables and figures of docs/results.md from that file alone::

    python benchmarks/exploration.py run --arms pass1 passk pass1_matched   # resumable
    python benchmarks/exploration.py build            # run dirs -> exploration.json
    python benchmarks/exploration.py tables           # markdown tables of the JSON
    python benchmarks/exploration.py tables --check docs/results.md   # exit 1 if stale
    python benchmarks/exploration.py figures          # PNGs in benchmarks/results/exploration/

``run`` passes further options to ``passk sweep`` (``--seeds 0``, ``--threads 2``); running
it again skips finished runs and resumes cut ones from their last checkpoint. ``build``
reads only finished runs, so it can be run at any point of the study.

**Statistics.** Every metric is computed per problem from the evaluation reports
(``per_problem``: counts, extracted answers): pass@k and pass^k from the unbiased
estimators, maj@k exactly (:mod:`passk.core.majority`). A paired difference of arm ``a``
against arm ``b`` at k is the mean over seeds and problems of ``m_a(s, p) - m_b(s, p)``
(both arms of seed ``s`` start from the same weights and are evaluated on the same
problems), computed by :func:`passk.core.compare.compare_values`: a t-interval over the
three per-seed differences (df = 2; this test set, new training runs) and a bootstrap
over seeds and problems that counts the seed x problem term once (new problems too). A
difference is distinguishable only when both exclude 0. Per-problem transitions
(never -> solved, always -> not always, ...) come with exact McNemar tests
(:func:`passk.core.compare.transitions`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, run or imported
import doc_blocks

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "configs" / "sweeps" / "exploration.yaml"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OUT = RESULTS / "exploration_runs"
DEFAULT_JSON = RESULTS / "exploration.json"
DEFAULT_FIGURES = RESULTS / "exploration"
COMPARE_KS = (1, 8, 64)
METRICS = ("pass_at_k", "pass_hat_k", "maj_at_k")
REFERENCE = "pass1"
CONTROL = "pass1_matched"
TABLE_BEGIN = "<!-- exploration tables: begin (python benchmarks/exploration.py tables) -->"
TABLE_END = "<!-- exploration tables: end -->"


# --- per-report metrics -------------------------------------------------------------------------


def per_problem_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """Per-problem pass@k, pass^k and maj@k ``[P, n]`` (k = 1..n) of one evaluation report."""
    from passk.core.majority import maj_at_k_per_problem
    from passk.core.metrics import pass_at_k_per_problem, pass_hat_k_per_problem

    per = report["per_problem"]
    if not per:
        raise ValueError("the evaluation report has no problems")
    ns = [int(p["n"]) for p in per]
    n = min(ns)
    if n != max(ns):
        raise ValueError(f"problems hold different sample counts ({n}..{max(ns)})")
    ks = list(range(1, n + 1))
    cs = [int(p["c"]) for p in per]
    maj, _, _ = maj_at_k_per_problem([p["extracted"] for p in per], [p["correct"] for p in per], ks)
    return {
        "ids": [str(p["id"]) for p in per],
        "n": n,
        "c": cs,
        "sources": [p.get("source") for p in per],
        "pass_at_k": np.asarray(pass_at_k_per_problem(ns, cs, ks), dtype=float),
        "pass_hat_k": np.asarray(pass_hat_k_per_problem(ns, cs, ks), dtype=float),
        "maj_at_k": np.asarray(maj, dtype=float),
    }


def histogram(cs: Sequence[int], n: int) -> dict[str, int]:
    """Problems per bin of pass@1 = c / n: never, (0, 1/16), [1/16, 1/4), [1/4, 1/2),
    [1/2, 1), always (at n = 64: 0, 1-3, 4-15, 16-31, 32-63 and 64 of 64 right).

    >>> histogram([0, 0, 1, 4, 16, 40, 64], 64)
    {'0': 2, '(0,1/16)': 1, '[1/16,1/4)': 1, '[1/4,1/2)': 1, '[1/2,1)': 1, '1': 1}
    """
    frac = np.asarray(cs, dtype=float) / n
    inner = [(f"[{a},{b})" if a != "0" else f"(0,{b})", x, y) for a, b, x, y in _BINS]
    out = {"0": int((frac == 0).sum())}
    for label, lo, hi in inner:
        out[label] = int(((frac > 0) & (frac >= lo) & (frac < hi)).sum())
    out["1"] = int((frac == 1).sum())
    return out


_BINS = (("0", "1/16", 0.0, 1 / 16), ("1/16", "1/4", 1 / 16, 0.25), ("1/4", "1/2", 0.25, 0.5))
_BINS += (("1/2", "1", 0.5, 1.0),)


def report_view(report: Mapping[str, Any], per: Mapping[str, Any]) -> dict[str, Any]:
    """What the study keeps of one evaluation: curves k = 1..n, facts, counts per problem."""
    from passk.core.metrics import wrong_answer_pair_diversity

    curve = {m: per[m].mean(axis=0) for m in METRICS}
    view: dict[str, Any] = {
        m: {str(k): float(curve[m][k - 1]) for k in range(1, per["n"] + 1)} for m in METRICS
    }
    by_source = {}
    for src in sorted({s for s in per["sources"] if s is not None}):
        rows = [i for i, s in enumerate(per["sources"]) if s == src]
        by_source[src] = {
            "problems": len(rows),
            "pass@1": float(per["pass_at_k"][rows, 0].mean()),
            f"pass@{per['n']}": float(per["pass_at_k"][rows, -1].mean()),
            "answered_accuracy": answered_accuracy([report["per_problem"][i] for i in rows]),
        }
    view |= {
        "entropy": report.get("mean_entropy"),
        "wrong_diversity": report.get("answer_diversity"),
        "wrong_pair_diversity": _finite(
            wrong_answer_pair_diversity(
                [p["extracted"] for p in report["per_problem"]],
                [p["correct"] for p in report["per_problem"]],
            )
        ),
        "mean_length": report.get("mean_length"),
        "truncated_fraction": report.get("truncated_fraction"),
        "no_answer_fraction": no_answer_fraction(report),
        "eval_s": report.get("elapsed_s"),
        "histogram": histogram(per["c"], per["n"]),
        "by_source": by_source,
        "correct_per_problem": dict(zip(per["ids"], per["c"], strict=True)),
    }
    return view


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def answered_accuracy(per_problem: Sequence[Mapping[str, Any]]) -> float | None:
    """The share of correct samples among those with an extracted answer: accuracy with
    the format failures taken out.

    >>> answered_accuracy([{"extracted": ["3", None, "4"], "correct": [True, False, False]}])
    0.5
    """
    pairs = [
        (a, ok)
        for p in per_problem
        for a, ok in zip(p.get("extracted") or [], p.get("correct") or [])
        if a is not None
    ]
    return sum(ok for _, ok in pairs) / len(pairs) if pairs else None


def no_answer_fraction(report: Mapping[str, Any]) -> float | None:
    """The share of samples from which the task extracted no answer (a format failure)."""
    answers = [a for p in report["per_problem"] for a in p.get("extracted") or []]
    return sum(a is None for a in answers) / len(answers) if answers else None


def coverage(before: Sequence[int], after: Sequence[int]) -> dict[str, int]:
    """Problems that moved between never solved (0 of n) and sometimes solved."""
    b, a = np.asarray(before) > 0, np.asarray(after) > 0
    return {
        "never_to_solved": int((~b & a).sum()),
        "solved_to_never": int((b & ~a).sum()),
        "solved_both": int((b & a).sum()),
        "never_both": int((~b & ~a).sum()),
    }


def train_view(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-step training curves the figures and the step-size reading need."""

    def series(key: str) -> list[float | None]:
        return [r.get(key) for r in rows]

    def mean(key: str) -> float | None:
        vals = [float(v) for v in series(key) if v is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "steps": len(rows),
        "entropy": series("actor/entropy"),
        "reward": series("reward/mean"),
        "adv_abs_mean": series("adv/abs_mean"),
        "mean_adv_abs": mean("adv/abs_mean"),
        "mean_grad_norm": mean("actor/grad_norm"),
        "delta_norm": series("update/delta_norm"),
        "mean_delta_norm": mean("update/delta_norm"),
        "mean_delta_rel": mean("update/delta_rel"),
        "mean_step_s": mean("time/step"),
    }


# --- paired differences -------------------------------------------------------------------------


def compare(
    per_a: Mapping[int, Mapping[str, Any]],
    per_b: Mapping[int, Mapping[str, Any]],
    a: str,
    b: str,
    ks: Sequence[int],
    *,
    resamples: int = 2000,
) -> list[dict[str, Any]]:
    """``{a, b, metric, k, diff, per_seed, t_ci, boot_ci, distinguishable, ...}`` for each
    metric and k over the shared seeds (``diff`` is ``a - b``)."""
    from passk.core.compare import compare_values

    seeds = _shared_seeds(per_a, per_b, a, b)
    out = []
    for metric in METRICS:
        for k in ks:
            va = np.stack([per_a[s][metric][:, k - 1] for s in seeds])  # [S, P]
            vb = np.stack([per_b[s][metric][:, k - 1] for s in seeds])
            r = compare_values(vb, va, resamples=resamples)  # a - b
            out.append(
                {
                    "a": a,
                    "b": b,
                    "metric": metric,
                    "k": k,
                    "diff": r["diff"],
                    "per_seed": r["per_seed"],
                    "t_ci": r["t_ci"],
                    "boot_ci": r["boot_ci"],
                    "distinguishable": r["distinguishable"],
                    "seeds": seeds,
                    "problems": r["problems"],
                }
            )
    return out


def _shared_seeds(
    per_a: Mapping[int, Mapping[str, Any]], per_b: Mapping[int, Mapping[str, Any]], a: str, b: str
) -> list[int]:
    seeds = sorted(set(per_a) & set(per_b))
    for s in seeds:
        if per_a[s]["ids"] != per_b[s]["ids"]:
            raise ValueError(f"seed {s}: {a} and {b} were evaluated on different problems")
    return seeds


def compare_transitions(
    per_a: Mapping[int, Mapping[str, Any]],
    per_b: Mapping[int, Mapping[str, Any]],
    a: str,
    b: str,
) -> dict[str, Any] | None:
    """Per-problem transitions from ``b`` to ``a`` over the shared seeds, with exact tests."""
    from passk.core.compare import transitions

    seeds = _shared_seeds(per_a, per_b, a, b)
    if not seeds:
        return None

    def counts(per: Mapping[int, Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        c = np.array([per[s]["c"] for s in seeds])
        return c, np.full(c.shape, per[seeds[0]]["n"])

    (cb, nb), (ca, na) = counts(per_b), counts(per_a)
    t = transitions(cb, nb, ca, na, per_a[seeds[0]]["ids"])
    t.pop("problems")  # the ids live in the reports; the counts and tests are what is read
    return {"a": a, "b": b, "seeds": seeds, **t}


# --- the study JSON -----------------------------------------------------------------------------


def build(out: Path, sweep: Path = SWEEP, *, resamples: int = 2000) -> dict[str, Any]:
    """``exploration.json`` from the sweep directory ``out`` (finished runs only)."""
    from passk.sweep.plan import plan_sweep
    from passk.sweep.spec import load_sweep
    from passk.tasks import get_task

    spec = load_sweep(sweep)
    plan = plan_sweep(spec, out)
    first = plan.runs[0].config
    task = get_task(first.task.name, **first.task.options)
    before: dict[str, Any] = {}
    before_per: dict[int, dict[str, Any]] = {}
    for seed, start in plan.starts.items():
        if not start.run_dir.is_finished(0):
            continue
        report = start.run_dir.read_eval(0)
        before_per[seed] = per_problem_metrics(report)
        before[str(seed)] = report_view(report, before_per[seed]) | _done(start.run_dir)
    arms: dict[str, Any] = {}
    per_arm: dict[str, dict[int, dict[str, Any]]] = {}
    for arm in spec.arms:
        entry: dict[str, Any] = {
            "label": arm.label,
            "config": {"recipe": _recipe(arm), "set": list(arm.overrides)},
            "seeds": {},
        }
        for run in (r for r in plan.runs if r.arm.name == arm.name):
            if not run.run_dir.is_finished(run.steps):
                continue
            report = run.run_dir.read_eval(run.steps)
            per = per_problem_metrics(report)
            per_arm.setdefault(arm.name, {})[run.seed] = per
            view = report_view(report, per) | _done(run.run_dir)
            view["train"] = train_view(run.run_dir.read_metrics("train"))
            if run.seed in before_per:
                view["coverage"] = coverage(before_per[run.seed]["c"], per["c"])
            entry["seeds"][str(run.seed)] = view
        arms[arm.name] = entry
    ks = [k for k in COMPARE_KS if k <= spec.eval.n]
    pairs = [(name, REFERENCE) for name in per_arm if REFERENCE in per_arm and name != REFERENCE]
    if "passk" in per_arm and CONTROL in per_arm:
        pairs.append(("passk", CONTROL))
    everything = {**per_arm, "before": before_per}
    pairs += [(name, "before") for name in per_arm]
    comparisons: list[dict[str, Any]] = []
    moves = []
    for a, b in pairs:
        comparisons += compare(everything[a], everything[b], a, b, ks, resamples=resamples)
        t = compare_transitions(everything[a], everything[b], a, b)
        if t is not None:
            moves.append(t)
    return {
        "what": "Pass@1 vs Pass@k-style training on a task where coverage can be lost, with a "
        "step-size control (configs/sweeps/exploration.yaml)",
        "commands": [
            "python benchmarks/exploration.py run --threads 2 --arms "
            + " ".join(a.name for a in spec.arms),
            "python benchmarks/exploration.py build",
        ],
        "model": "SmolLM2-135M-Instruct (embedded)",
        "task": {"name": first.task.name, "options": _task_options(task)},
        "train": {
            "steps": first.steps,
            "rollout_n": first.rollout.n,
            "prompts_per_step": first.rollout.prompts_per_step,
            "max_new_tokens": first.rollout.max_new_tokens,
            "lr": first.optim.lr,
        },
        "eval": {
            "split": spec.eval.split,
            "problems": spec.eval.problems,
            "n": spec.eval.n,
            "temperature": spec.eval.temperature,
            "max_new_tokens": spec.eval.max_new_tokens,
        },
        "seeds": list(spec.seeds),
        "statistics": "paired differences: mean over seeds and problems; 95% t-interval over "
        "the per-seed differences (df = seeds - 1) and 95% bootstrap over seeds and problems "
        f"({resamples} resamples; passk.core.compare); distinguishable when both exclude 0",
        "before": before,
        "arms": arms,
        "comparisons": comparisons,
        "transitions": moves,
    }


def _recipe(arm: Any) -> str | None:
    """The arm's recipe relative to the repository (no machine paths), else as written."""
    if arm.config is None:
        return None
    try:
        return arm.config.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return arm.config_text


def _done(run_dir: Any) -> dict[str, Any]:
    """Wall time and the finishing time of a run (which session ran it).

    A "before" evaluation records its wall time; a training run records the time of its
    steps (``elapsed_s``), to which its evaluations' times are added (model loading, a
    few seconds, is in neither).
    """
    record = run_dir.finished() or {}
    wall = record.get("wall_s")
    if wall is None and record.get("elapsed_s") is not None:
        evals = [r.get("time/eval") or 0.0 for r in run_dir.read_metrics("eval")]
        wall = float(record["elapsed_s"]) + float(sum(evals))
    return {"wall_s": wall, "finished": record.get("finished")}


def _task_options(task: Any) -> dict[str, Any]:
    from dataclasses import fields, is_dataclass

    if not is_dataclass(task):
        return {}
    return {f.name: _plain(getattr(task, f.name)) for f in fields(task) if f.init}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- tables -------------------------------------------------------------------------------------


def _mean_range(values: Sequence[float | None], fmt: str = ".3f") -> str:
    """``mean (min-max)`` of the values that are there; ``-`` when none is."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:{fmt}}"
    return f"{np.mean(vals):{fmt}} ({min(vals):{fmt}}-{max(vals):{fmt}})"


def _cell(text: str) -> str:
    """``text`` as a Markdown table cell: a ``|`` in it (``|A|``) would end the cell."""
    return text.replace("|", "\\|")


def markdown_tables(result: Mapping[str, Any]) -> str:
    """The tables of docs/results.md, from ``exploration.json`` alone."""
    n = result["eval"]["n"]
    ks = [k for k in (1, 4, 8, 16, 64) if k <= n]
    lines = [
        f"Held-out pass@k, pass^k and maj@k ({result['eval']['problems']} problems x {n} "
        "samples, temperature 1.0): mean over seeds (min-max).",
        "",
        "| arm | seeds | "
        + " | ".join(f"pass@{k}" for k in ks)
        + " | pass^8 | maj@8 | entropy | wrong-answer diversity | wrong answers differ |",
        "|---|---|" + "---|" * (len(ks) + 5),
    ]
    rows = [("before training", result["before"])] if result["before"] else []
    rows += [(_cell(a["label"]), a["seeds"]) for a in result["arms"].values() if a["seeds"]]
    if not rows:
        return "No evaluation has finished yet.\n"
    for label, seeds in rows:
        views = list(seeds.values())
        cells = [_mean_range([v["pass_at_k"][str(k)] for v in views]) for k in ks]
        cells.append(_mean_range([v["pass_hat_k"]["8"] for v in views]))
        cells.append(_mean_range([v["maj_at_k"]["8"] for v in views]))
        cells.append(_mean_range([v["entropy"] for v in views]))
        cells.append(_mean_range([v["wrong_diversity"] for v in views]))
        cells.append(_mean_range([v.get("wrong_pair_diversity") for v in views]))
        lines.append(f"| {label} | {len(views)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Wrong-answer diversity is distinct wrong answers / wrong samples per problem (the "
        "evaluation report's; 1.0 for a problem with one wrong sample, and it falls as wrong "
        "samples accumulate); *wrong answers differ* is the probability that two wrong "
        "samples of a problem, drawn without replacement, give different answers (problems "
        "with at least two wrong samples), which does not depend on how many there are.",
    ]
    lines += _part_and_histogram_tables(rows, n)
    lines += ["", _finished_line(result)]
    if not result["comparisons"]:
        return "\n".join(lines) + "\n"
    lines += _difference_table(result["comparisons"])
    lines += _transition_table(result.get("transitions") or [])
    lines += [
        "",
        "The update size: mean |A|, gradient norm before clipping and L2 norm of the weight "
        "change per step (means over steps, then seeds); wall time.",
        "",
        "| arm | mean abs(A) | mean grad norm | mean weight change per step | wall (min) |",
        "|---|---|---|---|---|",
    ]
    for a in result["arms"].values():
        views = [v for v in a["seeds"].values() if "train" in v]
        if not views:
            continue
        adv = _mean_range([v["train"]["mean_adv_abs"] for v in views])
        grad = _mean_range([v["train"]["mean_grad_norm"] for v in views], ".3f")
        delta = _mean_range([v["train"]["mean_delta_norm"] for v in views], ".2e")
        wall = _mean_range([v["wall_s"] / 60 if v.get("wall_s") else None for v in views], ".0f")
        lines.append(f"| {_cell(a['label'])} | {adv} | {grad} | {delta} | {wall} |")
    return "\n".join(lines) + "\n"


def _signed(x: float) -> str:
    return f"{round(x, 3) + 0.0:+.3f}"


def _difference_table(comparisons: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per pair and metric; per k the difference, each seed's, and both intervals."""
    names = {"pass_at_k": "pass@k", "pass_hat_k": "pass^k", "maj_at_k": "maj@k"}
    ks = sorted({c["k"] for c in comparisons})
    lines = [
        "",
        "Paired differences, arm minus reference (mean over seeds and problems), each seed's "
        "difference, and two 95% intervals: *t*, over the per-seed differences (df = seeds - "
        "1: another training run, this test set) and *boot*, a bootstrap over seeds and "
        "problems (new problems too). **Bold**: distinguishable, both intervals exclude 0.",
        "",
        "| arm | vs | metric | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---|---|---|" + "---|" * len(ks),
    ]
    rows: dict[tuple[str, str, str], dict[int, Mapping[str, Any]]] = {}
    for c in comparisons:
        rows.setdefault((c["a"], c["b"], c["metric"]), {})[c["k"]] = c
    for (a, b, metric), cells in rows.items():
        texts = []
        for k in ks:
            c = cells.get(k)
            if c is None:
                texts.append("-")
                continue
            diff = _signed(c["diff"])
            diff = f"**{diff}**" if c["distinguishable"] else diff
            seeds = " ".join(_signed(x) for x in c["per_seed"])
            t = c["t_ci"]
            t_text = f"t ({_signed(t[0])}, {_signed(t[1])})" if t is not None else "t -"
            boot = f"boot ({_signed(c['boot_ci'][0])}, {_signed(c['boot_ci'][1])})"
            texts.append(f"{diff}<br>seeds {seeds}<br>{t_text}<br>{boot}")
        lines.append(f"| {a} | {b} | {names[metric]} | " + " | ".join(texts) + " |")
    return lines


def _transition_table(moves: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per pair: problems that changed class, per seed, with the exact paired tests."""
    if not moves:
        return []
    lines = [
        "",
        "Per-problem transitions from the reference to the arm at n = 64 (solved: at least "
        "one of 64 right; always: all 64), summed over seeds (per seed in brackets), with "
        "exact McNemar tests on the seed x problem pairs; and the sign test on each "
        "problem's pass@1 change (mean over seeds).",
        "",
        "| arm | vs | never -> solved | solved -> never | p | not always -> always | "
        "always -> not always | p | pass@1 higher / lower | sign test p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in moves:

        def cell(name: str, t: Mapping[str, Any] = t) -> str:
            return f"{t[name]} ({', '.join(str(x) for x in t['per_seed'][name])})"

        lines.append(
            f"| {t['a']} | {t['b']} | {cell('never_to_solved')} | {cell('solved_to_never')} | "
            f"{t['mcnemar_p_solved']:.2g} | {cell('not_always_to_always')} | "
            f"{cell('always_to_not_always')} | {t['mcnemar_p_always']:.2g} | "
            f"{t['sign_test']['better']} / {t['sign_test']['worse']} | "
            f"{t['sign_test']['p']:.2g} |"
        )
    return lines


def _finished_line(result: Mapping[str, Any]) -> str:
    """Which runs have finished, when, and how long each took (the sessions of the study)."""
    done = [(f"before_s{s}", v) for s, v in result["before"].items()]
    done += [(f"{a}_s{s}", v) for a, e in result["arms"].items() for s, v in e["seeds"].items()]
    items = [
        f"`{key}` ({v.get('finished') or '?'}, {v['wall_s'] / 60:.0f} min)"
        if v.get("wall_s")
        else f"`{key}` ({v.get('finished') or '?'})"
        for key, v in sorted(done, key=lambda kv: kv[1].get("finished") or "")
    ]
    return "Finished runs (finishing time, wall time): " + ", ".join(items) + "."


def _part_and_histogram_tables(rows: Sequence[tuple[str, Mapping[str, Any]]], n: int) -> list[str]:
    """Pass@1 and pass@n per part of the task, and problems per pass@1 bin."""
    parts = sorted({p for _, seeds in rows for v in seeds.values() for p in v["by_source"]})
    lines: list[str] = []
    if parts:
        lines += [
            "",
            f"Per part of the task: pass@1 / pass@{n} / accuracy among the samples with an "
            "extracted answer (the format failures taken out), mean over seeds.",
            "",
            "| arm | " + " | ".join(f"`{p}`" for p in parts) + " |",
            "|---|" + "---|" * len(parts),
        ]
        for label, seeds in rows:
            cells = []
            for p in parts:
                got = [v["by_source"][p] for v in seeds.values() if p in v["by_source"]]
                p1 = np.mean([g["pass@1"] for g in got])
                pn = np.mean([g[f"pass@{n}"] for g in got])
                acc = [g.get("answered_accuracy") for g in got]
                acc_text = f"{np.mean(acc):.2f}" if None not in acc else "-"
                cells.append(f"{p1:.3f} / {pn:.3f} / {acc_text}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    bins = list(next(iter(rows[0][1].values()))["histogram"])
    lines += [
        "",
        "Problems per held-out pass@1 bin (c / n; at n = 64: 0, 1-3, 4-15, 16-31, 32-63, 64 "
        "right), summed over seeds.",
        "",
        "| arm | " + " | ".join(bins) + " |",
        "|---|" + "---|" * len(bins),
    ]
    for label, seeds in rows:
        counts = [sum(v["histogram"][b] for v in seeds.values()) for b in bins]
        lines.append(f"| {label} | " + " | ".join(str(c) for c in counts) + " |")
    lines += [
        "",
        "The responses: mean length in tokens, the share cut at the token cap, and the share "
        "from which no answer could be extracted; mean over seeds (min-max).",
        "",
        "| arm | mean length | truncated | no answer |",
        "|---|---|---|---|",
    ]
    for label, seeds in rows:
        views = list(seeds.values())
        cells = [
            _mean_range([v.get("mean_length") for v in views], ".1f"),
            _mean_range([v.get("truncated_fraction") for v in views]),
            _mean_range([v.get("no_answer_fraction") for v in views]),
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def splice(doc: str, tables: str) -> str:
    """``doc`` with the text between the table markers replaced by ``tables``."""
    return doc_blocks.splice(doc, TABLE_BEGIN, TABLE_END, tables)


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="passk sweep of the study (further options go to it)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p = sub.add_parser("build", help="run directories -> exploration.json")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--resamples", type=int, default=2000)
    p = sub.add_parser("tables", help="markdown tables of exploration.json")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--check", type=Path, help="exit 1 if this document's tables differ")
    p.add_argument("--write", type=Path, help="replace this document's tables")
    p = sub.add_parser("figures", help="PNG figures of exploration.json")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--dir", type=Path, default=DEFAULT_FIGURES)
    args, rest = parser.parse_known_args(argv)
    if args.cmd != "run" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.cmd == "run":
        from passk.cli import main as passk

        return passk(["sweep", str(SWEEP), "--out", str(args.out), *rest])
    if args.cmd == "build":
        from passk.eval.report import write_json_atomic

        write_json_atomic(args.json, build(args.out, resamples=args.resamples))
        print(f"wrote {args.json}")
        return 0
    result = json.loads(args.json.read_text(encoding="utf-8"))
    if args.cmd == "tables":
        return doc_blocks.emit(
            markdown_tables(result),
            TABLE_BEGIN,
            TABLE_END,
            check=args.check,
            write=args.write,
            what="exploration tables",
        )
    from exploration_figures import write_figures

    for path in write_figures(result, args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
