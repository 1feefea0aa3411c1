"""LoRA (PEFT) adapters for ``passk train``: train low-rank updates, checkpoint only them.

With ``model.lora`` set, the loaded model is wrapped by PEFT's ``get_peft_model``; only
the adapter weights require gradients, so the optimiser state and the checkpoints hold
the adapters alone (``adapter_model.safetensors`` + ``adapter_config.json``), and resume
loads them back into a freshly wrapped base model.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

ADAPTER_FILE = "adapter_model.safetensors"


def apply_lora(model: Any, lora: Any, seed: int) -> Any:
    """``model`` with LoRA adapters per ``lora`` (a :class:`passk.train.config.LoraConfig`);
    their random initialisation is drawn from ``seed``, so a run is reproducible."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - peft is a dependency of the lora extra
        raise ValueError("model.lora needs the peft package: pip install 'passk[lora]'") from e
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(lora.target_modules) - names)
    if missing:
        raise ValueError(
            f"model.lora.target_modules {missing} are not modules of this model; "
            f"e.g. {', '.join(sorted(n for n in names if n.endswith('proj'))[:8])}"
        )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft asks the model the deprecated is_gradient_checkpointing: not ours to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config")


def load_adapter(model: Any, ckpt: Path) -> None:
    """Load the adapter weights of checkpoint ``ckpt`` into the wrapped ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from passk.train.checkpoint import CheckpointError

    path = ckpt / ADAPTER_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {ckpt} has no {ADAPTER_FILE} (not a LoRA run?)")
    result = set_peft_model_state_dict(model, load_file(str(path)))
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise CheckpointError(f"{path} does not fit the model: unexpected {unexpected[:5]}")
