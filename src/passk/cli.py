"""The ``passk`` command line: one entry point, sub-commands defined next to their code.

Each sub-command lives in its own module that exposes ``add_parser(subparsers)``;
the module is imported only when needed so ``passk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

# sub-command -> module exposing add_parser(subparsers) which sets `func` on its parser
COMMANDS: dict[str, str] = {
    "demo": "passk.demo",
    "diff": "passk.eval.diff",
    "eval": "passk.eval.cli",
    "export": "passk.eval.export",
    "plot": "passk.plots",
    "simulate": "passk.sim.cli",
    "sweep": "passk.sweep.cli",
    "tasks": "passk.tasks.cli",
    "train": "passk.train.cli",
}


def build_parser() -> argparse.ArgumentParser:
    from passk import __version__

    parser = argparse.ArgumentParser(
        prog="passk", description="Exploration-aware RLVR: Pass@k Training and evaluation."
    )
    parser.add_argument("--version", action="version", version=f"passk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def _plain_warnings() -> None:
    """passk's own warnings as ``passk: warning: ...`` lines (no file, line, source)."""
    default = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if f"{os.sep}passk{os.sep}" in str(filename):
            return f"passk: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = fmt  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _plain_warnings()
    try:
        return int(args.func(args) or 0)
    except ValueError as e:  # bad input: a clear message, not a traceback
        parser.exit(2, f"passk {args.command}: error: {e}\n")
    except KeyboardInterrupt:  # before a command's own handler took over (e.g. imports)
        print(f"passk {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
