"""Importing one integration never loads another: the TRL callback shares the validation
table with the verl plugin, but importing it must not import (and register) the plugin."""

from __future__ import annotations

import subprocess
import sys


def test_the_trl_callback_does_not_load_the_verl_plugin() -> None:
    code = (
        "import sys, passk.integrations.trl_callback\n"
        "print('passk.integrations.verl' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
