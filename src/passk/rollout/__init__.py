"""Model loading (embedded SmolLM2 or any local HF checkpoint), sampling, the forward pass.

The sampler is ``passk.rollout.generate.generate`` (not re-exported here, so that the
name ``passk.rollout.generate`` keeps meaning the module).
"""

from passk.rollout.batch import Rollouts
from passk.rollout.generate import SamplingParams
from passk.rollout.logprobs import forward_logprobs, forward_logprobs_batched
from passk.rollout.models import LoadedModel, ModelIdentity, load_model

__all__ = [
    "LoadedModel",
    "ModelIdentity",
    "Rollouts",
    "SamplingParams",
    "forward_logprobs",
    "forward_logprobs_batched",
    "load_model",
]
