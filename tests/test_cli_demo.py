"""The command line as a user runs it: a subprocess."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_demo_prints_estimators_and_peaks():
    out = run_cli("demo", "--n", "32", "--k", "4")
    assert out.returncode == 0, out.stderr
    assert "passk_analytic     peaks at accuracy 0.25" in out.stdout
    assert "pass1              peaks at accuracy 0.50" in out.stdout


def test_demo_rejects_bad_k_with_a_clear_error():
    out = run_cli("demo", "--n", "8", "--k", "9")
    assert out.returncode != 0
    assert "k=9 is larger than the smallest group" in out.stderr
    assert "Traceback" not in out.stderr


def test_no_command_prints_help():
    out = run_cli()
    assert out.returncode == 2 and "COMMAND" in out.stdout


def test_own_warnings_print_as_one_plain_line(monkeypatch, capsys):
    import warnings

    import passk.cli as cli

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    cli._plain_warnings()
    text = warnings.formatwarning(
        "reward 5.0 is outside [0, 1]", UserWarning, "/x/passk/tasks/guard.py", 3
    )
    assert text == "passk: warning: reward 5.0 is outside [0, 1]\n"
    other = warnings.formatwarning("deprecated", FutureWarning, "/x/site-packages/lib.py", 7)
    assert "lib.py:7" in other


def test_ctrl_c_before_a_command_handles_it_exits_130(monkeypatch, capsys):
    import passk.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser()
    args = parser.parse_args(["tasks"])
    args.func = interrupted  # e.g. Ctrl-C while the command still imports torch
    monkeypatch.setattr(parser, "parse_args", lambda argv: args)
    monkeypatch.setattr(cli, "build_parser", lambda commands=None: parser)
    assert cli.main(["tasks"]) == 130
    assert "passk tasks: interrupted" in capsys.readouterr().err
