"""Disjoint train/test splits by a salted hash of each problem's canonical key.

A problem belongs to ``test`` iff ``hash(salt, key) < test_fraction`` (the hash mapped to
[0, 1)); everything else is ``train``. The split is a property of the problem itself,
so it does not depend on how many problems are drawn, in what order, or with which
seed, and a problem can never be in both splits. Procedural tasks draw candidates and
keep those of the wanted split (rejection sampling); small finite spaces are enumerated.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Hashable, Iterable

SPLITS = ("train", "test")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def hash_fraction(salt: str, key: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``.

    >>> 0.0 <= hash_fraction("s", "7x8") < 1.0
    True
    """
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(key: str, *, salt: str, test_fraction: float) -> str:
    """``"test"`` or ``"train"`` for a problem key.

    >>> split_of("7x8", salt="mul1", test_fraction=0.0)
    'train'
    """
    return "test" if hash_fraction(salt, key) < test_fraction else "train"


def enumerate_split(
    keys: Iterable[str], split: str, n: int, seed: int, *, salt: str, test_fraction: float
) -> list[str]:
    """Up to ``n`` keys of ``split`` from a finite space, in a seeded random order."""
    check_split(split)
    chosen = [k for k in keys if split_of(k, salt=salt, test_fraction=test_fraction) == split]
    random.Random(f"{salt}:{seed}:{split}").shuffle(chosen)
    return chosen[:n]


def sample_split(
    draw: Callable[[random.Random], Hashable],
    key_of: Callable[[Hashable], str],
    split: str,
    n: int,
    seed: int,
    *,
    salt: str,
    test_fraction: float,
    max_draws: int | None = None,
) -> list[Hashable]:
    """Up to ``n`` distinct draws of ``split`` by rejection sampling with a seeded RNG."""
    check_split(split)
    rng = random.Random(f"{salt}:{seed}:{split}")
    max_draws = max_draws if max_draws is not None else 1000 + 200 * n
    seen: set[str] = set()
    out: list[Hashable] = []
    for _ in range(max_draws):
        if len(out) >= n:
            break
        item = draw(rng)
        key = key_of(item)
        if key in seen or split_of(key, salt=salt, test_fraction=test_fraction) != split:
            continue
        seen.add(key)
        out.append(item)
    return out
