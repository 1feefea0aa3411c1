"""Fault handling: raising / NaN / hanging scorers score 0, are counted, and the run goes on."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from passk.tasks.arithmetic import Mul1Task
from passk.tasks.base import Problem, Score
from passk.tasks.guard import RewardWarning, SafeScorer, sanitize
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
    assert scorer.errors == 0 and scorer.timeouts == 2  # a timeout is not also an error


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


def test_a_ctrl_c_while_the_forkserver_starts_is_delivered_after_it(monkeypatch):
    """The forkserver starts with SIGINT blocked; a Ctrl-C reaching the parent meanwhile
    must not be lost (an ignored one was: the parent went on scoring, deaf to it)."""
    from multiprocessing import forkserver, resource_tracker

    from passk.tasks import guard

    during = []

    def start_server():  # a Ctrl-C arrives while the server is being started
        during.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(resource_tracker, "ensure_running", lambda: None)
    monkeypatch.setattr(forkserver, "ensure_running", start_server)
    with pytest.raises(KeyboardInterrupt):
        guard._ensure_forkserver()
        time.sleep(1.0)  # a lost interrupt would let this finish
    assert signal.SIGINT in during[0]  # the server inherits the block
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # restored


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


def test_out_of_range_user_reward_is_an_error_warned_once_per_cause():
    values = {"five": 5.0, "seven": 7.0, "minus": -1, "text": "1", "ok": 1.0, "true": True}
    task = RewardTask(FlakyTask(), lambda completion, answer: values[completion])
    scorer = SafeScorer(task)  # in-process: the same checks as in a worker
    with pytest.warns(RewardWarning) as caught:
        scores = {c: scorer.score(PROBLEM, c) for c in ["five", "seven", "minus", "text"]}
    assert all(s.reward == 0.0 and not s.correct for s in scores.values())
    assert "returned 5.0" in scores["five"].error and "[0, 1]" in scores["five"].error
    assert "returned '1'" in scores["text"].error
    assert scorer.errors == 4 and scorer.timeouts == 0
    # 5.0, 7.0 and -1 are one cause (shown with its first value); the string another
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "returned 5.0" in messages[0], messages
    good = [scorer.score(PROBLEM, c) for c in ["ok", "true"]]
    assert [(s.reward, s.correct, s.error) for s in good] == [(1.0, True, None)] * 2
    assert scorer.errors == 4


class ScoreTask(FlakyTask):
    """Returns whatever Score the completion names."""

    def score(self, problem: Problem, completion: str) -> Score:
        return {
            "big": Score(5.0, True),
            "negative": Score(-0.5, False),
            "fuzzy": Score(1.0, 0.7),  # type: ignore[arg-type]
            "int_verdict": Score(1, 1),  # type: ignore[arg-type]
        }[completion]


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_task_score_outside_its_declared_range_is_an_error(timeout):
    with SafeScorer(ScoreTask(), timeout=timeout) as scorer:
        big, negative, fuzzy, fine = (
            scorer.score(PROBLEM, c) for c in ["big", "negative", "fuzzy", "int_verdict"]
        )
    assert (big.reward, big.correct) == (0.0, False) and "5.0 is outside [0, 1]" in big.error
    assert negative.reward == 0.0 and "outside [0, 1]" in negative.error
    assert fuzzy.reward == 0.0 and "correct=0.7" in fuzzy.error
    assert (fine.reward, fine.correct, fine.error) == (1.0, True, None)
    assert scorer.errors == 3 and scorer.timeouts == 0


def test_a_timeout_counts_in_timeouts_only():
    with SafeScorer(FlakyTask(), timeout=0.5) as scorer:
        hung = scorer.score(PROBLEM, "hang")
        failed = scorer.score(PROBLEM, "raise")
    assert "timeout" in hung.error and "RuntimeError" in failed.error
    assert (scorer.errors, scorer.timeouts) == (1, 1)
