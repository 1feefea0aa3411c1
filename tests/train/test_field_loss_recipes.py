"""The recipes of the field's policy losses run end to end (2 steps, tiny model), and each run
logs a metric showing that its method acted, not only that the parameters moved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from passk.train.config import load_config
from passk.train.loop import train

CONFIGS = Path(__file__).parents[2] / "configs"


def _some(records: list[dict], key: str, test) -> bool:
    return any(test(r[key]) for r in records)


def _check_gspo(recs):
    assert all("actor/clip_frac" in r for r in recs)
    # 4 mini-batches: later ones are off-policy, and a 4e-4 clip range catches sequences
    assert _some(recs, "actor/clip_frac", lambda v: v > 0)


def _check_cispo(recs):
    assert _some(recs, "actor/is_weight_mean", lambda v: 0 < v <= 1.28)
    assert _some(recs, "actor/ratio_max", lambda v: v != 1.0)  # off-policy mini-batches


def _check_sapo(recs):
    assert _some(recs, "actor/gate_weight_mean", lambda v: 0 < v < 1)  # the gate bent


def _check_clip_cov(recs):
    assert _some(recs, "actor/cov_selected_frac", lambda v: v > 0)


def _check_kl_cov(recs):
    assert _some(recs, "actor/cov_selected_frac", lambda v: v > 0)
    assert _some(recs, "actor/kl_cov_penalty", lambda v: v > 0)


def _check_forking(recs):
    for r in recs:
        assert r["actor/entropy_mask_frac"] == pytest.approx(0.2, abs=0.01)


CHECKS = {
    "gspo": _check_gspo,
    "cispo": _check_cispo,
    "sapo": _check_sapo,
    "clip_cov": _check_clip_cov,
    "kl_cov": _check_kl_cov,
    "forking_tokens": _check_forking,
}


@pytest.mark.parametrize("recipe", list(CHECKS))
def test_recipe_runs_and_its_method_engages(recipe, tiny_checkpoint, tmp_path):
    path = CONFIGS / f"{recipe}.yaml"
    overrides = [*tiny_overrides(tiny_checkpoint), "steps=2", "eval.problems=0"]
    cfg = load_config(path, overrides)
    records: list[dict] = []
    train(cfg, tmp_path / recipe, on_step=records.append)
    train_recs = [r for r in records if r.get("kind") == "train"]
    assert [r["step"] for r in train_recs] == [1, 2]
    assert any(r["adv/zero_frac"] < 1 for r in train_recs), "no step had a learning signal"
    for r in train_recs:
        assert r["update/skipped_steps"] == 0
        assert r["update/optimizer_steps"] == cfg.optim.mini_batches * cfg.optim.ppo_epochs
        assert torch.isfinite(torch.tensor(r["actor/grad_norm"]))
    CHECKS[recipe](train_recs)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.entropy_mask_top=1.5", r"loss.entropy_mask_top must be in \(0, 1\] .*got 1.5"),
        ("loss.entropy_mask_top=-0.2", r"loss.entropy_mask_top must be in \(0, 1\]"),
        (
            "loss.params={clip_cov_lb: 5, clip_cov_ub: 1}",
            r"loss.params \(clip_cov\): policy loss 'clip_cov': clip_cov_lb must be < clip_cov_ub",
        ),
    ],
)
def test_bad_settings_fail_validation_with_what_is_valid(override, message):
    from passk.train.config import validate

    extra = ["loss.policy_loss=clip_cov"] if "clip_cov" in override else []
    with pytest.raises(ValueError, match=message):
        validate(load_config(None, [*extra, override]))


def test_entropy_mask_zero_or_null_is_off():
    from passk.train.config import validate

    for value in ("0", "null"):
        cfg = load_config(None, [f"loss.entropy_mask_top={value}"])
        validate(cfg)
        assert not cfg.loss.entropy_mask_top
