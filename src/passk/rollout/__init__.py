"""Model loading (embedded SmolLM2 or any local HF checkpoint), sampling, log-prob recompute.

The sampler is ``passk.rollout.generate.generate`` (not re-exported here, so that the
name ``passk.rollout.generate`` keeps meaning the module).
"""

from passk.rollout.batch import Rollouts
from passk.rollout.generate import SamplingParams
from passk.rollout.logprobs import recompute_logprobs, response_logprobs
from passk.rollout.models import LoadedModel, ModelIdentity, load_model

__all__ = [
    "LoadedModel",
    "ModelIdentity",
    "Rollouts",
    "SamplingParams",
    "load_model",
    "recompute_logprobs",
    "response_logprobs",
]
