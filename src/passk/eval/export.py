"""``passk export CKPT --out DIR``: a LoRA adapter checkpoint merged into its base model,
written as a full checkpoint directory (config, ``model.safetensors``, tokenizer) that
``passk eval --model``, vLLM or any Hugging Face loader reads.

``CKPT`` may be a run directory (its newest checkpoint). ``passk eval --model CKPT``
evaluates an adapter checkpoint without this step; export is for other tools.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="merge a LoRA checkpoint into its base model (a full checkpoint directory)",
        description=__doc__,
    )
    p.add_argument("checkpoint", help="LoRA adapter checkpoint, or a run directory (its newest)")
    p.add_argument("--out", required=True, type=Path, help="new (or empty) output directory")
    p.add_argument(
        "--base-model",
        default=None,
        help="base model (default: the run's model.name, or the adapter's recorded base)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from passk.eval.adapters import is_adapter_checkpoint, merge_adapter, resolve_model_dir

    try:
        path, note = resolve_model_dir(args.checkpoint)
        if note:
            print(note.replace("evaluating", "exporting"), file=sys.stderr)
        if not Path(path).is_dir():
            raise ValueError(f"{path} is not a directory (a LoRA checkpoint or a run directory)")
        if not is_adapter_checkpoint(path):
            full = (Path(path) / "config.json").is_file()
            raise ValueError(
                f"{path} is "
                + (
                    "a full model checkpoint already: nothing to merge (passk eval --model "
                    "and other loaders read it as it is)"
                    if full
                    else "not a LoRA adapter checkpoint (no adapter_config.json)"
                )
            )
        out = merge_adapter(path, args.out, base_model=args.base_model)
    except ValueError as e:
        print(f"passk export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} (the adapters of {path} merged into their base)")
    return 0
