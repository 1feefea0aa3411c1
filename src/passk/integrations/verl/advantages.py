"""passk's advantage estimators as verl advantage estimators (``algorithm.adv_estimator``).

Part of the verl plugin (:mod:`passk.integrations.verl` registers them). The adapter turns
verl's flat batch into passk's group layout and back::

    token_level_rewards[B, T] --sum(-1)--> scores[B] --uid--> rewards[G, N] (+ mask[G, N])
    advantages[G, N] --gather--> [B] --x response_mask--> advantages[B, T]

>>> import numpy as np, torch
>>> scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
>>> rewards, mask, rows, cols = group_by_uid(scores, np.array(["a", "b", "a", "b", "a"]))
>>> rewards
tensor([[1., 0., 1.],
        [0., 1., 0.]])
>>> mask
tensor([[ True,  True,  True],
        [ True,  True, False]])
>>> rewards[rows, cols]  # back to the flat order
tensor([1., 0., 0., 1., 1.])
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from passk.core.advantages import (
    RESPONSE_NEEDS,
    EstimatorSpec,
    compute_advantages,
    get_estimator,
    list_estimators,
)
from passk.integrations.verl.common import (
    CONFIG_KEY,
    MARK,
    TRAINER_MODE,
    to_plain,
    verl_global_step,
)
from passk.seeds import derive_seed

__all__ = [
    "NEED_FIELDS",
    "VERL_ESTIMATOR_NAMES",
    "estimator_needs",
    "group_by_uid",
    "make_verl_estimator",
    "passk_params_from_config",
    "response_entropy",
    "response_inputs",
    "verl_advantage",
    "verl_estimator_name",
    "verl_estimators",
]

#: verl 0.9.1's own advantage estimators (``core_algos.AdvantageEstimator``); a passk
#: estimator of the same name is registered as ``passk_<name>``. Static, so a name does not
#: depend on what else was imported; the live enum is added when verl is installed.
_VERL_BUILTIN_ESTIMATORS = frozenset(
    {
        "gae",
        "grpo",
        "reinforce_plus_plus",
        "reinforce_plus_plus_baseline",
        "remax",
        "rloo",
        "opo",
        "grpo_passk",
        "gpg",
        "rloo_vectorized",
        "grpo_vectorized",
        "optimal_token_baseline",
        "tir_optimal_token_baseline",
        "gdpo",
    }
)
#: passk estimators whose names are plain words (``combine``, ``gated``): verl knows them as
#: ``passk_<name>``, so that a verl config says whose method it is.
_PREFIXED = frozenset({"combine", "gated"})
#: passk estimators not registered with verl, and why.
_NOT_FOR_VERL = {"pass1": "verl's own grpo is the same estimator (algorithm.adv_estimator=grpo)"}
#: What passk_sync reads from TransferQueue for each per-response need (the rows' token
#: values); the spec turns the token means into what the estimator takes
#: (:data:`passk.core.advantages.RESPONSE_NEEDS`).
NEED_FIELDS = {"entropy": "entropy", "seq_logp": "old_log_probs"}


def verl_estimator_name(name: str) -> str:
    """The name passk estimator ``name`` has in verl: itself, or ``passk_<name>`` where
    verl uses the name for its own method.

    >>> verl_estimator_name("passk_analytic"), verl_estimator_name("rloo")
    ('passk_analytic', 'passk_rloo')
    >>> verl_estimator_name("combine")
    'passk_combine'
    """
    builtin = _VERL_BUILTIN_ESTIMATORS | _PREFIXED
    try:
        from verl.trainer.ppo.core_algos import AdvantageEstimator

        builtin = builtin | {e.value for e in AdvantageEstimator}
    except ImportError:
        pass
    return name if name.startswith("passk_") or name not in builtin else f"passk_{name}"


def verl_estimators() -> dict[str, str]:
    """``{verl name: passk name}`` of every registered passk estimator verl can drive.

    Derived from :func:`passk.list_estimators` each time: an estimator is left out when it
    is in ``_NOT_FOR_VERL`` or needs a per-response input the adapter cannot supply
    (supplied: ``entropy`` and ``seq_logp``, through the ``passk_sync`` trainer mode).
    """
    out: dict[str, str] = {}
    for name in list_estimators():
        if name in _NOT_FOR_VERL or not get_estimator(name).needs <= NEED_FIELDS.keys():
            continue
        out[verl_estimator_name(name)] = name
    return out


#: verl name -> passk name of the estimators registered with verl (updated by register()).
VERL_ESTIMATOR_NAMES: dict[str, str] = verl_estimators()

# Options of the adapter itself, read from ``algorithm.passk`` next to the estimator's.
_ADAPTER_KEYS = ("binarize_threshold",)

# Per-row inputs {need: [B]} of the batch whose advantages are being computed (token-mean
# entropy, token-mean old log-prob); set by the passk_sync trainer (or by a caller with
# response_inputs(...)) around compute_advantage.
_RESPONSE_INPUTS: contextvars.ContextVar[Mapping[str, Tensor] | None] = contextvars.ContextVar(
    "passk_verl_response_inputs", default=None
)


# --------------------------------------------------------------------------- grouping


def group_by_uid(scores: Tensor, index: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Scatter flat per-response ``scores[B]`` into padded groups by prompt uid.

    Groups are ordered by sorted uid, responses keep their batch order inside a group.

    Args:
        scores: ``[B]`` one scalar reward per response.
        index: ``[B]`` group labels (verl's ``non_tensor_batch["uid"]``: str or int).

    Returns:
        ``(rewards[G, N], mask[G, N], rows[B], cols[B])`` with ``N`` the largest group,
        ``mask`` marking real responses of ragged groups, and ``rewards[rows, cols] ==
        scores`` (long tensors on ``scores.device``) to map any ``[G, N]`` result back.
    """
    labels = np.asarray(index)
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"index must be 1-D with one uid per response ({scores.shape[0]}), "
            f"got shape {labels.shape}"
        )
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)  # [G]
    order = np.argsort(inverse, kind="stable")  # rows sorted by group, batch order kept
    starts = np.cumsum(counts) - counts  # [G] first sorted position of each group
    cols = np.empty_like(inverse)
    cols[order] = np.arange(inverse.shape[0]) - starts[inverse[order]]
    device = scores.device
    rows_t = torch.as_tensor(inverse, dtype=torch.long, device=device)
    cols_t = torch.as_tensor(cols, dtype=torch.long, device=device)
    G, N = counts.shape[0], int(counts.max()) if counts.size else 0
    rewards = torch.zeros(G, N, dtype=scores.dtype, device=device)
    mask = torch.zeros(G, N, dtype=torch.bool, device=device)
    rewards[rows_t, cols_t] = scores
    mask[rows_t, cols_t] = True
    return rewards, mask, rows_t, cols_t


@contextlib.contextmanager
def response_inputs(**values: Tensor) -> Iterator[None]:
    """Make per-response inputs ``[B]`` visible to the estimators that need them, inside.

    ``entropy``: mean token entropy per response (``passk_adaptive``, averaged per prompt);
    ``seq_logp``: mean token log-prob under the sampling policy (``unlikeliness``, kept per
    response). Rows follow the batch given to verl's ``compute_advantage``. The
    ``passk_sync`` trainer does this for you; use it when calling ``compute_advantage``
    yourself. Nested calls add to (and may override) the outer values.
    """
    unknown = sorted(set(values) - NEED_FIELDS.keys())
    if unknown:
        raise ValueError(
            f"unknown per-response input(s) {unknown}; valid: {sorted(NEED_FIELDS.keys())}"
        )
    merged = dict(_RESPONSE_INPUTS.get() or {})
    merged.update({k: torch.as_tensor(v).detach().reshape(-1) for k, v in values.items()})
    token = _RESPONSE_INPUTS.set(merged)
    try:
        yield
    finally:
        _RESPONSE_INPUTS.reset(token)


def response_entropy(entropy: Tensor) -> contextlib.AbstractContextManager[None]:
    """``response_inputs(entropy=entropy)``: per-response mean token entropy ``[B]``."""
    return response_inputs(entropy=entropy)


# --------------------------------------------------------------------------- config


def passk_params_from_config(name: str, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``config.passk`` (verl's ``algorithm`` config) for estimator ``name``.

    Returns ``(estimator_params, adapter_options)``. Raises ``ValueError`` when the key is
    missing, ``k`` is missing for an estimator that takes it, or a key is unknown (the
    message lists the valid keys); per-group inputs (``entropy``) are never read from config.

    >>> passk_params_from_config("passk_analytic", {"passk": {"k": 8}})
    ({'k': 8}, {'binarize_threshold': None})
    """
    spec = get_estimator(name)
    # per-response inputs come from the batch, never from config (a composite has fields
    # for them that it passes on to its parts)
    fields = (
        {f.name for f in dataclasses.fields(spec.params)} - set(spec.needs) - set(RESPONSE_NEEDS)
    )
    valid = sorted(fields | set(_ADAPTER_KEYS))
    raw = None if config is None else config.get(CONFIG_KEY, None)
    if raw is None and not spec.uses_k:  # nothing required: every parameter has a default
        raw = {}
    if raw is None:
        raise ValueError(
            f"verl estimator {name!r} reads its parameters from algorithm.{CONFIG_KEY}, "
            f"which is missing; add e.g. +algorithm.{CONFIG_KEY}.k=8 (valid keys: {valid})"
        )
    params = to_plain(raw)
    if not isinstance(params, dict):
        raise ValueError(f"algorithm.{CONFIG_KEY} must be a mapping, got {params!r}")
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"algorithm.{CONFIG_KEY} has unknown key(s) {unknown} for estimator {name!r}; "
            f"valid: {valid}"
        )
    if spec.uses_k and params.get("k") is None:
        raise ValueError(
            f"estimator {name!r} needs algorithm.{CONFIG_KEY}.k (the pass@k group size, "
            f"1 <= k <= responses per prompt); e.g. +algorithm.{CONFIG_KEY}.k=8"
        )
    adapter = {key: params.pop(key, None) for key in _ADAPTER_KEYS}
    threshold = adapter["binarize_threshold"]
    if threshold is not None and not isinstance(threshold, int | float):
        raise ValueError(
            f"algorithm.{CONFIG_KEY}.binarize_threshold must be a number or null, got {threshold!r}"
        )
    return params, adapter


def estimator_needs(name: str | None, config: Any) -> frozenset[str]:
    """The per-response inputs passk estimator ``name`` needs with the parameters under
    ``config.passk`` (a composite's are its parts'; empty for ``None``, a verl estimator)."""
    if name is None:
        return frozenset()
    params, _ = passk_params_from_config(name, config)
    try:
        return get_estimator(name).for_params(params).needs
    except ValueError as err:
        raise ValueError(f"passk estimator {name!r} (algorithm.{CONFIG_KEY}): {err}") from err


def verl_advantage(
    name: str,
    token_level_rewards: Tensor,
    response_mask: Tensor,
    index: Any = None,
    config: Any = None,
    entropy: Tensor | None = None,
    step: int | None = None,
    inputs: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """verl-shaped advantage of passk estimator ``name``: returns ``(advantages, returns)``.

    Args:
        token_level_rewards: ``[B, T]``; the response's reward is the sum over T.
        response_mask: ``[B, T]`` valid response tokens.
        index: ``[B]`` prompt uid per response (``non_tensor_batch["uid"]``).
        config: verl's ``algorithm`` config; parameters under ``passk``.
        entropy: ``[B]`` per-response mean token entropy, for estimators that need it;
            ``None`` reads the value set by :func:`response_inputs`.
        inputs: ``{need: [B]}`` per-response inputs (``entropy``, ``seq_logp``); a need
            missing here is read from :func:`response_inputs`.
        step: training step; a stochastic estimator then draws with
            ``derive_seed(seed, "adv", step)``. ``None``: the configured seed as given.

    Both outputs are ``[B, T]``: the response advantage on its valid tokens, 0 elsewhere
    (outcome-only, so returns equal advantages, as in verl's GRPO).
    """
    params, adapter = passk_params_from_config(name, config)
    try:
        spec = get_estimator(name).for_params(params)  # a composite: its parts' needs
    except ValueError as err:
        raise ValueError(f"passk estimator {name!r} (algorithm.{CONFIG_KEY}): {err}") from err
    if index is None:
        raise ValueError(
            f"estimator {name!r} groups responses by prompt and needs the uid index "
            "(non_tensor_batch['uid']), which verl did not pass"
        )
    if token_level_rewards.ndim != 2 or token_level_rewards.shape != response_mask.shape:
        raise ValueError(
            f"token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must both be [B, T]"
        )
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)  # [B]
        if adapter["binarize_threshold"] is not None:
            scores = (scores > adapter["binarize_threshold"]).to(scores.dtype)
        rewards, mask, rows, cols = group_by_uid(scores, index)  # [G, N] x2, [B] x2
        given = {**(_RESPONSE_INPUTS.get() or {}), **(inputs or {})}
        if entropy is not None:
            given["entropy"] = entropy
        params.update(_needs_as_groups(spec, given, rows, cols, mask))
        if step is not None and spec.takes_seed:
            base = params.get("seed", spec.default_seed)
            params["seed"] = derive_seed(int(base), "adv", int(step))
        try:
            adv = compute_advantages(name, rewards, mask, **params)  # [G, N]
        except ValueError as err:
            raise ValueError(f"passk estimator {name!r} (algorithm.{CONFIG_KEY}): {err}") from err
        flat = adv[rows, cols].to(torch.float32)  # [B]
        advantages = flat.unsqueeze(-1) * response_mask.to(flat.dtype)  # [B, T]
    return advantages, advantages


def _needs_as_groups(
    spec: EstimatorSpec, given: Mapping[str, Any], rows: Tensor, cols: Tensor, mask: Tensor
) -> dict[str, Tensor]:
    """Per-response inputs ``{need: [B]}`` -> the estimator's needs, through the spec
    (:meth:`~passk.core.advantages.EstimatorSpec.needs_from_responses`)."""
    name = spec.name
    per_response: dict[str, Tensor] = {}
    for need in sorted(spec.needs):
        value = given.get(need)
        if need not in NEED_FIELDS:
            raise ValueError(
                f"estimator {name!r} needs {need!r}, which the verl adapter cannot supply "
                f"(supplied: {sorted(NEED_FIELDS)})"
            )
        if value is None:
            raise ValueError(
                f"estimator {name!r} needs per-response {need!r}, which verl's compute_advantage "
                f"does not pass: run with trainer.v1.trainer_mode={TRAINER_MODE} (or wrap the call "
                f"in passk.integrations.verl.response_inputs({need}=...))"
            )
        flat = torch.as_tensor(value, device=mask.device).reshape(-1).to(torch.float64)  # [B]
        if flat.shape[0] != rows.shape[0]:
            raise ValueError(
                f"{need} has {flat.shape[0]} values, expected one per response ({rows.shape[0]})"
            )
        grid = torch.zeros(mask.shape, dtype=torch.float64, device=mask.device)
        grid[rows, cols] = flat
        per_response[need] = grid  # [G, N]
    return spec.needs_from_responses(per_response, mask)


def make_verl_estimator(name: str) -> Any:
    def estimator(
        token_level_rewards: Tensor,
        response_mask: Tensor,
        index: Any = None,
        config: Any = None,
        **kwargs: Any,
    ) -> tuple[Tensor, Tensor]:
        return verl_advantage(
            name, token_level_rewards, response_mask, index, config, step=verl_global_step()
        )

    estimator.__name__ = f"passk_{name}_verl_advantage".replace("passk_passk_", "passk_")
    estimator.__qualname__ = estimator.__name__
    estimator.__doc__ = f"passk estimator {name!r} for verl (see passk.integrations.verl)."
    setattr(estimator, MARK, name)
    return estimator
