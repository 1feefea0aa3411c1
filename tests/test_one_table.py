"""One pass@k / pass^k / maj@k table: ``passk eval`` reports, the verl validation metrics and
the TRL callback (both through ``grouped_metrics``) give the same numbers on the same samples."""

from __future__ import annotations

import math
import random

import pytest

from passk.eval.evaluate import EvalConfig, EvalResult, ProblemResult
from passk.integrations.validation_table import grouped_metrics

KS = [1, 2, 4, 8]


def _samples(ns, seed=0):
    rng = random.Random(seed)
    correct, answers = [], []
    for n in ns:
        flags = [rng.random() < rng.random() for _ in range(n)]
        correct.append(flags)
        answers.append([("right" if f else rng.choice(["a", "b", None])) for f in flags])
    return correct, answers


def _eval_summary(correct, answers):
    problems = [
        ProblemResult(f"p{i}", "", "", len(c), sum(c), [float(x) for x in c], c, a, [], [], None,
                      [None] * len(c))
        for i, (c, a) in enumerate(zip(correct, answers))
    ]  # fmt: skip
    config = EvalConfig(n=max(len(c) for c in correct), ks=KS, num_resamples=300, seed=5)
    return EvalResult(problems, config).summary()


def _same(report, flat, ks):
    for name, ci, prefix in (
        ("pass_at_k", "ci95", "pass@"),
        ("pass_hat_k", "pass_hat_k_ci95", "pass^"),
        ("maj_at_k", "maj_at_k_ci95", "maj@"),
    ):
        for k in ks:
            assert math.isclose(report[name][str(k)], flat[f"{prefix}{k}"], rel_tol=1e-12), (
                name,
                k,
            )
            lo, hi = report[ci][str(k)]
            assert math.isclose(lo, flat[f"{prefix}{k}/ci_lo"], rel_tol=1e-12, abs_tol=1e-15)
            assert math.isclose(hi, flat[f"{prefix}{k}/ci_hi"], rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("ns", [[8] * 12, [8, 4, 8, 2, 8, 8, 4, 8, 8, 1]])
def test_eval_report_and_grouped_metrics_agree(ns):
    """Mixed n included: a problem with fewer than k samples is left out at that k in both."""
    correct, answers = _samples(ns)
    report = _eval_summary(correct, answers)
    flat = grouped_metrics(correct, answers, KS, num_resamples=300, seed=5)
    _same(report, flat, KS)
    assert report["problems_per_k"]["8"] == sum(n >= 8 for n in ns)


def test_verl_validation_metrics_are_the_same_table():
    pytest.importorskip("verl")
    from passk.integrations.verl.validation import ValidationOptions, verl_validation_metrics

    correct, answers = _samples([8] * 10, seed=3)
    sources = ["src"] * 80
    uids = [f"u{i}" for i, c in enumerate(correct) for _ in c]
    infos = {
        "acc": [float(x) for c in correct for x in c],
        "reward": [float(x) for c in correct for x in c],
        "pred": [a for row in answers for a in row],
    }
    opts = ValidationOptions(ks=tuple(KS), num_resamples=300, seed=5)
    out = verl_validation_metrics(sources, uids, infos, options=opts)
    report = _eval_summary(correct, answers)
    for name, prefix in (("pass_at_k", "pass@"), ("pass_hat_k", "pass^"), ("maj_at_k", "maj@")):
        for k in KS:
            exact = next(v for key, v in out.items() if key.endswith(f"/acc/{prefix}{k}/exact"))
            assert math.isclose(exact, report[name][str(k)], rel_tol=1e-12), (name, k)


def test_a_k_above_every_n_is_refused():
    with pytest.raises(ValueError, match=r"ks \[16\] out of range"):
        grouped_metrics([[True, False]], ks=[1, 16])
