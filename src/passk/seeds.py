"""One way to derive seeds: a 63-bit integer from any ints and strings.

Every seed in passk (per-sequence sampling, shuffling, noise, minibatch order) comes from
:func:`derive_seed` of the run seed and a purpose, so that a stream of randomness is
named by what it is for, not by the order in which it was drawn.
"""

from __future__ import annotations

import hashlib
import operator

__all__ = ["derive_seed"]


def _encode(part: int | str) -> bytes:
    """A type tag, the byte length, then the bytes: no two part lists encode alike."""
    if isinstance(part, str):
        tag, body = b"s", part.encode("utf-8")
    elif isinstance(part, bool):  # True == 1 would collide with the int 1
        raise TypeError(f"derive_seed takes ints and strings, got the bool {part!r}")
    else:
        try:
            value = operator.index(part)  # int, numpy integers, 0-d integer tensors
        except TypeError:
            raise TypeError(
                f"derive_seed takes ints and strings, got {part!r} of type {type(part).__name__}"
            ) from None
        tag, body = b"i", str(value).encode("ascii")
    return tag + len(body).to_bytes(8, "little") + body


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed (fits a signed int64, e.g. ``torch.Generator.manual_seed``) from ``parts``.

    One blake2b hash (8-byte digest) of the parts, each encoded with its type and length,
    so ``(1, "2")``, ``(12,)``, ``("1", 2)`` and ``("12",)`` all differ.

    >>> derive_seed(0, "rollout", 3) == derive_seed(0, "rollout", 3)
    True
    >>> derive_seed(0, "rollout", 3) != derive_seed(1, "rollout", 3)
    True
    >>> len({derive_seed(1, "2"), derive_seed(12), derive_seed("1", 2), derive_seed("12")})
    4
    >>> 0 <= derive_seed("anything") < 2**63
    True
    >>> derive_seed(0.5)
    Traceback (most recent call last):
    ...
    TypeError: derive_seed takes ints and strings, got 0.5 of type float
    """
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(_encode(part))
    return int.from_bytes(h.digest(), "little") >> 1
