"""Fault-tolerant scoring: a bad sample scores 0 and is counted, the run goes on.

:class:`SafeScorer` wraps any task's ``score``:

* an exception, a non-finite reward, a reward outside [0, 1] (the range
  :class:`~passk.tasks.base.Score` declares), a ``correct`` that is not a bool, or a
  return value that is not a :class:`Score` or a number -> ``Score(0.0, False,
  error=...)`` and ``errors`` is incremented;
* a call that takes longer than ``timeout`` seconds -> the same, with
  ``error="timeout..."``, counted in ``timeouts`` only (not in ``errors``): the trainer
  logs the two apart as ``reward/errors`` and ``reward/timeouts``.

Each distinct cause (the error text up to its first ":", or with its numbers blanked)
is also reported once, as a :class:`RewardWarning` that shows the first offending value;
later occurrences are only counted.

**How the timeout is enforced.** A thread cannot be killed: a verifier stuck in a
regular expression or in sympy would keep its thread (and often the GIL) forever, and
``signal.alarm`` only works in the main thread and cannot interrupt C code. So with a
timeout, scoring runs in one persistent worker *process*; the parent waits on a pipe
with the timeout and, when it expires, kills the worker (SIGKILL) and forks a fresh one
for the next call. The worker is started with ``fork`` where the platform has it (as
torch's DataLoader does), so the task object is inherited, not pickled, and user
functions defined anywhere (even lambdas) work; elsewhere it is started with ``spawn``
and the task must be picklable (if not, scoring falls back to in-process, without a
timeout, and ``isolated`` is False). The cost is one pipe round trip per sample (tens
of microseconds). With ``timeout=None`` scoring runs in-process: exceptions and NaN
are still caught, hangs are not.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import numbers
import pickle
import re
import signal
import warnings
from typing import Any

from passk.tasks.base import Problem, Score, Task


class RewardWarning(UserWarning):
    """A scorer failed or returned an invalid reward (printed once per distinct cause)."""


def _check_reward(value: float) -> str | None:
    if not math.isfinite(value):
        return f"non-finite reward: {value}"
    if not 0.0 <= value <= 1.0:
        return f"reward out of range: {value!r} is outside [0, 1]"
    return None


def sanitize(result: Any) -> Score:
    """Turn whatever a scorer returned into a valid :class:`Score` (errors score 0).

    A reward must be a finite number in [0, 1] and ``correct`` a bool: anything else is
    an error, not silently clipped, so that a broken reward shows up in
    ``reward/errors`` instead of training on it.

    >>> sanitize(float("nan")).error
    'non-finite reward: nan'
    >>> sanitize(5.0).error
    'reward out of range: 5.0 is outside [0, 1]'
    >>> sanitize(1.0)
    Score(reward=1.0, correct=True, extracted=None, error=None, info={})
    """
    if isinstance(result, Score):
        reward, correct = result.reward, result.correct
        if isinstance(reward, bool) or not isinstance(reward, numbers.Real):
            error = f"bad reward: {reward!r} ({type(reward).__name__}) is not a number"
            return Score(0.0, False, result.extracted, error)
        if (error := _check_reward(float(reward))) is not None:
            return Score(0.0, False, result.extracted, error)
        if not isinstance(correct, bool):
            if type(correct).__name__ == "bool_" or (
                isinstance(correct, numbers.Integral) and correct in (0, 1)
            ):
                correct = bool(correct)  # numpy bool, 0/1
            else:
                error = f"bad verdict: correct={correct!r} is not True/False"
                return Score(0.0, False, result.extracted, error)
        if reward is result.reward and correct is result.correct:
            return result
        return Score(float(reward), correct, result.extracted, result.error, result.info)
    if isinstance(result, numbers.Real) and not isinstance(result, bool):
        value = float(result)
        if (error := _check_reward(value)) is not None:
            return Score(0.0, False, None, error)
        return Score(value, value >= 1.0)
    return Score(0.0, False, None, f"scorer returned {type(result).__name__}, not a Score")


def error_cause(error: str) -> str:
    """What makes two errors "the same cause": the text before the first ":", numbers
    blanked (a reward of 5.0 and one of 7.0 are one cause).

    >>> error_cause("reward out of range: 5.0 is outside [0, 1]")
    'reward out of range'
    >>> error_cause("timeout after 2s") == error_cause("timeout after 30s")
    True
    """
    head = error.split(":", 1)[0]
    return re.sub(r"\d+(?:\.\d*)?(?:e[-+]?\d+)?", "#", head).strip()


def _score_in_process(task: Task, problem: Problem, completion: str) -> Score:
    try:
        return sanitize(task.score(problem, completion))
    except Exception as e:  # a user's scorer may raise anything; the run must go on
        return Score(0.0, False, None, f"{type(e).__name__}: {e}"[:500])


_READY = "ready"
_STARTUP_TIMEOUT_S = 120.0


def _worker_main(conn: Any, task: Any) -> None:
    # A Ctrl-C in a terminal reaches the whole process group; the parent decides what an
    # interrupt means (a forked worker would otherwise run the parent's SIGINT handler).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if isinstance(task, bytes):
        task = pickle.loads(task)
    try:
        conn.send(_READY)  # imports done: the parent's timeout covers scoring only
        while True:
            msg = conn.recv()
            if msg is None:
                return
            problem, completion = msg
            conn.send(_score_in_process(task, problem, completion))
    except (EOFError, OSError):
        # the parent is gone (interrupted, killed) or closed the pipe: nobody to answer
        return


def _ensure_forkserver() -> None:
    """Start the forkserver with SIGINT blocked, so that a Ctrl-C while it imports its
    preload modules cannot print a traceback from it (the blocked mask survives exec; the
    server ignores SIGINT once started, and so do its workers). Blocked, not ignored: a
    Ctrl-C that reaches this process meanwhile stays pending and is delivered when the
    mask is restored, where an ignored one would be lost and the interrupt with it."""
    from multiprocessing import forkserver, resource_tracker

    # the resource tracker starts first, outside the mask: its own start blocks SIGINT and
    # unblocks it when done, which would cut this mask short
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class SafeScorer:
    """Score completions for ``task`` without ever raising; count the failures.

    >>> from passk.tasks.arithmetic import Mul1Task
    >>> task = Mul1Task()
    >>> scorer = SafeScorer(task)
    >>> p = task.problems("test", 1)[0]
    >>> scorer.score(p, f"= {p.answer}").correct, scorer.errors
    (True, 0)
    """

    def __init__(self, task: Task, timeout: float | None = None) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout}")
        self.task = task
        self.timeout = timeout
        self.errors = 0
        self.timeouts = 0
        self._warned: set[str] = set()
        self._proc: Any = None
        self._conn: Any = None
        self.isolated = timeout is not None
        # Workers come from a forkserver (a small clean process) when the task pickles: a
        # fork of the trainer would share its multi-GB address space copy-on-write, and
        # every page the trainer later writes stays duplicated in the worker (two such
        # workers next to a trainer ran a 24 GB machine out of memory). An unpicklable
        # task (a lambda reward) falls back to fork, then to in-process scoring.
        methods = mp.get_all_start_methods()
        self._payload: Any = task
        self._ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        if self.isolated:
            try:
                payload = pickle.dumps(task)
            except Exception as e:
                if self._ctx.get_start_method() != "fork":
                    warnings.warn(
                        f"task {getattr(task, 'name', task)!r} is not picklable ({e}); "
                        "scoring in-process without a timeout",
                        stacklevel=2,
                    )
                    self.isolated = False
            else:
                self._payload = payload
                if "forkserver" in methods:
                    self._ctx = mp.get_context("forkserver")
                elif self._ctx.get_start_method() == "fork":
                    self._payload = task

    def _start(self) -> None:
        if self._ctx.get_start_method() == "forkserver":
            # the server imports this module (and torch with it) once; each worker is then
            # a cheap fork of that small process
            self._ctx.set_forkserver_preload(["passk.tasks.guard"])
            _ensure_forkserver()
        parent, child = self._ctx.Pipe()
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork in a threaded process; the worker runs
            # no torch code, which is what the warning protects against.
            warnings.simplefilter("ignore", DeprecationWarning)
            proc = self._ctx.Process(target=_worker_main, args=(child, self._payload), daemon=True)
            proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        try:
            ready = parent.poll(_STARTUP_TIMEOUT_S) and parent.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if ready:
            return
        self._kill()
        if self._ctx.get_start_method() == "fork":
            raise RuntimeError("the scoring worker did not start")
        # e.g. a __main__ that a fresh interpreter cannot re-import (python - < script)
        warnings.warn(
            f"scoring worker failed to start with {self._ctx.get_start_method()!r}; "
            "falling back to fork",
            stacklevel=3,
        )
        self._ctx, self._payload = mp.get_context("fork"), self.task
        self._start()

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def score(self, problem: Problem, completion: str) -> Score:
        """The task's score, or a zero score carrying the error.

        A timeout increments ``timeouts``; every other failure increments ``errors``."""
        timed_out = False
        if not self.isolated:
            result = _score_in_process(self.task, problem, completion)
        else:
            result, timed_out = self._score_isolated(problem, completion)
        if result.error is not None:
            if timed_out:
                self.timeouts += 1
            else:
                self.errors += 1
            self._warn_once(result.error)
        return result

    def _warn_once(self, error: str) -> None:
        cause = error_cause(error)
        if cause in self._warned:
            return
        self._warned.add(cause)
        name = getattr(self.task, "name", type(self.task).__name__)
        warnings.warn(
            f"task {name!r}: {error} (scored 0; further such cases are only counted)",
            RewardWarning,
            stacklevel=3,
        )

    def _score_isolated(self, problem: Problem, completion: str) -> tuple[Score, bool]:
        timed_out = False
        try:
            if self._proc is None or not self._proc.is_alive():
                self._kill()
                self._start()
            self._conn.send((problem, completion))
            if self._conn.poll(self.timeout):
                return sanitize(self._conn.recv()), False
            error = f"timeout after {self.timeout:g}s"
            timed_out = True
        except (EOFError, OSError, RuntimeError, pickle.PicklingError) as e:
            # a broken pipe means the worker is gone: score 0, a fresh one starts next call
            error = f"scoring worker failed: {type(e).__name__}: {e}"
        self._kill()
        return Score(0.0, False, None, error), timed_out

    def close(self) -> None:
        """Stop the worker process (also done at garbage collection)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        if self._proc is not None:
            self._proc.join(timeout=1)
        self._kill()

    def __enter__(self) -> SafeScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._kill()
