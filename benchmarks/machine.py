"""What every benchmark records about the machine it ran on: the CPU's bf16 capability,
the load, the cores. Imported by the benchmarks of this folder (run as scripts)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_bf16_flags() -> list[str]:
    """The bf16 flags of /proc/cpuinfo (``avx512_bf16``, ``amx_bf16``); empty without them."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    return sorted(f for f in set(flags) if f in ("avx512_bf16", "amx_bf16", "amx_tile"))


def machine_info() -> dict[str, Any]:
    return {
        "cpu_bf16_flags": cpu_bf16_flags(),
        "native_bf16": bool({"avx512_bf16", "amx_bf16"} & set(cpu_bf16_flags())),
        "cpus": os.cpu_count(),
        "load_avg": list(os.getloadavg()),
        "python": platform.python_version(),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    """``benchmarks/results/NAME.json`` with the machine's facts added."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result | {"machine": machine_info()}, indent=1) + "\n")
    return path
