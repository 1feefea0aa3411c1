"""Model loading (embedded SmolLM2 or any local HF checkpoint), sampling, log-prob recompute."""

from passk.rollout.generate import Rollouts, SamplingParams, generate, sample_batch
from passk.rollout.logprobs import recompute_logprobs, response_logprobs
from passk.rollout.models import LoadedModel, ModelIdentity, load_model

__all__ = [
    "LoadedModel",
    "ModelIdentity",
    "Rollouts",
    "SamplingParams",
    "generate",
    "load_model",
    "recompute_logprobs",
    "response_logprobs",
    "sample_batch",
]
