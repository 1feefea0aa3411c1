"""Generated blocks in the project's docs: the text between two HTML-comment markers.

A study script renders its tables from its committed JSON and splices them into a doc
between its markers; ``--check`` compares instead of writing, so a stale doc fails a test.
"""

from __future__ import annotations

import sys
from pathlib import Path


def splice(doc: str, begin: str, end: str, text: str) -> str:
    """``doc`` with what lies between the ``begin`` and ``end`` markers replaced by ``text``."""
    if begin not in doc or end not in doc:
        raise ValueError(f"the document has no markers {begin!r} ... {end!r}")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{text}{end}{tail}"


def write_or_check(path: Path, begin: str, end: str, text: str, *, check: bool, what: str) -> int:
    """Splice ``text`` into the doc at ``path`` (``check``: only compare). Exit status: 0 when
    written or equal, 1 when ``check`` finds the doc's block stale."""
    doc = path.read_text(encoding="utf-8")
    new = splice(doc, begin, end, text)
    if check:
        if new != doc:
            print(f"{path}: the {what} differ from their JSON; regenerate them", file=sys.stderr)
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    return 0


def emit(
    text: str, begin: str, end: str, *, check: Path | None, write: Path | None, what: str
) -> int:
    """A ``tables`` command's output: ``text`` to stdout, or spliced into ``write``, or
    compared with ``check``'s block (exit 1 when stale)."""
    if check is None and write is None:
        print(text, end="")
        return 0
    path = check if check is not None else write
    assert path is not None
    return write_or_check(path, begin, end, text, check=check is not None, what=what)
