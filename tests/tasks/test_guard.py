"""Fault handling: raising / NaN / hanging scorers score 0, are counted, and the run goes on."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from passk.tasks.arithmetic import Mul1Task
from passk.tasks.base import Problem, Score
from passk.tasks.guard import SafeScorer, sanitize
from passk.tasks.rewards import RewardTask

PROBLEM = Problem(id="p", prompt="q", answer="1")


class FlakyTask:
    """Scores by keyword: 'hang' loops forever, 'raise' raises, 'nan' returns NaN."""

    name = "flaky"

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return [PROBLEM] * n

    def score(self, problem: Problem, completion: str) -> Score:
        if "hang" in completion:
            while True:  # pure-Python busy loop: a thread could never be stopped
                pass
        if "raise" in completion:
            raise RuntimeError("verifier exploded")
        if "nan" in completion:
            return Score(float("nan"), False)
        return Score(1.0, True, extracted="1")


@pytest.mark.parametrize("timeout", [None, 2.0])
def test_errors_score_zero_and_are_counted(timeout):
    with SafeScorer(FlakyTask(), timeout=timeout) as scorer:
        results = [scorer.score(PROBLEM, c) for c in ["ok", "raise", "nan", "ok"]]
    assert [r.reward for r in results] == [1.0, 0.0, 0.0, 1.0]
    assert "RuntimeError: verifier exploded" in results[1].error
    assert "non-finite" in results[2].error
    assert scorer.errors == 2 and scorer.timeouts == 0


def test_hanging_verifier_times_out_and_the_next_call_works():
    with SafeScorer(FlakyTask(), timeout=0.5) as scorer:
        t0 = time.perf_counter()
        hung = scorer.score(PROBLEM, "hang")
        elapsed = time.perf_counter() - t0
        after = scorer.score(PROBLEM, "ok")
        hung_again = scorer.score(PROBLEM, "hang")
    assert hung.reward == 0.0 and not hung.correct and "timeout" in hung.error
    assert elapsed < 5.0
    assert after.correct and after.error is None
    assert "timeout" in hung_again.error
    assert scorer.errors == 2 and scorer.timeouts == 2


def test_worker_survives_ctrl_c_under_a_parent_sigint_handler():
    """A terminal Ctrl-C reaches the worker too; it must leave handling to the parent."""

    def parent_handler(signum, frame):
        raise KeyboardInterrupt  # what the trainer installs; a fork inherits it

    old = signal.signal(signal.SIGINT, parent_handler)
    try:
        with SafeScorer(FlakyTask(), timeout=5.0) as scorer:
            assert scorer.score(PROBLEM, "ok").correct
            worker = scorer._proc
            os.kill(worker.pid, signal.SIGINT)
            time.sleep(0.3)
            assert worker.is_alive()
            again = scorer.score(PROBLEM, "ok")
            assert scorer._proc is worker  # same worker, not a restart
    finally:
        signal.signal(signal.SIGINT, old)
    assert again.correct and scorer.errors == 0


def _rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_worker_does_not_map_the_trainers_memory():
    """A picklable task is scored in a forkserver worker, not a fork of the (big) parent."""
    ballast = bytearray(800 * 1024 * 1024)  # stands in for a trainer's weights and state
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
    with SafeScorer(Mul1Task(), timeout=30.0) as scorer:
        p = Mul1Task().problems("test", 1)[0]
        assert scorer.score(p, f"= {p.answer}").correct
        assert scorer._ctx.get_start_method() == "forkserver"
        worker, parent = _rss_mb(scorer._proc.pid), _rss_mb(os.getpid())
    del ballast
    assert parent > 800 and worker < parent - 600, (worker, parent)


def test_user_reward_function_errors_and_nan():
    calls = []

    def reward(completion: str, answer: str) -> float:
        calls.append(completion)
        if completion == "boom":
            raise ValueError("bad input")
        return float("nan") if completion == "nan" else float(completion == answer)

    task = RewardTask(FlakyTask(), reward)  # a closure: works because the worker is forked
    with SafeScorer(task, timeout=5.0) as scorer:
        assert scorer._ctx.get_start_method() == "fork"  # unpicklable: the fork fallback
        scores = [scorer.score(PROBLEM, c) for c in ["1", "boom", "nan", "2"]]
    assert [s.reward for s in scores] == [1.0, 0.0, 0.0, 0.0]
    assert [s.correct for s in scores] == [True, False, False, False]
    assert scorer.errors == 2


def test_sanitize_non_score_results():
    assert sanitize(True).error is not None  # bools are not rewards
    assert sanitize("1").error is not None
    assert sanitize(0.5) == Score(0.5, False)
    with pytest.raises(ValueError):
        SafeScorer(FlakyTask(), timeout=0)


def test_a_worker_that_cannot_start_scores_zero_instead_of_crashing(monkeypatch):
    def fail(self):
        raise RuntimeError("the scoring worker did not start")

    monkeypatch.setattr(SafeScorer, "_start", fail)
    with SafeScorer(FlakyTask(), timeout=5.0) as scorer:
        result = scorer.score(PROBLEM, "ok")
    assert result.reward == 0.0 and "did not start" in result.error and scorer.errors == 1
