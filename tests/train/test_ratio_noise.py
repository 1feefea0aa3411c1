"""Before any optimizer step the importance ratio is exactly 1, under bf16 autocast too, and a
run whose ratio noise exceeds its loss's clip band says so (issue 24, item 2).

GSPO's band is 3e-4 / 4e-4 on the sequence ratio. Behaviour log-probs taken by a separate
pass over other micro-batches differ from the training pass by bf16 rounding, which on a
model of realistic width already reaches that band: GSPO then clipped the very tokens that
carried signal. The behaviour pass now follows the first epoch's micro-batches.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from test_update import _batch

from passk.rollout.logprobs import forward_logprobs
from passk.train.config import DPHConfig, LossConfig, OptimConfig
from passk.train.update import behaviour_pass, policy_update

GSPO = LossConfig(
    policy_loss="gspo",
    params={"eps_low": 3e-4, "eps_high": 4e-4},
    aggregation="seq-mean-token-mean",
)
OPTIM = OptimConfig(mini_batches=4, micro_batch_size=8, lr=1e-3)
NATIVE_BF16 = (
    "avx512_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
)


@pytest.fixture(scope="module")
def wide_model():
    """One layer as wide as SmolLM2-135M's (576, 9 heads): narrower tiny models happen to
    give bit-identical results for any batch composition, so they cannot show the noise."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=8192,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=1,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


def _update(model, batch, loss=GSPO, optim=OPTIM, autocast=torch.bfloat16):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=optim.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    return policy_update(
        model,
        opt,
        sched,
        batch,
        loss=loss,
        optim=optim,
        dph=DPHConfig(),
        temperature=1.0,
        autocast=autocast,
        generator=torch.Generator().manual_seed(0),
    )


def test_ratio_is_exactly_one_before_any_update_under_bf16_autocast(wide_model):
    batch = _batch(8192, G=4, N=4)  # the trainer leaves old_logp to policy_update
    assert batch.old_logp is None
    m = _update(wide_model, batch)
    assert m["update/ratio_noise"] == 0.0  # exactly: the same computation, bit for bit
    assert m["actor/grad_norm"] > 0.1  # GSPO learns on a step with signal
    assert m["actor/clip_frac"] < 1.0
    assert m["update/optimizer_steps"] == 4.0


@pytest.mark.skipif(not NATIVE_BF16, reason="the noise shows on CPUs with native bf16")
def test_a_separate_behaviour_pass_is_not_bit_identical_under_bf16(wide_model):
    # what the trainer did before: one no-grad pass over the whole batch's micro-batches
    batch = _batch(8192, G=4, N=4)
    model = copy.deepcopy(wide_model).train()
    batch.old_logp, _, _ = behaviour_pass(
        model, batch, micro_batch_size=8, temperature=1.0, autocast=torch.bfloat16, topk=False
    )
    assert _update(wide_model, batch)["update/ratio_noise"] > 0.0


def test_ratio_noise_wider_than_the_clip_band_is_reported(tiny_model, tiny_tokenizer):
    batch = _batch(len(tiny_tokenizer))
    with torch.no_grad():
        logp = forward_logprobs(tiny_model.train(), batch)["logp"]
    batch.old_logp = logp + 1e-3 * batch.response_mask  # off by 1e-3 nats: noise only
    with pytest.warns(UserWarning, match=r"deviated from 1 by up to 0.001 .* gspo's clip band"):
        m = _update(
            tiny_model, batch, optim=OptimConfig(micro_batch_size=4, mini_batches=2), autocast=None
        )
    assert m["update/ratio_noise"] == pytest.approx(1e-3, rel=0.05)
