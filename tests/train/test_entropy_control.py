"""The entropy controllers in the trainer: the adaptive coefficient (loss.entropy_target) and
EntroPIC (loss.entropic_target) move the right way, step by hand values, are logged, and
resume exactly (their state is checkpointed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_overrides
from passk.core.losses.entropy_control import adaptive_entropy_coef, entropic_alpha
from passk.train.config import load_config
from passk.train.loop import Trainer


def _trainer(checkpoint: Path, out: Path, *extra: str, resume: bool = False) -> Trainer:
    config = load_config(None, [*tiny_overrides(checkpoint), "steps=4", *extra])
    return Trainer(config, out, resume=resume)


def test_adaptive_coefficient_rises_while_entropy_is_below_target(tiny_checkpoint, tmp_path):
    t = _trainer(
        tiny_checkpoint,
        tmp_path / "r",
        "loss.entropy_target=100.0",  # far above a tiny model's entropy
        "loss.entropy_coef=0.01",
        "loss.entropy_coef_delta=0.02",
        "loss.entropy_coef_max=0.04",
        "loss.entropic_target=100.0",
    )
    records = [t.step() for _ in range(3)]
    assert all(r["loss/control_entropy"] < 100.0 for r in records)
    # EntroPIC below target: alpha < 0 (weaken positives, strengthen negatives), saturating
    assert all(r["loss/entropic_alpha"] == -1.0 for r in records)
    assert records[2]["loss/entropic_integral"] < records[1]["loss/entropic_integral"] < 0
    coefs = [r["loss/entropy_coef"] for r in records]
    assert coefs == pytest.approx([0.01, 0.03, 0.04])  # +delta, then held at the maximum
    assert [r["loss/entropy_coef_applied"] for r in records] == coefs  # below target: on
    assert t.state.entropy_coef == pytest.approx(0.04)


def test_above_target_the_bonus_is_off_and_the_coefficient_falls(tiny_checkpoint, tmp_path):
    t = _trainer(
        tiny_checkpoint,
        tmp_path / "r",
        "loss.entropy_target=0.0",
        "loss.entropy_coef=0.012",
        "loss.entropy_coef_delta=0.005",
        "loss.entropic_target=0.0",
    )
    r1, r2, r3 = (t.step() for _ in range(3))
    for r in (r1, r2, r3):
        assert r["loss/control_entropy"] > 0.0
        assert r["loss/entropy_coef_applied"] == 0.0
    assert [r1["loss/entropy_coef"], r2["loss/entropy_coef"], r3["loss/entropy_coef"]] == (
        pytest.approx([0.012, 0.007, 0.002])
    )
    assert t.state.entropy_coef == 0.0  # floored at entropy_coef_min
    # EntroPIC: entropy above target -> alpha > 0 (strengthen positives), integral grows
    assert r1["loss/entropic_integral"] == 0.0
    assert 0 < r1["loss/entropic_alpha"] <= 1.0
    assert r3["loss/entropic_integral"] > r2["loss/entropic_integral"] > 0


def test_one_controller_step_matches_the_hand_computed_law(tiny_checkpoint, tmp_path):
    t = _trainer(
        tiny_checkpoint,
        tmp_path / "r",
        "loss.entropy_target=1.5",
        "loss.entropy_coef=0.1",
        "loss.entropic_target=1.5",
        "loss.entropic_kp=0.5",
        "loss.entropic_ki=0.25",
    )
    t.step()
    coef, integral = t.state.entropy_coef, t.state.entropic_integral
    r = t.step()
    h = r["loss/control_entropy"]
    # by hand: the adaptive law, and alpha = clip(kp (h - target) + ki I, -1, 1)
    on = h <= 1.5
    assert r["loss/entropy_coef"] == coef
    assert r["loss/entropy_coef_applied"] == (coef if on else 0.0)
    assert t.state.entropy_coef == pytest.approx(coef + 0.005 if on else max(coef - 0.005, 0.0))
    want_alpha = min(1.0, max(-1.0, 0.5 * (h - 1.5) + 0.25 * integral))
    assert r["loss/entropic_alpha"] == pytest.approx(want_alpha, abs=1e-12)
    assert t.state.entropic_integral == pytest.approx(integral + h - 1.5, abs=1e-12)
    # and the core functions give the same numbers
    assert adaptive_entropy_coef(coef, h, target=1.5, delta=0.005)[1] == t.state.entropy_coef
    assert entropic_alpha(h, integral, target=1.5, kp=0.5, ki=0.25) == (
        r["loss/entropic_alpha"],
        t.state.entropic_integral,
    )


def test_controller_state_is_checkpointed(tiny_checkpoint, tmp_path):
    extra = ("loss.entropy_target=100.0", "loss.entropy_coef=0.0", "loss.entropic_target=0.5")
    t = _trainer(tiny_checkpoint, tmp_path / "r", *extra)
    t.step()
    t.step()
    t.save()
    t2 = _trainer(tiny_checkpoint, tmp_path / "r", *extra, resume=True)
    assert t2.state.entropy_coef == t.state.entropy_coef == pytest.approx(0.01)
    assert t2.state.entropic_integral == t.state.entropic_integral != 0.0
    r1, r2 = t.step(), t2.step()
    for key in ("loss/entropy_coef", "loss/entropic_alpha", "loss/entropic_integral"):
        assert r1[key] == r2[key]
