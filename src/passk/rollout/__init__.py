"""Model loading (embedded SmolLM2 or any local HF checkpoint), sampling, the forward pass.

The sampler is ``passk.rollout.generate.generate`` (not re-exported here, so that the
name ``passk.rollout.generate`` keeps meaning the module). The names below are imported
on first use: importing a light module of the package (``passk.rollout.choices``) does
not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from passk.lazy import lazy_getattr

if TYPE_CHECKING:
    from passk.rollout.batch import Rollouts
    from passk.rollout.logprobs import forward_logprobs, forward_logprobs_batched
    from passk.rollout.models import LoadedModel, ModelIdentity, load_model
    from passk.rollout.params import SamplingParams

_LAZY: dict[str, str] = {
    "LoadedModel": "passk.rollout.models",
    "ModelIdentity": "passk.rollout.models",
    "Rollouts": "passk.rollout.batch",
    "SamplingParams": "passk.rollout.params",
    "forward_logprobs": "passk.rollout.logprobs",
    "forward_logprobs_batched": "passk.rollout.logprobs",
    "load_model": "passk.rollout.models",
}

__all__ = [
    "LoadedModel",
    "ModelIdentity",
    "Rollouts",
    "SamplingParams",
    "forward_logprobs",
    "forward_logprobs_batched",
    "load_model",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
