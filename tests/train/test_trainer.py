"""The training loop on a tiny random model, in-process: resume exactness, group sizes
under dynamic sampling and DARS, reference resets, NaN steps, interrupts, bad run dirs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from passk.core.allocation import dars_extra_rollouts
from passk.train import checkpoint as ckpt
from passk.train.config import StageConfig, load_config
from passk.train.hooks import ReferenceReset, TrainingDiverged, observe_stagnation
from passk.train.loop import Trainer, train
from passk.train.schedule import PromptSampler, StageSchedule

VOLATILE = ("time/", "perf/")


def _config(checkpoint: Path, *extra: str, reward: str = "parity"):
    return load_config(None, [*tiny_overrides(checkpoint, reward), *extra])


def _records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in recs]


def _weights(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ckpt_dir / "model.safetensors"))


# the entropy controllers' state (adaptive coefficient, EntroPIC's integral) is trainer state
CONTROLLERS = ("loss.entropy_target=100.0", "loss.entropy_coef=0.0", "loss.entropic_target=0.5")


@pytest.mark.parametrize("extra", [(), CONTROLLERS], ids=["plain", "entropy_controllers"])
def test_resume_is_exact(tiny_checkpoint, tmp_path, extra):
    common = (
        "checkpoint.every=2",
        "eval.every=2",
        "optim.mini_batches=2",
        "optim.ppo_epochs=2",
        *extra,
    )
    straight = train(_config(tiny_checkpoint, "steps=4", *common), tmp_path / "a")
    assert straight.steps_done == 4 and not straight.interrupted
    first = train(_config(tiny_checkpoint, "steps=2", *common), tmp_path / "b")
    assert first.steps_done == 2
    resumed = train(_config(tiny_checkpoint, "steps=4", *common), tmp_path / "b", resume=True)
    assert resumed.steps_done == 4
    a, b = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert [r["step"] for r in a] == [0, 1, 2, 2, 3, 4, 4]  # evals at 0, 2, 4
    assert a == b
    if extra:  # the controllers ran and moved (a resume that reset them would differ above)
        coefs = [r["loss/entropy_coef"] for r in a if r["kind"] == "train"]
        assert coefs == pytest.approx([0.0, 0.005, 0.01, 0.015])
        assert len({r["loss/entropic_integral"] for r in a if r["kind"] == "train"}) == 4
    wa = _weights(ckpt.latest_checkpoint(tmp_path / "a"))
    wb = _weights(ckpt.latest_checkpoint(tmp_path / "b"))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    init = _weights(tiny_checkpoint)
    assert any(not torch.equal(init[k], wa[k]) for k in init)  # training did something


def test_resume_drops_records_after_the_checkpoint(tiny_checkpoint, tmp_path):
    run = tmp_path / "r"
    train(_config(tiny_checkpoint, "steps=3", "checkpoint.every=2", "eval.problems=0"), run)
    # the run finished at 3; pretend it crashed after step 3 but before its checkpoint
    ckpt.write_text_atomic(run / "checkpoints" / "latest", "step_000002\n")
    # the stale partial line a crash can leave behind
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "st')
    train(
        _config(tiny_checkpoint, "steps=3", "checkpoint.every=2", "eval.problems=0"),
        run,
        resume=True,
    )
    steps = [r["step"] for r in _records(run)]
    assert steps == [1, 2, 3]


def test_dynamic_sampling_keeps_only_informative_full_groups(tiny_checkpoint, tmp_path):
    cfg = _config(
        tiny_checkpoint,
        "algorithm.dynamic_sampling=true",
        "algorithm.max_rounds=4",
        "algorithm.estimator=pass1",
        "algorithm.params={}",
        "rollout.prompts_per_step=3",
        "rollout.n=4",
        "eval.problems=0",
        reward="some_prompts",
    )
    trainer = Trainer(cfg, tmp_path / "d")
    try:
        for _ in range(3):
            rec = trainer.step()
            kept = trainer.last_collected.batch
            assert 1 <= rec["rollout/rounds"] <= 4
            assert len(kept) <= 3
            assert kept.sizes == [4] * len(kept)
            adv = kept.rollouts.advantages
            assert all(bool((adv[kept.rollouts.group == g] != 0).any()) for g in range(len(kept)))
            if rec["rollout/rounds"] < 4:
                assert len(kept) == 3  # stopped early only because the batch was full
            assert rec["rollout/groups"] >= len(kept)
            assert rec["rollout/trained_groups"] == len(kept)
    finally:
        trainer.scorer.close()


@pytest.mark.parametrize("schedule", ["et", "hw"])
def test_dars_group_sizes_follow_the_spec(tiny_checkpoint, tmp_path, schedule):
    n = 4
    cfg = _config(
        tiny_checkpoint,
        f"algorithm.dars={schedule}",
        "algorithm.estimator=pass1",
        "algorithm.params={std: none}",
        f"rollout.n={n}",
        "rollout.prompts_per_step=4",
        "algorithm.dars_n_max=16",
        "eval.problems=0",
    )
    trainer = Trainer(cfg, tmp_path / schedule)
    try:
        for _ in range(2):
            rec = trainer.step()
            groups = trainer.last_collected.batch
            correct = groups.correct
            first = [correct[groups.rollouts.group == g][:n] for g in range(len(groups))]
            first_acc = torch.tensor([float(c.sum()) / n for c in first])
            expected = dars_extra_rollouts(first_acc, n, schedule, n_max=16)
            assert groups.sizes == (n + expected).tolist()
            assert rec["rollout/extra_samples"] == int(expected.sum())
            assert any(s > n for s in groups.sizes) or bool((first_acc >= 0.5).all())
    finally:
        trainer.scorer.close()


def test_reference_reset_drops_kl_to_zero(tiny_checkpoint, tmp_path):
    cfg = _config(
        tiny_checkpoint,
        "steps=4",
        "loss.kl_coef=0.1",
        "reference.reset_every=2",
        "optim.lr=3.0e-3",
        "eval.problems=0",
    )
    recs: list[dict] = []
    train(cfg, tmp_path / "ref", on_step=recs.append)
    kl = [r["actor/kl"] for r in recs]
    assert kl[0] == pytest.approx(0.0, abs=1e-6)  # reference == initial policy
    assert kl[1] > 1e-4  # the policy moved away during step 1
    assert recs[1].get("ref/reset") == 1 and recs[0].get("ref/reset") is None
    assert kl[2] == pytest.approx(0.0, abs=1e-6)  # reset after step 2
    assert kl[3] > 1e-4


def test_nan_steps_are_skipped_counted_and_stop_the_run(tiny_checkpoint, tmp_path, monkeypatch):
    import passk.train.update as update

    real = update.aggregate_loss
    monkeypatch.setattr(update, "aggregate_loss", lambda *a, **k: real(*a, **k) * math.nan)
    cfg = _config(tiny_checkpoint, "steps=10", "optim.max_nan_steps=3", "eval.problems=0")
    recs: list[dict] = []
    with pytest.raises(TrainingDiverged, match="3 consecutive steps"):
        train(cfg, tmp_path / "nan", on_step=recs.append)
    assert [r["update/skipped_steps"] for r in recs] == [1, 1, 1]
    assert [r["nan/skipped_total"] for r in recs] == [1, 2, 3]
    # no update happened, and no checkpoint holds anything but the initial finite weights
    init = _weights(tiny_checkpoint)
    for d in ckpt.checkpoint_dirs(tmp_path / "nan"):
        w = _weights(d)
        assert all(torch.equal(init[k], w[k]) for k in init)


def test_interrupt_saves_the_last_finished_step(tiny_checkpoint, tmp_path):
    def stop(record: dict) -> None:
        if record["step"] == 2:
            raise KeyboardInterrupt

    cfg = _config(tiny_checkpoint, "steps=5", "checkpoint.every=100", "eval.problems=0")
    result = train(cfg, tmp_path / "int", on_step=stop)
    assert result.interrupted and result.steps_done == 2
    assert result.checkpoint is not None and result.checkpoint.name == "step_000002"
    again = train(cfg, tmp_path / "int", resume=True)
    assert again.steps_done == 5 and not again.interrupted


def test_a_run_resumes_after_passk_gains_a_config_field(tiny_checkpoint, tmp_path):
    """A checkpoint written before a field existed (its saved config lacks the field, its
    fingerprint differs) resumes while the field holds its default; a field set to another
    value is a different run and is refused."""
    import json

    cfg = _config(tiny_checkpoint, "steps=2", "eval.problems=0", "checkpoint.every=1")
    run = tmp_path / "run"
    train(cfg, run)
    state_file = ckpt.latest_checkpoint(run) / "state.json"
    state = json.loads(state_file.read_text())
    del state["config"]["loss"]["entropy_target"]  # as an earlier passk wrote it
    del state["config"]["optim"]["target_kl"]
    state["fingerprint"] = "written-earlier"
    state_file.write_text(json.dumps(state))
    changed = _config(tiny_checkpoint, "steps=3", "eval.problems=0", "optim.target_kl=0.5")
    with pytest.raises(ckpt.CheckpointError, match=r"\(differs: optim\.target_kl\)"):
        train(changed, run, resume=True)
    longer = _config(tiny_checkpoint, "steps=3", "eval.problems=0", "checkpoint.every=1")
    assert train(longer, run, resume=True).steps_done == 3


def test_run_directory_errors(tiny_checkpoint, tmp_path):
    cfg = _config(tiny_checkpoint, "steps=2", "eval.problems=0")
    run = tmp_path / "run"
    fresh = train(cfg, run, resume=True)  # nothing to resume: starts from step 0
    assert fresh.steps_done == 2 and fresh.resumed_from is None
    run = tmp_path / "run2"
    train(cfg, run)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, run)
    other = _config(tiny_checkpoint, "steps=4", "eval.problems=0", "optim.lr=0.5")
    with pytest.raises(ckpt.CheckpointError, match=r"different config .*optim"):
        train(other, run, resume=True)
    model = ckpt.latest_checkpoint(run) / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=r"corrupt: model\.safetensors"):
        train(_config(tiny_checkpoint, "steps=4", "eval.problems=0"), run, resume=True)


def test_stage_schedule_switches_by_steps_and_by_reward():
    sched = StageSchedule(
        [
            StageConfig(name="a", steps=3, estimator="passk_analytic", params={"k": 8}, k_final=2),
            StageConfig(name="b", until_reward=0.5, window=2, estimator="pass1", params={}),
            StageConfig(name="c", estimator="pass1", params={}),
        ]
    )
    assert [sched.params(s)["k"] for s in (1, 2, 3)] == [8, 5, 2]
    assert not sched.observe(1, 0.1) and not sched.observe(2, 0.1)
    assert sched.observe(3, 0.1) and sched.stage.name == "b"
    assert not sched.observe(4, 0.9)  # one step is not a window of 2
    assert not sched.observe(5, 0.0)  # (0.9 + 0.0) / 2 < 0.5
    assert sched.observe(6, 1.0) and sched.stage.name == "c"
    assert not sched.observe(100, 1.0)  # the last stage never ends
    state = sched.state_dict()
    other = StageSchedule(sched.stages)
    other.load_state_dict(state)
    assert other.stage.name == "c" and other.start == 7


def test_prompt_sampler_covers_every_problem_each_epoch():
    sampler = PromptSampler(list(range(7)), seed=3)  # type: ignore[arg-type]
    first, second = sampler.draw(7), sampler.draw(7)
    assert sorted(first) == sorted(second) == list(range(7))
    assert first != second  # a new order each epoch
    again = PromptSampler(list(range(7)), seed=3)
    assert again.draw(10) == first + second[:3]


@pytest.mark.parametrize("where", ["sampling", "evaluation"])
def test_interrupt_then_resume_matches_an_uninterrupted_run(
    where, tiny_checkpoint, tmp_path, monkeypatch
):
    import passk.train.collect as collect
    import passk.train.hooks as hooks

    common = ("steps=4", "checkpoint.every=100", "eval.every=2")
    straight = tmp_path / "straight"
    train(_config(tiny_checkpoint, *common), straight)

    real_sample, real_eval = collect.GroupSampler.sample, hooks.evaluate
    calls = {"n": 0}

    def sample_then_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # sampling step 3 (no eval-time sampling goes through here)
            raise KeyboardInterrupt
        return real_sample(*args, **kwargs)

    def eval_then_stop(trainer, step):
        if step == 2:
            raise KeyboardInterrupt
        return real_eval(trainer, step)

    if where == "sampling":
        monkeypatch.setattr(collect.GroupSampler, "sample", sample_then_stop)
    else:
        monkeypatch.setattr(hooks, "evaluate", eval_then_stop)
    run = tmp_path / "run"
    result = train(_config(tiny_checkpoint, *common), run)
    assert result.interrupted and result.steps_done == 2
    assert result.checkpoint is not None and result.checkpoint.name == "step_000002"
    monkeypatch.undo()
    train(_config(tiny_checkpoint, *common), run, resume=True)
    assert _records(run) == _records(straight)
    wa = _weights(ckpt.latest_checkpoint(straight))
    wb = _weights(ckpt.latest_checkpoint(run))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_reference_resets_on_stagnation_and_kl_spike(tiny_checkpoint, tmp_path):
    cfg = _config(
        tiny_checkpoint,
        "loss.kl_coef=0.01",
        "reference.reset_patience=2",
        "reference.reset_kl_above=0.5",
        "eval.every=1",
        "eval.problems=0",
    )
    trainer = Trainer(cfg, tmp_path / "stag")
    try:
        with torch.no_grad():  # move the policy so a reset is visible in the reference
            for p in trainer.model.parameters():
                p.add_(0.01)
        ref = trainer.reference.model
        assert ref is not None
        resets = []
        for value in (0.5, 0.4, 0.5, 0.6, 0.6, 0.6):
            rec = {"kind": "eval", "step": trainer.state.step, "eval/pass@1": value}
            resets.append(observe_stagnation(trainer, rec))
        # best 0.5; 0.4 and 0.5 do not improve (2 evals) -> reset; 0.6 improves; 0.6, 0.6 -> reset
        assert resets == [False, False, True, False, False, True]
        assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), trainer.model.parameters()))
        record = {"actor/kl": 0.7}
        trainer.state.step = 3
        ReferenceReset().before_log(trainer, record)
        assert record["ref/reason"] == "kl"
        calm = {"actor/kl": 0.1}
        ReferenceReset().before_log(trainer, calm)
        assert "ref/reset" not in calm
        assert trainer.state.ref_step == 3
    finally:
        trainer.scorer.close()
