"""What ``--model`` may name besides ``embedded`` and a full checkpoint directory.

* a **run directory** (``runs/x``, holding ``checkpoints/``): its newest checkpoint;
* a **LoRA adapter checkpoint** (``adapter_config.json`` + ``adapter_model.safetensors``,
  what ``passk train`` with ``model.lora`` writes): its base model with the adapters on
  top, unmerged, as the trainer sampled it. The base is the run's ``model.name`` when the
  checkpoint sits in its run directory (``RUN/checkpoints/step_N``), else the adapter's
  own ``base_model_name_or_path``, or ``--base-model``.

:func:`merge_adapter` writes the merged model as a full checkpoint directory
(``passk export``), loadable by anything that reads Hugging Face checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_adapter_checkpoint(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def is_run_dir(path: str | Path) -> bool:
    """A training run directory: ``checkpoints/`` and ``config.yaml``, no model files."""
    path = Path(path)
    return (
        (path / "checkpoints").is_dir()
        and (path / "config.yaml").is_file()
        and not (path / "config.json").is_file()
        and not is_adapter_checkpoint(path)
    )


def resolve_model_dir(spec: str) -> tuple[str, str | None]:
    """``spec`` with a run directory replaced by its newest checkpoint, and a note saying
    so (None when ``spec`` is used as given)."""
    if spec == "embedded" or not is_run_dir(spec):
        return spec, None
    from passk.train.checkpoint import latest_checkpoint

    newest = latest_checkpoint(Path(spec))
    if newest is None:
        raise ValueError(
            f"--model {spec} is a training run directory without a checkpoint yet; "
            "pass a checkpoint directory (RUN/checkpoints/step_N) once one is written"
        )
    return str(
        newest
    ), f"--model {spec} is a run directory: evaluating its newest checkpoint {newest}"


def adapter_base(ckpt: Path, base_model: str | None = None) -> str:
    """The base model of adapter checkpoint ``ckpt`` (see the module docstring)."""
    if base_model:
        return base_model
    run_config = ckpt.parent.parent / "config.yaml"
    if ckpt.parent.name == "checkpoints" and run_config.is_file():
        import yaml

        tree = yaml.safe_load(run_config.read_text(encoding="utf-8")) or {}
        name = (tree.get("model") or {}).get("name")
        if isinstance(name, str) and name:
            return name
    try:
        recorded = json.loads((ckpt / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{ckpt / ADAPTER_CONFIG} is not readable JSON ({e})") from None
    base = recorded.get("base_model_name_or_path") if isinstance(recorded, dict) else None
    from passk.rollout.models import embedded_cache_dir

    if base and Path(base).resolve() == embedded_cache_dir().resolve():
        return "embedded"
    if base and Path(base).is_dir():
        return str(base)
    raise ValueError(
        f"{ckpt} is a LoRA adapter checkpoint whose base model ({base or 'not recorded'}) "
        "is not found; pass --base-model (embedded or a checkpoint directory)"
    )


def load_adapter_model(
    ckpt: str | Path, *, dtype: str = "auto", device: str = "auto", base_model: str | None = None
) -> Any:
    """A :class:`~passk.rollout.models.LoadedModel`: the base with the adapters of
    ``ckpt`` on top (unmerged, in the base's dtype, as the trainer's sampler held them)."""
    from peft import PeftModel

    from passk.rollout.models import LoadedModel, ModelIdentity, load_model

    ckpt = Path(ckpt)
    if not (ckpt / ADAPTER_WEIGHTS).is_file():
        raise ValueError(f"LoRA checkpoint {ckpt} has no {ADAPTER_WEIGHTS}")
    base_spec = adapter_base(ckpt, base_model)
    base = load_model(base_spec, dtype=dtype, device=device)
    dt = next(base.model.parameters()).dtype
    try:
        with warnings.catch_warnings():
            # peft asks the model the deprecated is_gradient_checkpointing: not ours to act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            model = PeftModel.from_pretrained(base.model, str(ckpt), is_trainable=False)
    except (ValueError, KeyError, RuntimeError) as e:
        text = str(e).strip().splitlines()
        raise ValueError(
            f"the adapters in {ckpt} do not fit base model {base_spec!r}: "
            f"{type(e).__name__}: {text[0] if text else ''}"
        ) from None
    model.to(dt).eval()
    digest = hashlib.sha256((ckpt / ADAPTER_WEIGHTS).read_bytes()).hexdigest()
    identity = ModelIdentity(
        name=f"{_checkpoint_name(ckpt)} (LoRA on {base.identity.name})",
        source=str(ckpt.resolve()),
        fingerprint=f"adapter-sha256:{digest} on {base.identity.fingerprint}",
        dtype=base.identity.dtype,
        device=base.identity.device,
        num_parameters=sum(p.numel() for p in model.parameters()),
    )
    return LoadedModel(model, base.tokenizer, identity)


def _checkpoint_name(ckpt: Path) -> str:
    """``run/step_000010`` for a checkpoint in a run directory, else the directory name."""
    if ckpt.parent.name == "checkpoints":
        return f"{ckpt.parent.parent.name}/{ckpt.name}"
    return ckpt.name


def merge_adapter(ckpt: str | Path, out: str | Path, *, base_model: str | None = None) -> Path:
    """Merge the adapters of ``ckpt`` into its base (fp32, CPU) and write a full
    checkpoint directory ``out`` (config, ``model.safetensors``, tokenizer)."""
    ckpt, out = Path(ckpt), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty directory; choose a new one")
    loaded = load_adapter_model(ckpt, dtype="fp32", device="cpu", base_model=base_model)
    merged = loaded.model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    return out
