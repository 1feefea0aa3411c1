"""Bugs of the first trainer, each pinned by a test that failed before its fix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from passk.train import checkpoint as ckpt
from passk.train.config import load_config
from passk.train.loop import Trainer, train


def _config(checkpoint: Path, *extra: str, reward: str = "parity"):
    return load_config(None, [*tiny_overrides(checkpoint, reward), *extra])


def test_train_k_is_the_estimators_default_when_params_omit_it(tiny_checkpoint, tmp_path):
    # passk_analytic's k defaults to 4; the log used to say k = 1 (params.get("k", 1))
    cfg = _config(tiny_checkpoint, "steps=1", "algorithm.params={}", "eval.problems=0")
    recs: list[dict] = []
    train(cfg, tmp_path / "k", on_step=recs.append)
    assert recs[0]["train/k"] == 4
    r = recs[0]  # the non-model share counts the update's forward+backward as model time
    model = r["time/generate"] + r["time/forward_backward"] + r["time/logprob_passes"]
    assert r["time/non_model_frac"] == pytest.approx(
        max(r["time/step"] - model, 0) / r["time/step"]
    )


def test_reference_resets_happen_with_dph_alone(tiny_checkpoint, tmp_path):
    # a reset with DPH-RL and no KL term used to pass validation and never happen
    cfg = _config(
        tiny_checkpoint,
        "steps=2",
        "dph.generator=forward_kl",
        "dph.probe_samples=2",
        "reference.reset_every=1",
        "optim.lr=3.0e-3",
        "eval.problems=0",
        reward="solved_div3",
    )
    t = Trainer(cfg, tmp_path / "dph")
    try:
        t.dph_split()
        assert t.reference.dph is not None and len(t.reference.dph) > 0
        before = t.reference.dph.ref_logp.clone()
        record = t.step()
        from passk.train.hooks import ReferenceReset

        ReferenceReset().before_log(t, record)
        assert record["ref/reset"] == 1 and t.state.ref_step == 1
        after = t.reference.dph.ref_logp
        mask = t.reference.dph.response_mask
        assert not torch.allclose(before[mask], after[mask])  # recomputed under the new policy
    finally:
        t.scorer.close()


def test_sharded_weights_load(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert not (tmp_path / "sharded" / "model.safetensors").exists()
    assert len(ckpt.weight_files(tmp_path / "sharded")) > 1
    other = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    ckpt.load_weights(other, tmp_path / "sharded")
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name


def test_stale_checkpoint_temporaries_are_removed(tiny_checkpoint, tmp_path):
    cfg = _config(tiny_checkpoint, "steps=1", "eval.problems=0")
    run = tmp_path / "run"
    train(cfg, run)
    dead = run / "checkpoints" / ".tmp-step_000002-999999999"  # a writer that no longer runs
    live = run / "checkpoints" / f".tmp-step_000002-{os.getppid()}"  # a running process
    for d in (dead, live):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 1000)
    train(
        load_config(None, [*tiny_overrides(tiny_checkpoint), "steps=2", "eval.problems=0"]),
        run,
        resume=True,
    )
    assert not dead.exists() and live.exists()


def test_resume_without_latest_falls_back_to_the_newest_valid_checkpoint(tiny_checkpoint, tmp_path):
    cfg = _config(tiny_checkpoint, "steps=2", "checkpoint.every=1", "eval.problems=0")
    run = tmp_path / "run"
    train(cfg, run)
    (run / "checkpoints" / "latest").unlink()
    newest = run / "checkpoints" / "step_000002" / "model.safetensors"
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF
    newest.write_bytes(bytes(data))
    skipped: list[str] = []
    path = ckpt.latest_checkpoint(run, on_skip=lambda p, e: skipped.append(f"{p.name}: {e}"))
    assert path is not None and path.name == "step_000001"
    assert len(skipped) == 1 and "step_000002" in skipped[0] and "corrupt" in skipped[0]
    with pytest.warns(UserWarning, match="skipping checkpoint step_000002"):
        train(
            _config(tiny_checkpoint, "steps=3", "checkpoint.every=1", "eval.problems=0"),
            run,
            resume=True,
        )


def test_a_foreign_config_yaml_is_refused(tiny_checkpoint, tmp_path):
    run = tmp_path / "p"
    run.mkdir()
    (run / "config.yaml").write_text("mine\n")
    with pytest.raises(ValueError, match=r"not part of a passk run: config\.yaml"):
        train(_config(tiny_checkpoint, "steps=1", "eval.problems=0"), run)
    assert (run / "config.yaml").read_text() == "mine\n"


def test_a_full_disk_during_a_checkpoint_leaves_no_temporary(
    tiny_checkpoint, tmp_path, monkeypatch
):
    cfg = _config(tiny_checkpoint, "steps=1", "eval.problems=0")
    real = torch.save

    def full(obj, f, *a, **k):
        if str(f).endswith("optimizer.pt"):
            raise OSError(28, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        train(cfg, tmp_path / "full")
    leftovers = list((tmp_path / "full" / "checkpoints").glob(".tmp-*"))
    assert leftovers == []
    shutil.rmtree(tmp_path / "full")


def test_ctrl_c_in_step_1_then_resume_starts_over(tiny_checkpoint, tmp_path, monkeypatch):
    import json

    import passk.train.collect as collect

    cfg = _config(tiny_checkpoint, "steps=2")  # evaluation at start, no checkpoint before 2
    straight = tmp_path / "straight"
    train(cfg, straight)
    real = collect.GroupSampler.sample

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(collect.GroupSampler, "sample", stop)
    run = tmp_path / "run"
    result = train(cfg, run)
    assert result.interrupted and result.steps_done == 0 and result.checkpoint is None
    monkeypatch.setattr(collect.GroupSampler, "sample", real)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, run)  # a plain run refuses (the step-0 evaluation is there) ...
    again = train(cfg, run, resume=True)  # ... and --resume starts it from step 0
    assert again.steps_done == 2 and again.resumed_from is None

    def records(path: Path) -> list[dict]:
        lines = (path / "metrics.jsonl").read_text().splitlines()
        return [
            {k: v for k, v in json.loads(x).items() if not k.startswith(("time/", "perf/"))}
            for x in lines
        ]

    assert records(run) == records(straight)


def test_group_weights_histogram_and_push_per_correct_count():
    from types import SimpleNamespace

    from passk.train.collect import group_weights

    n_c = [(4, 0), (4, 2), (4, 2), (4, 4)]
    trained = SimpleNamespace(  # the trained rows: the two groups with 2 of 4 correct
        group=torch.tensor([5, 5, 5, 5, 7, 7, 7, 7]),
        advantages=torch.tensor([1.0, -1.0, 1.0, -1.0, 0.5, -0.5, 0.5, -0.5]),
        correct=torch.tensor([1, 0, 1, 0, 1, 0, 1, 0], dtype=torch.bool),
    )
    out = group_weights(n_c, trained)
    assert {k: v for k, v in out.items() if k.startswith("groups/")} == {
        "groups/correct_0": 1.0,
        "groups/correct_1": 0.0,
        "groups/correct_2": 2.0,
        "groups/correct_3": 0.0,
        "groups/correct_4": 1.0,
    }
    assert out["adv/group_abs_2"] == pytest.approx((4.0 + 2.0) / 2)
    assert [k for k in out if k.startswith("adv/")] == ["adv/group_abs_2"]
    empty = SimpleNamespace(group=torch.zeros(0, dtype=torch.long), advantages=None, correct=None)
    assert "adv/group_abs_0" not in group_weights([(4, 0)], empty)


def test_a_training_step_logs_the_groups_histogram(tiny_checkpoint, tmp_path):
    cfg = _config(tiny_checkpoint, "steps=1", "eval.problems=0")
    recs: list[dict] = []
    train(cfg, tmp_path / "h", on_step=recs.append)
    r = recs[0]
    hist = {k: v for k, v in r.items() if k.startswith("groups/correct_")}
    assert len(hist) == cfg.rollout.n + 1
    assert sum(hist.values()) == r["rollout/groups"]
    pushes = [v for k, v in r.items() if k.startswith("adv/group_abs_")]
    assert pushes and all(v >= 0 for v in pushes)
