"""A sweep summary as Markdown tables; every number comes from ``summary.json``.

>>> print(md_table(["arm", "pass@1"], [["a", "0.500"]]))
| arm | pass@1 |
|---|---|
| a | 0.500 |
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

SIGNIFICANT_DIGITS = 12


def rounded(obj: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits, for JSON files.

    Sums and means of exact fractions pick up rounding in the last bits; a summary shows
    the number they stand for (far beyond any sampling error):

    >>> rounded({"a": [0.49999999999999983, 1 / 3], "n": 2, "b": True})
    {'a': [0.5, 0.333333333333], 'n': 2, 'b': True}
    """
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, Mapping):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) and math.isfinite(v) else "-"


def spread_cell(s: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``mean (min..max)`` over seeds, or the value alone for one seed."""
    if s is None:
        return "-"
    f = "{:+.3f}" if signed else "{:.3f}"
    text = f.format(s["mean"])
    if s["n"] > 1:
        text += f" ({f.format(s['min'])}..{f.format(s['max'])})"
    return text


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_tables(summary: Mapping[str, Any]) -> str:
    """pass@k, its change, entropy / diversity, every run, and paired comparisons."""
    ks = [str(k) for k in summary["ks"]]
    arms = {n: a for n, a in summary["arms"].items() if "after" in a}
    before = (summary.get("before") or {}).get("mean")
    nseeds = len({r["seed"] for r in summary["runs"]})
    spread_note = "mean over seeds (min..max)" if nseeds > 1 else "one seed"
    parts = [f"Held-out pass@k, {spread_note}:", _pass_table(ks, arms, before)]
    if all("delta" in a for a in arms.values()) and arms:
        rows = [
            [a["label"]] + [spread_cell(a["delta"].get(k), True) for k in ks] for a in arms.values()
        ]
        parts += [
            f"Change from before (same seed), {spread_note}:",
            md_table(["arm"] + [f"d pass@{k}" for k in ks], rows),
        ]
    parts += [f"Entropy and wrong-answer diversity, {spread_note}:", _entropy_table(arms, before)]
    parts += [
        "Every run (pass@k after training with bootstrap 95% CI over problems):",
        _runs_table(summary, ks),
    ]
    comparisons = summary.get("comparisons")
    if comparisons and comparisons.get("arms"):
        parts += [_comparison_note(comparisons), comparison_table(comparisons, summary["arms"])]
    return "\n\n".join(parts) + "\n"


def _pass_table(
    ks: Sequence[str], arms: Mapping[str, Any], before: Mapping[str, Any] | None
) -> str:
    rows = []
    if before is not None:
        rows.append(["before"] + [spread_cell(before["pass_at_k"].get(k)) for k in ks])
    rows += [[a["label"]] + [spread_cell(a["after"].get(k)) for k in ks] for a in arms.values()]
    return md_table(["arm"] + [f"pass@{k}" for k in ks], rows)


def _entropy_table(arms: Mapping[str, Any], before: Mapping[str, Any] | None) -> str:
    rows = []
    if before is not None:
        rows.append(
            [
                "before",
                spread_cell(before.get("entropy")),
                "",
                "",
                spread_cell(before.get("wrong_diversity")),
            ]
        )
    rows += [
        [
            a["label"],
            spread_cell(a["eval_entropy_after"]),
            spread_cell(a["train_entropy_first"]),
            spread_cell(a["train_entropy_last"]),
            spread_cell(a["eval_wrong_diversity_after"]),
        ]
        for a in arms.values()
    ]
    head = [
        "arm",
        "eval entropy",
        "train entropy (first steps)",
        "train entropy (last steps)",
        "eval wrong-answer diversity",
    ]
    return md_table(head, rows)


def run_ks(ks: Sequence[str]) -> list[str]:
    """The k columns of the per-run table: 1, 4 and the largest k (those evaluated)."""
    return list(dict.fromkeys(k for k in ("1", "4", ks[-1]) if k in ks))


def _runs_table(summary: Mapping[str, Any], ks: Sequence[str]) -> str:
    shown = run_ks(ks)
    rows = []
    for r in summary["runs"]:
        after = r.get("after")
        if after is None:
            rows.append([r["label"], str(r["seed"]), r["status"] or "-"] + [""] * (len(shown) + 2))
            continue
        cells = []
        for k in shown:
            lo, hi = after["ci95"][k]
            cells.append(f"{after['pass_at_k'][k]:.3f} [{lo:.2f}, {hi:.2f}]")
        reward = r.get("train", {}).get("reward", {})
        rows.append(
            [
                r["label"],
                str(r["seed"]),
                *cells,
                f"{num(reward.get('first_mean'))} -> {num(reward.get('last_mean'))}",
                num(after.get("mean_length")),
                f"{(r.get('wall_s') or float('nan')) / 60:.1f}",
            ]
        )
    head = ["arm", "seed", *(f"pass@{k}" for k in shown)]
    head += ["train reward (first -> last)", "eval length", "wall (min)"]
    return md_table(head, rows)


def _comparison_note(comparisons: Mapping[str, Any]) -> str:
    arms = [c for c in comparisons["arms"].values() if "error" not in c]
    level = round(100 * arms[0]["confidence"]) if arms else 95
    one_seed = any(not c.get("training_variance_covered", True) for c in arms)
    return (
        f"Paired difference from {comparisons['reference']} after training: per-problem "
        "pass@k minus the reference's on the same problems and seed; mean over seeds and "
        f"problems, each seed's mean difference, and two {level}% intervals: t over the "
        "per-seed differences (df = seeds - 1; the variance between training runs, on this "
        "test set) and a bootstrap over seeds and problems (new problems too). **Bold**: "
        "distinguishable, both intervals exclude 0. better / worse: problems whose "
        "difference (mean over seeds) is above / below 0."
        + (
            " With one seed there is no t-interval: the bootstrap alone decides and the "
            "variance between training runs is not covered."
            if one_seed
            else ""
        )
    )


def signed(x: float) -> str:
    """``x`` with its sign to 3 decimals; a rounding residue prints as +0.000, not -0.000."""
    return f"{round(x, 3) + 0.0:+.3f}"


def _interval(ci: Sequence[float] | None) -> str:
    return "-" if ci is None else f"[{signed(ci[0])}, {signed(ci[1])}]"


def comparison_table(comparisons: Mapping[str, Any], arms: Mapping[str, Any]) -> str:
    """One row per arm and k: difference, per-seed differences, both intervals."""
    ks = [str(k) for k in comparisons["ks"]]
    rows = []
    for name, c in comparisons["arms"].items():
        label = arms.get(name, {}).get("label", name)
        if "error" in c:
            rows.append([label, "", c["error"], "", "", "", ""])
            continue
        for k in ks:
            d = c[k]
            mean = signed(d["mean"])
            rows.append(
                [
                    label,
                    k,
                    f"**{mean}**" if d["distinguishable"] else mean,
                    " ".join(signed(x) for x in d["per_seed"]),
                    _interval(d["t_ci"]),
                    _interval(d["boot_ci"]),
                    f"{d['better']}/{d['worse']}",
                ]
            )
    head = ["arm", "k", "d pass@k", "per seed", "t over seeds", "bootstrap seeds x problems"]
    return md_table([*head, "better/worse"], rows)
