"""Config loading, overrides, documentation and validation (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from passk.train.config import TrainConfig, dump_config, load_config, validate
from passk.train.config_docs import describe_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_defaults_validate_and_round_trip(tmp_path):
    cfg = load_config()
    validate(cfg)
    assert cfg == TrainConfig()
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_overrides_parse_yaml_values():
    cfg = load_config(
        None,
        [
            "optim.lr=1e-5",
            "algorithm.params={k: 8}",
            "rollout.n=16",
            "loss.params.dual_clip=3",
            "optim.betas=[0.9, 0.95]",
            "task.reward=null",
        ],
    )
    assert cfg.optim.lr == 1e-5 and cfg.algorithm.stages[0].params == {"k": 8}
    assert cfg.algorithm.params is None  # the shorthand became the one stage
    assert cfg.loss.params == {"dual_clip": 3}
    assert cfg.rollout.batch_size == "auto"
    assert cfg.optim.betas == (0.9, 0.95)


def test_stage_list_from_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "algorithm:\n  stages:\n"
        "    - {steps: 3, estimator: passk_analytic, params: {k: 2}}\n"
        "    - {estimator: pass1, params: {}}\n"
    )
    cfg = load_config(path, ["algorithm.stages.0.params.k=4"])
    stages = cfg.algorithm.stages
    assert [s.estimator for s in stages] == ["passk_analytic", "pass1"]
    assert stages[0].params == {"k": 4} and stages[0].steps == 3
    validate(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["algorithm.estimator=nope"],
            "unknown advantage estimator 'nope'; valid: combine, gated, maxk_analytic",
        ),
        (["algorithm.params.k=9"], "algorithm.stages.0.params.k=9 must be between 1 and rollout"),
        (["optim.lr=-1e-6"], "optim.lr must be > 0, got -1e-06"),
        (["task.name=nope"], "unknown task 'nope'; valid: add"),
        (["task.name=''"], "task.name is missing"),
        (["optim.lrr=1"], "unknown config key 'optim.lrr'; valid keys of 'optim': lr"),
        (["rollout.n=many"], "rollout.n must be an integer, got 'many'"),
        (["algorithm.params={k: 2, q: 1}"], "unknown parameter(s) ['q']"),
        (["algorithm.reward=dense"], "needs binary rewards"),
        (["loss.aggregation=mean"], "loss.aggregation='mean' is not valid; valid: token-mean"),
        (
            ["loss.policy_loss=nope"],
            "unknown policy loss 'nope'; valid: cispo, clip_cov, gspo, kl_cov, ppo_clip, sapo, simko",
        ),
        (["loss.params={alpha: 0.1}"], "policy loss 'ppo_clip' got unknown parameter(s) ['alpha']"),
        (["reference.reset_every=5"], "no reference policy is used"),
        (["algorithm.dars=xx"], "algorithm.dars='xx' is not valid; valid: et, hw"),
        (["optim.old_logprobs=rollout", "rollout.top_p=0.9"], "needs rollout.top_p=1"),
        (["task.reward=nope"], "nope"),
        (["steps=0"], "steps must be > 0"),
        (["loss.eps_high=0.3"], "config key 'loss.eps_high' is now 'loss.params.eps_high'"),
        (["model.dtype=fp8"], "model.dtype='fp8' is not valid; valid: fp32, bf16, fp16"),
        (["rollout.batch_size=many"], "rollout.batch_size must be an integer or 'auto'"),
        (["rollout.batch_size=0"], "rollout.batch_size must be > 0"),
        (["eval.top_p=0"], "eval.top_p must be in (0, 1]"),
        (["eval.temperature=-1"], "eval.temperature must be >= 0"),
        (["task.score_timeout=-5"], "task.score_timeout must be > 0, got -5"),
        (
            ["algorithm.estimator=pass1", "algorithm.stages=[{estimator: pass1}]"],
            "algorithm.stages is set, so algorithm.estimator would be ignored",
        ),
    ],
)
def test_invalid_configs_name_the_field(overrides, message):
    with pytest.raises(ValueError) as err:
        validate(load_config(None, overrides))
    assert message in str(err.value)


def test_every_knob_is_documented():
    rows = describe_config()
    assert len(rows) > 60
    undocumented = [key for key, _, doc in rows if not doc]
    assert undocumented == []


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipes_validate(path):
    cfg = load_config(path)
    validate(cfg)
    assert cfg.steps > 0


def test_recipes_cover_the_family():
    names = {p.stem for p in CONFIGS}
    assert {
        "pass1",
        "passk_analytic",
        "passk_then_pass1",
        "passk_combination",
        "passk_exceed",
        "passk_adaptive",
        "passk_full",
        "passk_bootstrap",
        "maxk_partial",
        "prorl",
        "dars_et",
        "dars_hw",
        "simko",
        "dph_forward_kl",
        "dph_js",
        "rl_grokking",
        "noise_reward",
        "entropy_reg",
    } <= names


def test_fingerprint_ignores_length_and_logging_only():
    a = load_config()
    assert a.fingerprint() == load_config(None, ["steps=99", "log.progress=false"]).fingerprint()
    assert a.fingerprint() == load_config(None, ["model.threads=2"]).fingerprint()
    assert a.fingerprint() != load_config(None, ["optim.lr=3e-5"]).fingerprint()


def test_kl_estimator_choices_are_the_cores():
    import typing

    from passk.core.kl import KL_ESTIMATORS
    from passk.train.config import LossConfig

    hints = typing.get_type_hints(LossConfig)
    assert set(typing.get_args(hints["kl_estimator"])) == set(KL_ESTIMATORS)
