"""Reproduce the paper's core comparison at laptop scale: Pass@1 vs Pass@k training.

Pass@k Training (arXiv 2508.10751) claims that training on pass@k keeps the policy
exploring (entropy, diversity of wrong answers) and so keeps or improves pass@k at large
k, where Pass@1 training sharpens the policy and loses it; and that Pass@k training
followed by Pass@1 training gets the best of both. This runner trains the embedded
SmolLM2-135M-Instruct with the embedded trainer (``passk.train.trainer.train``) in four
arms, each from the repository's recipe file:

* (a) ``pass1``            configs/pass1.yaml            GRPO / DAPO-style Pass@1
* (b) ``passk``            configs/passk_analytic.yaml   analytic Pass@k, k = 4
* (c) ``passk_then_pass1`` configs/passk_then_pass1.yaml Pass@k for steps/2, then Pass@1
  (``algorithm.stages.0.steps`` is overridden to half the steps)
* (d) ``combination``      configs/passk_combination.yaml  eq. 18, k = 4

with **equal rollout budgets** (the same steps, prompts per step, samples per prompt,
response budget, temperature; no dynamic sampling or DARS, checked before anything
loads), for each seed, and evaluates held-out pass@k for k = 1, 2, 4, ..., 64 (64
samples per problem) before and after training. Entropy and wrong-answer diversity over
training come from each run's ``metrics.jsonl`` (``actor/entropy``,
``train/wrong_diversity``) and from the evaluations (``eval/entropy``,
``eval/wrong_diversity``).

**The "before" evaluation is run once per seed, not once per arm.** Before the first
update every arm of a seed has the same weights, the same held-out problems and the same
evaluation sample seeds (the trainer derives them from ``(seed, "eval")`` only), so the
four step-0 evaluations would be identical. The runner builds one
:class:`~passk.train.trainer.Trainer` per seed (arm (a)'s config) and calls its own
``evaluate(0)``; every arm then trains with ``eval.at_start=false``.
``tests/test_reproduce_quick.py`` checks that this equals a training run's own step-0
evaluation. The two seeds' "before" results differ only by evaluation sampling noise,
which the output reports.

Task and budget (defaults), with the measurements behind them (this 2-core CPU, one
torch thread, bf16 sampling):

* **Task ``mul1``** (single-digit products; 48 train / 16 test problems). Measured with
  16 problems x 16 samples, 96 tokens: ``add`` with ``digits=2`` has pass@1 0.035
  (95% CI 0.012-0.066), pass@16 0.375, 10 of 16 problems with 0 correct of 16 and 34%
  of responses truncated at 96 tokens; ``chain`` with 3 one-digit terms is as hard
  (pass@1 0.023, pass@16 0.31); ``add`` with ``digits=1`` (pass@1 0.24, pass@16 1.0) has
  only 11 test problems. On ``add``-2 a group of 8 samples holds a correct answer ~20% of
  the time (pass@8 = 0.23 measured; both Pass@1 and Pass@k advantages are zero for an
  all-wrong group), so 16 steps x 4 prompts would give ~15 informative groups: too little
  signal to tell the arms apart. On mul1 (pass@1 ~0.3, pass@16 ~1.0) most groups are
  mixed (94% at a uniform p = 0.3: 1 - 0.7^8 - 0.3^8). Its large-k pass@k is saturated at
  the start, so what it can show at k >= 16 is the *loss* of pass@k that the paper
  attributes to Pass@1 training (problems collapsing onto a wrong answer) and whether
  Pass@k training avoids it; k = 1..8 has room both ways. Other tasks:
  ``--task add --task-option digits=2``.
* **Budget**: 16 steps x 4 prompts x 8 samples x <= 96 tokens (512 rollouts per run),
  k = 4 and lr **1e-5** (the recipes' values, ``--lr``); arm (c) switches at step 8. The
  papers' 1e-6..4e-6 are for long runs of large models: Adam moves a weight by at most
  ~lr per step, so 16 steps at 2e-6 would move it by <= 3.2e-5, far under the bf16 spacing
  of any weight above ~0.01 in magnitude (the sampling copy is bf16; the fp32 master keeps
  the sum, but the sampled policy would barely change). 1e-5 allows <= 1.6e-4. Chosen by
  this reasoning, not tuned. At this lr the policy moves fast (the 8-step default
  ``passk train`` run takes held-out pass@1 from 0.32 to 0.73), so 16 steps is enough
  to see Pass@1 training sharpen the policy; the step count was set by the wall time.
* **Evaluation**: all 16 mul1 test problems x 64 samples (the trainer's ``eval`` section:
  ``eval.n=64``, ``eval.problems=16``), at temperature 1.0 and the rollout budget.
* **Wall time** of the default (4 arms x 2 seeds), one torch thread per process: alone
  on this CPU one step takes ~27 s (sampling ~200 tok/s, update ~15-20 s) and one
  evaluation of 16 x 64 samples ~6 min; 16 steps + the final evaluation + loads and
  checkpoints is ~14 min per run, 8 runs + 2 "before" evaluations ~2 h. The published
  results ran the two seeds as two processes side by side (``--seeds 0`` and
  ``--seeds 1``, then one ``--resume`` to summarise both): each was ~1.75x slower than
  alone (steps ~47 s, evaluations ~11 min), ~1.8 h in all. ``--seeds 0`` halves the work.

Outputs under ``--out`` (default ``benchmarks/results/reproduce_runs``): one trainer run
directory per arm and seed (``ARM_sSEED/``: ``config.yaml``, ``metrics.jsonl``,
``evals/step_*.json``, ``reproduce_run.json``), ``before_sSEED/`` (the shared "before"
evaluation), and the figures ``passk_curves.png`` (pass@k vs k before / after, mean over
seeds, and the change), ``training.png`` (``passk.plots.plot_run`` over all runs) and
``entropy.png`` (entropy and wrong-answer diversity over training). ``--json``
(default ``benchmarks/results/reproduce.json``) gets, per arm and seed, pass@k before
and after at k = 1, 2, 4, ..., n with bootstrap 95% CIs (1,000 resamples over
problems), the final evaluation's entropy and wrong-answer diversity, a summary of the
training curves, wall times and the exact ``passk train`` command and resolved config;
and per arm the mean / std / min / max over seeds. A finished run's checkpoints (0.5 GB
of weights + 1 GB of AdamW state) are deleted unless ``--keep-checkpoints``.

    python benchmarks/reproduce.py                       # the full run (~2 h)
    python benchmarks/reproduce.py --resume              # continue / re-summarise it
    python benchmarks/reproduce.py --quick               # smoke test, ~2 min
    python benchmarks/reproduce.py --arms pass1 passk --seeds 0 --steps 20

``--quick`` runs the same code path with 2 steps, 2 prompts x 6 samples x 16 tokens
(6 > the recipes' k = 4: with n = k every Pass@k advantage is zero and arm (b) would not
update), 2 eval problems x 4 samples and one seed, into ``runs/reproduce_quick``, and
writes its JSON there (never over the real results).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("benchmarks/results/reproduce_runs")
DEFAULT_JSON = Path("benchmarks/results/reproduce.json")
QUICK_OUT = Path("runs/reproduce_quick")  # /runs/ is git-ignored
RUN_MARKER = "reproduce_run.json"
BEFORE_MARKER = "before.json"
TABLE_KS = (1, 4, 16, 64)
MARKDOWN_KS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    config: str  # recipe file, relative to the repository root
    switch_at_half: bool = False  # override algorithm.stages.0.steps = steps // 2

    def overrides(self, steps: int) -> list[str]:
        return [f"algorithm.stages.0.steps={max(1, steps // 2)}"] if self.switch_at_half else []


ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm("pass1", "(a) Pass@1", "configs/pass1.yaml"),
        Arm("passk", "(b) Pass@k analytic", "configs/passk_analytic.yaml"),
        Arm("passk_then_pass1", "(c) Pass@k -> Pass@1", "configs/passk_then_pass1.yaml", True),
        Arm("combination", "(d) combination", "configs/passk_combination.yaml"),
    )
}


@dataclass(frozen=True)
class Budget:
    """What every arm shares; the full run's defaults are justified in the docstring."""

    task: str = "mul1"
    task_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int = 16
    prompts_per_step: int = 4
    n: int = 8
    max_new_tokens: int = 96
    lr: float = 1e-5
    eval_problems: int = 16
    eval_n: int = 64
    eval_every: int = 0
    seeds: tuple[int, ...] = (0, 1)


QUICK = {
    "steps": 2,
    "prompts_per_step": 2,
    "n": 6,  # > k = 4: with n = k the analytic Pass@k advantage is identically zero
    "max_new_tokens": 16,
    "eval_problems": 2,
    "eval_n": 4,
    "seeds": (0,),
}

# Measured on this 2-core CPU with one torch thread (see the module docstring).
STEP_S_REF = 27.0  # one step of 4 prompts x 8 samples x <= 96 tokens on mul1
EVAL_S_PER_SAMPLE = 90.0 / 256  # 16 problems x 16 samples in ~90 s
LOAD_S, CHECKPOINT_S = 5.0, 10.0


# ------------------------------------------------------------------------------ arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=None, help=f"run directory (default {DEFAULT_OUT})")
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help=f"results file (default {DEFAULT_JSON}; with --quick OUT/reproduce.json)",
    )
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 16)")
    p.add_argument("--task", default=None, help="task name (default mul1)")
    p.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task constructor option (repeatable), e.g. --task add --task-option digits=2",
    )
    p.add_argument("--prompts-per-step", type=int, default=None, help="default 4")
    p.add_argument("--n", type=int, default=None, help="samples per prompt (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 96")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-5)")
    p.add_argument("--eval-problems", type=int, default=None, help="held-out problems (16)")
    p.add_argument("--eval-n", type=int, default=None, help="samples per problem (64)")
    p.add_argument(
        "--eval-every", type=int, default=None, help="also evaluate every N steps (default 0)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="steps between checkpoints")
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep finished runs' checkpoints (1.5 GB each; needed to extend a run later)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: tiny budget, 1 seed, all arms")
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip finished runs, resume interrupted ones from their last checkpoint",
    )
    p.add_argument(
        "--markdown", type=Path, default=None, help="also write the tables as Markdown here"
    )
    p.add_argument(
        "--note", default=None, help="free text stored in the JSON (e.g. how the runs were split)"
    )
    p.add_argument(
        "--model", default="embedded", help="'embedded' or a local HF checkpoint (for tests)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra trainer config override for every arm (repeatable; values are YAML)",
    )
    return p


def resolve_budget(args: argparse.Namespace) -> Budget:
    import yaml

    base = dataclasses.asdict(Budget())
    if args.quick:
        base.update(QUICK)
    given = {
        "steps": args.steps,
        "prompts_per_step": args.prompts_per_step,
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "lr": args.lr,
        "eval_problems": args.eval_problems,
        "eval_n": args.eval_n,
        "eval_every": args.eval_every,
        "seeds": tuple(args.seeds) if args.seeds else None,
    }
    base.update({k: v for k, v in given.items() if v is not None})
    if args.task is not None:
        base["task"], base["task_options"] = args.task, {}
    for text in args.task_option:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--task-option {text!r} must look like KEY=VALUE")
        base["task_options"][key.strip()] = yaml.safe_load(raw)
    budget = Budget(**base)
    for name in ("steps", "prompts_per_step", "n", "max_new_tokens", "eval_problems", "eval_n"):
        if getattr(budget, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if len(set(budget.seeds)) != len(budget.seeds):
        raise ValueError(f"--seeds has repeats: {budget.seeds}")
    return budget


def common_overrides(args: argparse.Namespace, budget: Budget, seed: int) -> list[str]:
    b = budget
    return [
        f"seed={seed}",
        f"steps={b.steps}",
        f"model.name={args.model}",
        f"model.threads={args.threads}",
        f"task.name={b.task}",
        f"task.options={json.dumps(b.task_options)}",
        f"rollout.prompts_per_step={b.prompts_per_step}",
        f"rollout.n={b.n}",
        f"rollout.max_new_tokens={b.max_new_tokens}",
        f"optim.lr={b.lr}",
        f"eval.problems={b.eval_problems}",
        f"eval.n={b.eval_n}",
        f"eval.every={b.eval_every}",
        "eval.at_start=false",  # the shared "before" evaluation replaces it
        "eval.at_end=true",
        f"checkpoint.every={args.checkpoint_every}",
        "checkpoint.keep=1",
        "log.progress=false",
    ]


@dataclass
class Run:
    arm: Arm
    seed: int
    overrides: list[str]
    config: Any  # TrainConfig
    directory: Path

    @property
    def key(self) -> str:
        return f"{self.arm.name}_s{self.seed}"

    def command(self) -> str:
        sets = " ".join(f"--set {shlex.quote(o)}" for o in self.overrides)
        return f"passk train --config {self.arm.config} --out {shlex.quote(str(self.directory))} {sets}"


def plan_runs(args: argparse.Namespace, budget: Budget, out: Path) -> list[Run]:
    """Every (arm, seed) config, validated, with equal rollout budgets (checked)."""
    from passk.train.config import load_config, validate

    runs = []
    for seed in budget.seeds:
        for name in args.arms:
            arm = ARMS[name]
            overrides = [
                *common_overrides(args, budget, seed),
                *arm.overrides(budget.steps),
                *args.overrides,
            ]
            config = load_config(ROOT / arm.config, overrides)
            validate(config)
            runs.append(Run(arm, seed, overrides, config, out / f"{arm.name}_s{seed}"))
    check_equal_budgets([r.config for r in runs])
    return runs


def budget_view(config: Any) -> dict[str, Any]:
    """The parts of a config that set the rollout and evaluation budget."""
    d = config.to_dict()
    a = d["algorithm"]
    return {
        "steps": d["steps"],
        "rollout": d["rollout"],
        "eval": d["eval"],
        "task": d["task"],
        "model": d["model"],
        "extra_rollouts": [a["dynamic_sampling"], a["dars"]],
    }


def check_equal_budgets(configs: Sequence[Any]) -> None:
    views = [budget_view(c) for c in configs]
    for view in views:
        if view["extra_rollouts"] != [False, None]:
            raise ValueError(
                "an arm uses dynamic sampling or DARS, which changes its rollout budget; "
                "the comparison needs equal budgets"
            )
    for c, view in zip(configs, views):
        if view != views[0]:
            diff = [k for k in view if view[k] != views[0][k]]
            raise ValueError(f"arms differ in their budget ({', '.join(diff)}) for seed {c.seed}")


# ------------------------------------------------------------------------------- running


def eval_fingerprint(config: Any) -> str:
    """Everything a held-out evaluation depends on (not the training algorithm)."""
    d = config.to_dict()
    view = {
        "seed": d["seed"],
        "model": d["model"],
        "task": d["task"],
        "eval": {k: v for k, v in d["eval"].items() if k not in ("every", "at_start", "at_end")},
        "max_new_tokens": d["rollout"]["max_new_tokens"],
        "batch_size": d["rollout"]["batch_size"],
    }
    return hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]


def write_json(path: Path, obj: Any) -> None:
    from passk.eval.report import write_json_atomic

    write_json_atomic(path, obj)


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def run_before(config: Any, directory: Path) -> dict[str, Any]:
    """The shared step-0 evaluation of one seed: the trainer's own ``evaluate(0)``."""
    from passk.train.trainer import Trainer

    marker = directory / BEFORE_MARKER
    fingerprint = eval_fingerprint(config)
    if marker.is_file():
        done = read_json(marker)
        if done.get("eval_fingerprint") != fingerprint:
            raise ValueError(
                f"{directory} holds a 'before' evaluation made with other settings "
                "(model, task, eval or seed); use another --out"
            )
        print(f"[before s{config.seed}] done earlier, reused", flush=True)
        return done
    if directory.exists():
        shutil.rmtree(directory)  # an interrupted evaluation: nothing to keep
    print(f"[before s{config.seed}] evaluating the initial model ...", flush=True)
    t0 = time.perf_counter()
    trainer = Trainer(config, directory)
    try:
        record = trainer.evaluate(0)
    finally:
        trainer.scorer.close()
    del trainer
    done = {
        "seed": config.seed,
        "eval_fingerprint": fingerprint,
        "record": record,
        "wall_s": time.perf_counter() - t0,
        "note": "Trainer(config of arm (a)).evaluate(0): identical to every arm's step-0 "
        "evaluation for this seed",
    }
    write_json(marker, done)
    print(f"[before s{config.seed}] {fmt_record(record)} ({done['wall_s']:.0f} s)", flush=True)
    return done


def fmt_record(rec: dict[str, Any]) -> str:
    keys = sorted(
        (k for k in rec if k.startswith("eval/pass@")), key=lambda k: int(k.split("@")[1])
    )
    return " ".join(f"p@{k.split('@')[1]}={rec[k]:.3f}" for k in keys)


class Interrupted(Exception):
    pass


def run_arm(run: Run, resume: bool, keep_checkpoints: bool) -> dict[str, Any]:
    """Train one arm (or skip / resume it); returns its marker."""
    from passk.train import checkpoint as ckpt
    from passk.train.trainer import TrainingDiverged, train

    c, directory, marker = run.config, run.directory, run.directory / RUN_MARKER
    resume_this = False
    if marker.is_file():
        done = read_json(marker)
        if done.get("fingerprint") != c.fingerprint():
            raise ValueError(
                f"{directory} finished with another config than these options give (only "
                "--steps may change on --resume); use the original options or another --out"
            )
        if done.get("status") != "done" or done.get("steps_done") == c.steps:
            print(f"[{run.key}] finished earlier ({done.get('status')}), skipped", flush=True)
            return done
        if ckpt.latest_checkpoint(directory) is None:
            raise ValueError(
                f"{directory} finished {done.get('steps_done')} steps and its checkpoints "
                f"were deleted; it cannot be extended to {c.steps} (use another --out, or "
                "--keep-checkpoints next time)"
            )
        marker.unlink()
        resume_this = True
    elif resume and directory.exists():
        resume_this = ckpt.latest_checkpoint(directory) is not None
        if not resume_this:  # started, but interrupted before its first checkpoint
            shutil.rmtree(directory)
    state = "resuming" if resume_this else "training"
    print(f"[{run.key}] {state}: {run.arm.label}, seed {run.seed}, {c.steps} steps", flush=True)

    def on_step(rec: dict[str, Any]) -> None:
        keys = (
            ("reward", "reward/mean"),
            ("ent", "actor/entropy"),
            ("wdiv", "train/wrong_diversity"),
        )
        vals = " ".join(f"{name}={_num(rec.get(key))}" for name, key in keys)
        stage = f" [{rec['stage']}]" if rec.get("stage") not in (None, "main") else ""
        print(
            f"[{run.key}] step {rec['step']}/{c.steps}{stage} {vals} ({rec['time/step']:.1f} s)",
            flush=True,
        )

    t0 = time.perf_counter()
    status, error = "done", None
    try:
        result = train(c, directory, resume=resume_this, on_step=on_step)
    except TrainingDiverged as e:
        status, error, result = "diverged", str(e), None
    wall = time.perf_counter() - t0
    if result is not None and result.interrupted:
        raise Interrupted(f"{run.key} interrupted at step {result.steps_done}")
    pruned = False
    if status == "done" and not keep_checkpoints and (directory / ckpt.CHECKPOINTS).is_dir():
        shutil.rmtree(directory / ckpt.CHECKPOINTS)
        pruned = True
    done = {
        "status": status,
        "error": error,
        "fingerprint": c.fingerprint(),
        "steps_done": result.steps_done if result is not None else None,
        "wall_s": wall,
        "resumed": resume_this,
        "checkpoints_deleted": pruned,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(marker, done)
    if result is not None and result.final_eval is not None:
        print(f"[{run.key}] after: {fmt_record(result.final_eval)} ({wall:.0f} s)", flush=True)
    return done


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) and math.isfinite(v) else "-"


# ---------------------------------------------------------------------------- summaries


def eval_summary(report: dict[str, Any], ks: Sequence[int], source: Path) -> dict[str, Any]:
    """pass@k (every k up to n, and bootstrap CIs at ``ks``) from an eval report's counts."""
    from passk.core.metrics import pass_at_k_ci, pass_at_k_curve

    per = report["per_problem"]
    ns, cs = [p["n"] for p in per], [p["c"] for p in per]
    n = min(ns)
    ks = [k for k in ks if k <= n]
    curve = pass_at_k_curve(ns, cs, range(1, n + 1))
    ci = pass_at_k_ci(ns, cs, ks, num_resamples=1000, seed=0)
    return {
        "file": str(source),
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
        "correct_per_problem": {p["id"]: p["c"] for p in per},
    }


def series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a metric, later records of a step winning (resumed runs)."""
    by_step: dict[int, float] = {}
    for row in rows:
        v = row.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            by_step[int(row["step"])] = float(v)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def window(steps: int) -> int:
    return max(1, min(5, steps // 8))


def train_summary(train_rows: Sequence[dict[str, Any]], eval_rows: Sequence[dict[str, Any]]):
    w = window(len({r["step"] for r in train_rows}))
    out: dict[str, Any] = {"steps": len({r["step"] for r in train_rows}), "window": w}
    for name, key in (
        ("entropy", "actor/entropy"),
        ("reward", "reward/mean"),
        ("wrong_diversity", "train/wrong_diversity"),
        ("pass1", "train/pass@1"),
        ("length", "response/length_mean"),
    ):
        _, values = series(train_rows, key)
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
    out["step_time_s"] = sum(series(train_rows, "time/step")[1])
    out["eval_time_s"] = sum(series(eval_rows, "time/eval")[1])
    return out


def spread(values: Sequence[float | None]) -> dict[str, Any] | None:
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


def summarize_run(
    run: Run, marker: dict[str, Any], before: dict[str, Any], ks: Sequence[int]
) -> dict[str, Any]:
    from passk.plots import load_metrics

    d = run.directory
    rec: dict[str, Any] = {
        "arm": run.arm.name,
        "label": run.arm.label,
        "seed": run.seed,
        "status": marker.get("status"),
        "error": marker.get("error"),
        "run_dir": str(d),
        "config_file": run.arm.config,
        "train_command": run.command(),
        "config": run.config.to_dict(),
        "wall_s": marker.get("wall_s"),
        "resumed": marker.get("resumed"),
        "before": {k: before[k] for k in ("pass_at_k", "ci95", "entropy", "wrong_diversity")},
    }
    if (d / "metrics.jsonl").is_file():
        train_rows, eval_rows = load_metrics(d)
        rec["train"] = train_summary(train_rows, eval_rows)
        rec["eval_history"] = [
            {"step": r["step"], **{k: v for k, v in r.items() if k.startswith("eval/")}}
            for r in eval_rows
        ]
    final = d / "evals" / f"step_{run.config.steps:06d}.json"
    if marker.get("status") == "done" and final.is_file():
        after = eval_summary(read_json(final), ks, final)
        rec["after"] = after
        rec["delta_pass_at_k"] = {
            k: after["pass_at_k"][k] - before["pass_at_k"][k] for k in after["pass_at_k"]
        }
    return rec


def aggregate(records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """Per arm: mean / std / min / max over seeds."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["arm"] for r in records):
        rs = [r for r in records if r["arm"] == name and "after" in r]
        if not rs:
            out[name] = {"label": ARMS[name].label, "seeds": []}
            continue
        kk = [str(k) for k in ks if str(k) in rs[0]["after"]["pass_at_k"]]
        n = min(len(r["after"]["curve"]) for r in rs)

        def train_stat(r: dict[str, Any], name: str, which: str) -> float | None:
            return r.get("train", {}).get(name, {}).get(which)

        out[name] = {
            "label": ARMS[name].label,
            "seeds": [r["seed"] for r in rs],
            "before": {k: spread([r["before"]["pass_at_k"][k] for r in rs]) for k in kk},
            "after": {k: spread([r["after"]["pass_at_k"][k] for r in rs]) for k in kk},
            "delta": {k: spread([r["delta_pass_at_k"][k] for r in rs]) for k in kk},
            "curve_after_mean": [
                statistics.fmean(r["after"]["curve"][i] for r in rs) for i in range(n)
            ],
            "curve_after_min": [min(r["after"]["curve"][i] for r in rs) for i in range(n)],
            "curve_after_max": [max(r["after"]["curve"][i] for r in rs) for i in range(n)],
            "eval_entropy_after": spread([r["after"]["entropy"] for r in rs]),
            "eval_wrong_diversity_after": spread([r["after"]["wrong_diversity"] for r in rs]),
            "eval_entropy_before": spread([r["before"]["entropy"] for r in rs]),
            "eval_wrong_diversity_before": spread([r["before"]["wrong_diversity"] for r in rs]),
            "train_entropy_first": spread([train_stat(r, "entropy", "first_mean") for r in rs]),
            "train_entropy_last": spread([train_stat(r, "entropy", "last_mean") for r in rs]),
            "train_reward_first": spread([train_stat(r, "reward", "first_mean") for r in rs]),
            "train_reward_last": spread([train_stat(r, "reward", "last_mean") for r in rs]),
            "wall_s": spread([r["wall_s"] for r in rs]),
        }
    return out


# ------------------------------------------------------------------------------- figures


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def arm_color(name: str) -> str:
    """One colour per arm in every figure, whichever arms are selected."""
    return f"C{list(ARMS).index(name)}"


def plot_curves(before: dict[int, dict[str, Any]], arms: dict[str, Any], out: Path) -> Path:
    """pass@k vs k (every k) before and after, mean over seeds with the seeds' range."""
    plt = _pyplot()
    fig, (ax, dax) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = [b["curve"] for b in before.values()]
    n = min(len(c) for c in curves)
    for a in arms.values():
        if "curve_after_mean" in a:
            n = min(n, len(a["curve_after_mean"]))
    ks = list(range(1, n + 1))
    b_mean = [statistics.fmean(c[i] for c in curves) for i in range(n)]
    ax.plot(ks, b_mean, color="black", linestyle="--", label=f"before ({len(curves)} seeds)")
    lo = [min(c[i] for c in curves) for i in range(n)]
    hi = [max(c[i] for c in curves) for i in range(n)]
    ax.fill_between(ks, lo, hi, color="black", alpha=0.1)
    dax.axhline(0.0, color="black", linestyle="--", linewidth=1)
    for name, a in arms.items():
        if "curve_after_mean" not in a:
            continue
        color = arm_color(name)
        mean = a["curve_after_mean"][:n]
        ax.plot(ks, mean, color=color, label=f"{a['label']} ({len(a['seeds'])} seeds)")
        ax.fill_between(
            ks, a["curve_after_min"][:n], a["curve_after_max"][:n], color=color, alpha=0.15
        )
        dax.plot(ks, [m - b for m, b in zip(mean, b_mean)], color=color, label=a["label"])
    for axis in (ax, dax):
        axis.set_xscale("log", base=2)
        ticks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= n]
        axis.set_xticks(ticks)
        axis.set_xticklabels([str(k) for k in ticks])
        axis.set_xlabel("k")
        axis.grid(True, alpha=0.3)
    ax.set_ylabel("pass@k (unbiased, held-out)")
    ax.set_ylim(0, 1.02)
    ax.set_title("pass@k after training (mean over seeds; band: min-max)", fontsize=9)
    dax.set_ylabel("pass@k after - before")
    dax.set_title("change from the initial model (mean over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_entropy(runs: Sequence[Run], records: Sequence[dict[str, Any]], out: Path) -> Path:
    """Policy entropy and wrong-answer diversity over training, per arm (mean over seeds)."""
    from passk.plots import load_metrics

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    panels = (
        ("actor/entropy", "eval/entropy", "policy entropy (token mean)"),
        ("train/wrong_diversity", "eval/wrong_diversity", "wrong-answer diversity"),
    )
    by_arm: dict[str, list[Run]] = {}
    for run in runs:
        if (run.directory / "metrics.jsonl").is_file():
            by_arm.setdefault(run.arm.name, []).append(run)
    steps_total = max((r.config.steps for r in runs), default=1)
    w = window(steps_total)
    before_done: set[str] = set()
    for name in ARMS:
        if name not in by_arm:
            continue
        color = arm_color(name)
        metrics = [load_metrics(r.directory) for r in by_arm[name]]
        for ax, (key, eval_key, _) in zip(axes, panels):
            per_seed = [dict(zip(*series(train, key))) for train, _ in metrics]
            steps = sorted(set().union(*per_seed))
            for s in per_seed:  # thin: each seed
                xs = sorted(s)
                ax.plot(xs, _smooth([s[x] for x in xs], w), color=color, alpha=0.25, linewidth=0.8)
            mean = [statistics.fmean(s[x] for s in per_seed if x in s) for x in steps]
            ax.plot(steps, _smooth(mean, w), color=color, label=ARMS[name].label)
            field = eval_key.split("/")[1]
            finals = [r["after"][field] for r in records if r["arm"] == name and "after" in r]
            finals = [v for v in finals if v is not None]
            if finals:
                ax.plot([steps_total], [statistics.fmean(finals)], marker="D", color=color, ms=6)
            if eval_key not in before_done:
                befores = [r["before"][field] for r in records]
                befores = [v for v in befores if v is not None]
                if befores:
                    ax.plot([0], [statistics.fmean(befores)], marker="X", color="black", ms=7)
                before_done.add(eval_key)
    for ax, (_, _, title) in zip(axes, panels):
        smoothed = f"; trailing mean over {w} steps" if w > 1 else ""
        ax.set_title(
            f"{title} over training (mean over seeds{smoothed})\n"
            "X: held-out eval before, diamonds: after",
            fontsize=9,
        )
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _smooth(values: Sequence[float], width: int) -> list[float]:
    return [statistics.fmean(values[max(0, i - width + 1) : i + 1]) for i in range(len(values))]


def make_figures(
    runs: Sequence[Run],
    records: Sequence[dict[str, Any]],
    before: dict[int, dict],
    arms: dict,
    out: Path,
) -> dict[str, str]:
    from passk.plots import plot_run

    figures = {}
    trained = [r for r in runs if (r.directory / "metrics.jsonl").is_file()]
    if before and any("curve_after_mean" in a for a in arms.values()):
        figures["passk_curves"] = str(plot_curves(before, arms, out / "passk_curves.png"))
    if trained:
        w = window(max(r.config.steps for r in trained))
        figures["training"] = str(
            plot_run(
                [r.directory for r in trained],
                out / "training.png",
                labels=[f"{r.arm.name} s{r.seed}" for r in trained],
                smooth=w,
            )
        )
        figures["entropy"] = str(plot_entropy(trained, records, out / "entropy.png"))
    return figures


# --------------------------------------------------------------------------------- table


def print_table(result: dict[str, Any]) -> None:
    ks = [str(k) for k in result["ks"] if k in TABLE_KS or len(result["ks"]) <= 4]
    arms = result["arms"]
    before = result["before"]["mean"]

    def cell(s: dict[str, Any] | None, signed: bool = False) -> str:
        if s is None:
            return "-"
        f = "{:+.3f}" if signed else "{:.3f}"
        text = f.format(s["mean"])
        if s["n"] > 1:
            text += f" [{s['min']:.2f},{s['max']:.2f}]"
        return text

    width = 22
    head = f"{'arm':<22}" + "".join(f"{'pass@' + k:>{width}}" for k in ks)
    extra = f"{'eval ent':>10}{'wrong div':>10}{'wall min':>10}"
    print("\nheld-out pass@k after training (mean over seeds [min,max])")
    print(head + extra)
    row = f"{'before':<22}" + "".join(f"{cell(before['pass_at_k'].get(k)):>{width}}" for k in ks)
    row += f"{_num((before.get('entropy') or {}).get('mean')):>10}"
    row += f"{_num((before.get('wrong_diversity') or {}).get('mean')):>10}"
    print(row)
    for a in arms.values():
        if "after" not in a:
            print(f"{a['label']:<22}  (no finished run)")
            continue
        row = f"{a['label']:<22}" + "".join(f"{cell(a['after'].get(k)):>{width}}" for k in ks)
        ent, div, wall = a["eval_entropy_after"], a["eval_wrong_diversity_after"], a["wall_s"]
        row += f"{_num(ent and ent['mean']):>10}{_num(div and div['mean']):>10}"
        row += f"{(wall['mean'] / 60 if wall else float('nan')):>10.1f}"
        print(row)
    print("\nchange from before (same seed), mean over seeds [min,max]")
    print(
        f"{'arm':<22}"
        + "".join(f"{'d pass@' + k:>{width}}" for k in ks)
        + f"{'train ent first->last':>24}"
    )
    for a in arms.values():
        if "delta" not in a:
            continue
        row = f"{a['label']:<22}" + "".join(f"{cell(a['delta'].get(k), True):>{width}}" for k in ks)
        e0, e1 = a["train_entropy_first"], a["train_entropy_last"]
        row += f"{_num(e0 and e0['mean']) + ' -> ' + _num(e1 and e1['mean']):>24}"
        print(row)


def _md_cell(s: dict[str, Any] | None, signed: bool = False) -> str:
    """``mean (min..max)`` over seeds, or the value alone for one seed."""
    if s is None:
        return "-"
    f = "{:+.3f}" if signed else "{:.3f}"
    text = f.format(s["mean"])
    if s["n"] > 1:
        text += f" ({f.format(s['min'])}..{f.format(s['max'])})"
    return text


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown_tables(result: dict[str, Any]) -> str:
    """The results as Markdown tables (for docs/results.md), every number from ``result``."""
    ks = [str(k) for k in result["ks"] if k in MARKDOWN_KS]
    arms = {n: a for n, a in result["arms"].items() if "after" in a}
    before = result["before"]["mean"]
    nseeds = len(result["before"]["per_seed"])
    spread_note = "mean over seeds (min..max)" if nseeds > 1 else "one seed"
    out: list[str] = [f"Held-out pass@k, {spread_note}:", ""]
    rows = [["before"] + [_md_cell(before["pass_at_k"].get(k)) for k in ks]]
    rows += [[a["label"]] + [_md_cell(a["after"].get(k)) for k in ks] for a in arms.values()]
    out += _md_table(["arm"] + [f"pass@{k}" for k in ks], rows)
    out += ["", f"Change from before (same seed), {spread_note}:", ""]
    rows = [[a["label"]] + [_md_cell(a["delta"].get(k), True) for k in ks] for a in arms.values()]
    out += _md_table(["arm"] + [f"d pass@{k}" for k in ks], rows)
    out += ["", f"Entropy and wrong-answer diversity, {spread_note}:", ""]
    rows = [
        [
            "before",
            _md_cell(before.get("entropy")),
            "",
            "",
            _md_cell(before.get("wrong_diversity")),
        ]
    ]
    rows += [
        [
            a["label"],
            _md_cell(a["eval_entropy_after"]),
            _md_cell(a["train_entropy_first"]),
            _md_cell(a["train_entropy_last"]),
            _md_cell(a["eval_wrong_diversity_after"]),
        ]
        for a in arms.values()
    ]
    out += _md_table(
        [
            "arm",
            "eval entropy",
            "train entropy (first steps)",
            "train entropy (last steps)",
            "eval wrong-answer diversity",
        ],
        rows,
    )
    out += ["", "Every run (pass@k after training with bootstrap 95% CI over problems):", ""]
    rows = []
    for r in result["runs"]:
        after = r.get("after")
        if after is None:
            rows.append([r["label"], str(r["seed"]), r["status"] or "-", "", "", "", "", ""])
            continue
        cells = []
        for k in ("1", "4", "64"):
            if k in after["pass_at_k"]:
                lo, hi = after["ci95"][k]
                cells.append(f"{after['pass_at_k'][k]:.3f} [{lo:.2f}, {hi:.2f}]")
            else:
                cells.append("-")
        train = r.get("train", {})
        reward = train.get("reward", {})
        rows.append(
            [
                r["label"],
                str(r["seed"]),
                *cells,
                f"{_num(reward.get('first_mean'))} -> {_num(reward.get('last_mean'))}",
                _num(after.get("mean_length")),
                f"{(r.get('wall_s') or float('nan')) / 60:.1f}",
            ]
        )
    out += _md_table(
        [
            "arm",
            "seed",
            "pass@1",
            "pass@4",
            "pass@64",
            "train reward (first -> last)",
            "eval length",
            "wall (min)",
        ],
        rows,
    )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------- main


def estimate_wall_s(budget: Budget, n_runs: int) -> float:
    """Rough wall time from this machine's measured rates (see the module docstring)."""
    scale = budget.max_new_tokens / 96
    step = STEP_S_REF * budget.prompts_per_step * budget.n / 32 * scale
    evals_per_run = 1 + (budget.steps // budget.eval_every if budget.eval_every else 0)
    one_eval = EVAL_S_PER_SAMPLE * budget.eval_problems * budget.eval_n * scale
    checkpoints = math.ceil(budget.steps / 10)
    per_run = budget.steps * step + evals_per_run * one_eval + LOAD_S + checkpoints * CHECKPOINT_S
    return n_runs * per_run + len(budget.seeds) * (one_eval + LOAD_S)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        budget = resolve_budget(args)
        out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
        json_path = args.json or (out / "reproduce.json" if args.quick else DEFAULT_JSON)
        real = {(base / DEFAULT_JSON).resolve() for base in (Path.cwd(), ROOT)}
        if args.quick and json_path.resolve() in real:
            raise ValueError(f"--quick never writes the real results file {DEFAULT_JSON}")
        runs = plan_runs(args, budget, out)
    except ValueError as e:
        print(f"reproduce: error: {e}", file=sys.stderr)
        return 2
    from passk.core.metrics import default_ks
    from passk.train.config import load_config

    ks = default_ks(budget.eval_n)
    before_dirs = {seed: out / f"before_s{seed}" for seed in budget.seeds}
    if not args.resume:
        taken = [p for p in [*before_dirs.values(), *(r.directory for r in runs)] if p.exists()]
        if taken:
            print(
                f"reproduce: error: {out} already holds runs ({', '.join(p.name for p in taken)}); "
                "pass --resume to continue them or choose another --out",
                file=sys.stderr,
            )
            return 2
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = (
        shlex.join([sys.executable, *sys.argv])
        if argv is None
        else shlex.join(["python", "benchmarks/reproduce.py", *argv])
    )
    est = estimate_wall_s(budget, len(runs))
    options = f" {json.dumps(budget.task_options)}" if budget.task_options else ""
    print(
        f"reproduce: {len(args.arms)} arms x {len(budget.seeds)} seed(s), task {budget.task}"
        f"{options}, {budget.steps} steps x {budget.prompts_per_step} prompts x {budget.n} "
        f"samples x <= {budget.max_new_tokens} tokens, lr {budget.lr:g}; eval "
        f"{budget.eval_problems} problems x {budget.eval_n} samples -> {out}\n"
        f"reproduce: rough estimate {_duration(est)} at this CPU's measured rates "
        "(1 thread, idle machine)",
        flush=True,
    )

    t_start = time.perf_counter()
    before_markers: dict[int, dict[str, Any]] = {}
    markers: dict[str, dict[str, Any]] = {}
    first = {r.seed: r for r in reversed(runs)}
    try:
        for seed in budget.seeds:
            # arm (a)'s config for the shared evaluation, whichever arms are selected
            cfg = load_config(
                ROOT / ARMS["pass1"].config,
                [*common_overrides(args, budget, seed), *args.overrides],
            )
            if eval_fingerprint(cfg) != eval_fingerprint(first[seed].config):
                raise ValueError("the 'before' evaluation would differ between arms")
            before_markers[seed] = run_before(cfg, before_dirs[seed])
        for run in runs:
            markers[run.key] = run_arm(run, args.resume, args.keep_checkpoints)
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"\nreproduce: interrupted ({e or 'Ctrl-C'}); continue with --resume", flush=True)
        return 130
    except ValueError as e:
        print(f"reproduce: error: {e}", file=sys.stderr)
        return 2

    before: dict[int, dict[str, Any]] = {}
    for seed, d in before_dirs.items():
        path = d / "evals" / "step_000000.json"
        before[seed] = eval_summary(read_json(path), ks, path)
    records = [summarize_run(r, markers[r.key], before[r.seed], ks) for r in runs]
    arms = aggregate(records, ks)
    model_identity = read_json(before_dirs[budget.seeds[0]] / "evals" / "step_000000.json").get(
        "model"
    )
    result: dict[str, Any] = {
        "benchmark": "reproduce: Pass@1 vs Pass@k training (arXiv 2508.10751)",
        "quick": args.quick,
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "note": args.note,
        "wall_s": time.perf_counter() - t_start,  # this invocation
        "wall_s_all_runs": sum(m.get("wall_s") or 0.0 for m in markers.values())
        + sum(m.get("wall_s") or 0.0 for m in before_markers.values()),
        "host": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "cuda": torch.cuda.is_available(),
        },
        "model": model_identity,
        "budget": {
            **dataclasses.asdict(budget),
            "rollouts_per_run": budget.steps * budget.prompts_per_step * budget.n,
            "k_of_passk_arms": sorted(
                {
                    int(st.params["k"])
                    for r in runs
                    for st in r.config.resolved_stages()
                    if "k" in st.params
                }
            ),
            "extra_overrides": args.overrides,
        },
        "ks": ks,
        "before": {
            "note": "evaluated once per seed: before the first update all arms of a seed share "
            "weights, problems and evaluation sample seeds; the seeds differ only by sampling",
            "per_seed": {
                str(s): {**b, **{"wall_s": before_markers[s].get("wall_s")}}
                for s, b in before.items()
            },
            "mean": {
                "pass_at_k": {
                    str(k): spread([b["pass_at_k"][str(k)] for b in before.values()]) for k in ks
                },
                "entropy": spread([b["entropy"] for b in before.values()]),
                "wrong_diversity": spread([b["wrong_diversity"] for b in before.values()]),
            },
        },
        "runs": records,
        "arms": arms,
        "status": {r["arm"] + f"_s{r['seed']}": r["status"] for r in records},
    }
    result["figures"] = make_figures(runs, records, before, arms, out)
    write_json(json_path, result)
    print_table(result)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_tables(result))
        print(f"wrote {args.markdown}")
    print(f"\nwrote {json_path}")
    for name, path in result["figures"].items():
        print(f"  {name:<13} {path}")
    print(f"reproduce: done in {_duration(result['wall_s'])}")
    return 3 if any(r["status"] != "done" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
