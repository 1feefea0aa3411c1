"""Writing evaluation results: atomic JSON files and the terminal summary table."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON to a temporary file beside ``path``, then rename it into place.

    A crash mid-write leaves the previous file (or none), never a truncated one.

    >>> import tempfile, json
    >>> d = tempfile.mkdtemp()
    >>> p = write_json_atomic(f"{d}/x.json", {"a": 1})
    >>> json.loads(p.read_text())
    {'a': 1}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, allow_nan=False, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def summary_table(report: dict[str, Any], title: str = "passk eval") -> Any:
    """A rich renderable: the pass@k table of an ``eval.json`` dict and a line of facts."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    table.add_column("k", justify="right")
    table.add_column("pass@k", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("Dang bound", justify="right")
    for k, value in report.get("pass_at_k", {}).items():
        lo, hi = report["ci95"][k]
        bound = report.get("dang_bound", {}).get(k)
        table.add_row(
            k, f"{value:.3f}", f"[{lo:.3f}, {hi:.3f}]", "-" if bound is None else f"{bound:.3f}"
        )

    def fmt(x: Any, spec: str = ".3f") -> str:
        return "n/a" if x is None else format(x, spec)

    facts = (
        f"{report.get('num_problems', 0)} problems | answer diversity "
        f"{fmt(report.get('answer_diversity'))} | entropy {fmt(report.get('mean_entropy'))} | "
        f"length {fmt(report.get('mean_length'), '.1f')} | truncated "
        f"{fmt(report.get('truncated_fraction'))} | reward errors {report.get('reward_errors', 0)}"
        + (" | INTERRUPTED (partial)" if report.get("interrupted") else "")
    )
    return Group(table, Text(facts))
