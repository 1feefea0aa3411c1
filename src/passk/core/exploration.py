"""Answer-level exploration bonuses (arXiv 2509.06941, outcome-based exploration; SPEC §1.10).

Reasoning tasks have few distinct final answers, so exploration can be counted in answers
instead of token sequences. Two bonuses, both added to the group-normalised advantage
(``A_i + coef * b_i``, the paper's objective adds ``c b(x, a_i)`` next to the advantage, not
to the reward before normalisation):

- **historical** (UCB): ``b = min(1, 1 / sqrt(N(x, a)))``, with ``N(x, a)`` the number of
  times answer ``a`` was sampled for problem ``x`` during training. Variants: ``ucb`` (the
  plain bonus), ``ucb_mean`` (the group's mean bonus subtracted) and ``ucb_con``
  (``b - b0``, a constant baseline; the paper's best, with c = 0.2 and b0 = 0.5 on its
  medium dataset, b0 = 1 on the easy one).
- **batch**: ``b_i = -(1/n) sum_{j != i} 1{a_i = a_j}``, a penalty for answers repeated
  within the group (test-time diversity).

Choices the paper leaves open, made here and documented: ``N(x, a)`` counts every earlier
step's samples plus the current group's (so an answer seen for the first time, once, has
N = 1 and bonus 1); responses without an extracted answer share one "no answer" outcome
(repeating a non-answer is penalised like repeating an answer, so it cannot be used to
escape the penalty); the bonus applies to every response, correct or not. The paper was
read through its published text; no official code was found.

>>> bonus = batch_answer_bonus([["7", "7", "8", None]])
>>> bonus.tolist()
[[-0.25, -0.25, 0.0, 0.0]]
>>> counts = AnswerCounts()
>>> counts.bonus(["p1"], [["7", "7", "8", "9"]], kind="ucb").tolist()
[[0.7071067811865475, 0.7071067811865475, 1.0, 1.0]]
>>> counts.add(["p1"], [["7", "7", "8", "9"]])
>>> counts.bonus(["p1"], [["7", "9"]], kind="ucb_con", baseline=0.5).tolist()
[[0.07735026918962584, 0.20710678118654746]]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["EXPLORATION_KINDS", "AnswerCounts", "batch_answer_bonus", "ucb_bonus"]

ExplorationKind = Literal["batch", "ucb", "ucb_mean", "ucb_con"]
#: the bonus kinds, for validation messages and configs
EXPLORATION_KINDS: tuple[str, ...] = ("batch", "ucb", "ucb_mean", "ucb_con")

_NO_ANSWER = "\x00no-answer"  # the shared outcome of responses without an extracted answer


def _outcome(answer: Hashable | None) -> Hashable:
    return _NO_ANSWER if answer is None else answer


def _grid(rows: Sequence[Sequence[float]]) -> Tensor:
    width = max((len(r) for r in rows), default=0)
    out = torch.zeros(len(rows), width, dtype=torch.float64)
    for g, row in enumerate(rows):
        out[g, : len(row)] = torch.tensor(list(row), dtype=torch.float64)
    return out


def batch_answer_bonus(answers: Sequence[Sequence[Hashable | None]]) -> Tensor:
    """``-(1/n) * (number of other responses in the group with the same answer)``.

    ``answers[g]`` are the extracted answers of group g (``None``: no answer); returns
    ``[G, N_max]`` float64, 0 past each group's end.
    """
    rows = []
    for group in answers:
        outcomes = [_outcome(a) for a in group]
        counts, n = Counter(outcomes), len(outcomes)
        rows.append([-(counts[o] - 1) / n for o in outcomes])
    return _grid(rows)


def ucb_bonus(
    counts: Tensor, kind: ExplorationKind = "ucb", baseline: float = 0.5, mask: Tensor | None = None
) -> Tensor:
    """The historical bonus from answer counts ``N(x, a)`` ``[G, N]`` (>= 1 where valid).

    ``ucb``: ``min(1, N^-1/2)``; ``ucb_mean``: minus the group's mean bonus; ``ucb_con``:
    minus ``baseline`` (b0). ``mask`` marks valid entries (others give 0).
    """
    if kind not in ("ucb", "ucb_mean", "ucb_con"):
        raise ValueError(f"kind must be 'ucb', 'ucb_mean' or 'ucb_con', got {kind!r}")
    counts = counts.to(torch.float64)
    mask = torch.ones_like(counts, dtype=torch.bool) if mask is None else mask
    if bool((counts[mask] < 1).any()):
        raise ValueError("answer counts must be >= 1 on valid entries (they include the sample)")
    b = torch.where(mask, counts.clamp(min=1).rsqrt().clamp(max=1.0), 0.0)
    if kind == "ucb_con":
        b = b - baseline
    elif kind == "ucb_mean":
        n = mask.sum(1, keepdim=True).clamp(min=1)
        b = b - b.sum(1, keepdim=True) / n
    return torch.where(mask, b, 0.0)


class AnswerCounts:
    """How often each final answer was sampled for each problem over training.

    Trainer state: :meth:`state_dict` is plain data (checkpointed with the run) and
    :meth:`load_state_dict` restores it exactly, so a resumed run gives the same bonuses.
    """

    def __init__(self) -> None:
        self._counts: dict[str, Counter[Hashable]] = {}

    def __len__(self) -> int:
        return sum(len(c) for c in self._counts.values())

    def count(self, problem_id: str, answer: Hashable | None) -> int:
        return self._counts.get(str(problem_id), Counter())[_outcome(answer)]

    def add(self, problem_ids: Sequence[str], answers: Sequence[Sequence[Hashable | None]]) -> None:
        """Count the answers of groups ``answers[g]`` sampled for ``problem_ids[g]``."""
        for pid, group in zip(problem_ids, answers, strict=True):
            self._counts.setdefault(str(pid), Counter()).update(_outcome(a) for a in group)

    def bonus(
        self,
        problem_ids: Sequence[str],
        answers: Sequence[Sequence[Hashable | None]],
        *,
        kind: ExplorationKind = "ucb",
        baseline: float = 0.5,
    ) -> Tensor:
        """Historical bonus ``[G, N_max]`` of each response; ``N(x, a)`` = the earlier counts
        plus the group's own (the counts are not changed: call :meth:`add` once per step)."""
        rows, valid = [], []
        for pid, group in zip(problem_ids, answers, strict=True):
            seen = self._counts.get(str(pid), Counter())
            here = Counter(_outcome(a) for a in group)
            rows.append([seen[_outcome(a)] + here[_outcome(a)] for a in group])
            valid.append([1.0] * len(group))
        return ucb_bonus(_grid(rows).clamp(min=0), kind, baseline, mask=_grid(valid).bool())

    def state_dict(self) -> dict[str, Any]:
        """``{"counts": {problem_id: [[answer, count], ...]}}``; the no-answer outcome is
        written as ``None``."""
        return {
            "counts": {
                pid: [[None if a == _NO_ANSWER else a, int(n)] for a, n in c.items()]
                for pid, c in self._counts.items()
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._counts = {
            pid: Counter({_outcome(a): int(n) for a, n in pairs})
            for pid, pairs in state["counts"].items()
        }

    def distinct(self) -> float:
        """Mean number of distinct answers seen per problem (a metric)."""
        return sum(len(c) for c in self._counts.values()) / len(self._counts) if self else math.nan
