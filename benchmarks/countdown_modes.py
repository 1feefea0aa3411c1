"""The countdown_modes study (docs/prereg_countdown_modes.md): its verdicts, from the runs.

The pre-registration fixes the pilot's go/no-go rule and the endpoints; this script is
that rule and those endpoints as code, written before the data::

    python benchmarks/countdown_modes.py pilot RUNS       # the pilot's verdict (pass1, seed 0)
    python benchmarks/countdown_modes.py build RUNS       # -> benchmarks/results/countdown_modes.json
    python benchmarks/countdown_modes.py build RUNS --out FILE
    python benchmarks/countdown_modes.py tables --write docs/results.md   # (--check: exit 1 if stale)
    python benchmarks/countdown_modes.py collect RUNS   # what git keeps -> benchmarks/results/...

The verdict and the endpoints read only the final step (30 since amendment 2 of the
pre-registration, ``FINAL_STEP``; the first pass, registered at 200, is rebuilt with
``--final-step 200``): before it,
``pilot`` prints the rule's reading at the last evaluation and says it is not a verdict,
and a run still in progress is left out of every endpoint.
``RUNS`` is the ``passk sweep configs/sweeps/countdown_modes.yaml`` directory: each seed's
start evaluation in ``before_sSEED/evals/step_000000.json`` and each run's evaluations in
``ARM_sSEED/evals/step_N.json``. Only the evaluation reports are read (``per_problem``:
``id``, ``source``, ``c``, ``n``, ``extracted`` for the template readout), so the JSON
carries no machine paths and every number of the study's doc is rebuilt from it.

**Statistics.** A metric is computed per problem from its correct count (unbiased pass@k),
on the rare subset (``source == "rare"``) or on every problem. A comparison of arm B with
arm A is :func:`passk.core.compare.compare_values` on the ``[seeds, problems]`` matrices: a
t-interval over the per-seed differences (training runs) and a seeds x problems bootstrap;
it holds only when both exclude 0. The three secondary endpoints are Holm-corrected
(family-wise 0.05): ordered by the seed-level t-test's p-value, the j-th (from 0) is tested
with both intervals at confidence 1 - 0.05 / (3 - j), and the first that fails stops the
sequence (the rest are not supported).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, run or imported
import doc_blocks

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "countdown_modes.json"
RARE = "rare"
ALPHA = 0.05
PILOT_ARM, PILOT_SEED = "pass1", 0
# the pre-registered thresholds
PILOT_RARE_DROP = 0.10  # rare-subset pass@32 lower by at least this
PILOT_SOLVED_TO_NEVER = 4  # or at least this many rare problems solved -> never
PILOT_PASS1_RISE = 0.10  # and overall pass@1 higher by at least this
PRIMARY_MIN_DIFF = 0.05
# the final step, where the pilot's verdict and every endpoint are read: 30 since amendment 2
# (every run starts and finishes within one session); the original registration's 200 is
# the first pass's (bf16_start/)
FINAL_STEP = 30
REGISTERED_FINAL_STEP = 200
REGISTERED_SEEDS = 3  # seeds 0, 1, 2 per arm: an endpoint on fewer is an interim reading
STEP_FILE = re.compile(r"step_(\d+)\.json$")
TABLE_BEGIN = "<!-- countdown_modes tables: begin (python benchmarks/countdown_modes.py tables) -->"
TABLE_END = "<!-- countdown_modes tables: end -->"

Reports = dict[str, dict[int, dict[int, Mapping[str, Any]]]]  # arm -> seed -> step -> report


# --- per-problem values -------------------------------------------------------------------------


def counts(report: Mapping[str, Any], subset: str | None = None) -> dict[str, tuple[int, int]]:
    """``{problem id: (c, n)}`` of a report, on one ``source`` (None: every problem)."""
    per = report.get("per_problem")
    if not per:
        raise ValueError("the evaluation report has no per_problem entries")
    out = {}
    for p in per:
        if subset is None or p.get("source") == subset:
            out[str(p["id"])] = (int(p["c"]), int(p["n"]))
    if not out:
        raise ValueError(f"the evaluation report has no problem of source {subset!r}")
    return out


def pass_at_k_of(report: Mapping[str, Any], k: int, subset: str | None = None) -> dict[str, float]:
    """Unbiased pass@k per problem id (NaN where a problem has fewer than k samples)."""
    from passk.core.metrics import pass_at_k

    return {
        pid: (float(pass_at_k(n, c, k)) if n >= k else math.nan)
        for pid, (c, n) in counts(report, subset).items()
    }


def matrix(
    reports: Sequence[Mapping[str, Any]], k: int, subset: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """``[seeds, problems]`` pass@k of one report per seed, problems paired by id."""
    values = [pass_at_k_of(r, k, subset) for r in reports]
    ids = sorted(values[0])
    for v in values[1:]:
        if sorted(v) != ids:
            raise ValueError("the reports do not hold the same problems; they cannot be paired")
    return np.array([[v[i] for i in ids] for v in values], dtype=float), ids


# --- the pilot ----------------------------------------------------------------------------------


def pilot_verdict(start: Mapping[str, Any], final: Mapping[str, Any]) -> dict[str, Any]:
    """The pre-registered go/no-go of the pilot, from its start and final evaluations."""
    rare0, rare1 = pass_at_k_of(start, 32, RARE), pass_at_k_of(final, 32, RARE)
    if sorted(rare0) != sorted(rare1):
        raise ValueError("the start and final evaluations hold different rare problems")
    c0, c1 = counts(start, RARE), counts(final, RARE)
    solved_to_never = sorted(i for i in c0 if c0[i][0] > 0 and c1[i][0] == 0)
    never_to_solved = sorted(i for i in c0 if c0[i][0] == 0 and c1[i][0] > 0)
    p1_start = float(np.mean(list(pass_at_k_of(start, 1).values())))
    p1_final = float(np.mean(list(pass_at_k_of(final, 1).values())))
    r0 = float(np.nanmean(list(rare0.values())))
    r1 = float(np.nanmean(list(rare1.values())))
    coverage_lost = (r0 - r1 >= PILOT_RARE_DROP) or len(solved_to_never) >= PILOT_SOLVED_TO_NEVER
    pass1_rose = p1_final - p1_start >= PILOT_PASS1_RISE
    return {
        "rare_pass@32": {"start": r0, "final": r1, "change": r1 - r0},
        "rare_problems": len(rare0),
        "solved_to_never": solved_to_never,
        "never_to_solved": never_to_solved,
        "pass@1": {"start": p1_start, "final": p1_final, "change": p1_final - p1_start},
        "coverage_lost": coverage_lost,
        "pass1_rose": pass1_rose,
        "go": coverage_lost and pass1_rose,
    }


# --- endpoints ----------------------------------------------------------------------------------


def seed_p_value(per_seed: Sequence[float]) -> float:
    """Two-sided p-value of the t-test of the per-seed differences against 0 (1 with fewer
    than two seeds or no spread and a zero mean)."""
    from passk.core.compare import t_cdf

    d = np.asarray(per_seed, dtype=float)
    if d.size < 2:
        return 1.0
    sd = float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if float(d.mean()) != 0 else 1.0
    t = float(d.mean()) / (sd / math.sqrt(d.size))
    return 2 * (1 - t_cdf(abs(t), d.size - 1))


def _compare(a: np.ndarray, b: np.ndarray, confidence: float) -> dict[str, Any]:
    from passk.core.compare import compare_values

    return compare_values(a, b, confidence=confidence)


def both_exclude_zero(r: Mapping[str, Any]) -> bool:
    """The registered test: the seed-level t-interval and the bootstrap both exclude 0 (with
    one seed there is no t-interval, so nothing is supported)."""
    return r["t_ci"] is not None and bool(r["distinguishable"])


def final_reports(
    reports: Reports, arm: str, seeds: Sequence[int], final_step: int = FINAL_STEP
) -> list[Mapping[str, Any]]:
    """Each seed's evaluation of ``arm`` at the final step."""
    return [reports[arm][s][final_step] for s in seeds]


def finished(reports: Reports, arm: str, final_step: int = FINAL_STEP) -> set[int]:
    """Seeds of ``arm`` whose run has its final evaluation (a run in progress has not)."""
    return {s for s, steps in reports.get(arm, {}).items() if final_step in steps}


def endpoints(
    reports: Reports, starts: Mapping[int, Mapping[str, Any]], final_step: int = FINAL_STEP
) -> dict[str, Any]:
    """The primary and the three secondary endpoints at ``final_step``, on the seeds every
    arm they need has."""
    out: dict[str, Any] = {}

    def seeds_of(*arms: str) -> list[int]:
        return sorted(set.intersection(*(finished(reports, a, final_step) for a in arms)))

    def finals(arm: str, seeds: Sequence[int]) -> list[Mapping[str, Any]]:
        return final_reports(reports, arm, seeds, final_step)

    seeds = seeds_of("pass1", "passk")
    if seeds:
        a, _ = matrix(finals("pass1", seeds), 64, RARE)
        b, _ = matrix(finals("passk", seeds), 64, RARE)
        r = _compare(a, b, 1 - ALPHA)
        r["supported"] = both_exclude_zero(r) and r["diff"] >= PRIMARY_MIN_DIFF
        out["primary"] = {"what": "rare pass@64, passk - pass1", **r, "seed_ids": seeds}
    family = []
    for name, arm_a, arm_b, k, subset in (
        ("passk_vs_matched", "pass1_matched", "passk", 4, RARE),
        ("then_pass1_vs_pass1", "pass1", "passk_then_pass1", 1, None),
    ):
        s = seeds_of(arm_a, arm_b)
        if s:
            a, _ = matrix(finals(arm_a, s), k, subset)
            b, _ = matrix(finals(arm_b, s), k, subset)
            what = f"{'rare' if subset else 'overall'} pass@{k}, {arm_b} - {arm_a}"
            family.append((name, what, s, a, b))
    s = sorted(finished(reports, "pass1", final_step) & set(starts))
    if s:
        a, _ = matrix([starts[x] for x in s], 64, RARE)
        b, _ = matrix(finals("pass1", s), 64, RARE)
        family.append(("collapse", "rare pass@64, pass1 - start", s, a, b))
    out["secondary"] = holm(family)
    return out


def holm(family: Sequence[tuple[str, str, list[int], np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Holm's step-down over the family (size fixed at 3, the pre-registered family, even
    when an arm is missing), with both intervals at the adjusted confidence."""
    size = 3
    tested = []
    for name, what, seeds, a, b in family:
        plain = _compare(a, b, 1 - ALPHA)
        tested.append((seed_p_value(plain["per_seed"]), name, what, seeds, a, b))
    tested.sort(key=lambda t: t[0])
    out, stopped = {}, False
    for j, (p, name, what, seeds, a, b) in enumerate(tested):
        confidence = 1 - ALPHA / (size - j)
        r = _compare(a, b, confidence)
        supported = not stopped and both_exclude_zero(r)
        stopped = stopped or not supported
        out[name] = {
            "what": what,
            "seed_ids": seeds,
            "holm_rank": j,
            "confidence": confidence,
            "seed_p_value": p,
            **r,
            "supported": supported,
        }
    return out


# --- reading a sweep directory ------------------------------------------------------------------


def read_sweep(root: Path) -> tuple[Reports, dict[int, Mapping[str, Any]]]:
    """Every evaluation report of the sweep at ``root``: runs and per-seed starts."""
    reports: Reports = {}
    starts: dict[int, Mapping[str, Any]] = {}
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory (a passk sweep output)")
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        m = re.fullmatch(r"(.+)_s(\d+)", run.name)
        if m is None:
            continue
        arm, seed = m.group(1), int(m.group(2))
        for path in sorted((run / "evals").glob("step_*.json")):
            step = int(STEP_FILE.search(path.name).group(1))  # type: ignore[union-attr]
            report = json.loads(path.read_text(encoding="utf-8"))
            if arm == "before":
                starts[seed] = report
            else:
                reports.setdefault(arm, {}).setdefault(seed, {})[step] = report
    if not reports and not starts:
        raise ValueError(f"{root} holds no evaluation report (ARM_sSEED/evals/step_N.json)")
    return reports, starts


def trajectories(reports: Reports, starts: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Per arm and seed: rare pass@32 / pass@64 and overall pass@1 at every evaluation."""
    out: dict[str, Any] = {}
    for arm, by_seed in sorted(reports.items()):
        for seed, by_step in sorted(by_seed.items()):
            steps = dict(by_step)
            if 0 not in steps and seed in starts:
                steps[0] = starts[seed]
            rows = []
            for step, r in sorted(steps.items()):
                rows.append({"step": step, **readout(r)})
            out.setdefault(arm, {})[str(seed)] = rows
    return out


def _mean_pass(report: Mapping[str, Any], k: int, subset: str | None = None) -> float:
    return float(np.nanmean(list(pass_at_k_of(report, k, subset).values())))


def template_of(extracted: str | None) -> str:
    """The task's shape of an extracted answer (``none`` without one, ``invalid`` unparsed)."""
    from passk.tasks.countdown import parse_expression

    if extracted is None:
        return "none"
    try:
        return parse_expression(extracted)[2]
    except ValueError:
        return "invalid"


def templates(report: Mapping[str, Any], subset: str | None = None) -> dict[str, int]:
    """Answers per template on a subset (the reports' per-sample ``extracted``)."""
    out: dict[str, int] = {}
    for p in report["per_problem"]:
        if subset is None or p.get("source") == subset:
            for e in p.get("extracted") or []:
                t = template_of(e)
                out[t] = out.get(t, 0) + 1
    return dict(sorted(out.items()))


def readout(report: Mapping[str, Any]) -> dict[str, Any]:
    """One evaluation's numbers of the study: pass@k per subset, rare problems solved,
    template counts per subset, entropy."""
    rare = counts(report, RARE)
    out: dict[str, Any] = {
        "pass@1": _mean_pass(report, 1),
        "common_pass@1": _mean_pass(report, 1, "common"),
        "rare_pass@1": _mean_pass(report, 1, RARE),
        "rare_pass@4": _mean_pass(report, 4, RARE),
        "rare_pass@32": _mean_pass(report, 32, RARE),
        "rare_pass@64": _mean_pass(report, 64, RARE),
        "pass@64": _mean_pass(report, 64),
        "rare_solved": sum(c > 0 for c, _ in rare.values()),
        "rare_problems": len(rare),
        "mean_entropy": report.get("mean_entropy"),
    }
    if any("extracted" in p for p in report["per_problem"]):
        out["templates"] = {
            "common": templates(report, "common"),
            "rare": templates(report, RARE),
        }
    return out


# --- the doc's tables ---------------------------------------------------------------------------


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _interval(ci: Sequence[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def markdown_tables(result: Mapping[str, Any]) -> str:
    """The study's tables for docs/results.md, from the study JSON alone."""
    lines: list[str] = []
    traj = result.get("trajectories", {})
    pilot_rows = traj.get(PILOT_ARM, {}).get(str(PILOT_SEED), [])
    if pilot_rows:
        lines += [
            f"The pilot (Pass@1, seed {PILOT_SEED}) at each evaluation of the test split "
            "(78 problems, 58 common + 20 rare, x 64 samples, temperature 1.0); "
            r"*x\*y-z answers* counts the answers of that shape, on the rare problems and on all.",
            "",
            "| step | pass@1 | common pass@1 | rare pass@1 | rare pass@4 | rare pass@32 "
            r"| rare pass@64 | rare solved | x\*y-z answers (rare / all) | entropy |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in pilot_rows:
            t = r.get("templates", {})
            pm = [t.get(part, {}).get("product_minus", 0) for part in ("rare", "common")]
            shape = f"{pm[0]} / {pm[0] + pm[1]}" if t else "-"
            lines.append(
                f"| {r['step']} | {_f(r['pass@1'])} | {_f(r['common_pass@1'])} | "
                f"{_f(r['rare_pass@1'])} | {_f(r['rare_pass@4'])} | {_f(r['rare_pass@32'])} | "
                f"{_f(r['rare_pass@64'])} | {r['rare_solved']} of {r['rare_problems']} | "
                f"{shape} | {_f(r['mean_entropy'])} |"
            )
        lines.append("")
    if "lab" in result:
        lines += [
            "The lab's prediction, made before any LM run (`passk simulate "
            "configs/simulate/countdown_modes.yaml`: the task's mix, the warm-up's template "
            "shares, one logit vector shared by every problem, exact expected updates, N = 16). "
            "Rare-subset pass@32 / overall pass@1 by lab step; its steps are not LM steps, "
            "so the prediction is the direction and the ordering of the arms.",
            "",
            "| lab estimator | " + " | ".join(f"step {s}" for s in LAB_STEPS) + " |",
            "|---|" + "---|" * len(LAB_STEPS),
        ]
        for est in result["lab"]:
            label, at = est["label"], {r["step"]: r for r in est["steps"]}
            cells = [
                f"{at[s]['rare_pass@32']:.2f} / {at[s]['pass@1']:.2f}" if s in at else ""
                for s in LAB_STEPS
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    for key, title in (("pilot", "verdict"), ("pilot_interim", "interim reading (no verdict)")):
        if key not in result:
            continue
        v = result[key]
        go = "**go**" if v["go"] else "**no-go**"
        lines += [
            f"Pilot {title}, step {v['step']} against step 0: rare-subset pass@32 "
            f"{_f(v['rare_pass@32']['start'])} -> {_f(v['rare_pass@32']['final'])} "
            f"({v['rare_pass@32']['change']:+.3f}; registered: <= -0.10), "
            f"{len(v['solved_to_never'])} of {v['rare_problems']} rare problems solved -> never "
            f"(registered: >= 4), {len(v['never_to_solved'])} never -> solved; overall pass@1 "
            f"{_f(v['pass@1']['start'])} -> {_f(v['pass@1']['final'])} "
            f"({v['pass@1']['change']:+.3f}; registered: >= +0.10). Coverage lost: "
            f"{'yes' if v['coverage_lost'] else 'no'}; pass@1 rose: "
            f"{'yes' if v['pass1_rose'] else 'no'}" + (f": {go}." if key == "pilot" else "."),
            "",
        ]
    ends = result.get("endpoints", {})
    tested = ([("primary", ends["primary"])] if "primary" in ends else []) + sorted(
        ends.get("secondary", {}).items(), key=lambda kv: kv[1]["holm_rank"]
    )
    if tested:
        lines += [
            f"Endpoints at step {result['final_step']} (per-seed differences B - A; the "
            "t-interval is over training runs, the bootstrap over seeds x problems; supported "
            "only when both exclude 0, the primary also needing >= +0.05; secondaries "
            "Holm-corrected):",
            "",
            "| endpoint | seeds | per seed | B - A | t-interval | bootstrap | level | supported |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, e in tested:
            per = ", ".join(f"{x:+.3f}" for x in e["per_seed"])
            level = e.get("confidence", 1 - ALPHA)
            lines.append(
                f"| {name}: {e['what']} | {len(e['seed_ids'])} | {per} | {e['diff']:+.3f} | "
                f"{_interval(e['t_ci'])} | {_interval(e['boot_ci'])} | {level:.4g} | "
                f"{'yes' if e['supported'] else 'no'}"
                + (
                    f" (interim: {len(e['seed_ids'])} of {REGISTERED_SEEDS} seeds)"
                    if len(e["seed_ids"]) < REGISTERED_SEEDS
                    else ""
                )
                + " |"
            )
        lines.append("")
    others = {a: v for a, v in traj.items() if a != PILOT_ARM or len(v) > 1}
    if others:
        lines += [
            "Every run's evaluations: rare-subset pass@64 and overall pass@1 by step.",
            "",
            "| arm | seed | " + " | ".join(f"step {s}" for s in _steps(traj)) + " |",
            "|---|---|" + "---|" * len(_steps(traj)),
        ]
        for arm, by_seed in sorted(others.items()):
            for seed, rows in sorted(by_seed.items(), key=lambda kv: int(kv[0])):
                at = {r["step"]: r for r in rows}
                cells = [
                    f"{_f(at[s]['rare_pass@64'], '.2f')} / {_f(at[s]['pass@1'], '.2f')}"
                    if s in at
                    else ""
                    for s in _steps(traj)
                ]
                lines.append(f"| {arm} | {seed} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _steps(traj: Mapping[str, Any]) -> list[int]:
    return sorted(
        {r["step"] for by_seed in traj.values() for rows in by_seed.values() for r in rows}
    )


LAB_JSON = ROOT / "benchmarks" / "results" / "countdown_modes" / "lab.json"
LAB_STEPS = (0, 25, 50, 100, 200, 400)


def lab_prediction(path: Path = LAB_JSON) -> list[dict[str, Any]] | None:
    """The lab's prediction (``passk simulate configs/simulate/countdown_modes.yaml``'s
    ``result.json``): per estimator, rare pass@32 / pass@64 and overall pass@1 by lab step."""
    if not path.is_file():
        return None
    lab = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for est in lab["estimators"]:
        t = est["runs"][0]["trajectory"]
        rare = t["by_group"][RARE]["pass_at_k"]
        rows = [
            {
                "step": step,
                "rare_pass@32": rare["32"][i],
                "rare_pass@64": rare["64"][i],
                "pass@1": t["pass_at_k"]["1"][i],
            }
            for i, step in enumerate(t["step"])
            if step in LAB_STEPS
        ]
        out.append({"label": est["label"], "steps": rows})
    return out


def build(root: Path, lab: Path = LAB_JSON, final_step: int = FINAL_STEP) -> dict[str, Any]:
    """The study JSON of the sweep directory ``root``, its verdicts read at ``final_step``."""
    reports, starts = read_sweep(root)
    result: dict[str, Any] = {
        "format": "passk.countdown_modes/1",
        "prereg": "docs/prereg_countdown_modes.md",
        "final_step": final_step,
        "arms": {arm: sorted(by_seed) for arm, by_seed in sorted(reports.items())},
        "trajectories": trajectories(reports, starts),
    }
    prediction = lab_prediction(lab)
    if prediction is not None:
        result["lab"] = prediction
    pilot = reports.get(PILOT_ARM, {}).get(PILOT_SEED)
    start = (pilot or {}).get(0) or starts.get(PILOT_SEED)
    if pilot and start is not None and final_step in pilot:
        result["pilot"] = {"step": final_step, **pilot_verdict(start, pilot[final_step])}
    elif pilot and start is not None and max(pilot) > 0:  # not a verdict: the rule's reading
        result["pilot_interim"] = {"step": max(pilot), **pilot_verdict(start, pilot[max(pilot)])}
    result["endpoints"] = endpoints(reports, starts, final_step)
    return result


DEFAULT_COMMITTED = ROOT / "benchmarks" / "results" / "countdown_modes" / "runs"
COLLECTED = ("config.yaml", "metrics.jsonl", "done.json")


def collect(runs: Path, into: Path) -> list[Path]:
    """Copy what git keeps of each run in ``runs`` (evaluation reports, metrics, config;
    never checkpoints or samples) to ``into``, in the same layout, with the absolute path
    of the repository made relative, so the committed files name no machine."""
    prefix = str(ROOT) + "/"
    written = []
    for run in sorted(p for p in runs.iterdir() if p.is_dir() and re.fullmatch(r".+_s\d+", p.name)):
        files = [run / name for name in COLLECTED if (run / name).is_file()]
        files += sorted((run / "evals").glob("step_*.json"))
        for src in files:
            dst = into / src.relative_to(runs)
            text = src.read_text(encoding="utf-8").replace(prefix, "")
            if dst.is_file() and dst.read_text(encoding="utf-8") == text:
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text, encoding="utf-8")
            written.append(dst)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pilot", help="the pilot's verdict")
    p.add_argument("runs", type=Path)
    b = sub.add_parser("build", help="the study JSON")
    b.add_argument("runs", type=Path)
    b.add_argument("--out", type=Path, default=DEFAULT_JSON)
    for q in (p, b):
        q.add_argument(
            "--final-step",
            type=int,
            default=FINAL_STEP,
            help=f"the step the verdicts read (default {FINAL_STEP}, amendment 2; the "
            f"first pass: {REGISTERED_FINAL_STEP})",
        )
    c = sub.add_parser("collect", help="copy the runs' reports and metrics for git")
    c.add_argument("runs", type=Path)
    c.add_argument("--into", type=Path, default=DEFAULT_COMMITTED)
    t = sub.add_parser("tables", help="docs/results.md's tables, from the study JSON")
    t.add_argument("--json", type=Path, default=DEFAULT_JSON)
    t.add_argument("--check", type=Path, help="exit 1 if this document's tables differ")
    t.add_argument("--write", type=Path, help="replace this document's tables")
    args = ap.parse_args(argv)
    if args.command == "collect":
        if not args.runs.is_dir():
            print(f"countdown_modes: error: {args.runs} is not a directory", file=sys.stderr)
            return 2
        for path in collect(args.runs, args.into):
            print(f"wrote {path}")
        return 0
    if args.command == "tables":
        text = markdown_tables(json.loads(args.json.read_text(encoding="utf-8")))
        return doc_blocks.emit(
            text,
            TABLE_BEGIN,
            TABLE_END,
            check=args.check,
            write=args.write,
            what="countdown_modes tables",
        )
    try:
        if args.final_step < 1:
            raise ValueError(f"--final-step must be a step >= 1, got {args.final_step}")
        result = build(args.runs, final_step=args.final_step)
    except ValueError as e:
        print(f"countdown_modes: error: {e}", file=sys.stderr)
        return 2
    if args.command == "pilot":
        if "pilot" not in result:
            print(
                f"countdown_modes: the pilot (pass1, seed 0) has no evaluation at step "
                f"{args.final_step} yet, so no verdict; the rule read at its last evaluation:"
            )
            print(json.dumps(result.get("pilot_interim"), indent=1))
            return 1
        print(json.dumps(result["pilot"], indent=1))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
