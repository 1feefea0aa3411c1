"""A CPU entry for verl's platform registry (``VERL_PLATFORM=cpu``).

verl 0.9.1 registers only accelerators (``verl/plugin/platform/platform_cuda.py``,
``platform_npu.py``, ``platform_rocm.py``); with none present ``_detect_platform_name``
(``verl/plugin/platform/platform_manager.py``) falls back to ``nvidia`` and
``auto_set_device`` (``verl/utils/device.py``) turns ``trainer.device=cpu`` back into
``cuda``. This platform answers ``cpu`` / ``gloo`` instead.

Ray still schedules verl's workers on "GPU" bundles (``RayResourcePool.get_placement_groups``
and ``ResourcePoolManager._check_resource_available`` in
``verl/single_controller/ray/base.py`` count GPUs only): the harness starts Ray with
``num_gpus=1`` as a scheduling slot; nothing touches CUDA.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


# What verl calls on ``get_torch_device()`` (torch.cuda's API); torch.cpu lacks most of it.
CPU_DEVICE_MODULE = types.SimpleNamespace(
    is_available=lambda: True,
    current_device=lambda: "cpu",
    device_count=lambda: 1,
    set_device=_noop,
    synchronize=_noop,
    empty_cache=_noop,
    manual_seed=torch.manual_seed,
    manual_seed_all=torch.manual_seed,
    get_rng_state=torch.get_rng_state,
    set_rng_state=torch.set_rng_state,
    memory_allocated=_zero,
    memory_reserved=_zero,
    max_memory_allocated=_zero,
    max_memory_reserved=_zero,
    reset_peak_memory_stats=_noop,
    mem_get_info=lambda *a, **k: (1 << 40, 1 << 40),
    ipc_collect=_noop,
    get_device_name=lambda *a, **k: "cpu",
    Stream=torch.cpu.Stream,
    current_stream=torch.cpu.current_stream,
    stream=torch.cpu.stream,
    Event=torch.cpu.Event,
    is_initialized=lambda: True,
    amp=torch.cpu.amp,
)


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    """verl's platform interface on CPU: gloo, no memory pools, no profiler."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return CPU_DEVICE_MODULE  # type: ignore[return-value]

    def is_available(self) -> bool:
        return True

    def current_device(self) -> Any:
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
