"""Atomic, verified training checkpoints.

Layout of a run directory::

    RUN/config.yaml                  the resolved config (what --resume reloads)
    RUN/metrics.jsonl                one JSON object per step (and per evaluation)
    RUN/checkpoints/step_000010/     model (HF format: loadable by `passk eval --model`),
                                     optimizer.pt, scheduler.pt, rng.pt, extra.pt,
                                     reference.safetensors (after a reference reset),
                                     state.json (step, stage, counters, file checksums)
    RUN/checkpoints/latest           name of the newest complete checkpoint

A checkpoint is written into a temporary directory and renamed into place, then
``latest`` is replaced atomically, so a crash at any moment leaves the previous
checkpoint intact. ``state.json`` holds a SHA-256 of every file; :func:`read_state`
refuses a checkpoint whose files are missing or altered. Temporary directories left by
a writer that died (SIGKILL, full disk) are removed by the next save or resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads where a checkpoint is written or read: run directories
    import torch  # and eval reports use the names here without a model

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE = "state.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (corrupt, incomplete, or from another config)."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if p.is_dir() and (p / STATE).is_file())


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    extra: dict[str, Any] | None = None,
    reference: dict[str, torch.Tensor] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` atomically; keep the newest ``keep``. Returns its directory.

    Refuses to write non-finite weights (a NaN checkpoint would poison every resume).
    """
    import torch

    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise CheckpointError(
                f"refusing to checkpoint step {step}: parameter {name} is not finite"
            )
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run_dir)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-step_{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_files(tmp, model, tokenizer, optimizer, scheduler, extra, reference, state, step)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not leave 700 MB behind
        raise
    if final.exists():  # re-running a step after a crash past its checkpoint
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    write_text_atomic(root / LATEST, final.name + "\n")
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_files(
    tmp: Path,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    extra: dict[str, Any] | None,
    reference: dict[str, torch.Tensor] | None,
    state: dict[str, Any],
    step: int,
) -> None:
    import torch

    from passk.rollout.models import sha256_file

    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(_rng_state(), tmp / "rng.pt")
    torch.save(extra or {}, tmp / "extra.pt")
    if reference is not None:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in reference.items()}, str(tmp / "reference.safetensors")
        )
    files = sorted(p.name for p in tmp.iterdir() if p.is_file())
    meta = {
        "format": FORMAT_VERSION,
        "step": step,
        **state,
        "files": {name: sha256_file(tmp / name) for name in files},
    }
    (tmp / STATE).write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    for p in tmp.iterdir():
        with p.open("rb") as f:
            os.fsync(f.fileno())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete ``checkpoints/.tmp-step_*-PID`` directories whose writer is no longer running."""
    root = run_dir / CHECKPOINTS
    removed = []
    for tmp in root.glob(".tmp-step_*-*") if root.is_dir() else []:
        pid = tmp.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def latest_checkpoint(run_dir: Path, *, on_skip: Any = None) -> Path | None:
    """The checkpoint named by ``latest``; if the pointer is lost, the newest checkpoint
    whose checksums verify (``on_skip(path, error)`` is told about each one passed over)."""
    root = run_dir / CHECKPOINTS
    pointer = root / LATEST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        path = root / name
        if not (path / STATE).is_file():
            raise CheckpointError(
                f"{pointer} names {name!r}, which is missing or incomplete; the run directory "
                "is damaged (remove the pointer to fall back to the newest valid checkpoint)"
            )
        return path
    for path in reversed(checkpoint_dirs(run_dir)):
        try:
            read_state(path)
        except CheckpointError as e:
            if on_skip is not None:
                on_skip(path, e)
            continue
        return path
    return None


def read_state(ckpt: Path, *, verify: bool = True) -> dict[str, Any]:
    """``state.json`` of a checkpoint; with ``verify``, every file's checksum is checked."""
    try:
        meta = json.loads((ckpt / STATE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {ckpt} is unreadable: {STATE}: {e}") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {ckpt} has format {meta.get('format')!r}; this passk reads {FORMAT_VERSION}"
        )
    if verify:
        from passk.rollout.models import sha256_file

        for name, digest in meta.get("files", {}).items():
            path = ckpt / name
            if not path.is_file():
                raise CheckpointError(f"checkpoint {ckpt} is incomplete: {name} is missing")
            if sha256_file(path) != digest:
                raise CheckpointError(
                    f"checkpoint {ckpt} is corrupt: {name} does not match its recorded checksum"
                )
    return meta


def weight_files(ckpt: Path, file: str = "model.safetensors") -> list[Path]:
    """The safetensors files holding ``file``'s weights: itself, or the shards its
    ``.index.json`` names (``save_pretrained`` shards large models)."""
    if (ckpt / file).is_file():
        return [ckpt / file]
    index = ckpt / f"{file}.index.json"
    if index.is_file():
        try:
            shards = sorted(
                set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            )
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index} is not a safetensors index: {e}") from None
        return [ckpt / s for s in shards]
    raise CheckpointError(f"checkpoint {ckpt} holds neither {file} nor {file}.index.json")


def load_weights(model: Any, ckpt: Path, file: str = "model.safetensors") -> None:
    """Load weights saved by ``save_pretrained`` into ``model`` (one file or shards; tied
    weights may be absent)."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for path in weight_files(ckpt, file):
        state.update(load_file(str(path)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set()
    out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
    if out_emb is not None and out_emb.weight is in_emb.weight:
        tied = {n for n, p in model.named_parameters(remove_duplicate=False) if p is out_emb.weight}
    missing = [m for m in missing if m not in tied]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {ckpt / file} does not fit the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


def restore_rng(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_state() -> dict[str, Any]:
    import random

    import numpy as np
    import torch

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
