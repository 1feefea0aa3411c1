"""Procedural code problems: function families with randomised parameters and tests.

Each :class:`Family` draws a concrete function (parameters fixed by the RNG and the
difficulty), a description, a reference solution (source text) and test inputs. The
expected outputs are computed by running that reference source, so a test can only be
wrong if the reference is; ``tests/tasks/test_code_problems.py`` runs every reference
through the sandbox to prove it passes its own tests.

Splits are disjoint by construction: a problem's split is a hash of its *function key*
(family and parameters, not the test inputs), so no function appears in both.

>>> ps = generate("train", 3, seed=0, difficulty=2)
>>> [p.meta["family"] in FAMILIES for p in ps]
[True, True, True]
>>> ps[0].answer["tests"][0].startswith("assert " + ps[0].answer["entrypoint"] + "(")
True
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from passk.tasks.base import Problem

TEST_FRACTION = 0.2
"""Share of function keys that belong to the test split."""


@dataclass(frozen=True)
class Spec:
    """One concrete function: what the prompt asks for and how to check it."""

    entrypoint: str
    signature: str
    description: str
    reference: str
    inputs: tuple[tuple[Any, ...], ...]
    params: tuple[Any, ...]


@dataclass(frozen=True)
class Family:
    """A family of functions; ``draw(rng, difficulty, n_inputs)`` returns a :class:`Spec`."""

    name: str
    draw: Callable[[random.Random, int, int], Spec]


FAMILIES: dict[str, Family] = {}


def _family(name: str) -> Callable[[Callable[[random.Random, int, int], Spec]], Any]:
    def deco(fn: Callable[[random.Random, int, int], Spec]) -> Callable:
        if name in FAMILIES:
            raise ValueError(f"code family {name!r} is already defined")
        FAMILIES[name] = Family(name, fn)
        return fn

    return deco


def _ints(rng: random.Random, difficulty: int, lo: int = -20, hi: int = 20) -> list[int]:
    n = rng.randint(0, 3 + 4 * difficulty)
    return [rng.randint(lo * difficulty, hi * difficulty) for _ in range(n)]


def _word(rng: random.Random, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))


def _text(rng: random.Random, difficulty: int, alphabet: str = string.ascii_lowercase) -> str:
    return " ".join(_word(rng, alphabet) for _ in range(rng.randint(0, 2 + 2 * difficulty)))


@_family("sum_every_kth")
def _sum_every_kth(rng: random.Random, d: int, n: int) -> Spec:
    k = rng.randint(2, 3 + d)
    offset, m = rng.randint(0, k - 1), rng.randint(1, 3)
    times = f"{m} times " if m > 1 else ""
    return Spec(
        "sum_every_kth",
        "def sum_every_kth(xs: list[int]) -> int",
        f"Return {times}the sum of the elements of `xs` whose index i satisfies i % {k} == {offset} "
        "(0 for an empty list).",
        f"def sum_every_kth(xs):\n    return {m} * sum(xs[{offset}::{k}])\n",
        tuple((_ints(rng, d),) for _ in range(n)),
        (k, offset, m),
    )


@_family("reverse_words")
def _reverse_words(rng: random.Random, d: int, n: int) -> Spec:
    sep, joiner = rng.choice(" ,;-"), rng.choice([" ", "-", "_", ", "])
    min_len = rng.randint(0, 3)
    cap = d >= 2 and rng.random() < 0.5
    keep = f"keep only the words with at least {min_len} characters, " if min_len else ""
    what = "capitalise each word, " if cap else ""
    word = "w.capitalize()" if cap else "w"
    return Spec(
        "reverse_words",
        "def reverse_words(s: str) -> str",
        f"Split `s` into words at every {sep!r} (repeated separators give empty words), {keep}"
        f"{what}reverse the order of the words and join them with {joiner!r}.",
        f"def reverse_words(s):\n    words = [{word} for w in s.split({sep!r}) if len(w) >= {min_len}]\n"
        f"    return {joiner!r}.join(words[::-1])\n",
        tuple((_text(rng, d).replace(" ", sep),) for _ in range(n)),
        (sep, joiner, min_len, cap),
    )


@_family("count_chars")
def _count_chars(rng: random.Random, d: int, n: int) -> Spec:
    chars = "".join(sorted(rng.sample(string.ascii_lowercase, rng.randint(1, 2 + 2 * d))))
    fold = d >= 2 and rng.random() < 0.5
    alphabet = string.ascii_letters + "  .!" if fold else string.ascii_lowercase + " "
    expr = "s.lower()" if fold else "s"
    return Spec(
        "count_chars",
        "def count_chars(s: str) -> int",
        f"Return how many characters of `s` are one of {chars!r}"
        + (" (ignoring case)." if fold else " (case-sensitive)."),
        f"def count_chars(s):\n    return sum(c in {chars!r} for c in {expr})\n",
        tuple(
            ("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6 * d + 4))),)
            for _ in range(n)
        ),
        (chars, fold),
    )


@_family("clamp")
def _clamp(rng: random.Random, d: int, n: int) -> Spec:
    lo = rng.randint(-10 * d, 10 * d)
    hi = lo + rng.randint(0, 20 * d)
    return Spec(
        "clamp",
        "def clamp(x: int) -> int",
        f"Return `x` limited to the closed range [{lo}, {hi}]: {lo} if x < {lo}, {hi} if x > {hi}, "
        "otherwise x.",
        f"def clamp(x):\n    return min(max(x, {lo}), {hi})\n",
        tuple((rng.randint(lo - 15 * d, hi + 15 * d),) for _ in range(n)),
        (lo, hi),
    )


@_family("running_extreme")
def _running_extreme(rng: random.Random, d: int, n: int) -> Spec:
    op = rng.choice(["max", "min"])
    init = rng.choice([None, *range(-5, 6)])
    start = "" if init is None else f", starting from the value {init} (which counts as seen)"
    first = "x" if init is None else f"{op}({init}, x)"
    return Spec(
        f"running_{op}",
        f"def running_{op}(xs: list[int]) -> list[int]",
        f"Return a list whose i-th element is the {op}imum of xs[0], ..., xs[i]{start} "
        "(an empty list for an empty input).",
        f"def running_{op}(xs):\n    out = []\n    for x in xs:\n"
        f"        out.append({first} if not out else {op}(out[-1], x))\n    return out\n",
        tuple((_ints(rng, d),) for _ in range(n)),
        (op, init),
    )


@_family("caesar")
def _caesar(rng: random.Random, d: int, n: int) -> Spec:
    s = rng.choice([x for x in range(-25, 26) if x]) if d >= 2 else rng.randint(1, 25)
    both = d >= 3 and rng.random() < 0.5
    alphabet = string.ascii_letters + " ,.!" if both else string.ascii_lowercase + " ,.!ABC"
    ref = (
        "def caesar(s):\n    out = []\n    for c in s:\n"
        f"        if 'a' <= c <= 'z':\n            c = chr((ord(c) - 97 + {s}) % 26 + 97)\n"
    )
    if both:
        ref += (
            f"        elif 'A' <= c <= 'Z':\n            c = chr((ord(c) - 65 + {s}) % 26 + 65)\n"
        )
    ref += "        out.append(c)\n    return ''.join(out)\n"
    which = "letters (a-z and A-Z, keeping case)" if both else "lowercase letters a-z"
    return Spec(
        "caesar",
        "def caesar(s: str) -> str",
        f"Shift every one of the {which} in `s` by {s} positions in the alphabet, wrapping "
        "around; leave every other character unchanged.",
        ref,
        tuple(
            ("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5 * d + 5))),)
            for _ in range(n)
        ),
        (s, both),
    )


@_family("dedupe")
def _dedupe(rng: random.Random, d: int, n: int) -> Spec:
    keep_last = rng.random() < 0.5
    drop = rng.choice([None, *range(10)])
    which = "last" if keep_last else "first"
    skip = "" if drop is None else f", after removing every element equal to {drop}"
    xs = "xs" if drop is None else f"[x for x in xs if x != {drop}]"
    ref = (
        f"def dedupe(xs):\n    return list(reversed(list(dict.fromkeys(reversed({xs})))))\n"
        if keep_last
        else f"def dedupe(xs):\n    return list(dict.fromkeys({xs}))\n"
    )
    return Spec(
        "dedupe",
        "def dedupe(xs: list[int]) -> list[int]",
        f"Remove duplicates from `xs`{skip}, keeping the {which} occurrence of each value and "
        "the relative order of the kept elements.",
        ref,
        tuple(
            ([rng.randint(0, 3 + 2 * d) for _ in range(rng.randint(0, 4 + 3 * d))],)
            for _ in range(n)
        ),
        (keep_last, drop),
    )


@_family("linear_recurrence")
def _linear_recurrence(rng: random.Random, d: int, n: int) -> Spec:
    a, b = rng.randint(-3, 5), rng.randint(-3, 5)
    p, q = rng.randint(1, 2 + d // 2), rng.randint(-1, 2)
    return Spec(
        "seq",
        "def seq(n: int) -> int",
        f"Return a(n) for the sequence a(0) = {a}, a(1) = {b}, a(k) = {p} * a(k-1) + {q} * a(k-2) "
        "for k >= 2 (n >= 0).",
        f"def seq(n):\n    x, y = {a}, {b}\n    for _ in range(n):\n"
        f"        x, y = y, {p} * y + {q} * x\n    return x\n",
        tuple((rng.randint(0, 8 * d),) for _ in range(n)),
        (a, b, p, q),
    )


@_family("digit_sum")
def _digit_sum(rng: random.Random, d: int, n: int) -> Spec:
    base, power = rng.choice([10, 2, 3, 5, 7, 8, 9, 16]), rng.randint(1, 3)
    what = "digits" if power == 1 else f"{['', '', 'squares', 'cubes'][power]} of the digits"
    return Spec(
        "digit_sum",
        "def digit_sum(n: int) -> int",
        f"Return the sum of the {what} of the non-negative integer `n` written in base {base}.",
        f"def digit_sum(n):\n    total = 0\n    while n:\n        n, r = divmod(n, {base})\n"
        f"        total += r ** {power}\n    return total\n",
        tuple((rng.randint(0, 10 ** (2 + 2 * d)),) for _ in range(n)),
        (base, power),
    )


@_family("count_multiples")
def _count_multiples(rng: random.Random, d: int, n: int) -> Spec:
    a, b = rng.randint(2, 4 + 2 * d), rng.randint(2, 4 + 2 * d)
    return Spec(
        "count_multiples",
        "def count_multiples(n: int) -> int",
        f"Return how many integers k with 1 <= k <= n are divisible by {a} or by {b} (0 if n < 1).",
        f"def count_multiples(n):\n    return sum(1 for k in range(1, n + 1) if k % {a} == 0 or k % {b} == 0)\n",
        tuple((rng.randint(-2, 30 * d * d),) for _ in range(n)),
        (a, b),
    )


@_family("run_length")
def _run_length(rng: random.Random, d: int, n: int) -> Spec:
    sep = rng.choice(["", ":", "*", "/", "-", "="])
    bare, count_first = rng.random() < 0.5, rng.random() < 0.5
    letters = string.ascii_lowercase[: rng.randint(2, 2 + d)]
    one = "a run of length 1 is written as just c; " if bare else ""
    form = f"str(m) + {sep!r} + c" if count_first else f"c + {sep!r} + str(m)"
    piece = f"str(j - i) + {sep!r} + s[i]" if count_first else f"s[i] + {sep!r} + str(j - i)"
    if bare:
        piece = f"s[i] if j - i == 1 else {piece}"
    return Spec(
        "run_length",
        "def run_length(s: str) -> str",
        "Run-length encode `s`: each maximal run of a repeated character c of length m becomes "
        f"{form}; {one}the pieces are concatenated and the empty string gives ''.",
        "def run_length(s):\n    out = []\n    i = 0\n    while i < len(s):\n        j = i\n"
        "        while j < len(s) and s[j] == s[i]:\n            j += 1\n"
        f"        out.append({piece})\n        i = j\n    return ''.join(out)\n",
        tuple(
            ("".join(rng.choice(letters) for _ in range(rng.randint(0, 5 + 4 * d))),)
            for _ in range(n)
        ),
        (sep, bare, count_first),
    )


@_family("rotate")
def _rotate(rng: random.Random, d: int, n: int) -> Spec:
    k = rng.choice([x for x in range(-3 - 3 * d, 4 + 3 * d) if x])
    neg = rng.random() < 0.5
    then = " and negate every element" if neg else ""
    sign = "-" if neg else ""
    return Spec(
        "rotate",
        "def rotate(xs: list[int]) -> list[int]",
        f"Rotate `xs` right by {k} positions (a negative count rotates left), wrapping around"
        f"{then} (an empty list stays empty).",
        f"def rotate(xs):\n    if not xs:\n        return []\n    k = {k} % len(xs)\n"
        f"    return [{sign}x for x in xs[len(xs) - k:] + xs[:len(xs) - k]]\n",
        tuple((_ints(rng, d),) for _ in range(n)),
        (k, neg),
    )


@_family("palindrome")
def _palindrome(rng: random.Random, d: int, n: int) -> Spec:
    strict = d == 1 or rng.random() < 0.3
    min_len, ignore = rng.randint(0, 3), rng.choice([None, "a", "b", "x", "-"])
    how = "exactly" if strict else "ignoring case and every character that is not a letter or digit"
    drop = "" if ignore is None else f" after deleting every {ignore!r}"
    cond = f"if c != {ignore!r}" if ignore is not None else ""
    t = (
        f"[c for c in s {cond}]"
        if strict
        else f"[c.lower() for c in s if c.isalnum() {cond.replace('if', 'and')}]"
    )
    alphabet = "aba-x" if strict else "abAB ,1x-"

    def sample() -> str:
        half = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3 + 2 * d)))
        pal = half + rng.choice(["", rng.choice(alphabet)]) + half[::-1]
        return pal if rng.random() < 0.5 else "".join(rng.choice(alphabet) for _ in range(len(pal)))

    return Spec(
        "is_palindrome",
        "def is_palindrome(s: str) -> bool",
        f"Return True if `s`{drop} has at least {min_len} characters left and reads the same "
        f"forwards and backwards ({how}), else False.",
        f"def is_palindrome(s):\n    t = {t}\n    return len(t) >= {min_len} and t == t[::-1]\n",
        tuple((sample(),) for _ in range(n)),
        (strict, min_len, ignore),
    )


@_family("kth_largest")
def _kth_largest(rng: random.Random, d: int, n: int) -> Spec:
    k, distinct = rng.randint(2, 5), rng.random() < 0.5
    default = rng.choice([None, -1, 0])
    what = "distinct value" if distinct else "element (counting repeats)"
    vals = "sorted(set(xs))" if distinct else "sorted(xs)"
    return Spec(
        "kth_largest",
        "def kth_largest(xs: list[int]) -> int | None",
        f"Return the {k}-th largest {what} of `xs`, or {default} if there is none.",
        f"def kth_largest(xs):\n    v = {vals}\n    return v[-{k}] if len(v) >= {k} else {default}\n",
        tuple(
            ([rng.randint(0, 4 * d) for _ in range(rng.randint(0, 3 + 3 * d))],) for _ in range(n)
        ),
        (k, distinct, default),
    )


def function_key(family: str, params: tuple[Any, ...]) -> str:
    """The identity of a function (family and parameters), independent of test inputs."""
    return f"{family}{params!r}"


def split_of(key: str) -> str:
    """``"test"`` for a fixed hash-determined ``TEST_FRACTION`` of keys, else ``"train"``."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_FRACTION else "train"


def _expected(reference: str, entrypoint: str, inputs: tuple[tuple[Any, ...], ...]) -> list[Any]:
    scope: dict[str, Any] = {}
    exec(compile(reference, f"<reference {entrypoint}>", "exec"), scope)  # our own code
    return [scope[entrypoint](*args) for args in inputs]


def build_prompt(signature: str, description: str, example: str | None = None) -> str:
    """The user message for one function."""
    lines = [f"Write a Python function `{signature}`.", "", description]
    if example:
        lines += ["", f"Example: {example}"]
    lines += ["", "Reply with the complete function in a ```python code block."]
    return "\n".join(lines)


def generate(
    split: str,
    n: int,
    seed: int = 0,
    difficulty: int = 1,
    n_tests: int = 8,
    families: tuple[str, ...] | None = None,
) -> list[Problem]:
    """``n`` problems of ``split``; deterministic in ``(split, seed, difficulty, ...)``.

    ``difficulty`` (1-3) widens parameter ranges, input sizes and turns on harder variants.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if difficulty not in (1, 2, 3):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    if n_tests < 1:
        raise ValueError(f"n_tests must be >= 1, got {n_tests!r}")
    names = tuple(families) if families else tuple(FAMILIES)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown code families {unknown}; valid: {', '.join(FAMILIES)}")
    rng = random.Random(f"passk-code/{split}/{seed}/{difficulty}")
    out: list[Problem] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * (n + 10):
            raise ValueError(f"could not draw {n} {split} problems from families {names}")
        fam = FAMILIES[rng.choice(names)]
        spec = fam.draw(rng, difficulty, n_tests + 1)
        key = function_key(fam.name, spec.params)
        if split_of(key) != split:
            continue
        outputs = _expected(spec.reference, spec.entrypoint, spec.inputs)
        calls = [f"{spec.entrypoint}({', '.join(map(repr, args))})" for args in spec.inputs]
        example = f"{calls[0]} == {outputs[0]!r}"
        tests = [f"assert {c} == {o!r}" for c, o in zip(calls[1:], outputs[1:])]
        out.append(
            Problem(
                id=f"code/{split}/{seed}/{len(out)}",
                prompt=build_prompt(spec.signature, spec.description, example),
                answer={"entrypoint": spec.entrypoint, "tests": tests},
                meta={
                    "family": fam.name,
                    "key": key,
                    "difficulty": difficulty,
                    "signature": spec.signature,
                    "reference": spec.reference,
                },
            )
        )
    return out
