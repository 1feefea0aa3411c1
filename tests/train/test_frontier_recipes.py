"""The new estimators' recipes engage in the trainer: one real step each, then the step's
advantages are recomputed from what was sampled and must be exactly the estimator's.

(test_cli_recipes.py runs every recipe for two steps through the CLI; this file checks that
the method, not only some method, was applied.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from passk.core.advantages import compute_advantages
from passk.core.exploration import AnswerCounts, batch_answer_bonus
from passk.train.collect import answers_of, sequence_logp
from passk.train.config import load_config
from passk.train.loop import Trainer

CONFIGS = Path(__file__).parents[2] / "configs"


def _trainer(recipe: str, checkpoint: Path, out: Path, *extra: str) -> Trainer:
    overrides = [*tiny_overrides(checkpoint), "steps=2", "eval.problems=0", *extra]
    return Trainer(load_config(CONFIGS / f"{recipe}.yaml", overrides), out)


def _expected(t: Trainer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(advantages the trainer set [G, N], the estimator's recomputation, mask)."""
    groups = t.last_collected.batch
    ro = groups.rollouts
    stage = t.schedule.stage
    rewards, mask = groups.grid(ro.rewards.double())
    params = dict(stage.params)
    if stage.estimator == "unlikeliness":
        params["seq_logp"] = groups.grid(sequence_logp(ro))[0]
    want = compute_advantages(stage.estimator, rewards, None if mask.all() else mask, **params)
    got, _ = groups.grid(ro.advantages.double())
    return got, want, mask


@pytest.mark.parametrize(
    "recipe", ["maxrl", "passk_mixture", "rs_grpo", "w_reinforce", "unlikeliness", "pass1_matched"]
)
def test_recipe_applies_its_estimator(recipe, tiny_checkpoint, tmp_path):
    t = _trainer(recipe, tiny_checkpoint, tmp_path / recipe)
    record = t.step()
    got, want, mask = _expected(t)
    assert torch.allclose(got[mask], want[mask].float().double(), atol=1e-6)
    assert record["adv/abs_mean"] > 0  # the step carried signal
    if recipe == "w_reinforce":  # its advantages are the two weights, nothing else
        values = {round(v, 6) for v in got[mask].tolist()}
        assert values <= {0.1, -1.0} and -1.0 in values


def test_unlikeliness_ranks_by_the_sampling_log_probs(tiny_checkpoint, tmp_path):
    t = _trainer("unlikeliness", tiny_checkpoint, tmp_path / "u")
    t.step()
    ro = t.last_collected.batch.rollouts
    seq = sequence_logp(ro)
    # independently: the mean over each response's first `length` sampled tokens
    by_hand = torch.tensor(
        [float(ro.logprobs[i, : int(n)].mean()) for i, n in enumerate(ro.lengths)]
    )
    assert torch.allclose(seq, by_hand, atol=1e-6)
    assert torch.isfinite(seq).all() and (seq < 0).all()
    # and the advantages of the step rank by exactly these values (recomputed above)
    got, want, mask = _expected(t)
    assert torch.allclose(got[mask], want[mask].float().double(), atol=1e-6)


def test_batch_exploration_bonus_is_added_to_the_advantages(tiny_checkpoint, tmp_path):
    t = _trainer(
        "outcome_exploration", tiny_checkpoint, tmp_path / "b", "algorithm.exploration=batch"
    )
    record = t.step()
    groups = t.last_collected.batch
    bonus = batch_answer_bonus(answers_of(groups))
    flat, _ = groups.grid(groups.rollouts.bonus.double())
    _, mask = groups.grid(groups.rollouts.rewards.double())
    assert torch.allclose(flat[mask], bonus[mask].float().double())
    rewards, _ = groups.grid(groups.rollouts.rewards.double())
    base = compute_advantages("pass1", rewards)
    got, _ = groups.grid(groups.rollouts.advantages.double())
    assert torch.allclose(got, (base + 0.2 * bonus).float().double(), atol=1e-6)
    assert record["explore/bonus_mean"] == pytest.approx(float(groups.rollouts.bonus.mean()))
    assert record["explore/bonus_mean"] < 0  # a penalty: random text repeats "no answer"


def test_ucb_counts_are_trainer_state_checkpointed_and_resumed(tiny_checkpoint, tmp_path):
    out = tmp_path / "ucb"
    t = _trainer("outcome_exploration", tiny_checkpoint, out)
    assert t.answer_counts is not None and len(t.answer_counts) == 0
    record = t.step()
    groups = t.last_collected.batch
    # step 1: no history, so N(x, a) is the count within the group
    want = AnswerCounts().bonus(
        [p.id for p in groups.problems], answers_of(groups), kind="ucb_con", baseline=0.5
    )
    flat, mask = groups.grid(groups.rollouts.bonus.double())
    assert torch.allclose(flat[mask], want[mask].float().double())
    assert "explore/bonus_mean" in record and "explore/answers_per_problem" in record
    seen = sum(len(g.rollouts) for g in t.last_collected.generated)
    state = t.answer_counts.state_dict()
    assert sum(n for pairs in state["counts"].values() for _, n in pairs) == seen
    t.save()
    t2 = Trainer(t.config, out, resume=True)
    assert t2.answer_counts.state_dict() == state
    # both continue identically: the second step's bonus uses the restored counts
    r1, r2 = t.step(), t2.step()
    assert r1["explore/bonus_mean"] == pytest.approx(r2["explore/bonus_mean"])
    assert t.answer_counts.state_dict() == t2.answer_counts.state_dict()
