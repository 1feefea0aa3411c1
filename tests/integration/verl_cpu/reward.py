"""The test's reward (``reward.custom_reward_function.path``): a verifiable rule on the
response text that a random model passes about half the time, so groups are mixed."""

from __future__ import annotations

from typing import Any


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Correct when the response's first character has an even code point; ``pred`` is that
    character (maj@k votes on it)."""
    pred = solution_str[:1] or None
    score = float(pred is not None and ord(pred) % 2 == 0)
    return {"score": score, "acc": score, "pred": pred}
