"""Evaluation runs (pass@k with bootstrap CIs) and their reports."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from passk.eval.evaluate import EvalConfig, EvalInterrupted, EvalResult, ProblemResult, evaluate

__all__ = ["EvalConfig", "EvalInterrupted", "EvalResult", "ProblemResult", "evaluate"]


def __getattr__(name: str) -> Any:
    # imported on first use: ``passk eval --samples`` and ``passk diff`` import the package
    # without needing the evaluation loop
    if name not in __all__:
        raise AttributeError(f"module 'passk.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module("passk.eval.evaluate"), name)
    globals()[name] = value
    return value
