"""``passk train`` with the composite estimators: params under ``algorithm.params`` are
checked term by term before any model loads; the trainer supplies a term's needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import tiny_overrides
from passk.train.config import load_config, validate

MIX = "{terms: [{estimator: passk_analytic, weight: 0.5, params: {k: 4}}, {estimator: pass1, weight: 0.5}]}"


def _config(estimator: str, params: str, *extra: str):
    return load_config(
        None, [f"algorithm.estimator={estimator}", f"algorithm.params={params}", *extra]
    )


def test_combine_config_validates_and_names_a_bad_term():
    validate(_config("combine", MIX))
    bad = "{terms: [{estimator: pass1}, {estimator: passk_analytic, params: {k: 0}}]}"
    with pytest.raises(
        ValueError, match=r"^algorithm.stages.0.params: terms\[1\] \(passk_analytic\): k must be"
    ):
        validate(_config("combine", bad))


def test_a_term_whose_k_exceeds_rollout_n_fails_before_the_model_loads():
    big = "{terms: [{estimator: pass1}, {estimator: passk_analytic, params: {k: 16}}]}"
    with pytest.raises(
        ValueError,
        match=r"^algorithm.stages.0.params: terms\[1\] \(passk_analytic\): k=16 is larger than the smallest group \(8 valid",
    ):
        validate(_config("combine", big, "rollout.n=8"))
    with pytest.raises(ValueError, match=r"inner \(passk_analytic\): k=16 is larger"):
        validate(
            _config("gated", "{inner: passk_analytic, inner_params: {k: 16}, k: 2}", "rollout.n=8")
        )


def test_composite_with_a_binary_term_refuses_dense_rewards():
    with pytest.raises(ValueError, match="needs binary rewards but the stage uses overlong"):
        validate(_config("combine", MIX, "algorithm.overlong_cache=4"))
    with pytest.raises(ValueError, match="needs binary rewards"):
        validate(_config("gated", "{inner: rloo, k: 2}", "algorithm.overlong_cache=4"))


def test_gated_that_never_opens_is_refused_as_silent():
    # k = rollout.n: every group with a success is saturated, and an all-wrong group has no
    # GRPO signal, so no group ever moves
    with pytest.raises(
        ValueError, match=r"gated with params.k=8, rollout.n=8 gives every response a zero"
    ):
        validate(_config("gated", "{inner: pass1, k: 8}", "rollout.n=8"))


def test_trainer_supplies_the_entropy_a_combine_term_needs(
    tiny_checkpoint, tmp_path, subprocess_env
):
    out = tmp_path / "run"
    terms = "{terms: [{estimator: passk_adaptive, weight: 0.5, params: {k: 2}}, {estimator: pass1, weight: 0.5}]}"
    args = [
        "train",
        "--out",
        str(out),
        "--steps",
        "1",
        "--set",
        "algorithm.estimator=combine",
        "--set",
        f"algorithm.params={terms}",
        "--set",
        "eval.problems=0",
    ]
    for o in tiny_overrides(tiny_checkpoint):
        args += ["--set", o]
    proc = subprocess.run(
        [sys.executable, "-m", "passk.cli", *args],
        env=subprocess_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1]


def test_bad_term_fails_the_cli_in_one_line(tmp_path, subprocess_env):
    bad = "algorithm.params={terms: [{estimator: passk_magic, weight: 1}]}"
    proc = subprocess.run(
        [sys.executable, "-m", "passk.cli", "train", "--out", str(tmp_path / "x"),
         "--set", "algorithm.estimator=combine", "--set", bad],
        env=subprocess_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "terms[0]: unknown advantage estimator 'passk_magic'; valid:" in proc.stderr
    assert not (tmp_path / "x").exists()
