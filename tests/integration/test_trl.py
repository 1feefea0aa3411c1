"""PassKGRPOTrainer on CPU with a tiny random Llama and a tokenizer built here (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="TRL not installed: pip install 'passk[trl]'")
datasets = pytest.importorskip("datasets", reason="TRL needs datasets")

import passk  # noqa: E402
from passk.integrations.trl import PassKGRPOTrainer, advantage_seed, group_rewards  # noqa: E402

N_GEN = 4
# Rewards by position in the generation batch: 3 prompts x 4 completions, one group degenerate.
# Two processes x 6 completions: the global batch is 3 groups, the middle one split across ranks.
RANK_PATTERNS = {0: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 1: [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]}
PATTERN = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def build_tokenizer(path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["what is 1 + 2 ? the answer is 3", "compute 4 * 5 = 20 , then 6 - 1 = 5"] * 20
    tok.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=64, special_tokens=["<pad>", "<eos>", "<unk>"])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def build_model(tokenizer, path: Path):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path)


class RecordingTrainer(PassKGRPOTrainer):
    """Records the advantages produced for each generation batch and those the loss saw."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.produced: list[torch.Tensor] = []
        self.consumed: list[torch.Tensor] = []
        self.needed: list[dict[str, torch.Tensor]] = []
        self.manual_seq_logp: list[torch.Tensor] = []

    def _needed_inputs(self, output, needs):
        got = super()._needed_inputs(output, needs)
        self.needed.append({k: v.detach().clone() for k, v in got.items()})
        if "seq_logp" in needs:  # an independent forward: token-mean log-prob per completion
            ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
            att = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
            T = output["completion_ids"].size(1)
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=att).logits[:, -T - 1 : -1]
            logp = torch.log_softmax(logits.float() / self.temperature, -1)
            token = logp.gather(-1, output["completion_ids"][..., None])[..., 0]
            m = output["completion_mask"].bool()
            manual = torch.where(m, token, 0.0).sum(1) / m.sum(1).clamp(min=1)
            self.manual_seq_logp.append(manual.view(-1, N_GEN))
        return got

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.produced.append(out["advantages"].detach().clone())
        return out

    def compute_loss(self, model, inputs, *args, **kwargs):
        self.consumed.append(inputs["advantages"].detach().clone())
        return super().compute_loss(model, inputs, *args, **kwargs)


def positional_reward(completions, **kwargs) -> list[float]:
    return [PATTERN[i % len(PATTERN)] for i in range(len(completions))]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny")
    tok = build_tokenizer(root / "tok")
    return tok, root


def make_trainer(tiny, advantage: str, advantage_kwargs: dict, **overrides) -> RecordingTrainer:
    from trl import GRPOConfig

    tok, root = tiny
    model = build_model(tok, root / f"model-{advantage}")
    prompts = [f"what is {i} + 2 ?" for i in range(3)] * 4
    config = dict(
        output_dir=str(root / f"out-{advantage}"),
        per_device_train_batch_size=len(PATTERN),
        num_generations=N_GEN,
        max_completion_length=6,
        max_steps=2,
        learning_rate=5e-2,
        beta=0.0,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=0.28,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        shuffle_dataset=False,
    )
    config.update(overrides)
    return RecordingTrainer(
        model=model,
        reward_funcs=positional_reward,
        args=GRPOConfig(**config),
        train_dataset=datasets.Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
        advantage=advantage,
        advantage_kwargs=advantage_kwargs,
    )


@pytest.mark.parametrize(
    ("advantage", "kwargs"), [("passk_analytic", {"k": 2}), ("passk_adaptive", {"k": 2})]
)
def test_two_steps_use_passk_advantages_and_update(tiny, advantage: str, kwargs: dict) -> None:
    trainer = make_trainer(tiny, advantage, kwargs)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()

    assert len(trainer.produced) == 2
    rewards = torch.tensor(PATTERN).view(-1, N_GEN)
    if advantage == "passk_analytic":
        expected = passk.compute_advantages(advantage, rewards, k=2).view(-1)
        for produced in trainer.produced:
            torch.testing.assert_close(produced, expected)
    else:  # entropy-gated: each group gets either its Pass@1 or its Pass@k advantage
        a_k = passk.compute_advantages("passk_analytic", rewards, k=2)
        a_1 = passk.compute_advantages("pass1", rewards)
        for produced in trainer.produced:
            for g, row in enumerate(produced.view(-1, N_GEN)):
                assert torch.allclose(row, a_k[g]) or torch.allclose(row, a_1[g])
    # what the loss saw is the same multiset (TRL may shuffle within the batch)
    for produced, consumed in zip(trainer.produced, trainer.consumed):
        torch.testing.assert_close(produced.sort().values, consumed.reshape(-1).sort().values)

    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed, "no parameter changed after two steps"
    logged = [h for h in trainer.state.log_history if "adv/zero_frac" in h]
    assert logged and logged[0]["adv/zero_frac"] == pytest.approx(4 / 12)
    assert logged[0]["adv/zero_group_frac"] == pytest.approx(1 / 3)


# SPEC 1.8-1.9 (issue 13): listed explicitly, so a missing estimator fails, not vanishes.
NEW_ESTIMATORS = {
    "passk_mixture": {"weights": {1: 0.5, 2: 0.5}},
    "maxrl": {"order": 2},
    "rs_grpo": {"beta": 2.0},
    "w_reinforce": {"positive_weight": 0.1, "negative_weight": 1.0},
    "rloo": {},
    "reinforce_pp": {},
    "unlikeliness": {"beta": 0.25},
    # issue 28
    "qae": {"quantile": 0.4},
    "gated": {"inner": "pass1", "k": 2},
    "combine": {  # Pass@k + GRPO, half each (docs/integrations/trl.md)
        "terms": [
            {"estimator": "passk_analytic", "weight": 0.5, "params": {"k": 2}},
            {"estimator": "pass1", "weight": 0.5},
        ]
    },
}


@pytest.mark.parametrize("advantage", sorted(NEW_ESTIMATORS))
def test_new_estimators_drive_training(tiny, advantage: str) -> None:
    assert advantage in passk.list_estimators(), f"passk has no estimator {advantage!r} yet"
    kwargs = NEW_ESTIMATORS[advantage]
    trainer = make_trainer(tiny, advantage, kwargs, max_steps=1)
    trainer.train()
    assert len(trainer.produced) == 1
    rewards = torch.tensor(PATTERN).view(-1, N_GEN)
    extra = {}
    if advantage == "unlikeliness":  # seq_logp [G, N] from the policy that sampled
        seq = trainer.needed[0]["seq_logp"]
        assert seq.shape == rewards.shape and (seq < 0).all()
        torch.testing.assert_close(seq, trainer.manual_seq_logp[0], rtol=1e-4, atol=1e-4)
        extra["seq_logp"] = seq
    expected = passk.compute_advantages(advantage, rewards, **kwargs, **extra).view(-1)
    torch.testing.assert_close(trainer.produced[0], expected.to(trainer.produced[0]))
    torch.testing.assert_close(
        trainer.produced[0].sort().values, trainer.consumed[0].reshape(-1).sort().values
    )


def test_combine_gets_the_entropy_and_seed_its_terms_need(tiny) -> None:
    terms = [
        {"estimator": "passk_adaptive", "weight": 0.5, "params": {"k": 2}},
        {"estimator": "passk_bootstrap", "weight": 0.5, "params": {"k": 2}},
    ]
    trainer = make_trainer(tiny, "combine", {"terms": terms, "seed": 7}, max_steps=1)
    assert trainer._advantage_spec.needs == {"entropy"} and trainer._advantage_spec.takes_seed
    trainer.train()
    entropy = trainer.needed[0]["entropy"]  # [G], one per prompt
    rewards = torch.tensor(PATTERN).view(-1, N_GEN)
    seed = passk.integrations.trl.advantage_seed(7, 0, 0)
    expected = passk.compute_advantages(
        "combine", rewards, terms=terms, entropy=entropy, seed=seed
    ).view(-1)
    torch.testing.assert_close(trainer.produced[0], expected.to(trainer.produced[0]))
    with pytest.raises(ValueError, match=r"terms\[0\] \(passk_adaptive\): \['entropy'\]"):
        make_trainer(tiny, "combine", {"terms": [{**terms[0], "params": {"k": 2, "entropy": 1}}]})


def test_estimator_with_an_input_trl_cannot_supply_is_refused(tiny) -> None:
    from dataclasses import dataclass

    from passk.core.advantages import _REGISTRY, register_estimator

    @dataclass(frozen=True)
    class NeedsFoo:
        foo: object = None

    register_estimator("_test_needs_foo", params=NeedsFoo, needs=("foo",))(lambda r, m, p: r)
    try:
        with pytest.raises(ValueError, match=r"needs \['foo'\], which PassKGRPOTrainer cannot"):
            make_trainer(tiny, "_test_needs_foo", {})
    finally:
        _REGISTRY.unregister("_test_needs_foo")


def test_stochastic_estimator_draws_anew_each_step_and_reproduces(tiny) -> None:
    kwargs = {"k": 2, "num_groups": 2, "seed": 7}
    runs = []
    for _ in range(2):
        trainer = make_trainer(tiny, "passk_bootstrap", kwargs, learning_rate=0.0)
        trainer.train()
        runs.append(trainer.produced)
    first, second = runs[0]
    assert not torch.equal(first, second), "the same draw at both steps"
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    rewards = torch.tensor(PATTERN).view(-1, N_GEN)
    for step, produced in enumerate(runs[0]):  # TRL's global_step is 0, then 1
        seed = advantage_seed(7, step, 0)
        expected = passk.compute_advantages("passk_bootstrap", rewards, **{**kwargs, "seed": seed})
        torch.testing.assert_close(produced, expected.view(-1))


def test_bad_arguments_fail_before_training(tiny) -> None:
    with pytest.raises(ValueError, match="unknown advantage estimator 'nope'"):
        make_trainer(tiny, "nope", {})
    with pytest.raises(ValueError, match="unknown parameter"):
        make_trainer(tiny, "passk_analytic", {"kk": 2})
    with pytest.raises(ValueError, match=r"'passk_analytic' needs advantage_kwargs\['k'\]"):
        make_trainer(tiny, "passk_analytic", {})
    with pytest.raises(ValueError, match="exceeds num_generations"):
        make_trainer(tiny, "passk_analytic", {"k": 8})
    with pytest.raises(ValueError, match="must not set"):
        make_trainer(tiny, "passk_adaptive", {"k": 2, "entropy": [0.0]})


def test_group_rewards_masks_unscored() -> None:
    nan = float("nan")
    r = torch.tensor([[1.0, nan], [nan, nan], [0.0, 1.0], [0.0, 0.0]])
    rewards, mask = group_rewards(r, torch.tensor([1.0, 2.0]), 2)
    torch.testing.assert_close(rewards, torch.tensor([[1.0, 0.0], [2.0, 0.0]]))
    assert mask.tolist() == [[True, False], [True, True]]
    with pytest.raises(ValueError, match="multiple of num_generations"):
        group_rewards(r, torch.ones(2), 3)


@pytest.mark.slow
def test_two_processes_slice_globally_computed_advantages(tmp_path: Path) -> None:
    """Each rank's advantages are its slice of the advantages of the gathered batch."""
    import json
    import os
    import subprocess
    import sys

    worker = Path(__file__).with_name("trl_two_process_worker.py")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(worker),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rewards = torch.tensor(RANK_PATTERNS[0] + RANK_PATTERNS[1]).view(-1, N_GEN)  # rank 0, 1
    expected = passk.compute_advantages("passk_analytic", rewards, k=2).view(2, -1)
    assert expected[0, 4:].abs().sum() > 0  # the split group has a learning signal
    for rank in range(2):
        got = torch.tensor(json.loads((tmp_path / f"rank{rank}.json").read_text()))
        torch.testing.assert_close(got, expected[rank])
