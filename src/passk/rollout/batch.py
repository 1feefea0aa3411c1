"""The batch type of passk: sampled responses, from the sampler to the update.

:class:`Rollouts` is produced by :func:`passk.rollout.generate.generate` and consumed,
without being unpacked into per-sample objects and padded again, by scoring, the
advantage computation and the policy update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Rollouts:
    """Sampled responses, flattened prompt-major: row ``b`` is sample ``b % n`` of prompt ``b // n``.

    Prompts are left-padded to a common width P and responses right-padded to T, so
    ``input_ids = cat([prompt_ids, response_ids], 1)`` is the full sequence and the
    response occupies its last T columns (what :func:`~passk.rollout.logprobs.recompute_logprobs`
    expects). Responses include their final stop token (EOS) when there is one.
    """

    prompt_ids: Tensor  # [B, P] long, left-padded with the pad id
    prompt_mask: Tensor  # [B, P] bool
    response_ids: Tensor  # [B, T] long, right-padded with the pad id
    response_mask: Tensor  # [B, T] bool
    logprobs: Tensor  # [B, T] float32, sampling-distribution log-probs, 0 at padding
    lengths: Tensor  # [B] long, number of response tokens
    truncated: Tensor  # [B] bool, True when no stop token came within max_new_tokens
    texts: list[str]  # [B] decoded responses, special tokens removed
    group: Tensor  # [B] long, index of the prompt each row answers
    n: int  # samples per prompt
    entropy: Tensor | None = None  # [B, T] float32 when requested, 0 at padding
    seeds: list[int] = field(default_factory=list)  # [B] per-sequence seeds
    # sampler facts for the metrics (e.g. ``rollout/static_fallback``)
    stats: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        B, T = self.response_ids.shape
        assert self.prompt_ids.shape[0] == B and self.prompt_mask.shape == self.prompt_ids.shape
        assert self.response_mask.shape == (B, T) and self.logprobs.shape == (B, T)
        assert self.lengths.shape == (B,) and self.truncated.shape == (B,) and len(self.texts) == B

    @property
    def input_ids(self) -> Tensor:
        """Prompt and response, ``[B, P + T]``."""
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        """``[B, P + T]`` bool: real prompt and response tokens."""
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    def __len__(self) -> int:
        return len(self.texts)
