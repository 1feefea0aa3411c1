"""Evaluation runs (pass@k with bootstrap CIs) and their reports."""

from passk.eval.evaluate import EvalConfig, EvalInterrupted, EvalResult, ProblemResult, evaluate

__all__ = ["EvalConfig", "EvalInterrupted", "EvalResult", "ProblemResult", "evaluate"]
