"""``validate(config)``: every check of a :class:`~passk.train.config.TrainConfig` that
needs no model, run before anything loads; each error names the field."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from passk.coerce import check_fields

if TYPE_CHECKING:
    from passk.core.advantages import EstimatorSpec
    from passk.train.config import TrainConfig


def _choice(path: str, value: Any, valid: tuple[Any, ...] | list[Any]) -> None:
    if value not in valid:
        raise ValueError(f"{path}={value!r} is not valid; valid: {', '.join(map(str, valid))}")


def _validate_entropy_control(lo: Any) -> None:
    """The adaptive entropy coefficient's rules across fields (each field's own bounds are
    declared on it)."""
    if not lo.entropy_coef_min <= lo.entropy_coef_max:
        raise ValueError(
            f"loss.entropy_coef_max={lo.entropy_coef_max!r} must be >= "
            f"loss.entropy_coef_min={lo.entropy_coef_min!r}"
        )
    if lo.entropy_target is not None and not (
        lo.entropy_coef_min <= lo.entropy_coef <= lo.entropy_coef_max
    ):
        raise ValueError(
            f"loss.entropy_coef={lo.entropy_coef!r} (the adaptive coefficient's initial value) "
            f"must be in [loss.entropy_coef_min, loss.entropy_coef_max] = "
            f"[{lo.entropy_coef_min!r}, {lo.entropy_coef_max!r}]"
        )


def validate(config: TrainConfig) -> None:
    """Check the whole config before any model loads; raise ValueError naming the field."""
    from passk.core.advantages import get_estimator
    from passk.core.aggregate import AGGREGATION_MODES
    from passk.core.divergences import DPH_GENERATORS
    from passk.core.policy_losses import get_policy_loss

    c = config
    check_fields(c)  # every field's declared bounds (passk.coerce.Range)
    if c.model.lora is not None and not c.model.lora.target_modules:
        raise ValueError("model.lora.target_modules is empty; name at least one module")
    if not c.task.name:
        raise ValueError("task.name is missing; valid: a name from passk.tasks.list_tasks()")
    r = c.rollout

    a = c.algorithm
    stages = a.stages
    dense_ok = a.overlong_cache == 0 and a.noise_p == 0
    for i, s in enumerate(stages):
        where = f"algorithm.stages.{i}"
        spec = get_estimator(s.estimator)  # unknown name: lists the valid ones
        params = dict(s.params)
        try:
            spec = spec.for_params(params)  # a composite takes its parts' needs and domain
            for need in spec.needs:  # supplied by the trainer at each step
                params.setdefault(need, 0.0)
            spec.make_params(**params)
            if get_estimator(s.estimator).refine is not None:  # a composite: try its parts
                _try_composite(spec, dict(s.params), r.n)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}.params: {e}") from None
        k, default = s.params.get("k"), ""
        if k is None and spec.uses_k:  # the estimator's own default k must fit the group too
            k, default = _default_k(spec), f" (the default of {s.estimator})"
        if k is not None and not 1 <= int(k) <= r.n:
            raise ValueError(
                f"{where}.params.k={k}{default} must be between 1 and rollout.n={r.n} "
                "(the group size)"
            )
        orders = {"order": s.params.get("order")} if s.params.get("order") is not None else {}
        orders.update({f"weights.{w}": w for w in dict(s.params.get("weights") or {})})
        for key, value in orders.items():
            if not 1 <= int(value) <= r.n:
                raise ValueError(
                    f"{where}.params.{key}: k={value} must be between 1 and rollout.n={r.n} "
                    "(the group size)"
                )
        if s.k_final is not None:
            if not spec.uses_k:
                raise ValueError(f"{where}.k_final is set but {s.estimator!r} takes no k")
            if s.steps is None:
                raise ValueError(f"{where}.k_final needs {where}.steps (the annealing length)")
            if not 1 <= s.k_final <= r.n:
                raise ValueError(f"{where}.k_final={s.k_final} must be in 1..rollout.n={r.n}")
        if a.dars is None:  # DARS widens hard groups beyond rollout.n: they may carry signal
            _refuse_silent_stage(where, spec, dict(s.params), s.k_final, r.n)
        if spec.binary_only and (s.reward == "dense" or not dense_ok):
            why = "dense rewards" if s.reward == "dense" else "overlong shaping"
            raise ValueError(
                f"{where}.estimator={s.estimator!r} needs binary rewards but the stage uses "
                f"{why}; use maxk_analytic, pkpo_loo or pass1"
            )
        if s.steps is None and i < len(stages) - 1 and s.until_reward is None:
            raise ValueError(
                f"{where} needs steps or until_reward (only the last stage may be open)"
            )
    if not 0 <= a.overlong_cache <= r.max_new_tokens:
        raise ValueError(
            f"algorithm.overlong_cache must be in 0..rollout.max_new_tokens={r.max_new_tokens}, "
            f"got {a.overlong_cache}"
        )
    if a.dars is not None:
        if a.dynamic_sampling:
            raise ValueError("algorithm.dars and algorithm.dynamic_sampling cannot be combined")
        if a.dars_n_max is not None and a.dars_n_max < r.n:
            raise ValueError(f"algorithm.dars_n_max={a.dars_n_max} must be >= rollout.n={r.n}")

    lo = c.loss
    spec = get_policy_loss(lo.policy_loss)  # unknown name: lists the valid ones
    try:
        spec.make_params(lo.params)
    except (ValueError, TypeError) as e:
        raise ValueError(f"loss.params ({lo.policy_loss}): {e}") from None
    _choice("loss.aggregation", lo.aggregation, AGGREGATION_MODES)
    if lo.aggregation == "constant" and not (lo.aggregation_constant or 0) > 0:
        raise ValueError("loss.aggregation=constant needs loss.aggregation_constant > 0")
    _validate_entropy_control(lo)
    if lo.entropy_mask_top is not None and not 0 <= lo.entropy_mask_top <= 1:
        raise ValueError(
            f"loss.entropy_mask_top must be in (0, 1] (e.g. 0.2), or 0/null to disable, "
            f"got {lo.entropy_mask_top!r}"
        )

    ref = c.reference
    resets = ref.reset_every or ref.reset_patience or ref.reset_kl_above is not None
    if resets and not c.needs_reference():
        raise ValueError(
            "reference resets are configured but no reference policy is used; "
            "set loss.kl_coef > 0 (or dph.generator)"
        )
    if ref.reset_patience and not ref.reset_metric.startswith("eval/"):
        raise ValueError(
            f"reference.reset_metric must be an eval/ metric, got {ref.reset_metric!r}"
        )
    if ref.reset_patience and c.eval.every == 0:
        raise ValueError("reference.reset_patience needs periodic evaluation (eval.every > 0)")

    if c.dph.generator is not None:
        _choice("dph.generator", c.dph.generator, DPH_GENERATORS)

    o = c.optim
    if o.old_logprobs == "rollout" and r.top_p < 1:
        raise ValueError(
            "optim.old_logprobs=rollout needs rollout.top_p=1 (the sampler records the "
            "nucleus-truncated distribution); use auto or recompute"
        )
    if o.mini_batches > r.prompts_per_step * r.n:
        raise ValueError(
            f"optim.mini_batches={o.mini_batches} exceeds the batch of "
            f"{r.prompts_per_step * r.n} responses"
        )

    from passk.tasks.registry import get_task

    get_task(c.task.name, **c.task.options)  # unknown task or option: lists the valid ones
    if c.task.reward is not None:
        from passk.tasks.rewards import get_reward

        get_reward(c.task.reward)


# --- stages that cannot learn -------------------------------------------------------------------

# estimators that mix analytic Pass@k with another signal: at k = n the Pass@k part is zero
_PASSK_PART_AT_N = {
    "passk_combination": "it trains on (1 - accuracy) x Pass@1 alone",
    "passk_adaptive": "only its high-entropy groups (Pass@1) learn",
}


def warn_config(config: TrainConfig) -> None:
    """Warn (``warnings.warn``) about settings that run but do less than they say."""
    from passk.core.advantages import get_estimator

    n = config.rollout.n
    for i, s in enumerate(config.algorithm.stages):
        why = _PASSK_PART_AT_N.get(s.estimator)
        if why is None:
            continue
        k = s.params.get("k")
        ks = {int(k if k is not None else _default_k(get_estimator(s.estimator)) or 0)}
        if s.k_final is not None:
            ks.add(int(s.k_final))
        if n in ks:
            warnings.warn(
                f"algorithm.stages.{i}: {s.estimator} with k = rollout.n = {n} has a zero Pass@k "
                f"part (every k-subset is the whole group), so {why}; set k below {n} or "
                "raise rollout.n",
                stacklevel=2,
            )


def _refuse_silent_stage(
    where: str, spec: EstimatorSpec, params: Mapping[str, Any], k_final: int | None, n: int
) -> None:
    """Refuse a stage whose estimator gives every response a zero advantage at group size n.

    The estimator is asked, not a table: its advantages for every mix of binary rewards in
    a group of n (and graded rewards, when it takes them) must not all be zero.
    """
    if any(need not in _PROBE_NEEDS for need in spec.needs):
        return  # an input this probe cannot make up: the estimator is not checked
    default_k = _default_k(spec)
    given = params.get("k")
    for key, k in (("params.k", given if given is not None else default_k), ("k_final", k_final)):
        if key == "k_final" and k is None:
            continue
        trial = dict(params)
        if k is not None:
            trial["k"] = int(k)
        if _has_signal(spec, n, trial):
            continue
        fixes = []
        if k is not None:
            smaller = next(
                (j for j in range(int(k) - 1, 0, -1) if _has_signal(spec, n, {**trial, "k": j})),
                None,
            )
            if smaller is not None:
                fixes.append(f"k <= {smaller}")
        larger = next((m for m in range(n + 1, 4 * n + 3) if _has_signal(spec, m, trial)), None)
        if larger is not None:
            fixes.append(f"rollout.n >= {larger}")
        default = " (the default)" if key == "params.k" and given is None else ""
        setting = f"{key}={k}{default}, " if k is not None else ""
        raise ValueError(
            f"{where}: {spec.name} with {setting}rollout.n={n} gives every response a zero "
            "advantage (the stage would not learn); use "
            + (" or ".join(fixes) if fixes else "another estimator")
        )


_PROBE_NEEDS = ("entropy", "seq_logp")


def _try_composite(spec: EstimatorSpec, params: Mapping[str, Any], n: int) -> None:
    """Run a composite estimator (``combine``, ``gated``) once on groups of n, so that a
    part's error (its k larger than the group) shows before the model loads."""
    import torch

    from passk.core.advantages import compute_advantages

    rewards = torch.zeros(2, n, dtype=torch.float64)
    rewards[0, 0] = 1.0
    trial = dict(params)
    if "entropy" in spec.needs:
        trial["entropy"] = torch.zeros(2, dtype=torch.float64)
    if "seq_logp" in spec.needs:
        trial["seq_logp"] = -torch.ones(2, n, dtype=torch.float64)
    compute_advantages(spec.name, rewards, **trial)


def _default_k(spec: EstimatorSpec) -> int | None:
    import dataclasses

    return next((f.default for f in dataclasses.fields(spec.params) if f.name == "k"), None)


def _has_signal(spec: EstimatorSpec, n: int, params: Mapping[str, Any]) -> bool:
    """Whether some group of n responses gets a non-zero advantage from ``spec``."""
    import torch

    from passk.core.advantages import compute_advantages

    rows = [torch.zeros(n), torch.ones(n)]
    for pos in range(1, n):  # every count of correct responses, first and last in the group
        rows += [torch.arange(n).lt(pos).double(), torch.arange(n).ge(n - pos).double()]
    if not spec.binary_only:
        graded = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
        rows += [graded, graded.flip(0)]
    # a stochastic estimator draws subsets per group: many copies make a miss negligible
    rewards = torch.stack(rows * (16 if spec.stochastic else 1)).double()  # [G, n]
    g = rewards.shape[0]
    trial = dict(params)
    if "entropy" in spec.needs:
        trial["entropy"] = torch.arange(g, dtype=torch.float64)  # [G], all distinct
    if "seq_logp" in spec.needs:
        trial["seq_logp"] = -1.0 - torch.arange(g * n, dtype=torch.float64).reshape(g, n) / n
    try:
        advantages = compute_advantages(spec.name, rewards, **trial)
    except (ValueError, TypeError):
        return True  # parameters the probe cannot satisfy: not this check's to refuse
    return bool(advantages.abs().max() > 0)
