"""The reference a run measures itself against, and its resets (ProRL).

Two kinds of reference exist: a frozen copy of the policy for the KL penalty
(``loss.kl_coef > 0``), and DPH-RL's stored reference samples of near-perfect prompts with
their reference log-probs (``dph.generator``). A reset moves both to the current policy:
the frozen copy takes the current weights, the stored samples' log-probs are recomputed.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from passk.rollout.batch import Rollouts
from passk.seeds import derive_seed
from passk.train.config import TrainConfig
from passk.train.update import behaviour_pass


class Reference:
    """The KL reference model and the DPH-RL reference samples of one run."""

    def __init__(self, policy: Any, config: TrainConfig, autocast: torch.dtype | None) -> None:
        self.config = config
        self.autocast = autocast
        self.model: Any = None
        if config.loss.kl_coef > 0:
            self.model = copy.deepcopy(policy).eval()
            for p in self.model.parameters():
                p.requires_grad_(False)
        self.dph: Rollouts | None = None  # stored samples, ``ref_logp`` set

    def logprobs(self, model: Any, batch: Rollouts) -> torch.Tensor:
        """Log-probs ``[B, T]`` of ``batch`` under ``model`` (no grad)."""
        c = self.config
        logp, _, _ = behaviour_pass(
            model,
            batch,
            micro_batch_size=c.optim.micro_batch_size,
            temperature=c.rollout.temperature,
            autocast=self.autocast,
            topk=False,
            share_prefix=c.optim.share_prefix,
        )
        return logp

    def kl_logprobs(self, batch: Rollouts) -> torch.Tensor | None:
        """Reference log-probs of the batch for the KL penalty (None without one)."""
        return None if self.model is None else self.logprobs(self.model, batch)

    def set_dph_samples(self, policy: Any, samples: Rollouts) -> None:
        """Store DPH-RL reference samples with their log-probs under ``policy`` (now)."""
        samples.ref_logp = self.logprobs(policy, samples)
        self.dph = samples

    def dph_subset(self, step: int) -> Rollouts | None:
        """A seeded random subset of ``dph.batch_size`` stored samples for ``step``."""
        if self.dph is None or not len(self.dph):
            return None
        gen = torch.Generator().manual_seed(derive_seed(self.config.seed, "dph", step))
        idx = torch.randperm(len(self.dph), generator=gen)[: self.config.dph.batch_size]
        return self.dph.rows(idx)

    def reset(self, policy: Any) -> None:
        """Move the reference to ``policy``'s current weights."""
        if self.model is not None:
            self.model.load_state_dict(policy.state_dict())
        if self.dph is not None:
            self.dph.ref_logp = self.logprobs(policy, self.dph)

    # --- checkpoints ---------------------------------------------------------------------------

    def weights(self) -> dict[str, torch.Tensor] | None:
        if self.model is None:
            return None
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def dph_state(self) -> dict[str, Any] | None:
        return None if self.dph is None else dataclasses.asdict(self.dph)

    def load_dph_state(self, state: dict[str, Any] | None) -> None:
        self.dph = None if state is None else Rollouts(**state)
