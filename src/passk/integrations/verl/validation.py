"""Unbiased pass@k, pass^k and maj@k in verl's validation metrics (and for any grouped eval).

verl 0.9.1's validation reports ``best@N/mean``, a bootstrap *with replacement* of N out of
the N samples: with 1 correct sample of 4 it reports ``1 - (3/4)^4 = 0.684`` where pass@4
is 1. This module adds, per data source and next to verl's own keys:

- ``pass@k/exact``: the unbiased pass@k ``1 - C(n - c, k)/C(n, k)`` (Chen et al.), the exact
  mean over every k-subset of a problem's n samples, averaged over problems;
- ``pass^k/exact``: all k correct, ``C(c, k)/C(n, k)``;
- ``maj@k/exact``: correctness of the majority answer of a uniformly random k-subset
  (ties broken uniformly at random, a sample without an answer never wins), computed
  exactly from the answer counts; only where verl's reward returned ``pred``;
- ``.../ci_lo``, ``.../ci_hi``: a percentile bootstrap interval over *problems*
  (the per-problem values are exact; problems are the sampling unit).

Keys follow verl's layout ``{val-core|val-aux}/{data_source}/{var}/{metric}``, ``var`` being
verl's core variable (``acc`` where the reward returns it, else ``reward``); as in verl, the
largest k goes to ``val-core`` and the rest to ``val-aux``. A sample is correct when its
value is ``> threshold`` (0.5: 0/1, True/False and DAPO's -1/+1 all work).

Two routes into verl, both using verl's own inputs (``data_sources``, ``sample_uids``,
``reward_extra_infos_dict``, which both of verl's trainers hand to ``_val_metrics_update``):

- ``trainer.v1.trainer_mode=passk_sync`` (registered by :mod:`passk.integrations.verl`):
  its ``_val_metrics_update`` is verl's plus :func:`verl_validation_metrics`, with
  options from ``trainer.passk_val`` (:class:`ValidationOptions`; ``+trainer.passk_val.ks=[1,4,16]``);
- any other trainer: mix :class:`PassKValidationMixin` in, or call
  :func:`verl_validation_metrics` from your own ``_validate``.

>>> m = verl_validation_metrics(["math"] * 4, ["u"] * 4, {"reward": [1.0, 0.0, 0.0, 0.0]})
>>> m["val-core/math/reward/pass@4/exact"], round(m["val-aux/math/reward/pass@1/exact"], 4)
(1.0, 0.25)
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from passk.core.defaults import NUM_RESAMPLES
from passk.core.majority import maj_at_k
from passk.core.metrics import default_ks, pass_hat_k
from passk.integrations.validation_table import grouped_metrics
from passk.integrations.verl.common import to_plain

__all__ = [
    "VAL_CONFIG_KEY",
    "PassKValidationMixin",
    "ValidationOptions",
    "grouped_metrics",
    "maj_at_k",
    "pass_hat_k",
    "validation_options_from_config",
    "verl_validation_metrics",
]

#: key under verl's ``trainer`` config holding :class:`ValidationOptions`.
VAL_CONFIG_KEY = "passk_val"


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ValidationOptions:
    """``trainer.passk_val`` in verl's config; every field optional."""

    #: add the passk metrics (false: verl's metrics only).
    enabled: bool = True
    #: k values; None: 1, 2, 4, ... up to ``val_kwargs.n`` (n itself included).
    ks: tuple[int, ...] | None = None
    #: a sample is correct when its value is > threshold.
    threshold: float = 0.5
    #: bootstrap resamples of problems for the intervals.
    num_resamples: int = NUM_RESAMPLES
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ks is not None:
            ks = tuple(self.ks)
            if not ks or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks
            ):
                raise ValueError(
                    f"trainer.{VAL_CONFIG_KEY}.ks must be integers >= 1, got {self.ks!r}"
                )
            object.__setattr__(self, "ks", tuple(sorted(set(ks))))
        if not isinstance(self.threshold, int | float) or isinstance(self.threshold, bool):
            raise ValueError(
                f"trainer.{VAL_CONFIG_KEY}.threshold must be a number, got {self.threshold!r}"
            )
        if not isinstance(self.num_resamples, int) or self.num_resamples < 1:
            raise ValueError(
                f"trainer.{VAL_CONFIG_KEY}.num_resamples must be an integer >= 1, got {self.num_resamples!r}"
            )
        if not 0 < self.confidence < 1:
            raise ValueError(
                f"trainer.{VAL_CONFIG_KEY}.confidence must be in (0, 1), got {self.confidence!r}"
            )


def validation_options_from_config(trainer_config: Any) -> ValidationOptions:
    """``ValidationOptions`` from verl's ``trainer`` config (``trainer.passk_val``, optional).

    >>> validation_options_from_config({"passk_val": {"ks": [4, 1]}}).ks
    (1, 4)
    """
    raw = None if trainer_config is None else trainer_config.get(VAL_CONFIG_KEY, None)
    if raw is None:
        return ValidationOptions()
    raw = to_plain(raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"trainer.{VAL_CONFIG_KEY} must be a mapping, got {raw!r}")
    valid = [f.name for f in dataclasses.fields(ValidationOptions)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ValueError(f"trainer.{VAL_CONFIG_KEY} has unknown key(s) {unknown}; valid: {valid}")
    return ValidationOptions(**raw)


# --------------------------------------------------------------------------- verl


def _is_correct(value: Any, threshold: float) -> bool:
    return float(value) > threshold


def verl_validation_metrics(
    data_sources: Sequence[Any],
    sample_uids: Sequence[Any],
    reward_extra_infos_dict: Mapping[str, Sequence[Any]],
    *,
    expected_acc_counts: Mapping[tuple[str, str], int] | None = None,
    options: ValidationOptions | None = None,
) -> dict[str, float]:
    """passk's validation metrics from the inputs of verl's ``_val_metrics_update``.

    Args:
        data_sources, sample_uids: ``[S]`` per validation sample (uid = its prompt).
        reward_extra_infos_dict: verl's per-sample lists: ``reward`` (always), and what the
            reward function returned besides (``acc``, ``pred``, ...); None entries skipped.
        expected_acc_counts: verl v1's ``(data_source, uid) -> val_kwargs.n``; samples
            missing from ``acc`` (failed agent sessions) count as wrong, as verl does.
        options: :class:`ValidationOptions` (default: all defaults).

    Returns ``{"{val-core|val-aux}/{data_source}/{var}/{pass@k|pass^k|maj@k}/{exact|ci_lo|
    ci_hi}": float}``; only the largest k's ``exact`` values are ``val-core``.
    """
    opts = options or ValidationOptions()
    if len(data_sources) != len(sample_uids):
        raise ValueError(
            f"data_sources ({len(data_sources)}) and sample_uids ({len(sample_uids)}) differ in length"
        )
    # data_source -> uid -> var -> values, in sample order (verl's own grouping)
    grouped: dict[str, dict[str, dict[str, list]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for i, (source, uid) in enumerate(zip(data_sources, sample_uids)):
        slot = grouped[str(source)][str(uid)]
        for var in ("acc", "reward", "pred"):
            values = reward_extra_infos_dict.get(var)
            if values is not None and len(values) > i:
                slot[var].append(values[i])
    out: dict[str, float] = {}
    for source, by_uid in grouped.items():
        has_acc = any(v is not None for slot in by_uid.values() for v in slot.get("acc", []))
        var = "acc" if has_acc else "reward"
        correct: list[list[bool]] = []
        answers: list[list[Hashable | None]] | None = []
        for uid, slot in by_uid.items():
            pairs = [
                (v, p)
                for v, p in zip(slot[var], slot.get("pred") or [None] * len(slot[var]))
                if v is not None
            ]
            flags = [_is_correct(v, opts.threshold) for v, _ in pairs]
            preds = [p if isinstance(p, Hashable) else str(p) for _, p in pairs]
            if var == "acc" and expected_acc_counts:
                missing = int(expected_acc_counts.get((source, uid), len(flags))) - len(flags)
                flags += [False] * max(missing, 0)
                preds += [None] * max(missing, 0)
            if not flags:
                continue
            correct.append(flags)
            answers.append(preds)
        if not correct:
            continue
        if not any(p is not None for row in answers for p in row):
            answers = None
        n_min = min(len(c) for c in correct)
        ks = [k for k in (opts.ks or default_ks(n_min))]
        too_big = [k for k in ks if k > n_min]
        if too_big:
            raise ValueError(
                f"trainer.{VAL_CONFIG_KEY}.ks {too_big} exceed the {n_min} validation samples per "
                f"prompt of data source {source!r}; raise actor_rollout_ref.rollout.val_kwargs.n or "
                "lower ks"
            )
        values = grouped_metrics(
            correct,
            answers,
            ks,
            num_resamples=opts.num_resamples,
            confidence=opts.confidence,
            seed=opts.seed,
        )
        k_max = max(ks)
        for name, value in values.items():
            metric, _, stat = name.partition("/")
            k = int(metric.split("@")[-1].split("^")[-1])
            stat = stat or "exact"
            section = "val-core" if (k == k_max and stat == "exact") else "val-aux"
            out[f"{section}/{source}/{var}/{metric}/{stat}"] = value
    return out


class PassKValidationMixin:
    """Adds :func:`verl_validation_metrics` to a verl trainer's validation metrics.

    ``class MyTrainer(PassKValidationMixin, RayPPOTrainer)`` (or any v1 trainer): verl's
    ``_val_metrics_update`` runs unchanged and passk's keys are added next to its own, with
    options from ``config.trainer.passk_val``. The ``passk_sync`` trainer mode includes it.
    """

    config: Any

    def _val_metrics_update(
        self,
        data_sources: Any,
        sample_uids: Any,
        reward_extra_infos_dict: Any,
        sample_turns: Any,
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, float]:
        metrics = super()._val_metrics_update(  # type: ignore[misc]
            data_sources, sample_uids, reward_extra_infos_dict, sample_turns, *args, **kwargs
        )
        options = validation_options_from_config(self.config.trainer)
        if options.enabled:
            metrics.update(
                verl_validation_metrics(
                    list(data_sources),
                    list(sample_uids),
                    reward_extra_infos_dict,
                    expected_acc_counts=kwargs.get("expected_acc_counts"),
                    options=options,
                )
            )
        return metrics
