"""Task populations for the lab: which strategy solves which problem, and how much each counts.

A :class:`Population` is ``solves[P, S]`` (strategy ``s`` solves problem ``x``), problem
weights ``[P]`` (summing to 1: the population's metrics are weighted means), a group label
per problem (metrics are also reported per group) and a name per strategy.

>>> pop = two_mode(frac_common=0.75, problems=4)
>>> pop.solves.int().tolist()
[[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]]
>>> pop.groups, pop.strategies
(('common', 'common', 'common', 'rare'), ('A', 'B', 'junk'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Population", "from_table", "random_population", "two_mode"]


@dataclass(frozen=True)
class Population:
    """``solves[P, S]`` (bool), ``weights[P]`` (float64, sum 1), ``groups[P]``, ``strategies[S]``."""

    solves: Tensor
    weights: Tensor
    groups: tuple[str, ...]
    strategies: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.solves.dim() != 2 or self.solves.dtype != torch.bool:
            raise ValueError(
                f"solves must be a 2-D bool tensor [P, S], got {self.solves.dtype} "
                f"of shape {tuple(self.solves.shape)}"
            )
        p, s = self.solves.shape
        if p < 1 or s < 2:
            raise ValueError(f"a population needs >= 1 problem and >= 2 strategies, got {p} x {s}")
        if self.weights.shape != (p,) or not bool((self.weights >= 0).all()):
            raise ValueError(f"weights must be {p} non-negative numbers")
        if abs(float(self.weights.sum()) - 1.0) > 1e-9:
            raise ValueError(f"weights must sum to 1, got {float(self.weights.sum())}")
        if len(self.groups) != p or len(self.strategies) != s:
            raise ValueError(
                f"need {p} group labels and {s} strategy names, got "
                f"{len(self.groups)} and {len(self.strategies)}"
            )
        if len(set(self.strategies)) != s:
            raise ValueError(f"strategy names must be distinct, got {list(self.strategies)}")

    @property
    def problems(self) -> int:
        return int(self.solves.shape[0])

    def group_names(self) -> list[str]:
        """Distinct group labels in first-seen order."""
        return list(dict.fromkeys(self.groups))

    def describe(self) -> dict:
        """A plain-data summary for reports: sizes, weight per group, strategies per group."""
        out: dict = {"problems": self.problems, "strategies": list(self.strategies), "groups": {}}
        for g in self.group_names():
            rows = torch.tensor([x == g for x in self.groups])
            solved_by = self.solves[rows].any(0)
            out["groups"][g] = {
                "problems": int(rows.sum()),
                "weight": float(self.weights[rows].sum()),
                "solved_by": [s for s, b in zip(self.strategies, solved_by.tolist()) if b],
            }
        return out


def _uniform(p: int) -> Tensor:
    return torch.full((p,), 1.0 / p, dtype=torch.float64)


def from_table(
    solves: Sequence[Sequence[bool | int]],
    *,
    weights: Sequence[float] | None = None,
    groups: Sequence[str] | None = None,
    strategies: Sequence[str] | None = None,
) -> Population:
    """A population from an explicit ``solves`` table (rows: problems; 0/1 or bools)."""
    table = torch.as_tensor(solves)
    if table.dim() != 2:
        raise ValueError(
            f"solves must be a table [problems][strategies], got shape {tuple(table.shape)}"
        )
    if not bool(((table == 0) | (table == 1)).all()):
        raise ValueError("solves entries must be 0/1 or true/false")
    p, s = table.shape
    w = _uniform(p) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if weights is not None:
        if w.shape != (p,) or not bool((w >= 0).all()) or float(w.sum()) <= 0:
            raise ValueError(f"weights must be {p} non-negative numbers with a positive sum")
        w = w / w.sum()
    return Population(
        solves=table.bool(),
        weights=w,
        groups=tuple(groups) if groups is not None else tuple("all" for _ in range(p)),
        strategies=tuple(strategies)
        if strategies is not None
        else tuple(f"s{i}" for i in range(s)),
    )


def two_mode(
    frac_common: float = 0.75,
    problems: int = 4,
    *,
    junk: int = 1,
    common_also_rare: float = 0.0,
) -> Population:
    """The classic collapse case: a common strategy ``A`` that alone solves a share
    ``frac_common`` of the problems (group ``common``), a rare strategy ``B`` that alone
    solves the rest (group ``rare``) and ``junk`` strategies that solve nothing.

    ``common_also_rare``: the share of common problems that ``B`` solves too (0 by default).
    ``problems`` must make ``frac_common * problems`` a whole number.
    """
    if not 0 < frac_common < 1:
        raise ValueError(f"frac_common must lie strictly between 0 and 1, got {frac_common!r}")
    if isinstance(problems, bool) or not isinstance(problems, int) or problems < 2:
        raise ValueError(f"problems must be an integer >= 2, got {problems!r}")
    n_common = round(frac_common * problems)
    if abs(n_common - frac_common * problems) > 1e-9 or not 0 < n_common < problems:
        raise ValueError(
            f"frac_common * problems must be a whole number between 1 and problems - 1, got "
            f"{frac_common} * {problems}; e.g. problems: 4 for frac_common: 0.75"
        )
    if isinstance(junk, bool) or not isinstance(junk, int) or junk < 0:
        raise ValueError(f"junk must be an integer >= 0, got {junk!r}")
    if not 0 <= common_also_rare <= 1:
        raise ValueError(f"common_also_rare must lie in [0, 1], got {common_also_rare!r}")
    both = round(common_also_rare * n_common)
    solves = torch.zeros(problems, 2 + junk, dtype=torch.bool)
    solves[:n_common, 0] = True
    solves[:both, 1] = True
    solves[n_common:, 1] = True
    junk_names = ("junk",) if junk == 1 else tuple(f"junk{i}" for i in range(junk))
    return Population(
        solves=solves,
        weights=_uniform(problems),
        groups=("common",) * n_common + ("rare",) * (problems - n_common),
        strategies=("A", "B", *junk_names),
    )


def random_population(
    problems: int, strategies: int, *, density: float = 0.3, seed: int = 0
) -> Population:
    """``solves[x, s] ~ Bernoulli(density)``, seeded; every problem is solvable by at least
    one strategy (an unsolvable problem carries no signal for any estimator). Groups name the
    number of strategies that solve each problem (``"1 strategy"``, ``"2 strategies"``, ...).
    """
    if problems < 1 or strategies < 2:
        raise ValueError(f"need >= 1 problem and >= 2 strategies, got {problems} x {strategies}")
    if not 0 < density <= 1:
        raise ValueError(f"density must lie in (0, 1], got {density!r}")
    gen = torch.Generator().manual_seed(seed)
    solves = torch.rand(problems, strategies, generator=gen, dtype=torch.float64) < density
    empty = ~solves.any(1)
    if empty.any():  # give an unsolvable problem one solving strategy, drawn uniformly
        pick = torch.randint(strategies, (int(empty.sum()),), generator=gen)
        solves[empty.nonzero().squeeze(1), pick] = True
    counts = solves.sum(1).tolist()
    return Population(
        solves=solves,
        weights=_uniform(problems),
        groups=tuple(f"{c} strateg{'y' if c == 1 else 'ies'}" for c in counts),
        strategies=tuple(f"s{i}" for i in range(strategies)),
    )
