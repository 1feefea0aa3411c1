"""LoRA runs: adapter-only checkpoints and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from passk.train import checkpoint as ckpt
from passk.train.config import load_config, validate
from passk.train.loop import train

LORA = "model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"


def _config(checkpoint: Path, *extra: str):
    return load_config(None, [*tiny_overrides(checkpoint), LORA, "eval.problems=0", *extra])


def _adapter(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_lora_checkpoints_hold_adapters_only_and_resume_exactly(tiny_checkpoint, tmp_path):
    straight = train(_config(tiny_checkpoint, "steps=4", "checkpoint.every=2"), tmp_path / "a")
    last = straight.checkpoint
    assert last is not None
    names = {p.name for p in last.iterdir()}
    assert "adapter_model.safetensors" in names and "model.safetensors" not in names
    train(_config(tiny_checkpoint, "steps=2", "checkpoint.every=2"), tmp_path / "b")
    train(_config(tiny_checkpoint, "steps=4", "checkpoint.every=2"), tmp_path / "b", resume=True)
    a, b = _adapter(last), _adapter(ckpt.latest_checkpoint(tmp_path / "b"))
    assert a.keys() == b.keys() and all("lora" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = _adapter(ckpt.checkpoint_dirs(tmp_path / "a")[0])  # step 2
    assert any(not torch.equal(first[k], a[k]) for k in a)  # the adapters trained


def test_lora_config_is_checked_before_the_model_loads(tiny_checkpoint):
    with pytest.raises(ValueError, match=r"model\.lora\.r must be > 0"):
        validate(load_config(None, [*tiny_overrides(tiny_checkpoint), "model.lora={r: 0}"]))
    with pytest.raises(ValueError, match=r"unknown config key 'model\.lora\.rank'"):
        load_config(None, ["model.lora={rank: 4}"])
