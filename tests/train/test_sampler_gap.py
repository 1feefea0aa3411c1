"""The sampler/learner gap is measured every step and can be corrected; the approximate-KL
stop ends a step's remaining PPO epochs; ``log.samples`` writes what the model did."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from test_update import _batch

from conftest import tiny_overrides
from passk.core.losses import get_policy_loss
from passk.rollout.logprobs import forward_logprobs
from passk.train.config import DPHConfig, LossConfig, OptimConfig, load_config
from passk.train.loop import train
from passk.train.objective import Objective, objective, truncated_is_weight
from passk.train.update import policy_update


def _update(model, batch, optim, loss=None):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    metrics = policy_update(
        model,
        opt,
        sched,
        batch,
        loss=loss or LossConfig(),
        optim=optim,
        dph=DPHConfig(),
        temperature=1.0,
        autocast=None,
        generator=torch.Generator().manual_seed(0),
    )
    return model, metrics


def _with_sampler_gap(model, batch, shift: float):
    """The batch with sampler log-probs ``shift`` nats below the learner's."""
    with torch.no_grad():
        learner = forward_logprobs(model, batch)["logp"]
    batch.logprobs = (learner - shift) * batch.response_mask
    return batch


def test_mismatch_is_measured_between_sampler_and_learner(tiny_model, tiny_tokenizer):
    batch = _with_sampler_gap(tiny_model, _batch(len(tiny_tokenizer)), 0.1)
    for optim in (OptimConfig(micro_batch_size=4), OptimConfig(micro_batch_size=4, ppo_epochs=2)):
        _, m = _update(tiny_model, batch, optim)
        # learner / sampler = e^0.1 on every token; k3 = e^0.1 - 1 - 0.1
        assert m["rollout/mismatch_ratio_max"] == pytest.approx(math.exp(0.1), rel=1e-4)
        assert m["rollout/mismatch_ratio_min"] == pytest.approx(math.exp(0.1), rel=1e-4)
        assert m["rollout/mismatch_kl"] == pytest.approx(math.expm1(0.1) - 0.1, rel=1e-3)


def test_truncated_importance_weight_caps_the_policy_term(tiny_model, tiny_tokenizer):
    batch = _with_sampler_gap(tiny_model, _batch(len(tiny_tokenizer)), 0.5)  # w = e^0.5 = 1.65
    mb = batch.rows(torch.arange(4))
    with torch.no_grad():
        out = forward_logprobs(tiny_model, mb, need=frozenset({"logp", "entropy"}))
    spec = get_policy_loss("ppo_clip")
    plain, _ = objective(Objective(spec), out, mb)
    capped, m = objective(Objective(spec, rollout_is_cap=1.2), out, mb)
    torch.testing.assert_close(capped, plain * 1.2)  # every weight is past the cap
    assert m["rollout/is_capped_frac"].item() == pytest.approx(1.0)
    loose, m = objective(Objective(spec, rollout_is_cap=3.0), out, mb)
    torch.testing.assert_close(loose, plain * math.exp(0.5), rtol=1e-5, atol=1e-6)
    assert m["rollout/is_weight_mean"].item() == pytest.approx(math.exp(0.5), rel=1e-5)
    w = truncated_is_weight(torch.zeros(1, 2), torch.tensor([[0.0, -5.0]]), 2.0)
    torch.testing.assert_close(w, torch.tensor([[1.0, 2.0]]))


def test_rollout_is_cap_changes_the_update_and_is_off_by_default(tiny_model, tiny_tokenizer):
    batch = _with_sampler_gap(tiny_model, _batch(len(tiny_tokenizer)), 0.5)
    _, m0 = _update(tiny_model, batch, OptimConfig(micro_batch_size=4))
    _, m1 = _update(tiny_model, batch, OptimConfig(micro_batch_size=4, rollout_is_cap=1.2))
    assert "rollout/is_weight_mean" not in m0 and m1["rollout/is_weight_mean"] == pytest.approx(1.2)
    # every token's weight is 1.2: the same direction, a 1.2x gradient
    assert m1["actor/grad_norm"] == pytest.approx(1.2 * m0["actor/grad_norm"], rel=1e-4)
    assert OptimConfig().rollout_is_cap is None
    with pytest.raises(ValueError, match=r"optim.rollout_is_cap must be > 0 or null, got -1"):
        OptimConfig(rollout_is_cap=-1)


def test_target_kl_stops_the_remaining_epochs(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    optim = OptimConfig(micro_batch_size=4, ppo_epochs=4, mini_batches=2)
    _, full = _update(tiny_model, batch, optim)
    assert full["update/optimizer_steps"] == 8 and full["update/kl_stopped"] == 0.0
    # lr 0.5 moves the policy far: the second mini-batch already sees a large KL
    _, stopped = _update(tiny_model, batch, dataclasses_replace(optim, target_kl=1e-6))
    assert stopped["update/kl_stopped"] == 1.0
    assert 1 <= stopped["update/optimizer_steps"] < 8
    _, loose = _update(tiny_model, batch, dataclasses_replace(optim, target_kl=1e9))
    assert loose["update/optimizer_steps"] == 8 and loose["update/kl_stopped"] == 0.0
    with pytest.raises(ValueError, match=r"optim.target_kl must be > 0 or null, got 0"):
        OptimConfig(target_kl=0)


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_log_samples_writes_rows_and_a_resume_rewrites_them(tiny_checkpoint, tmp_path):
    def config(steps: int):
        return load_config(
            None,
            [
                *tiny_overrides(tiny_checkpoint),
                f"steps={steps}",
                "log.samples=3",
                "checkpoint.every=1",
                "eval.at_start=false",
                "eval.at_end=false",
            ],
        )

    run = tmp_path / "run"
    train(config(2), run)
    rows = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 1, 1, 2, 2, 2]
    keys = {"problem_id", "prompt", "completion", "extracted", "reward", "correct", "advantage"}
    assert all(keys <= r.keys() for r in rows)
    assert all(isinstance(r["prompt"], str) and r["prompt"] for r in rows)
    assert all(isinstance(r["advantage"], float) for r in rows)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in metrics if r.get("kind") == "train"]
    assert all("rollout/mismatch_kl" in r and "update/ratio_noise" in r for r in train_recs)
    train(config(3), run, resume=True)
    again = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in again] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert again[:6] == rows
    with pytest.raises(ValueError, match=r"log.samples must be >= 0, got -2"):
        load_config(None, [*tiny_overrides(tiny_checkpoint), "log.samples=-2"])


def test_log_samples_is_off_by_default(tiny_checkpoint, tmp_path):
    cfg = load_config(
        None,
        [*tiny_overrides(tiny_checkpoint), "steps=1", "eval.at_start=false", "eval.at_end=false"],
    )
    train(cfg, tmp_path / "r")
    assert not Path(tmp_path / "r" / "samples.jsonl").exists()


def test_the_behaviour_pass_time_is_not_counted_twice(tiny_model, tiny_tokenizer, monkeypatch):
    import itertools

    from passk.rollout.logprobs import micro_batch_rows
    from passk.train import update

    ticks = itertools.count()  # every clock reading advances one second
    monkeypatch.setattr(update.time, "perf_counter", lambda: float(next(ticks)))
    batch = _batch(len(tiny_tokenizer))
    optim = OptimConfig(micro_batch_size=4, mini_batches=2)
    _, m = _update(tiny_model, batch, optim)
    plan = update.mini_batch_plan(len(batch), optim, torch.Generator().manual_seed(0))
    forwards = sum(len(micro_batch_rows(batch.rows(rows), 4)) for rows in plan[0])
    assert m["time/behaviour_pass"] == forwards  # one second per forward of the pass
    # each training forward and each backward (one second apiece), not the behaviour pass
    assert m["time/forward_backward"] == 2 * forwards
