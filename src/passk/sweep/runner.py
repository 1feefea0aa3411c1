"""Run a sweep's jobs as ``passk train`` subprocesses: skip the finished, resume the cut.

:func:`decide` looks at every run directory before anything starts (a directory holding
another config, or files that are not a run's, fails the whole sweep at once);
:func:`execute` runs what is left, ``parallel`` processes at a time, each with its log
in ``DIR/logs/KEY.log`` and its outcome in ``DIR/logs/KEY.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passk.sweep.plan import Plan, Run, StartEval, eval_fingerprint
from passk.sweep.spec import SweepError
from passk.train.run_dir import LOCK_FILE, RunDir, busy_message

LOGS = "logs"
SUMMARY = "summary.json"
FIGURES = ("passk_curves.png", "training.png", "entropy.png")
"""What ``passk sweep`` writes in its directory, besides ``logs/`` and the run directories."""
_RUN_DIR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*_s-?\d+$")  # ARM_sSEED, before_sSEED
_TEMP = re.compile(r"^\.(" + "|".join(re.escape(n) for n in (SUMMARY, *FIGURES)) + r")\.")
_POLL_S = 0.5
_STOP_WAIT_S = 120.0


@dataclass
class Job:
    """One subprocess to run: a training run (``run``) or a shared start evaluation."""

    key: str
    run_dir: RunDir
    run: Run | None = None
    start: StartEval | None = None
    resume: bool = False
    clear: bool = False
    """Empty the directory first (checked to hold only a passk run's files)."""

    def argv(self) -> list[str]:
        if self.run is not None:
            return self.run.argv(resume=self.resume)
        return [
            sys.executable,
            "-m",
            "passk.sweep.start_eval",
            str(self.run_dir.config),
            str(self.run_dir.path),
        ]


@dataclass
class Decision:
    jobs: list[Job] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """key -> why it does not run ("finished", "diverged")."""


def log_paths(out: Path, key: str) -> tuple[Path, Path]:
    return out / LOGS / f"{key}.log", out / LOGS / f"{key}.json"


def read_outcome(out: Path, key: str) -> dict[str, Any]:
    """The sweep's record of a job's last run (empty when it never ran)."""
    path = log_paths(out, key)[1]
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


# --- whose directory ------------------------------------------------------------------------------


def check_sweep_dir(out: Path, extra: Sequence[str] = ()) -> None:
    """Refuse an ``--out`` that is not a sweep's own directory (SweepError, one line).

    A sweep's directory holds ``summary.json``, its figures, ``logs/`` and one directory
    per run (``ARM_sSEED``, ``before_sSEED``); a missing or empty directory is a new one.
    A training run directory, an evaluation directory, or any other file is refused, as
    ``passk train`` refuses a directory that is not a run's. ``extra`` names further
    files of the sweep's own (the ``--markdown`` file, when it is written there).
    """
    from passk.train.run_dir import check_output_dir

    check_output_dir(out)
    if not out.is_dir():
        return
    run = RunDir(out)
    if run.config.exists() or run.holds_run() or run.evals_dir.exists():
        raise SweepError(
            f"--out {out} is a training run directory (passk train's); a sweep writes its "
            "runs into a directory of its own: choose another --out"
        )
    if (out / "eval.json").exists():
        raise SweepError(
            f"--out {out} is an evaluation directory (passk eval's); choose another --out"
        )
    foreign = []
    for entry in sorted(out.iterdir(), key=lambda p: p.name):
        name = entry.name
        if entry.is_dir():
            if name == LOGS:
                foreign += [f"{LOGS}/{n}" for n in _foreign_logs(entry)]
            elif not _RUN_DIR_NAME.match(name):
                foreign.append(name + "/")
        elif not (
            name in (SUMMARY, *FIGURES, LOCK_FILE, *extra)
            or (_TEMP.match(name) and entry.is_file())
        ):
            foreign.append(name)
    if foreign:
        shown = ", ".join(foreign[:8]) + (
            f" and {len(foreign) - 8} more" if len(foreign) > 8 else ""
        )
        raise SweepError(
            f"--out {out} holds files that are not a passk sweep's ({shown}); a sweep "
            "writes only summary.json, its figures, logs/ and one directory per run: "
            "choose another --out"
        )


def _foreign_logs(logs: Path) -> list[str]:
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in logs.iterdir()
        if p.is_dir() or not (p.suffix in (".log", ".json") or p.name.startswith("."))
    )


# --- what to run ------------------------------------------------------------------------------


def decide(plan: Plan) -> Decision:
    """What runs, resumes or is skipped; raises :class:`SweepError` before anything runs."""
    d = Decision()
    for rd, key in [(s.run_dir, s.key) for s in plan.starts.values()] + [
        (r.run_dir, r.key) for r in plan.runs
    ]:
        holder = rd.writer()
        if holder is not None:
            raise SweepError(f"{key}: {busy_message(rd.path, holder)}")
    for start in plan.starts.values():
        if _start_done(start):
            d.skipped[start.key] = "finished"
        else:
            clear = _clearable(start.run_dir, start.key)
            d.jobs.append(Job(start.key, start.run_dir, start=start, clear=clear))
    for run in plan.runs:
        why = _run_state(plan, run)
        if why in ("finished", "diverged"):
            d.skipped[run.key] = why
        else:
            # a fresh run's directory may hold leftovers of a passk run (a config.yaml)
            clear = why == "restart" or (why == "fresh" and _clearable(run.run_dir, run.key))
            d.jobs.append(Job(run.key, run.run_dir, run=run, resume=why == "resume", clear=clear))
    return d


def _start_done(start: StartEval) -> bool:
    rd = start.run_dir
    if not rd.is_finished(0):
        return False
    saved = _saved_config(rd, start.key)
    if eval_fingerprint(saved) != start.fingerprint:
        raise SweepError(
            f"{start.key}: {rd.path} holds a 'before' evaluation made with other settings "
            "(model, task, eval or seed) than the sweep now gives; use another --out"
        )
    return True


def _run_state(plan: Plan, run: Run) -> str:
    """``finished``, ``diverged``, ``resume``, ``restart`` (cut before it saved) or ``fresh``."""
    from passk.train.checkpoint import CheckpointError, latest_checkpoint
    from passk.train.config import RESUMABLE_KEYS

    rd = run.run_dir
    _clearable(rd, run.key)  # refuses files that are not a run's, whatever the state
    if not rd.holds_run() and rd.finished() is None:
        return "fresh"
    saved = _saved_config(rd, run.key)
    if saved.fingerprint() != run.config.fingerprint():
        now, before = run.config.to_dict(), saved.to_dict()
        diff = sorted(k for k in now if k not in RESUMABLE_KEYS and now[k] != before.get(k))
        raise SweepError(
            f"{run.key}: {rd.path} was trained with another config than the sweep now gives "
            f"(sections differ: {', '.join(diff) or 'unknown'}); use another --out"
        )
    if rd.is_finished(run.steps):
        return "finished"
    outcome = read_outcome(plan.out, run.key)
    if outcome.get("status") == "diverged" and outcome.get("steps") == run.steps:
        return "diverged"
    try:
        checkpoint = latest_checkpoint(rd.path)
    except CheckpointError as e:
        raise SweepError(f"{run.key}: {e}") from None
    if checkpoint is not None:
        return "resume"
    done = rd.finished()
    if done is not None:
        raise SweepError(
            f"{run.key}: {rd.path} finished {done.get('steps')} steps and its checkpoints were "
            f"deleted, so it cannot be extended to {run.steps}; use another --out (and "
            "keep_checkpoints: true)"
        )
    return "restart"  # started but cut before its first checkpoint


def _saved_config(rd: RunDir, key: str) -> Any:
    from passk.train.config import load_config

    if not rd.config.is_file():
        raise SweepError(f"{key}: {rd.path} holds a run without its {rd.config.name}")
    try:
        return load_config(rd.config)
    except ValueError as e:
        raise SweepError(f"{key}: {rd.config} cannot be read as a passk config ({e})") from None


def _clearable(rd: RunDir, key: str) -> bool:
    """Whether a directory to (re)start holds anything; refuses files that are not a run's."""
    if not rd.path.exists():
        return False
    foreign = rd.foreign_files()
    if foreign:
        raise SweepError(
            f"{key}: {rd.path} holds files that are not part of a passk run "
            f"({', '.join(foreign)}); move them or use another --out"
        )
    return any(rd.path.iterdir())


# --- running ----------------------------------------------------------------------------------


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen
    log: Any
    t0: float


def execute(
    plan: Plan,
    jobs: Sequence[Job],
    *,
    parallel: int = 1,
    threads: int = 1,
    say: Callable[[str], None] = print,
) -> bool:
    """Run ``jobs`` (``parallel`` at a time); False when interrupted.

    Interrupted means a Ctrl-C (SIGINT) to the sweep (the sweep's command line turns
    SIGTERM and SIGHUP into one too), or a run that was itself interrupted (exit 130:
    someone stopped that run); either way the running runs are sent SIGINT, save their
    last finished step and are waited for, and no further run starts.
    """
    if parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {parallel}")
    (plan.out / LOGS).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running = list(jobs), []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                _launch(plan, pending.pop(0), env, say, running)
            time.sleep(_POLL_S)
            for r in [r for r in running if r.process.poll() is not None]:
                running.remove(r)
                if _finish(plan, r, say) == "interrupted":
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        _stop(running)
        for r in running:
            _finish(plan, r, say)
        return False
    return True


def _launch(
    plan: Plan,
    job: Job,
    env: dict[str, str],
    say: Callable[[str], None],
    running: list[_Running],
) -> None:
    """Start ``job`` and add it to ``running`` at once (an interrupt must find it there)."""
    log_path, _ = log_paths(plan.out, job.key)
    if job.clear and job.run_dir.path.exists():
        shutil.rmtree(job.run_dir.path)
    if job.start is not None:
        from passk.train.config import dump_config

        job.run_dir.write_config(dump_config(job.start.config))
        what = f"evaluating the starting model (seed {job.start.seed})"
    else:
        assert job.run is not None
        job.run_dir.clear_finished()  # a run extended to more steps is running again
        what = (
            f"{'resuming' if job.resume else 'training'} seed {job.run.seed}, {job.run.steps} steps"
        )
    say(f"[{job.key}] {what} (log: {log_path.relative_to(plan.out)})")
    log = log_path.open("a", encoding="utf-8")
    log.write(f"\n# {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(job.argv())}\n")
    log.flush()
    try:
        process = subprocess.Popen(job.argv(), stdout=log, stderr=subprocess.STDOUT, env=env)
    except BaseException:
        log.close()
        raise
    running.append(_Running(job, process, log, time.perf_counter()))


def _finish(plan: Plan, r: _Running, say: Callable[[str], None]) -> str:
    """Record how the run ended; its status."""
    r.log.close()
    job, rc, wall = r.job, r.process.wait(), time.perf_counter() - r.t0
    status = _status(plan, job, rc, wall)
    earlier = read_outcome(plan.out, job.key)
    record = {
        "status": status,
        "returncode": rc,
        "wall_s": wall + ((earlier.get("wall_s") or 0.0) if job.resume else 0.0),
        "wall_s_last": wall,
        "resumed": job.resume,
        "steps": job.run.steps if job.run is not None else 0,
        "fingerprint": job.run.config.fingerprint() if job.run is not None else None,
        "ended": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    from passk.eval.report import write_json_atomic

    write_json_atomic(log_paths(plan.out, job.key)[1], record)
    say(f"[{job.key}] {status} in {wall:.0f} s{_result_line(job) if status == 'done' else ''}")
    if status == "failed":
        tail = log_paths(plan.out, job.key)[0].read_text(encoding="utf-8").splitlines()[-8:]
        say("\n".join(f"    {line}" for line in tail))
    return status


def _status(plan: Plan, job: Job, rc: int, wall: float) -> str:
    if rc == 130:
        return "interrupted"
    if rc == 3:
        return "diverged"
    if rc != 0:
        return "failed"
    if job.run is None:
        return "done" if job.run_dir.is_finished(0) else "failed"
    rd, steps = job.run_dir, job.run.steps
    if not rd.is_finished(steps):
        try:
            rd.mark_finished(steps, {"fingerprint": job.run.config.fingerprint(), "wall_s": wall})
        except ValueError:
            return "failed"
    if not plan.spec.keep_checkpoints and rd.checkpoints.is_dir():
        shutil.rmtree(rd.checkpoints)
    return "done"


def _result_line(job: Job) -> str:
    rd = job.run_dir
    step = job.run.steps if job.run is not None else 0
    if step not in rd.eval_steps():
        return ""
    values = rd.read_eval(step).get("pass_at_k", {})
    return ": " + " ".join(f"pass@{k}={v:.3f}" for k, v in values.items())


def _stop(running: Sequence[_Running]) -> None:
    """Let every child save its last finished step (they handle SIGINT), then wait.

    A child still running after ``_STOP_WAIT_S``, or when a second interrupt comes while
    waiting, is killed: the sweep never returns with a run of its own still writing.
    """
    for r in running:
        if r.process.poll() is None:
            r.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_WAIT_S
    try:
        for r in running:
            try:
                r.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.process.kill()
    except KeyboardInterrupt:  # asked twice: stop now
        for r in running:
            if r.process.poll() is None:
                r.process.kill()
    finally:
        for r in running:
            _wait_hard(r.process)


def _wait_hard(process: subprocess.Popen) -> None:
    """Wait for a (killed or exiting) child, through further interrupts."""
    while True:
        try:
            process.wait()
            return
        except KeyboardInterrupt:
            process.kill()
