"""Contract tests: passk's estimators and losses driven through verl's own code paths (CPU).

They build verl ``DataProto`` batches and call verl's ``compute_advantage`` and
``get_policy_loss_fn`` exactly as its trainer does, and compare with passk's core.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("verl", reason="verl not installed: pip install 'passk[verl]'")
OmegaConf = pytest.importorskip("omegaconf").OmegaConf

from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402

import passk  # noqa: E402
import passk.integrations.verl as pv  # noqa: E402

CONFIG = pv.CONFIG_KEY

# Pass@k + GRPO, and a random term (its seed derived from combine's): the docs' mixture.
PASSK_GRPO_MIX = [
    {"estimator": "passk_analytic", "weight": 0.5, "params": {"k": 3}},
    {"estimator": "pass1", "weight": 0.5},
    {"estimator": "passk_bootstrap", "weight": 0.25, "params": {"k": 2}},
]
# passk estimator name -> parameters under algorithm.passk, and whether it takes binary rewards.
CASES = {
    "passk_analytic": ({"k": 3}, True),
    "passk_full": ({"k": 2, "shuffle": True, "seed": 3}, True),
    "passk_bootstrap": ({"k": 3, "seed": 1}, True),
    "maxk_analytic": ({"k": 3}, False),
    "passk_combination": ({"k": 3}, True),
    "passk_exceed": ({"k": 2}, True),
    "pkpo_loo": ({"k": 3}, False),
    # SPEC 1.8-1.9 (issue 13)
    "passk_mixture": ({"weights": {1: 0.5, 3: 0.5}}, True),
    "maxrl": ({"order": 3}, True),
    "rs_grpo": ({"beta": 2.0}, False),
    "w_reinforce": ({"positive_weight": 0.1, "negative_weight": 1.0}, True),
    "rloo": ({}, False),
    "reinforce_pp": ({}, False),
    # issue 28
    "qae": ({"quantile": 0.4}, False),
    "combine": ({"terms": PASSK_GRPO_MIX, "seed": 4}, True),
    "gated": ({"inner": "passk_analytic", "inner_params": {"k": 2}, "k": 3}, True),
}
# Every estimator of SPEC 1.8-1.9 and the name verl knows it by: listed explicitly, so a
# missing estimator fails here instead of dropping out of a parametrisation.
NEW_ESTIMATORS = {
    "passk_mixture": "passk_mixture",
    "maxrl": "maxrl",
    "rs_grpo": "rs_grpo",
    "w_reinforce": "w_reinforce",
    "rloo": "passk_rloo",  # verl's own rloo stays verl's
    "reinforce_pp": "reinforce_pp",
    "unlikeliness": "unlikeliness",
    # issue 28: plain words get the passk_ prefix
    "qae": "qae",
    "combine": "passk_combine",
    "gated": "passk_gated",
}
# passk losses verl's PolicyLossFn can carry, and those it cannot (their needs).
VERL_LOSSES = ("passk_ppo_clip", "passk_gspo", "passk_cispo", "passk_sapo")
NOT_VERL_LOSSES = ("simko", "clip_cov", "kl_cov")


def make_batch(
    scores: torch.Tensor, uids: np.ndarray, T: int = 6, seed: int = 0
) -> tuple[DataProto, torch.Tensor]:
    """A verl batch whose reward sits on the last valid token of ragged responses."""
    g = torch.Generator().manual_seed(seed)
    B = scores.shape[0]
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).to(torch.float32)  # [B, T]
    rewards = torch.zeros(B, T)
    rewards[torch.arange(B), lengths - 1] = scores
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": uids},
    )
    return data, mask


def reference_advantages(
    name: str, scores: torch.Tensor, uids: np.ndarray, **params
) -> torch.Tensor:
    """Loop reference: group by uid (batch order kept), call passk, scatter back -> [B]."""
    groups: dict = defaultdict(list)
    for i, u in enumerate(uids.tolist()):
        groups[u].append(i)
    keys = sorted(groups)
    N = max(len(v) for v in groups.values())
    rewards = torch.zeros(len(keys), N, dtype=scores.dtype)
    mask = torch.zeros(len(keys), N, dtype=torch.bool)
    for gi, key in enumerate(keys):
        for j, i in enumerate(groups[key]):
            rewards[gi, j], mask[gi, j] = scores[i], True
    adv = passk.compute_advantages(name, rewards, mask, **params)
    out = torch.zeros(scores.shape[0])
    for gi, key in enumerate(keys):
        for j, i in enumerate(groups[key]):
            out[i] = adv[gi, j]
    return out


def ragged_uids(rng: np.random.Generator, sizes: list[int]) -> np.ndarray:
    uids = np.array([f"uid-{g}" for g, n in enumerate(sizes) for _ in range(n)], dtype=object)
    return uids[rng.permutation(len(uids))]  # interleaved, as after balance_batch


def test_estimators_are_registered_under_passk_names() -> None:
    for verl_name, name in pv.VERL_ESTIMATOR_NAMES.items():
        fn = core_algos.get_adv_estimator_fn(verl_name)
        assert getattr(fn, "__passk_verl__", None) == name
    assert core_algos.get_policy_loss_fn("passk_ppo_clip") is pv.passk_ppo_clip_policy_loss
    # verl's own grpo_passk is a different method and stays untouched
    assert not hasattr(core_algos.get_adv_estimator_fn("grpo_passk"), "__passk_verl__")


def test_registered_set_follows_the_registry() -> None:
    expected = {
        pv.verl_estimator_name(n): n
        for n in passk.list_estimators()
        if n != "pass1" and passk.get_estimator(n).needs <= {"entropy", "seq_logp"}
    }
    assert expected == pv.VERL_ESTIMATOR_NAMES
    assert set(pv.VERL_ESTIMATORS) == set(expected)


@pytest.mark.parametrize("name", sorted(NEW_ESTIMATORS))
def test_new_estimators_are_registered_with_verl(name: str) -> None:
    assert name in passk.list_estimators(), f"passk has no estimator {name!r} yet"
    verl_name = NEW_ESTIMATORS[name]
    assert pv.verl_estimator_name(name) == verl_name
    assert pv.VERL_ESTIMATOR_NAMES.get(verl_name) == name
    assert core_algos.get_adv_estimator_fn(verl_name).__passk_verl__ == name


def test_verl_names_verl_already_uses_stay_verls() -> None:
    for verl_name in ("rloo", "reinforce_plus_plus_baseline", "grpo", "gspo", "clip_cov"):
        fn = core_algos.ADV_ESTIMATOR_REGISTRY.get(
            verl_name
        ) or core_algos.POLICY_LOSS_REGISTRY.get(verl_name)
        assert fn is not None and not hasattr(fn, "__passk_verl__"), verl_name


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_verl_compute_advantage_matches_core(name: str, seed: int) -> None:
    assert name in passk.list_estimators(), f"passk has no estimator {name!r} yet"
    params, binary = CASES[name]
    rng = np.random.default_rng(seed)
    sizes = [8, 5, 8, 6, 3]  # ragged groups (DARS-style), smallest >= every k above
    uids = ragged_uids(rng, sizes)
    B = len(uids)
    if binary:
        scores = torch.as_tensor(rng.integers(0, 2, B), dtype=torch.float32)
    else:
        scores = torch.as_tensor(rng.random(B), dtype=torch.float32)
    scores[uids == "uid-1"] = 1.0  # one degenerate group
    data, mask = make_batch(scores, uids, seed=seed)
    verl_name = pv.verl_estimator_name(name)
    config = OmegaConf.create({"adv_estimator": verl_name, CONFIG: params})
    out = compute_advantage(data, adv_estimator=verl_name, config=config)
    expected = reference_advantages(name, scores, uids, **params)  # [B]
    adv, ret = out.batch["advantages"], out.batch["returns"]
    assert adv.shape == mask.shape
    torch.testing.assert_close(adv, expected[:, None] * mask, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ret, adv)
    assert (adv[mask == 0] == 0).all()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("passk_bootstrap", {"k": 2, "num_groups": 3, "seed": 5}),
        ("passk_full", {"k": 2, "shuffle": True, "seed": 5}),
    ],
)
def test_stochastic_estimator_draws_anew_each_step_and_reproduces(
    name: str, params: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verl.utils.skip.skip_manager import SkipManager

    rng = np.random.default_rng(0)
    uids = ragged_uids(rng, [8, 8, 8])
    scores = torch.as_tensor(rng.random(len(uids)) < 0.2, dtype=torch.float32)  # few correct
    data, _ = make_batch(scores, uids)
    cfg = OmegaConf.create({CONFIG: params})

    def at_step(step: int) -> torch.Tensor:
        monkeypatch.setattr(SkipManager, "step", step)  # what verl's trainers set per step
        return compute_advantage(data, adv_estimator=name, config=cfg).batch["advantages"].clone()

    first, second, again = at_step(1), at_step(2), at_step(1)
    assert not torch.equal(first, second), "the same draw at two steps"
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    # the draw of step s is the estimator's with derive_seed(seed, "adv", s)
    from passk.seeds import derive_seed

    expected = reference_advantages(
        name, scores, uids, **{**params, "seed": derive_seed(params["seed"], "adv", 2)}
    )
    torch.testing.assert_close(second[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_analytic_worked_value_through_verl() -> None:
    # SPEC 1.4: N = 32, k = 4, N_pos = 8 -> A_pos = 0.648, A_neg = -0.216
    scores = torch.zeros(32)
    scores[:8] = 1.0
    uids = np.array(["p"] * 32, dtype=object)
    data, _ = make_batch(scores, uids)
    cfg = OmegaConf.create({CONFIG: {"k": 4}})
    adv = compute_advantage(data, adv_estimator="passk_analytic", config=cfg).batch["advantages"]
    first = adv[torch.arange(32), 0]
    torch.testing.assert_close(first[:8], torch.full((8,), 0.648), atol=5e-4, rtol=0)
    torch.testing.assert_close(first[8:], torch.full((24,), -0.216), atol=5e-4, rtol=0)


def test_integer_uids_and_binarize_threshold() -> None:
    scores = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0])  # DAPO-style +-1
    uids = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=object)
    data, mask = make_batch(scores, uids)
    cfg = OmegaConf.create({CONFIG: {"k": 2, "binarize_threshold": 0.0}})
    adv = compute_advantage(data, adv_estimator="passk_analytic", config=cfg).batch["advantages"]
    expected = reference_advantages("passk_analytic", (scores > 0).float(), uids, k=2)
    torch.testing.assert_close(adv, expected[:, None] * mask)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({}, "algorithm.passk, which is missing"),
        ({CONFIG: {}}, "needs algorithm.passk.k"),
        ({CONFIG: {"k": 2, "kk": 1}}, r"unknown key\(s\) \['kk'\]"),
        ({CONFIG: {"k": 99}}, "k=99 is larger than the smallest group"),
        ({CONFIG: {"k": 0}}, "k must be an integer >= 1"),
        ({CONFIG: {"k": 2, "binarize_threshold": "x"}}, "binarize_threshold"),
    ],
)
def test_bad_config_raises_clear_error_at_first_call(cfg: dict, match: str) -> None:
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0])
    data, _ = make_batch(scores, np.array(["a", "a", "b", "b"], dtype=object))
    with pytest.raises(ValueError, match=match):
        compute_advantage(data, adv_estimator="passk_analytic", config=OmegaConf.create(cfg))


def test_non_binary_rewards_rejected_by_binary_estimators() -> None:
    scores = torch.tensor([0.5, 0.0, 1.0, 0.0])
    data, _ = make_batch(scores, np.array(["a", "a", "a", "a"], dtype=object))
    with pytest.raises(ValueError, match="binary rewards"):
        compute_advantage(
            data, adv_estimator="passk_analytic", config=OmegaConf.create({CONFIG: {"k": 2}})
        )


def test_adaptive_uses_response_entropy() -> None:
    rng = np.random.default_rng(0)
    uids = ragged_uids(rng, [6, 6, 6, 6])
    B = len(uids)
    scores = torch.as_tensor(rng.integers(0, 2, B), dtype=torch.float32)
    entropy = torch.as_tensor(rng.random(B), dtype=torch.float32)  # per-response token-mean
    data, mask = make_batch(scores, uids)
    cfg = OmegaConf.create({CONFIG: {"k": 2, "quantile": 0.5}})
    with pytest.raises(ValueError, match="trainer_mode=passk_sync"):
        compute_advantage(data, adv_estimator="passk_adaptive", config=cfg)
    with pv.response_entropy(entropy):
        adv = compute_advantage(data, adv_estimator="passk_adaptive", config=cfg)
    keys = sorted(set(uids.tolist()))
    group_entropy = torch.tensor(
        [float(entropy[torch.as_tensor(uids == k)].double().mean()) for k in keys]
    )
    expected = reference_advantages("passk_adaptive", scores, uids, k=2, entropy=group_entropy)
    torch.testing.assert_close(adv.batch["advantages"], expected[:, None] * mask)


def test_unlikeliness_uses_per_response_seq_logp() -> None:
    assert "unlikeliness" in passk.list_estimators(), "passk has no estimator 'unlikeliness' yet"
    rng = np.random.default_rng(1)
    uids = ragged_uids(rng, [6, 4, 6])
    B = len(uids)
    scores = torch.as_tensor(rng.integers(0, 2, B), dtype=torch.float32)
    seq_logp = -torch.as_tensor(rng.random(B) * 3, dtype=torch.float32)  # token-mean log-prob
    data, mask = make_batch(scores, uids)
    cfg = OmegaConf.create({CONFIG: {"beta": 0.25}})
    with pytest.raises(ValueError, match="trainer_mode=passk_sync"):
        compute_advantage(data, adv_estimator="unlikeliness", config=cfg)
    with pv.response_inputs(seq_logp=seq_logp):
        adv = compute_advantage(data, adv_estimator="unlikeliness", config=cfg).batch["advantages"]
    # loop reference: the same [G, N] layout as reference_advantages, seq_logp alongside
    r, m, rows, cols = pv.group_by_uid(scores, uids)
    grid = torch.zeros(r.shape, dtype=torch.float64)
    grid[rows, cols] = seq_logp.double()
    core = passk.compute_advantages("unlikeliness", r, m, seq_logp=grid, beta=0.25)
    torch.testing.assert_close(adv, core[rows, cols].float()[:, None] * mask)
    assert not torch.equal(
        core, passk.compute_advantages("unlikeliness", r, m, seq_logp=-grid, beta=0.25)
    ), "seq_logp did not change the advantages"


def test_estimator_without_parameters_needs_no_passk_key() -> None:
    assert "rloo" in passk.list_estimators(), "passk has no estimator 'rloo' yet"
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    uids = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    data, mask = make_batch(scores, uids)
    adv = compute_advantage(data, adv_estimator="passk_rloo", config=OmegaConf.create({}))
    expected = reference_advantages("rloo", scores, uids)
    torch.testing.assert_close(adv.batch["advantages"], expected[:, None] * mask)


def test_response_token_mean_ignores_padding() -> None:
    values = torch.tensor([[1.0, 2.0, float("nan")], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    torch.testing.assert_close(pv.response_token_mean(values, mask), torch.tensor([1.5, 4.0]))


def _actor_config(**kw):
    from verl.workers.config import ActorConfig

    base = dict(
        strategy="fsdp",
        rollout_n=4,
        clip_ratio=0.2,
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
        clip_ratio_c=3.0,
        ppo_micro_batch_size_per_gpu=1,
    )
    base.update(kw)
    return ActorConfig(**base)


@pytest.mark.parametrize(
    "mode",
    [
        "token-mean",
        "token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-sum-norm",
    ],
)
@pytest.mark.parametrize(
    "global_info", [{}, {"dp_size": 2, "batch_num_tokens": 40, "global_batch_size": 12}]
)
def test_policy_loss_matches_verl_vanilla(mode: str, global_info: dict) -> None:
    g = torch.Generator().manual_seed(0)
    B, T = 6, 7
    old = torch.randn(B, T, generator=g) - 2.0
    new = (old + 0.5 * torch.randn(B, T, generator=g)).requires_grad_(True)
    adv = torch.randn(B, generator=g)[:, None].expand(B, T).contiguous()
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None] < lengths[:, None]
    cfg = _actor_config()
    cfg.global_batch_info.update(global_info)

    ours_fn = core_algos.get_policy_loss_fn("passk_ppo_clip")
    verl_fn = core_algos.get_policy_loss_fn("vanilla")
    ours, metrics = ours_fn(old, new, adv, mask, mode, cfg, None)
    ref, _ = verl_fn(old, new, adv, mask, mode, cfg, None)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    (g_ours,) = torch.autograd.grad(ours, new)
    (g_ref,) = torch.autograd.grad(ref, new)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-6)
    assert all(isinstance(v, float) for v in metrics.values())


def test_policy_loss_logs_verl_metric_names_with_verl_values() -> None:
    g = torch.Generator().manual_seed(3)
    B, T = 8, 6
    old = torch.randn(B, T, generator=g) - 2.0
    new = old + 1.5 * torch.randn(B, T, generator=g)  # wide ratios: clip and dual clip fire
    adv = torch.randn(B, generator=g)[:, None].expand(B, T).contiguous()
    mask = torch.rand(B, T, generator=g) > 0.2
    cfg = _actor_config()
    ours = core_algos.get_policy_loss_fn("passk_ppo_clip")(old, new, adv, mask, "token-mean", cfg)[
        1
    ]
    ref = core_algos.get_policy_loss_fn("vanilla")(old, new, adv, mask, "token-mean", cfg)[1]
    assert set(ref) == {"actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower"}
    assert ref["actor/pg_clipfrac"] > 0 and ref["actor/pg_clipfrac_lower"] > 0
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-7), key
    # verl averages loss metrics over micro-batches: no max/min that would be a mean
    assert not {"actor/ratio_max", "actor/ratio_min", "actor/clip_frac"} & set(ours)


@pytest.mark.parametrize("verl_name", VERL_LOSSES)
def test_passk_losses_registered_with_verl_match_core(verl_name: str) -> None:
    from passk.core.aggregate import aggregate_loss
    from passk.core.policy_losses import get_policy_loss, list_policy_losses

    name = verl_name.removeprefix("passk_")
    assert name in list_policy_losses(), f"passk has no policy loss {name!r} yet"
    assert verl_name in pv.PASSK_POLICY_LOSSES
    fn = core_algos.get_policy_loss_fn(verl_name)
    g = torch.Generator().manual_seed(4)
    B, T = 6, 5
    old = torch.randn(B, T, generator=g) - 2.0
    new = (old + 0.3 * torch.randn(B, T, generator=g)).requires_grad_(True)
    adv = torch.randn(B, generator=g)[:, None].expand(B, T).contiguous()
    mask = torch.rand(B, T, generator=g) > 0.2
    mask[:, 0] = True
    cfg = _actor_config(clip_ratio_low=0.1, clip_ratio_high=0.15, tau_pos=1.0, tau_neg=1.05)
    loss, metrics = fn(old, new, adv, mask, "token-mean", cfg, None)
    spec = get_policy_loss(name)
    params = pv.policy_loss_params_from_verl(name, cfg)
    for field, key in (("eps_low", "clip_ratio_low"), ("eps_high", "clip_ratio_high")):
        if hasattr(params, field):  # verl's clip ratios reach the passk spec
            assert getattr(params, field) == pytest.approx(getattr(cfg, key))
    loss_mat, _ = spec.compute(new, old, adv, mask, params)
    ref = aggregate_loss(loss_mat, mask, "token-mean", normalizer=mask.sum())
    torch.testing.assert_close(loss, ref)
    (grad,) = torch.autograd.grad(loss, new)
    assert torch.isfinite(grad).all() and grad[~mask].abs().sum() == 0
    assert all(isinstance(v, float) for v in metrics.values())
    # micro-batch invariance with verl's global token count
    cfg.global_batch_info.update({"dp_size": 1, "batch_num_tokens": int(mask.sum())})
    halves = sum(
        fn(old[s], new[s].detach(), adv[s], mask[s], "token-mean", cfg, None)[0]
        for s in (slice(0, 2), slice(2, B))
    )
    torch.testing.assert_close(halves, loss.detach())


@pytest.mark.parametrize("name", NOT_VERL_LOSSES)
def test_losses_needing_more_than_verls_signature_are_not_registered(name: str) -> None:
    from passk.core.policy_losses import get_policy_loss, list_policy_losses

    assert name in list_policy_losses(), f"passk has no policy loss {name!r} yet"
    assert get_policy_loss(name).needs, f"{name} should declare what verl cannot pass"
    assert f"passk_{name}" not in pv.PASSK_POLICY_LOSSES
    assert f"passk_{name}" not in core_algos.POLICY_LOSS_REGISTRY


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"clip_ratio_c": 0.5}, r"clip_ratio_c.*dual_clip"),
        ({"clip_ratio_low": 1.5}, r"clip_ratio_low.*eps_low"),
    ],
)
def test_policy_loss_rejects_bad_clip_config_naming_verl_key(cfg: dict, match: str) -> None:
    base = {"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 3.0}
    x = torch.zeros(2, 3)
    fn = core_algos.get_policy_loss_fn("passk_ppo_clip")
    with pytest.raises(ValueError, match=match):
        fn(x, x, x, torch.ones(2, 3, dtype=torch.bool), "token-mean", OmegaConf.create(base | cfg))


def test_policy_loss_with_rollout_is_weights_and_micro_batches() -> None:
    g = torch.Generator().manual_seed(1)
    B, T = 8, 5
    old = torch.randn(B, T, generator=g)
    new = old + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, T, generator=g)
    mask = torch.rand(B, T, generator=g) > 0.3
    w = torch.rand(B, T, generator=g)
    fn = core_algos.get_policy_loss_fn("passk_ppo_clip")
    cfg = _actor_config()
    full, _ = fn(old, new, adv, mask, "token-mean", cfg, w)
    ref, _ = core_algos.get_policy_loss_fn("vanilla")(old, new, adv, mask, "token-mean", cfg, w)
    torch.testing.assert_close(full, ref)
    # verl passes the global token count; the halves then add up to the whole
    cfg.global_batch_info.update({"dp_size": 1, "batch_num_tokens": int(mask.sum())})
    halves = sum(
        fn(old[s], new[s], adv[s], mask[s], "token-mean", cfg, w[s])[0]
        for s in (slice(0, 3), slice(3, B))
    )
    torch.testing.assert_close(halves, full)


def test_reimport_is_harmless() -> None:
    before = {n: core_algos.ADV_ESTIMATOR_REGISTRY[n] for n in pv.VERL_ESTIMATORS}
    losses = {n: core_algos.POLICY_LOSS_REGISTRY[n] for n in pv.PASSK_POLICY_LOSSES}
    importlib.reload(pv)
    pv.register()
    for verl_name, name in pv.VERL_ESTIMATOR_NAMES.items():
        assert core_algos.ADV_ESTIMATOR_REGISTRY[verl_name].__passk_verl__ == name
    assert set(before) <= set(core_algos.ADV_ESTIMATOR_REGISTRY)
    for name in losses:
        assert core_algos.POLICY_LOSS_REGISTRY[name].__passk_verl__ == name


def test_entry_point_loads_the_plugin() -> None:
    ep = importlib.metadata.EntryPoint(
        name="passk", value="passk.integrations.verl", group="verl.plugins"
    )
    assert ep.load() is sys.modules["passk.integrations.verl"]
    declared = [
        e for e in importlib.metadata.entry_points(group="verl.plugins") if e.name == "passk"
    ]
    if not declared:
        pytest.skip("the installed passk does not declare the verl.plugins entry point yet")
    assert declared[0].value == "passk.integrations.verl"


def _registered_in_fresh_process(env: dict[str, str]) -> str:
    code = (
        "import sys, verl\n"
        "from verl.trainer.ppo import core_algos as c\n"
        "print('passk.integrations.verl' in sys.modules, 'passk_analytic' in c.ADV_ESTIMATOR_REGISTRY)\n"
    )
    full_env = {**os.environ, "PASSK_VERL_TRAINER": "0", **env}
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_env_var_loads_plugin_on_import_verl() -> None:
    env = {
        "VERL_USE_EXTERNAL_MODULES": "passk.integrations.verl",
        "VERL_USE_EXTERNAL_PLUGINS": "none",
    }
    assert _registered_in_fresh_process(env) == "True True"


@pytest.mark.parametrize(
    ("estimator", "field", "params"),
    [("passk_adaptive", "entropy", {"k": 2}), ("unlikeliness", "old_log_probs", {"beta": 0.25})],
)
def test_passk_sync_trainer_exposes_per_response_inputs(
    monkeypatch: pytest.MonkeyPatch, estimator: str, field: str, params: dict
) -> None:
    pytest.importorskip("transfer_queue", reason="verl's v1 trainer needs TransferQueue")
    assert estimator in passk.list_estimators(), f"passk has no estimator {estimator!r} yet"
    from tensordict import TensorDict
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    trainer_cls = get_trainer_cls(pv.TRAINER_MODE)
    assert issubclass(trainer_cls, PPOTrainerSync)

    rng = np.random.default_rng(2)
    uids = ragged_uids(rng, [4, 4, 4])
    B, T = len(uids), 5
    scores = torch.as_tensor(rng.integers(0, 2, B), dtype=torch.float32)
    data, mask = make_batch(scores, uids, T=T)
    token_values = torch.as_tensor(rng.random((B, T)), dtype=torch.float32)
    if field == "old_log_probs":
        token_values = -3 * token_values

    import transfer_queue as tq

    def fake_get(keys, partition_id, select_fields):  # what TransferQueue holds for the batch
        assert set(select_fields) == {field, "response_mask"}
        return TensorDict({field: token_values, "response_mask": mask}, batch_size=[B])

    cfg = OmegaConf.create({"algorithm": {"adv_estimator": estimator, CONFIG: params}})

    def parent_compute(self, batch, metrics):  # verl's own step, on the same rows
        return compute_advantage(data, adv_estimator=estimator, config=cfg.algorithm)

    monkeypatch.setattr(tq, "kv_batch_get", fake_get)
    monkeypatch.setattr(PPOTrainerSync, "_compute_advantage", parent_compute)
    trainer = object.__new__(trainer_cls)
    trainer.config = cfg
    batch = type("Meta", (), {"keys": list(range(B)), "partition_id": "train"})()
    metrics: dict = {}
    out = trainer._compute_advantage(batch, metrics)

    per_row = pv.response_token_mean(token_values, mask)  # [B]
    if estimator == "passk_adaptive":
        keys = sorted(set(uids.tolist()))
        group_entropy = torch.tensor(
            [float(per_row[torch.as_tensor(uids == k)].double().mean()) for k in keys]
        )
        expected = reference_advantages(estimator, scores, uids, k=2, entropy=group_entropy)
        assert "passk/response_entropy_mean" in metrics
    else:  # per response, token-mean of the old log-probs, in the group layout
        r, m, rows, cols = pv.group_by_uid(scores, uids)
        grid = torch.zeros(r.shape, dtype=torch.float64)
        grid[rows, cols] = per_row.double()
        expected = passk.compute_advantages(estimator, r, m, seq_logp=grid, **params)[rows, cols]
        assert "passk/response_seq_logp_mean" in metrics
    torch.testing.assert_close(out.batch["advantages"], expected.float()[:, None] * mask)


def test_example_config_composes_and_passes_verl_validation() -> None:
    hydra = pytest.importorskip("hydra")
    from pathlib import Path

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config_dir = Path(__file__).resolve().parents[2] / "examples" / "verl"
    with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = hydra.compose(config_name="passk_trainer", overrides=["trainer.nnodes=2"])
    OmegaConf.resolve(cfg)
    validate_config(
        config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
    )
    algo = cfg.algorithm
    params, adapter = pv.passk_params_from_config(algo.adv_estimator, algo)
    assert (algo.adv_estimator, params, adapter) == (
        "passk_analytic",
        {"k": 8},
        {"binarize_threshold": 0.5},
    )
    actor = cfg.actor_rollout_ref.actor
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.loss_agg_mode) == (
        0.2,
        0.28,
        "token-mean",
    )
    assert actor.optim.lr == 1e-6 and cfg.actor_rollout_ref.rollout.n == 32
    assert core_algos.get_policy_loss_fn(actor.policy_loss.loss_mode) is not None
    assert not actor.use_kl_loss and not algo.use_kl_in_reward
    # passk_sync: verl's sync trainer + passk's validation metrics (and per-response inputs)
    assert cfg.trainer.v1.trainer_mode == pv.TRAINER_MODE
    from passk.integrations.verl_validation import validation_options_from_config

    opts = validation_options_from_config(cfg.trainer)
    rollout = cfg.actor_rollout_ref.rollout
    assert rollout.val_kwargs.n > 1 and rollout.val_kwargs.do_sample
    assert rollout.val_kwargs.temperature > 0
    assert max(opts.ks) <= rollout.val_kwargs.n


EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "verl"
PASSK_ENV = ("PASSK_TRAIN_FILES", "PASSK_VAL_FILES", "PASSK_MODEL")


def compose(config_dir: Path, name: str, overrides: list[str]):
    hydra = pytest.importorskip("hydra")
    with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra.compose(config_name=name, overrides=overrides)


def script_overrides(tmp_path: Path, env: dict[str, str], *extra: str) -> list[str]:
    """The Hydra overrides run_passk_qwen7b.sh gives verl's main_ppo (python replaced)."""
    fake = tmp_path / "fake-python"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n')
    fake.chmod(0o755)
    out = tmp_path / "argv.txt"
    base = {k: v for k, v in os.environ.items() if k not in PASSK_ENV}
    subprocess.run(
        ["bash", str(EXAMPLE_DIR / "run_passk_qwen7b.sh"), "train", *extra],
        env={**base, **env, "PYTHON": str(fake), "ARGS_OUT": str(out)},
        check=True,
        timeout=60,
    )
    argv = out.read_text().splitlines()
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"], argv
    return argv[argv.index("--config-name") + 2 :]


def test_script_passes_user_paths_that_survive_resolution_on_a_ray_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "PASSK_TRAIN_FILES": "/data/user/train.parquet",
        "PASSK_VAL_FILES": "/data/user/test.parquet",
        "PASSK_MODEL": "/models/my-qwen",
    }
    overrides = script_overrides(tmp_path, env, "trainer.total_epochs=5")
    cfg = compose(EXAMPLE_DIR, "passk_trainer", overrides)
    for key in PASSK_ENV:  # the TaskRunner resolves with the env `ray start` had: none of these
        monkeypatch.delenv(key, raising=False)
    OmegaConf.resolve(cfg)
    assert cfg.data.train_files == env["PASSK_TRAIN_FILES"]
    assert cfg.data.val_files == env["PASSK_VAL_FILES"]
    assert cfg.actor_rollout_ref.model.path == env["PASSK_MODEL"]
    assert cfg.trainer.total_epochs == 5 and cfg.trainer.nnodes == 2
    # unset variables keep the YAML's defaults
    default = compose(EXAMPLE_DIR, "passk_trainer", script_overrides(tmp_path, {}))
    assert default.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B-Instruct"
    assert default.data.train_files == "~/data/math/train.parquet"


def test_plus_prefix_is_for_keys_the_config_lacks() -> None:
    from hydra.errors import ConfigCompositionException

    # the example YAML has algorithm.passk: override without "+", as docs/integrations/verl.md says
    assert compose(EXAMPLE_DIR, "passk_trainer", ["algorithm.passk.k=4"]).algorithm.passk.k == 4
    with pytest.raises(ConfigCompositionException, match=r"already at 'algorithm\.passk\.k'"):
        compose(EXAMPLE_DIR, "passk_trainer", ["+algorithm.passk.k=4"])
    # verl's own ppo_trainer has no passk key: there "+" adds it, and is required
    import verl.trainer

    verl_dir = Path(verl.trainer.__file__).parent / "config"
    plus = compose(verl_dir, "ppo_trainer", ["+algorithm.passk.k=4"])
    assert plus.algorithm.passk.k == 4
    with pytest.raises(
        ConfigCompositionException, match=r"append to your config use \+algorithm\.passk\.k"
    ):
        compose(verl_dir, "ppo_trainer", ["algorithm.passk.k=4"])


def test_fresh_import_verl_registers_passk_sync() -> None:
    pytest.importorskip(
        "transfer_queue", reason="passk_sync needs verl's v1 trainer (TransferQueue)"
    )
    code = (
        "import verl\n"
        "from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY as r\n"
        f"print(getattr(r.get({pv.TRAINER_MODE!r}), '__passk_verl__', None))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERL_", "PASSK_VERL"))}
    declared = any(e.name == "passk" for e in importlib.metadata.entry_points(group="verl.plugins"))
    if not declared:  # the entry point (verl logs its failures at DEBUG only) or the env var
        env["VERL_USE_EXTERNAL_MODULES"] = "passk.integrations.verl"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-3000:]


def test_new_keys_compose_on_verls_own_config() -> None:
    import verl.trainer

    from passk.integrations.verl_validation import validation_options_from_config

    verl_dir = Path(verl.trainer.__file__).parent / "config"
    overrides = [
        "algorithm.adv_estimator=passk_mixture",
        "+algorithm.passk.weights={1:0.5,8:0.5}",
        "+trainer.passk_val.ks=[1,4,16]",
        "trainer.v1.trainer_mode=passk_sync",
    ]
    cfg = compose(verl_dir, "ppo_trainer", overrides)
    params, _ = pv.passk_params_from_config("passk_mixture", cfg.algorithm)
    assert params == {"weights": {1: 0.5, 8: 0.5}}
    assert validation_options_from_config(cfg.trainer).ks == (1, 4, 16)


@pytest.mark.parametrize(
    ("name", "clip", "mode"),
    [
        ("gspo", (3e-4, 4e-4), "token-mean"),
        ("gspo", (3e-4, 4e-4), "seq-mean-token-mean"),
        ("cispo", (0.2, 0.28), "token-mean"),
        ("sapo", (0.2, 0.2), "seq-mean-token-mean"),  # verl's sapo always aggregates so
    ],
)
def test_passk_field_losses_equal_verls_own(name: str, clip: tuple, mode: str) -> None:
    from passk.core.policy_losses import list_policy_losses

    assert name in list_policy_losses(), f"passk has no policy loss {name!r} yet"
    g = torch.Generator().manual_seed(0)
    B, T = 6, 7
    old = torch.randn(B, T, generator=g) - 2.0
    new = old + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, generator=g)[:, None].expand(B, T).contiguous()
    mask = torch.arange(T)[None] < torch.randint(1, T + 1, (B,), generator=g)[:, None]
    cfg = _actor_config(clip_ratio_low=clip[0], clip_ratio_high=clip[1])
    a, b = new.clone().requires_grad_(True), new.clone().requires_grad_(True)
    ours, _ = core_algos.get_policy_loss_fn(f"passk_{name}")(old, a, adv, mask, mode, cfg, None)
    ref, _ = core_algos.get_policy_loss_fn(name)(old, b, adv, mask, mode, cfg, None)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    (ga,), (gb,) = torch.autograd.grad(ours, a), torch.autograd.grad(ref, b)
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


def test_passk_sync_supplies_the_entropy_a_combine_term_needs(monkeypatch) -> None:
    pytest.importorskip("transfer_queue", reason="verl's v1 trainer needs TransferQueue")
    import transfer_queue as tq
    from tensordict import TensorDict
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    terms = [
        {"estimator": "passk_adaptive", "weight": 0.5, "params": {"k": 2}},
        {"estimator": "pass1", "weight": 0.5},
    ]
    rng = np.random.default_rng(3)
    uids = ragged_uids(rng, [4, 4, 4])
    B, T = len(uids), 5
    scores = torch.as_tensor(rng.integers(0, 2, B), dtype=torch.float32)
    data, mask = make_batch(scores, uids, T=T)
    entropy = torch.as_tensor(rng.random((B, T)), dtype=torch.float32)

    def fake_get(keys, partition_id, select_fields):
        assert set(select_fields) == {"entropy", "response_mask"}
        return TensorDict({"entropy": entropy, "response_mask": mask}, batch_size=[B])

    cfg = OmegaConf.create(
        {"algorithm": {"adv_estimator": "passk_combine", CONFIG: {"terms": terms}}}
    )

    def parent_compute(self, batch, metrics):
        return compute_advantage(data, adv_estimator="passk_combine", config=cfg.algorithm)

    monkeypatch.setattr(tq, "kv_batch_get", fake_get)
    monkeypatch.setattr(PPOTrainerSync, "_compute_advantage", parent_compute)
    trainer = object.__new__(get_trainer_cls(pv.TRAINER_MODE))
    trainer.config = cfg
    batch = type("Meta", (), {"keys": list(range(B)), "partition_id": "train"})()
    metrics: dict = {}
    out = trainer._compute_advantage(batch, metrics)

    per_row = pv.response_token_mean(entropy, mask)  # [B]
    keys = sorted(set(uids.tolist()))
    group_entropy = torch.tensor(
        [float(per_row[torch.as_tensor(uids == k)].double().mean()) for k in keys]
    )
    expected = 0.5 * reference_advantages(
        "passk_adaptive", scores, uids, k=2, entropy=group_entropy
    ) + 0.5 * reference_advantages("pass1", scores, uids)
    assert "passk/response_entropy_mean" in metrics
    torch.testing.assert_close(out.batch["advantages"], expected[:, None] * mask)


def test_combine_bad_term_names_the_term_in_verl() -> None:
    from passk.integrations.verl.advantages import estimator_needs

    data, _ = make_batch(torch.tensor([1.0, 0.0, 1.0, 0.0]), np.array(["a", "a", "b", "b"]))
    bad = [{"estimator": "pass1"}, {"estimator": "passk_analytic", "params": {"kk": 2}}]
    cfg = OmegaConf.create({CONFIG: {"terms": bad}})
    with pytest.raises(ValueError, match=r"algorithm.passk\): terms\[1\] \(passk_analytic\)"):
        compute_advantage(data, adv_estimator="passk_combine", config=cfg)
    with pytest.raises(ValueError, match=r"algorithm.passk\): terms\[1\] \(passk_analytic\)"):
        estimator_needs("combine", cfg)  # what passk_sync asks before reading the batch
