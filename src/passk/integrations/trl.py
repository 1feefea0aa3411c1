"""TRL integration: :class:`PassKGRPOTrainer`, TRL's ``GRPOTrainer`` with passk advantages.

TRL computes GRPO advantages inline in ``GRPOTrainer._generate_and_score_completions``
and offers no hook for another estimator. The least invasive override found in the pinned
TRL keeps every line of TRL's method and changes only its result:

1. ``_calculate_rewards`` (TRL's own seam) returns the rewards of *all* processes,
   gathered, ``[B_global, F]``; the override remembers them;
2. after TRL's method returns, the rewards are weighted and summed per completion as
   TRL does, reshaped to ``[G, num_generations]`` (TRL's sampler keeps each prompt's
   completions contiguous in the global batch), passed to
   :func:`passk.compute_advantages`, and this process's slice replaces
   ``output["advantages"]``.

So a prompt group is never split (reward functions only see a process's share, which is
why advantages must not be computed inside them), and TRL's generation, vLLM, loss and
logging code run unchanged. Logged metrics add ``adv/zero_frac`` (completions whose
advantage is exactly 0: degenerate groups, and for Pass@k groups with fewer than k
failures), ``adv/zero_group_frac`` and ``adv/abs_mean``.

Only training batches are rescored; evaluation keeps TRL's advantages (they only feed the
eval loss, and ``num_generations_eval`` may be smaller than ``k``).

Stochastic estimators (``passk_full`` with ``shuffle``, ``passk_bootstrap``) draw with
``derive_seed(seed, "adv", global_step, micro_step)``: a new draw each generation batch,
the same draw when a run is repeated or resumed. ``seed`` is ``advantage_kwargs["seed"]``,
else ``GRPOConfig.seed``. Every process computes the advantages of the whole gathered batch
and keeps its slice, so the seed must not depend on the process: a group split across two
processes gets one draw.

TRL is an optional extra: without it this module imports, and constructing the trainer
raises an ``ImportError`` with the install command.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from passk.core.advantages import RESPONSE_NEEDS, compute_advantages, get_estimator
from passk.core.aggregate import response_token_mean
from passk.seeds import derive_seed

__all__ = [
    "SUPPLIED_NEEDS",
    "PassKGRPOTrainer",
    "advantage_seed",
    "group_rewards",
    "zero_advantage_stats",
]

_INSTALL_HINT = "pip install 'passk[trl]' (see docs/integrations/trl.md)"
#: per-batch inputs the trainer computes for an estimator's ``needs``: per-prompt mean token
#: entropy ``[G]``, per-completion mean token log-prob under the sampling policy ``[G, N]``.
SUPPLIED_NEEDS = frozenset(RESPONSE_NEEDS)

try:
    from trl import GRPOTrainer as _GRPOTrainer
except ImportError:  # optional extra

    class _GRPOTrainer:  # type: ignore[no-redef]
        """Placeholder so the module imports without TRL."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(f"PassKGRPOTrainer needs TRL: {_INSTALL_HINT}")


def group_rewards(
    rewards_per_func: Tensor, weights: Tensor, num_generations: int
) -> tuple[Tensor, Tensor]:
    """TRL's gathered ``rewards_per_func[B, F]`` -> ``(rewards[G, N], mask[G, N])``.

    A completion's reward is the weighted sum of its reward functions, ignoring the ones
    that returned None (NaN), as TRL's ``sum_then_normalize``; a completion that every
    function skipped is masked out (TRL gives it advantage 0 too).

    >>> r = torch.tensor([[1.0, 0.0], [float("nan"), 1.0], [float("nan")] * 2, [0.0, 0.0]])
    >>> group_rewards(r, torch.tensor([1.0, 0.5]), 2)
    (tensor([[1.0000, 0.5000],
            [0.0000, 0.0000]]), tensor([[ True,  True],
            [False,  True]]))
    """
    if rewards_per_func.ndim != 2 or rewards_per_func.shape[0] % num_generations:
        raise ValueError(
            f"rewards_per_func must be [B, F] with B a multiple of num_generations="
            f"{num_generations}, got {tuple(rewards_per_func.shape)}"
        )
    scored = ~torch.isnan(rewards_per_func).all(dim=1)  # [B]
    weighted = rewards_per_func * weights.to(rewards_per_func)[None, :]
    rewards = weighted.nansum(dim=1)  # [B]
    return rewards.view(-1, num_generations), scored.view(-1, num_generations)


def zero_advantage_stats(advantages: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """``adv/zero_frac`` (valid completions with A = 0), ``adv/zero_group_frac`` (groups
    whose valid completions all have A = 0) and ``adv/abs_mean``; detached 0-d tensors.

    >>> zero_advantage_stats(torch.tensor([[1.0, -1.0], [0.0, 0.0]]), torch.ones(2, 2).bool())
    {'adv/zero_frac': tensor(0.5000), 'adv/zero_group_frac': tensor(0.5000), 'adv/abs_mean': tensor(0.5000)}
    """
    a = advantages.detach().float()
    n = mask.sum().clamp(min=1)
    zero = (a == 0) & mask  # [G, N]
    has = mask.any(dim=1)  # [G]
    group_zero = (zero | ~mask).all(dim=1) & has
    return {
        "adv/zero_frac": zero.sum() / n,
        "adv/zero_group_frac": group_zero.sum() / has.sum().clamp(min=1),
        "adv/abs_mean": torch.where(mask, a.abs(), 0.0).sum() / n,
    }


def advantage_seed(base_seed: int, global_step: int, micro_step: int) -> int:
    """Seed of a stochastic estimator's draw for one generation batch.

    ``micro_step`` is the gradient-accumulation index inside the optimiser step (TRL may
    generate more than once per step); neither input depends on the process.

    >>> advantage_seed(0, 1, 0) == advantage_seed(0, 1, 0) != advantage_seed(0, 2, 0)
    True
    """
    return derive_seed(base_seed, "adv", global_step, micro_step)


class PassKGRPOTrainer(_GRPOTrainer):
    """``trl.GRPOTrainer`` whose training advantages come from a passk estimator.

    Args:
        *args, **kwargs: exactly those of ``trl.GRPOTrainer`` (model, reward_funcs, args,
            train_dataset, processing_class, ...).
        advantage: any name from :func:`passk.list_estimators` (``"passk_analytic"``,
            ``"pass1"``, ``"pkpo_loo"``, ...).
        advantage_kwargs: the estimator's parameters, e.g. ``{"k": 8}``. Checked when the
            trainer is built: unknown names, a missing ``k`` for an estimator that takes
            one (no default: a silent k is a wasted run), ``k`` > ``num_generations``.
            ``seed`` (stochastic estimators) is the base of a per-step seed. ``combine``
            takes ``{"terms": [{"estimator": ..., "weight": ..., "params": {...}}, ...]}``
            (e.g. Pass@k + GRPO; docs/integrations/trl.md).

    Estimators that need per-prompt entropy (``passk_adaptive``) get it from one extra
    no-grad forward pass of the policy over the local completions (token-mean per
    completion, gathered, then mean per prompt); multimodal inputs are not forwarded there.
    Estimators that need per-completion sequence log-probs (``unlikeliness``: ``seq_logp``
    ``[G, N]``, the token-mean log-prob under the policy that sampled it) get TRL's
    ``old_per_token_logps`` (the policy at generation time) where TRL computed them, else
    vLLM's ``sampling_per_token_logps``, else the same no-grad forward pass.
    """

    def __init__(
        self,
        *args: Any,
        advantage: str = "passk_analytic",
        advantage_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        params = dict(advantage_kwargs or {})
        spec = get_estimator(advantage).for_params(params)  # a composite: its parts' needs
        unsupported = sorted(spec.needs - SUPPLIED_NEEDS)
        if unsupported:
            raise ValueError(
                f"estimator {advantage!r} needs {unsupported}, which PassKGRPOTrainer cannot "
                f"compute (it supplies {sorted(SUPPLIED_NEEDS)})"
            )
        given_needs = sorted(set(params) & set(spec.needs))
        if given_needs:
            raise ValueError(
                f"advantage_kwargs must not set {given_needs}: the trainer computes them per batch"
            )
        placeholders = {n: torch.zeros(1) for n in spec.needs}
        spec.make_params(**params, **placeholders)  # fail now, not after the first rollout
        if spec.uses_k and params.get("k") is None:
            raise ValueError(
                f"estimator {advantage!r} needs advantage_kwargs['k'] (the pass@k group size, "
                "1 <= k <= num_generations), e.g. advantage_kwargs={'k': 8}"
            )
        super().__init__(*args, **kwargs)
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "PassKGRPOTrainer needs the raw per-completion reward; set "
                "GRPOConfig(multi_objective_aggregation='sum_then_normalize'), got "
                f"{self.multi_objective_aggregation!r}"
            )
        k = params.get("k")
        if k is not None and k > self.num_generations:
            raise ValueError(
                f"advantage_kwargs k={k} exceeds num_generations={self.num_generations}; "
                f"valid: 1 <= k <= {self.num_generations}"
            )
        self.advantage = advantage
        self.advantage_kwargs = params
        self._advantage_spec = spec
        self._advantage_base_seed = int(params.get("seed", self.args.seed))
        self._passk_rewards_per_func: Tensor | None = None

    # TRL seam: rewards of all processes, gathered, [B_global, F].
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[no-untyped-def]
        rewards_per_func = super()._calculate_rewards(
            inputs, prompts, completions, completion_ids_list
        )
        self._passk_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._passk_rewards_per_func = None
        output = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return output
        rewards_per_func = self._passk_rewards_per_func
        if rewards_per_func is None:
            raise RuntimeError(
                "TRL did not call _calculate_rewards; this TRL version is not supported by "
                f"PassKGRPOTrainer ({_INSTALL_HINT})"
            )
        rewards, mask = group_rewards(
            rewards_per_func, self.reward_weights, self.num_generations
        )  # [G, N] x2, all processes
        params = dict(self.advantage_kwargs)
        needs = self._advantage_spec.needs
        if needs:
            params.update(self._needed_inputs(output, needs))
        if self._advantage_spec.takes_seed:
            accum = getattr(self, "current_gradient_accumulation_steps", None)
            micro = self._step % (accum or self.args.gradient_accumulation_steps)
            params["seed"] = advantage_seed(
                self._advantage_base_seed, self.state.global_step, micro
            )
        adv = compute_advantages(self.advantage, rewards, mask, **params)  # [G, N]

        local = output["advantages"]  # [B_local]
        start = self.accelerator.process_index * local.shape[0]
        flat = adv.reshape(-1)  # [B_global]
        output["advantages"] = flat[start : start + local.shape[0]].to(local)

        # Replace TRL's logged GRPO advantages (last B_global entries) with the ones used.
        logged = self._logs["advantages"]
        for _ in range(min(len(logged), flat.numel())):
            logged.pop()
        logged.extend(flat.tolist())
        for key, value in zero_advantage_stats(adv, mask).items():
            self._metrics["train"][key].append(value.item())
        return output

    def _needed_inputs(self, output: dict[str, Any], needs: frozenset[str]) -> dict[str, Tensor]:
        """The estimator's per-batch inputs, for all processes: ``entropy`` ``[G]`` (per-prompt
        mean of per-completion token-mean entropy), ``seq_logp`` ``[G, N]`` (per-completion
        token-mean log-prob under the sampling policy)."""
        m = output["completion_mask"].bool()  # [B_local, T]
        logps = output.get("old_per_token_logps")
        if logps is None:
            logps = output.get("sampling_per_token_logps")
        entropy = None
        if "entropy" in needs or ("seq_logp" in needs and logps is None):
            fwd_logps, entropy = self._policy_forward(output, "entropy" in needs)
            logps = fwd_logps if logps is None else logps
        per_response: dict[str, Tensor] = {}
        for need, values in (("entropy", entropy), ("seq_logp", logps)):
            if need not in needs:
                continue
            per_completion = response_token_mean(values.float(), m)  # [B_local]
            grid = self.accelerator.gather(per_completion).view(-1, self.num_generations)
            per_response[need] = grid  # [G, N]
        every = torch.ones(grid.shape, dtype=torch.bool, device=grid.device)  # all completions
        return self._advantage_spec.needs_from_responses(per_response, every)

    def _policy_forward(
        self, output: dict[str, Any], compute_entropy: bool
    ) -> tuple[Tensor, Tensor | None]:
        """No-grad forward of the policy over the local completions: per-token log-probs and
        (optionally) entropies, ``[B_local, T]`` each."""
        prompt_ids, completion_ids = output["prompt_ids"], output["completion_ids"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        with torch.no_grad():
            logps, entropy, _ = self._get_per_token_logps_and_entropies(
                self.model,
                input_ids,
                attention_mask,
                completion_ids.size(1),
                batch_size=self.args.per_device_train_batch_size,
                compute_entropy=compute_entropy,
            )
        return logps, entropy
