"""Writing evaluation results: atomic JSON files and the terminal summary table."""

from __future__ import annotations

import json
import math
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

# significant digits of the floats in a report: 0.49999999999999983 is written 0.5
REPORT_DIGITS = 15


def tidy_floats(obj: Any, digits: int = REPORT_DIGITS) -> Any:
    """``obj`` with every finite float rounded to ``digits`` significant digits (the
    last bits of a sum of binomial terms are noise, not information).

    >>> tidy_floats({"a": [0.49999999999999983, 1, "x"], "b": 0.1 + 0.2})
    {'a': [0.5, 1, 'x'], 'b': 0.3}
    """
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: tidy_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [tidy_floats(v, digits) for v in obj]
    return obj


def printable(text: Any) -> str:
    r"""``text`` safe to print: control and format characters (a right-to-left override,
    an escape sequence, a newline) shown as ``\uXXXX`` escapes, so a name from a data
    file cannot rearrange or forge the terminal's output.

    >>> printable("math\u202eevil\n")
    'math\\u202eevil\\u000a'
    """
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in str(text)
    )


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


def sampled_throughput(sampling: dict[str, Any], scoring_s: float) -> dict[str, Any]:
    """The report entries of a run that sampled a server: ``elapsed_s`` is sampling and
    scoring, each also apart; ``tokens`` the completion tokens this run sampled (None:
    unknown, the server gave no ``usage`` and no tokenizer counted them) and
    ``tokens_per_s`` those over the sampling time alone.

    >>> sampled_throughput({"sampling_s": 2.0, "tokens": 500, "tokens_counted_by": "usage",
    ...                     "samples": 8, "cached_samples": 0}, 0.5)["tokens_per_s"]
    250.0
    """
    sampling_s, tokens = float(sampling["sampling_s"]), sampling["tokens"]
    return {
        "elapsed_s": round(sampling_s + scoring_s, 3),
        "sampling_s": round(sampling_s, 3),
        "scoring_s": round(scoring_s, 3),
        "tokens": tokens,
        "tokens_per_s": tokens / sampling_s if tokens and sampling_s > 0 else None,
        "tokens_counted_by": sampling["tokens_counted_by"],
        "samples_sampled": sampling["samples"],
        "samples_cached": sampling["cached_samples"],
    }


def summary_table(report: dict[str, Any], title: str = "passk eval") -> Any:
    """A rich renderable: pass@k, pass^k and maj@k side by side (each with its bootstrap
    interval), the problems behind each k and the Dang bound, then a line of facts.

    A metric the report lacks at some k (an older report, maj@k without answers) shows
    ``-``; per-source results follow as one line each.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def fmt(x: Any, spec: str = ".3f") -> str:
        return "n/a" if x is None else format(x, spec)

    def cell(metric: str, ci_key: str, k: str) -> tuple[str, str]:
        value = report.get(metric, {}).get(k)
        ci = report.get(ci_key, {}).get(k)
        if value is None:
            return "-", "-"
        short = [format(x, ".3f").removeprefix("0") for x in ci or ()]
        return f"{value:.3f}", "-" if ci is None else f"{short[0]}-{short[1]}"

    # 80 columns: borderless, CI as ".480-.620"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("k", justify="right")
    for name in ("pass@k", "pass^k", "maj@k"):
        table.add_column(name, justify="right", no_wrap=True)
        table.add_column("CI", justify="right", no_wrap=True)
    table.add_column("probs", justify="right")
    table.add_column("Dang", justify="right")
    per_k = report.get("problems_per_k", {})
    for k in report.get("pass_at_k", {}):
        bound = report.get("dang_bound", {}).get(k)
        table.add_row(
            k,
            *cell("pass_at_k", "ci95", k),
            *cell("pass_hat_k", "pass_hat_k_ci95", k),
            *cell("maj_at_k", "maj_at_k_ci95", k),
            str(per_k.get(k, report.get("num_problems", "-"))),
            "-" if bound is None else f"{bound:.3f}",
        )
    # only what the samples support: verdict-only input has no answers, tokens or entropy
    known = [
        (label, format(report[key], spec))
        for label, key, spec in (
            ("answer diversity", "answer_diversity", ".3f"),
            ("entropy", "mean_entropy", ".3f"),
            ("length", "mean_length", ".1f"),
            ("truncated", "truncated_fraction", ".3f"),
        )
        if report.get(key) is not None
    ]
    facts = " | ".join(
        [f"{report.get('num_problems', 0)} problems"]
        + [f"{label} {value}" for label, value in known]
        + [f"reward errors {report.get('reward_errors', 0)}"]
        + (["INTERRUPTED (partial)"] if report.get("interrupted") else [])
    )
    legend = (
        "CI: 95% bootstrap over problems | probs: problems with >= k samples (the others "
        "are left out at that k) | Dang: Dang et al. bound on the with-replacement "
        "mean 1-(1-p)^k, which the unbiased pass@k may exceed"
    )
    parts: list[Any] = [table, Text(legend, style="dim"), Text(facts)]
    if report.get("pass_at_k") and not report.get("maj_at_k"):
        parts.append(Text("maj@k: no extracted answers in the samples (give 'answer' or --task)"))
    if report.get("maj_at_k_sampled_problems"):
        parts.append(
            Text(
                f"maj@k: {report['maj_at_k_sampled_problems']} problems estimated from sampled "
                "k-subsets (standard error in maj_at_k_stderr)"
            )
        )
    for source, sub in report.get("by_source", {}).items():
        ks = list(sub.get("pass_at_k", {}))
        if not ks:
            continue
        last = ks[-1]
        first = ks[0]
        parts.append(
            Text(
                f"{printable(source)}: {sub.get('num_problems', 0)} problems | pass@{first} "
                f"{fmt(sub['pass_at_k'].get(first))} | pass@{last} "
                f"{fmt(sub['pass_at_k'].get(last))} | pass^{last} "
                f"{fmt(sub.get('pass_hat_k', {}).get(last))} | maj@{last} "
                f"{fmt(sub.get('maj_at_k', {}).get(last))}"
            )
        )
    return Group(*parts)
