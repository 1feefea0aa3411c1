"""Stages whose advantages are zero for every group are refused before the model loads;
estimators whose Pass@k part vanishes at k = rollout.n are warned about."""

from __future__ import annotations

import warnings

import pytest

from passk.core.advantages import compute_advantages, get_estimator, list_estimators
from passk.train.config import load_config, validate
from passk.train.config_validate import warn_config


def _config(estimator: str, n: int, params: str = "{}", *extra: str):
    return load_config(
        None,
        [
            f"algorithm.estimator={estimator}",
            f"algorithm.params={params}",
            f"rollout.n={n}",
            *extra,
        ],
    )


@pytest.mark.parametrize(
    ("estimator", "k", "n", "fix"),
    [
        ("passk_analytic", 4, 4, "k <= 3 or rollout.n >= 5"),
        ("passk_exceed", 8, 8, "k <= 7 or rollout.n >= 9"),
        ("passk_bootstrap", 4, 4, "k <= 3 or rollout.n >= 5"),
        ("maxk_analytic", 6, 6, "k <= 5 or rollout.n >= 7"),
        ("pass1_matched", 4, 4, "k <= 3 or rollout.n >= 5"),
        # disjoint groups of k: fewer than two groups compare nothing
        ("passk_full", 4, 6, "k <= 3 or rollout.n >= 8"),
        ("passk_full", 5, 8, "k <= 4 or rollout.n >= 10"),
    ],
)
def test_stages_with_all_zero_advantages_are_refused_with_the_fix(estimator, k, n, fix):
    with pytest.raises(ValueError) as info:
        validate(_config(estimator, n, f"{{k: {k}}}"))
    message = str(info.value)
    assert message.startswith(f"algorithm.stages.0: {estimator} with params.k={k}, rollout.n={n}")
    assert message.endswith(f"zero advantage (the stage would not learn); use {fix}")


def test_the_refusal_agrees_with_the_estimators_themselves():
    """Every refused (estimator, k, n) has zero advantages for every binary group of n, and
    the suggested fixes carry signal; every accepted one has signal somewhere."""
    import torch

    n = 6
    groups = torch.tensor([[float(i < c) for i in range(n)] for c in range(n + 1)])
    for name in list_estimators():
        spec = get_estimator(name)
        if not spec.uses_k or spec.needs:
            continue
        for k in range(1, n + 1):
            cfg = _config(name, n, f"{{k: {k}}}")
            try:
                validate(cfg)
                refused = False
            except ValueError as e:
                refused = "zero advantage" in str(e)
            stacked = torch.cat([groups] * 16) if spec.stochastic else groups
            advantages = compute_advantages(name, stacked, k=k)
            assert refused == bool(advantages.abs().max() == 0), (name, k)


def test_a_k_schedule_ending_at_the_group_size_is_refused():
    cfg = load_config(
        None,
        [
            "rollout.n=4",
            "algorithm.stages=[{name: a, steps: 4, estimator: passk_analytic, "
            "params: {k: 2}, k_final: 4}]",
        ],
    )
    with pytest.raises(ValueError, match=r"passk_analytic with k_final=4, rollout.n=4 gives"):
        validate(cfg)


def test_group_relative_pass1_with_one_response_per_prompt_is_refused():
    with pytest.raises(ValueError, match=r"pass1 with rollout.n=1 gives .* use rollout.n >= 2"):
        validate(_config("pass1", 1))


@pytest.mark.parametrize(
    ("estimator", "what"),
    [
        ("passk_combination", "(1 - accuracy) x Pass@1 alone"),
        ("passk_adaptive", "only its high-entropy groups (Pass@1) learn"),
    ],
)
def test_mixtures_whose_passk_part_vanishes_at_k_equal_n_are_warned_about(estimator, what):
    cfg = _config(estimator, 4, "{k: 4}")
    validate(cfg)  # they still learn: not refused
    with pytest.warns(UserWarning, match=r"k = rollout.n = 4 has a zero Pass@k part") as got:
        warn_config(cfg)
    assert what in str(got[0].message) and "set k below 4 or raise rollout.n" in str(got[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_config(_config(estimator, 8, "{k: 4}"))  # k < n: silent


def test_dars_groups_grow_beyond_rollout_n_so_k_equal_n_is_not_refused():
    validate(_config("passk_analytic", 4, "{k: 4}", "algorithm.dars=et"))


def test_passk_train_warns_before_the_model_loads(tmp_path):
    import subprocess
    import sys

    sets = ["algorithm.estimator=passk_combination", "rollout.n=4", f"model.name={tmp_path}/none"]
    proc = subprocess.run(
        [sys.executable, "-m", "passk.cli", "train", "--out", str(tmp_path / "run")]
        + [a for s in sets for a in ("--set", s)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    warning = "passk: warning: algorithm.stages.0: passk_combination with k = rollout.n = 4"
    assert warning in proc.stderr and proc.returncode != 0  # the model cannot load
    assert proc.stderr.index(warning) < proc.stderr.index("passk train: error:")
