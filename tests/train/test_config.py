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
        (  # the estimator's default k (4) must fit the group too
            ["rollout.n=2"],
            "algorithm.stages.0.params.k=4 (the default of passk_analytic) must be between 1 "
            "and rollout.n=2",
        ),
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
            "unknown policy loss 'nope'; valid: cispo, clip_cov, dppo_kl, dppo_tv, gspo, kl_cov, ppo_clip, sapo, simko",
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
        (["task.score_timeout=-5"], "task.score_timeout must be > 0 or null, got -5"),
        (["loss.entropy_target=-0.1"], "loss.entropy_target must be >= 0 or null, got -0.1"),
        (["loss.entropy_coef_delta=0"], "loss.entropy_coef_delta must be > 0, got 0"),
        (
            ["loss.entropy_coef_min=0.5", "loss.entropy_coef_max=0.1"],
            "loss.entropy_coef_max=0.1 must be >= loss.entropy_coef_min=0.5",
        ),
        (
            ["loss.entropy_target=0.2", "loss.entropy_coef=2.0"],
            "loss.entropy_coef=2.0 (the adaptive coefficient's initial value) must be in",
        ),
        (["loss.entropic_ki=-1"], "loss.entropic_ki must be >= 0, got -1"),
        (["loss.entropic_prob=1.0"], "loss.entropic_prob must be in [0, 1), got 1.0"),
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


def _bounded_fields(cls=TrainConfig, prefix=""):
    """(path, Range) of every field that declares its bounds, read from the annotations."""
    import dataclasses
    import typing

    from passk.coerce import bounds_of

    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint, path = hints[f.name], f"{prefix}{f.name}"
        # a section, or an optional one (model.lora); stages are checked in their own test
        inner = [
            a for a in typing.get_args(hint) if isinstance(a, type) and dataclasses.is_dataclass(a)
        ]
        if typing.get_origin(hint) is tuple:
            continue
        if dataclasses.is_dataclass(hint) or inner:
            yield from _bounded_fields(
                hint if dataclasses.is_dataclass(hint) else inner[0], path + "."
            )
        elif bounds_of(hint) is not None:
            yield path, bounds_of(hint)


BOUNDED = list(_bounded_fields())


def test_the_single_field_bounds_are_declared_on_the_fields():
    paths = {p for p, _ in BOUNDED}
    assert len(paths) >= 45
    assert {"rollout.n", "optim.lr", "eval.top_p", "model.lora.dropout", "log.samples"} <= paths


@pytest.mark.parametrize(("path", "bounds"), BOUNDED, ids=[p for p, _ in BOUNDED])
def test_every_declared_bound_is_enforced_with_its_path(path, bounds):
    low = bounds.gt if bounds.gt is not None else bounds.ge
    bad = low - 1 if low is not None else bounds.lt if bounds.lt is not None else bounds.le + 1
    assert not bounds.holds(bad)
    if path.startswith("model.lora."):
        override = f"model.lora={{{path.rsplit('.', 1)[1]}: {bad}}}"
    else:
        override = f"{path}={bad}"
    with pytest.raises(ValueError, match=rf"^{path.replace('.', r'[.]')} must be "):
        load_config(None, [override])
    # the value just inside the bounds is accepted by the field itself
    good = bounds.gt + 0.5 if bounds.gt is not None else bounds.ge
    if good is None:
        good = bounds.lt - 0.5 if bounds.lt is not None else bounds.le
    assert bounds.holds(good)


def test_bounds_hold_for_configs_built_in_python():
    import dataclasses

    from passk.train.config import AlgorithmConfig, OptimConfig, StageConfig

    with pytest.raises(ValueError, match=r"^optim\.lr must be > 0, got -1\.0$"):
        OptimConfig(lr=-1.0)
    with pytest.raises(ValueError, match=r"^optim\.target_kl must be > 0 or null, got 0$"):
        dataclasses.replace(OptimConfig(), target_kl=0)
    # a stage's path has its index: validate() checks the whole tree with its paths
    stages = (StageConfig(steps=3), StageConfig(window=0))
    with pytest.raises(ValueError, match=r"^algorithm\.stages\.1\.window must be > 0, got 0$"):
        validate(TrainConfig(algorithm=AlgorithmConfig(stages=stages)))
    with pytest.raises(ValueError, match=r"^algorithm\.stages\.1\.steps must be > 0"):
        load_config(None, ["algorithm.stages=[{steps: 2}, {steps: 0}]"])


def test_help_config_states_the_bounds():
    rows = {key: doc for key, _, doc in describe_config()}
    assert rows["rollout.n"].endswith("(valid: > 0)")
    assert rows["eval.top_p"].endswith("(valid: in (0, 1])")
    assert rows["algorithm.noise_p"].endswith("(valid: in [0, 1])")
    assert "valid:" not in rows["task.name"]


def test_evaluation_samples_default_is_stated_once():
    from passk.core.defaults import EVAL_SAMPLES
    from passk.eval.cli import SAMPLING_FLAGS
    from passk.eval.evaluate import EvalConfig

    assert load_config().eval.n == EvalConfig().n == SAMPLING_FLAGS["n"][1] == EVAL_SAMPLES
