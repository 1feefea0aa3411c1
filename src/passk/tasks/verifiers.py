r"""Answer verifiers: ``exact``, ``numeric`` and ``math`` (math-verify), plus a registry.

A verifier is ``fn(completion, answer) -> (correct, extracted)``; the same functions
serve as reward functions through :mod:`passk.tasks.rewards`.

* ``exact``: the free-form final answer (``<answer>`` tags, ``\boxed{}``, "answer is",
  last line; see :func:`~passk.tasks.extract.extract_free_answer`) equals the reference
  after trimming whitespace and a trailing period, case-insensitively.
* ``numeric``: the numeric answer (:func:`~passk.tasks.extract.extract_number`) equals
  the reference numerically.
* ``math``: math-verify parses both and compares symbolically. Its own timeouts use
  ``signal.alarm``, which only works in the main thread, so they are switched on only
  there; elsewhere rely on :class:`~passk.tasks.guard.SafeScorer`'s process timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from passk.tasks.extract import extract_free_answer, extract_number, numbers_equal

Verifier = Callable[[str, str], tuple[bool, str | None]]


def _norm_text(s: str) -> str:
    return " ".join(s.strip().rstrip(".").strip().split()).lower()


def exact_verifier(completion: str, answer: str) -> tuple[bool, str | None]:
    """Free-form answer equals the reference (case and whitespace ignored).

    >>> exact_verifier("<answer>Paris</answer>", "paris")
    (True, 'Paris')
    """
    extracted = extract_free_answer(completion)
    return extracted is not None and _norm_text(extracted) == _norm_text(str(answer)), extracted


def numeric_verifier(completion: str, answer: str) -> tuple[bool, str | None]:
    """Numeric answer equals the reference numerically.

    >>> numeric_verifier("so x = 1,200.", "1200")
    (True, '1200')
    """
    extracted, _ = extract_number(completion)
    return numbers_equal(extracted, str(answer)), extracted


def math_verifier(completion: str, answer: str) -> tuple[bool, str | None]:
    r"""Symbolic equality of the parsed answer and the reference (math-verify).

    >>> math_verifier(r"The result is \boxed{\frac{1}{2}}", "0.5")[0]
    True
    """
    from math_verify import parse, verify

    main = threading.current_thread() is threading.main_thread()
    timeout = 5 if main else None
    gold_text = str(answer)
    if "$" not in gold_text and "\\boxed" not in gold_text:
        gold_text = f"${gold_text}$"
    gold = parse(gold_text, parsing_timeout=timeout)
    pred = parse(completion, parsing_timeout=timeout)
    if not pred:
        return False, None
    extracted = str(pred[-1])  # parse gives [sympy value, matched string]
    correct = bool(verify(gold, pred, timeout_seconds=timeout))
    return correct, extracted


VERIFIERS: dict[str, Verifier] = {
    "exact": exact_verifier,
    "numeric": numeric_verifier,
    "math": math_verifier,
}


def get_verifier(name: str) -> Verifier:
    if name not in VERIFIERS:
        raise ValueError(f"unknown verifier {name!r}; valid: {', '.join(sorted(VERIFIERS))}")
    return VERIFIERS[name]
