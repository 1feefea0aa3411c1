"""Parameter checks shared by the estimator and loss families (private to ``passk.core``).

Each raises ``ValueError`` naming the parameter, the bad value and what is valid.
"""

from __future__ import annotations

from numbers import Real


def check_k(k: int) -> None:
    """A group size: an int >= 1 (not a bool)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def check_eps(eps: float) -> None:
    """The guard added to a group's reward std: >= 0 (NaN fails)."""
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def check_real(name: str, value: object) -> None:
    """A real number, not a bool."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number, got {value!r}")


def check_fraction(name: str, value: object, *, allow_one: bool = True) -> None:
    """A fraction in (0, 1] (or (0, 1) with ``allow_one=False``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    hi_ok = value <= 1.0 if allow_one else value < 1.0
    if not (value > 0.0 and hi_ok):
        raise ValueError(f"{name} must be in (0, 1{']' if allow_one else ')'}, got {value!r}")
