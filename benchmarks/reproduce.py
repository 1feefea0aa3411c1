"""Pass@1 vs Pass@k training at laptop scale (arXiv 2508.10751): the sweep behind
docs/results.md.

The experiment is ``configs/sweeps/reproduce.yaml``: the embedded SmolLM2-135M-Instruct
trained on ``mul1`` in four arms (Pass@1, analytic Pass@k, Pass@k then Pass@1, the
combination), two seeds, equal rollout budgets, and held-out pass@k for k = 1..64
before (once per seed) and after training. Its comments give the budget and the
reasons for it. This script runs it with ``passk sweep``, keeps the results in
``benchmarks/results/reproduce.json`` and regenerates docs/results.md's tables from
that file::

    python benchmarks/reproduce.py run                    # ~2 h on a 2-core CPU
    python benchmarks/reproduce.py run --parallel 2       # two runs side by side
    python benchmarks/reproduce.py tables                 # the tables of reproduce.json
    python benchmarks/reproduce.py tables --check docs/results.md   # exit 1 if they differ
    python benchmarks/reproduce.py tables --compare pass1 # add paired comparisons

``run`` is ``passk sweep configs/sweeps/reproduce.yaml --out
benchmarks/results/reproduce_runs`` (further options go to ``passk sweep``: ``--seeds 0``,
``--arms pass1 passk``, ``--set steps=20``) and copies the sweep's ``summary.json`` to
the results file; running it again skips finished runs and resumes cut ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "configs" / "sweeps" / "reproduce.yaml"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OUT = RESULTS / "reproduce_runs"
DEFAULT_JSON = RESULTS / "reproduce.json"
COMPARE_KS = (1, 4, 16, 64)


def run(args: argparse.Namespace, sweep_args: list[str]) -> int:
    from passk.cli import main as passk

    code = passk(["sweep", str(SWEEP), "--out", str(args.out), *sweep_args])
    summary = args.out / "summary.json"
    if code in (0, 3) and summary.is_file():
        result = json.loads(summary.read_text(encoding="utf-8"))
        result["sweep_dir"] = _relative(args.out, args.json.parent)
        from passk.eval.report import write_json_atomic

        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")
    return code


def tables(args: argparse.Namespace) -> int:
    from passk.sweep.report import markdown_tables
    from passk.sweep.summary import paired_comparisons

    result = json.loads(args.json.read_text(encoding="utf-8"))
    if args.compare:
        ks = [k for k in COMPARE_KS if k in result["ks"]]
        result["comparisons"] = paired_comparisons(result["runs"], args.compare, ks)
    text = markdown_tables(result)
    if args.check is None:
        print(text, end="")
        return 0
    page = args.check.read_text(encoding="utf-8")
    missing = [block for block in text.split("\n\n") if block.strip() not in page]
    for block in missing:
        print(f"not in {args.check}:\n{block}\n", file=sys.stderr)
    print(f"{len(text.split(chr(10) * 2)) - len(missing)} blocks match, {len(missing)} differ")
    return 1 if missing else 0


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="run the sweep (other options go to passk sweep)")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT, help="sweep directory")
    r.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file to write")
    t = sub.add_parser("tables", help="the Markdown tables of a results file")
    t.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file to read")
    t.add_argument("--check", type=Path, default=None, help="a page that must hold the tables")
    t.add_argument("--compare", default=None, metavar="ARM", help="add paired comparisons to ARM")
    return p


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if args.what == "run":
        return run(args, rest)
    if rest:
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    return tables(args)


if __name__ == "__main__":
    sys.exit(main())
