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
from collections.abc import Collection, Sequence

# sub-command -> (module exposing add_parser(subparsers) which sets `func` on its parser,
# the one-line help ``passk --help`` shows: the module's own, held to it by a test)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("passk.demo", "print advantages and eta curves of the core estimators"),
    "diff": (
        "passk.eval.diff",
        "compare two arms of evaluation reports (B - A) with seed-aware intervals",
    ),
    "eval": ("passk.eval.cli", "pass@k evaluation with bootstrap confidence intervals"),
    "export": (
        "passk.eval.export",
        "merge a LoRA checkpoint into its base model (a full checkpoint directory)",
    ),
    "plot": ("passk.plots.cli", "figures from logged files"),
    "simulate": (
        "passk.sim.cli",
        "exact model of what an advantage design does to exploration (no model)",
    ),
    "sweep": ("passk.sweep.cli", "train arms x seeds from a sweep file and compare them"),
    "tasks": ("passk.tasks.cli", "list the registered tasks"),
    "train": ("passk.train.cli", "train a policy with Pass@k Training and its relatives"),
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``passk`` parser with ``commands`` (default: all) built in full; every other
    sub-command is a stub carrying its one-line help, so that its module (and what it
    imports: torch, transformers, matplotlib) is not loaded to parse another command."""
    from passk import __version__

    parser = argparse.ArgumentParser(
        prog="passk", description="Exploration-aware RLVR: Pass@k Training and evaluation."
    )
    parser.add_argument("--version", action="version", version=f"passk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        if commands is None or name in commands:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names (its first word that is not an option), if any."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _plain_warnings() -> None:
    """passk's own warnings as ``passk: warning: ...`` lines (no file, line, source)."""
    default = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if f"{os.sep}passk{os.sep}" in str(filename):
            return f"passk: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = fmt  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = _command_of(argv)
    parser = build_parser(() if command is None else (command,))
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
