"""The embedded RLVR trainer: one explicit loop, read it top to bottom in :func:`train`.

Each step: draw prompts -> sample N responses each -> score -> reward transforms ->
advantages from the registry (per the current stage) -> dynamic sampling or DARS extra
rollouts -> PPO update (micro-batched, explicit normaliser) -> refresh the sampling copy
-> metrics, reference resets, evaluation, checkpoint.

Everything random is derived from ``(config.seed, step, purpose)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from passk.core.advantages import compute_advantages, get_estimator
from passk.core.allocation import dars_extra_rollouts
from passk.core.metrics import answer_diversity, pass_at_k
from passk.core.rewards import noisy_rewards, overlong_penalty
from passk.tasks.base import Problem, Score
from passk.train import checkpoint as ckpt
from passk.train.config import (
    RESUMABLE_KEYS,
    StageConfig,
    TrainConfig,
    dump_config,
    load_config,
    validate,
)
from passk.train.update import (
    DPHBatch,
    UpdateBatch,
    UpdateSettings,
    behaviour_pass,
    needs_topk,
    policy_update,
)

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


def mix_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from the run seed and a purpose, e.g. ``("rollout", step, round)``."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


# ---------------------------------------------------------------------------------------------
# prompts and stages: small state machines whose state goes into checkpoints
# ---------------------------------------------------------------------------------------------


class PromptSampler:
    """Epochs over the training problems, each in a seeded random order."""

    def __init__(self, problems: Sequence[Problem], seed: int) -> None:
        if not problems:
            raise ValueError("the task has no training problems")
        self.problems = list(problems)
        self.seed = seed
        self.drawn = 0

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        random.Random(mix_seed(self.seed, "epoch", epoch)).shuffle(order)
        return order

    def draw(self, count: int) -> list[Problem]:
        out = []
        for _ in range(count):
            epoch, pos = divmod(self.drawn, len(self.problems))
            out.append(self.problems[self._order(epoch)[pos]])
            self.drawn += 1
        return out


class StageSchedule:
    """Which stage (estimator, params, reward kind) is active; switches by steps or reward."""

    def __init__(self, stages: Sequence[StageConfig]) -> None:
        self.stages = list(stages)
        self.index = 0
        self.start = 1  # first step of the current stage
        self.rewards: list[float] = []  # train reward means of the current stage

    @property
    def stage(self) -> StageConfig:
        return self.stages[self.index]

    def params(self, step: int) -> dict[str, Any]:
        """The stage's estimator parameters at ``step`` (k annealed when configured)."""
        s = self.stage
        params = dict(s.params)
        if s.k_final is not None and s.steps is not None:
            k0 = int(params.get("k", get_estimator(s.estimator).params().k))
            frac = (step - self.start) / max(s.steps - 1, 1)
            params["k"] = round(k0 + (s.k_final - k0) * min(max(frac, 0.0), 1.0))
        return params

    def observe(self, step: int, reward_mean: float) -> bool:
        """Record a finished step; advance to the next stage when this one ends."""
        s = self.stage
        if math.isfinite(reward_mean):
            self.rewards.append(reward_mean)
        if self.index == len(self.stages) - 1:
            return False
        done = s.steps is not None and step - self.start + 1 >= s.steps
        if s.until_reward is not None and len(self.rewards) >= s.window:
            done |= sum(self.rewards[-s.window :]) / s.window >= s.until_reward
        if done:
            self.index += 1
            self.start = step + 1
            self.rewards = []
        return done

    def state_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start": self.start, "rewards": list(self.rewards)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index, self.start, self.rewards = state["index"], state["start"], state["rewards"]


# ---------------------------------------------------------------------------------------------
# rollouts as scored samples
# ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One scored response (1-D tensors, no padding)."""

    prompt_ids: Tensor  # [P]
    response_ids: Tensor  # [L]
    logprobs: Tensor  # [L] sampling log-probs
    entropy: Tensor  # [L] sampling entropy
    truncated: bool
    text: str
    score: Score | None = None
    reward: float = 0.0


@dataclass
class Group:
    problem: Problem
    samples: list[Sample] = field(default_factory=list)
    advantages: Tensor | None = None  # [len(samples)]

    @property
    def correct(self) -> list[bool]:
        return [bool(s.score and s.score.correct) for s in self.samples]


def sample_groups(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    counts: Sequence[int],
    *,
    config: TrainConfig,
    seed: int,
    first_index: Sequence[int] | None = None,
) -> list[list[Sample]]:
    """``counts[i]`` fresh responses to ``problems[i]``; sample j of problem i is seeded by
    ``(seed, problem id, first_index[i] + j)``."""
    from passk.rollout.generate import SamplingParams, generate

    r = config.rollout
    first_index = first_index or [0] * len(problems)
    prompts, keys = [], []
    for i, (p, count, first) in enumerate(zip(problems, counts, first_index)):
        for j in range(count):
            prompts.append(p.prompt)
            keys.append(f"{i}:{p.id}#{first + j}")  # i: a prompt drawn twice gets new samples
    if not prompts:
        return [[] for _ in problems]
    out = generate(
        model,
        tokenizer,
        prompts,
        n=1,
        params=SamplingParams(r.temperature, r.top_p, r.max_new_tokens),
        seed=seed,
        batch_size=r.batch_size,
        keys=keys,
        system_prompt=config.task.system_prompt,
        with_entropy=True,
    )
    assert out.entropy is not None
    samples = []
    for b in range(len(out)):
        length = int(out.lengths[b])
        samples.append(
            Sample(
                prompt_ids=out.prompt_ids[b][out.prompt_mask[b]],
                response_ids=out.response_ids[b, :length],
                logprobs=out.logprobs[b, :length],
                entropy=out.entropy[b, :length],
                truncated=bool(out.truncated[b]),
                text=out.texts[b],
            )
        )
    groups, pos = [], 0
    for count in counts:
        groups.append(samples[pos : pos + count])
        pos += count
    return groups


def pad_samples(samples: Sequence[Sample], pad_id: int) -> dict[str, Tensor]:
    """Left-pad prompts and right-pad responses to common widths."""
    B = len(samples)
    P = max(len(s.prompt_ids) for s in samples)
    T = max(max(len(s.response_ids) for s in samples), 1)
    prompt = torch.full((B, P), pad_id, dtype=torch.long)
    pmask = torch.zeros(B, P, dtype=torch.bool)
    resp = torch.full((B, T), pad_id, dtype=torch.long)
    rmask = torch.zeros(B, T, dtype=torch.bool)
    logp = torch.zeros(B, T)
    for b, s in enumerate(samples):
        p, L = len(s.prompt_ids), len(s.response_ids)
        prompt[b, P - p :] = s.prompt_ids
        pmask[b, P - p :] = True
        resp[b, :L] = s.response_ids
        rmask[b, :L] = True
        logp[b, :L] = s.logprobs
    return {
        "input_ids": torch.cat([prompt, resp], 1),
        "attention_mask": torch.cat([pmask, rmask], 1),
        "response_mask": rmask,
        "rollout_logp": logp,
    }


# ---------------------------------------------------------------------------------------------
# rewards and advantages
# ---------------------------------------------------------------------------------------------


def ragged(
    values: Sequence[Sequence[float]], dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """``[G, N_max]`` values and a bool mask from per-group lists."""
    G, N = len(values), max((len(v) for v in values), default=0)
    out = torch.zeros(G, N, dtype=dtype)
    mask = torch.zeros(G, N, dtype=torch.bool)
    for g, row in enumerate(values):
        out[g, : len(row)] = torch.tensor(list(row), dtype=dtype)
        mask[g, : len(row)] = True
    return out, mask


def assign_rewards(
    groups: Sequence[Group], stage: StageConfig, config: TrainConfig, step: int
) -> None:
    """Sample rewards for the stage's reward kind, then overlong shaping and noise."""
    a = config.algorithm
    per_group = []
    for g in groups:
        row = []
        for s in g.samples:
            assert s.score is not None
            r = float(s.score.correct) if stage.reward == "binary" else float(s.score.reward)
            if a.overlong_cache:
                length = torch.tensor([len(s.response_ids)])
                r += float(
                    overlong_penalty(length, config.rollout.max_new_tokens, a.overlong_cache)
                )
            row.append(r)
        per_group.append(row)
    if a.noise_p > 0:
        # one seeded draw per (step, prompt, sample): the same flips whatever else is in
        # the batch (dynamic sampling re-scores groups, DARS extends them)
        for g, row in zip(groups, per_group):
            seed = mix_seed(config.seed, "noise", step, g.problem.id)
            row[:] = noisy_rewards(
                torch.tensor(row, dtype=torch.float64)[None], a.noise_p, seed=seed
            )[0].tolist()
    for g, row in zip(groups, per_group):
        for s, r in zip(g.samples, row):
            s.reward = r


def group_entropy(g: Group) -> float:
    """Token-mean entropy per response, then the mean over the group's responses."""
    per = [float(s.entropy.mean()) if len(s.entropy) else 0.0 for s in g.samples]
    return sum(per) / max(len(per), 1)


def assign_advantages(
    groups: Sequence[Group], estimator: str, params: dict[str, Any], seed: int
) -> None:
    """Advantages of every group (ragged groups get a mask) from the registry."""
    if not groups:
        return
    spec = get_estimator(estimator)
    rewards, mask = ragged([[s.reward for s in g.samples] for g in groups])
    params = dict(params)
    if "entropy" in spec.needs:
        params["entropy"] = torch.tensor([group_entropy(g) for g in groups])
    if spec.stochastic and "seed" in {f for f in spec.params.__dataclass_fields__}:
        params["seed"] = seed
    adv = compute_advantages(estimator, rewards, None if bool(mask.all()) else mask, **params)
    for i, g in enumerate(groups):
        g.advantages = adv[i, : len(g.samples)].float()


def has_signal(g: Group) -> bool:
    return g.advantages is not None and bool((g.advantages != 0).any())


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------


@dataclass
class RunState:
    """Everything besides tensors that a checkpoint must restore."""

    step: int = 0
    nan_total: int = 0
    nan_streak: int = 0
    ref_step: int = 0
    best_eval: float | None = None
    evals_since_best: int = 0
    elapsed_s: float = 0.0
    pool: list[str] | None = None  # training problem ids left after the DPH-RL split
    pending_eval: bool = False  # the evaluation after ``step`` has not finished


def _autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    from passk.rollout.models import bf16_supported

    if name == "none":
        return None
    if name == "auto":
        return torch.bfloat16 if bf16_supported(device) else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


def update_settings(config: TrainConfig, autocast: torch.dtype | None) -> UpdateSettings:
    lo, o = config.loss, config.optim
    return UpdateSettings(
        policy_loss=lo.policy_loss,
        policy_loss_params=tuple(sorted(lo.params.items())),
        eps_low=lo.eps_low,
        eps_high=lo.eps_high,
        dual_clip=lo.dual_clip,
        aggregation=lo.aggregation,
        aggregation_constant=lo.aggregation_constant,
        kl_coef=lo.kl_coef,
        kl_estimator=lo.kl_estimator,
        kl_clamp=lo.kl_clamp,
        entropy_coef=lo.entropy_coef,
        dph_generator=config.dph.generator,
        dph_alpha=config.dph.alpha,
        dph_coef=config.dph.coef,
        temperature=config.rollout.temperature,
        ppo_epochs=o.ppo_epochs,
        mini_batches=o.mini_batches,
        micro_batch_size=o.micro_batch_size,
        grad_clip=o.grad_clip,
        autocast=autocast,
    )


class _Interrupts:
    """Ctrl-C raises at once, except during an update: then the step finishes first."""

    def __init__(self) -> None:
        self.in_update = False
        self.pending = False
        self._old: Any = None

    def __enter__(self) -> _Interrupts:
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.in_update and not self.pending:
            self.pending = True  # a second Ctrl-C aborts at once
            return
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@dataclass
class TrainResult:
    out_dir: Path
    steps_done: int
    interrupted: bool
    checkpoint: Path | None
    final_eval: dict[str, Any] | None
    first_eval: dict[str, Any] | None


def prepare_run_dir(
    out: Path, config: TrainConfig, resume: bool
) -> tuple[Path | None, dict | None]:
    """Check the directory before any model loads; return the checkpoint to resume, if any."""
    metrics = out / METRICS_FILE
    if not resume:
        if metrics.exists() or (out / ckpt.CHECKPOINTS).exists():
            raise ValueError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        return None, None
    path = ckpt.latest_checkpoint(out)
    if path is None:
        raise ValueError(f"--resume: no checkpoint in {out / ckpt.CHECKPOINTS}")
    state = ckpt.read_state(path)
    saved = state.get("config", {})
    if state.get("fingerprint") != config.fingerprint():
        now = config.to_dict()
        diff = sorted(
            k
            for k in set(saved) | set(now)
            if k not in RESUMABLE_KEYS and saved.get(k) != now.get(k)
        )
        raise ckpt.CheckpointError(
            f"checkpoint {path} was written by a different config (sections differ: "
            f"{', '.join(diff) or 'unknown'}); only {', '.join(RESUMABLE_KEYS)} may change "
            "on resume"
        )
    if state["step"] > config.steps:
        raise ValueError(
            f"checkpoint {path} is at step {state['step']} but steps={config.steps}; "
            "pass a larger --steps to continue"
        )
    return path, state


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records written after the checkpoint (they will be produced again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the crash
        if rec.get("step", 0) <= last_step:
            keep.append(json.dumps(rec))
    ckpt.write_text_atomic(path, "".join(x + "\n" for x in keep))


class MetricsLog:
    """Appends JSON lines; optional TensorBoard / W&B mirrors."""

    def __init__(self, path: Path, config: TrainConfig, run_name: str) -> None:
        self.path = path
        self.file = path.open("a", encoding="utf-8")
        self.tb: Any = None
        self.wandb: Any = None
        if config.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ValueError("log.tensorboard=true needs the tensorboard package") from e
            self.tb = SummaryWriter(str(path.parent / "tensorboard"))
        if config.log.wandb:
            try:
                import wandb
            except ImportError as e:
                raise ValueError("log.wandb=true needs the wandb package") from e
            self.wandb = wandb.init(
                project=config.log.wandb_project,
                name=run_name,
                config=config.to_dict(),
                resume="allow",
            )

    def write(self, record: dict[str, Any]) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        self.file.write(json.dumps(clean) + "\n")
        self.file.flush()
        nums = {k: v for k, v in clean.items() if isinstance(v, int | float) and k != "step"}
        if self.tb is not None:
            for k, v in nums.items():
                self.tb.add_scalar(k, v, record["step"])
        if self.wandb is not None:
            self.wandb.log(nums, step=record["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


class Trainer:
    """Holds the run's objects; :meth:`step` is one iteration, :func:`train` the loop."""

    def __init__(self, config: TrainConfig, out: Path, *, resume: bool = False) -> None:
        validate(config)
        self.config = config
        self.out = out
        self.resume_from, resume_state = prepare_run_dir(out, config, resume)
        from passk.rollout.models import load_model, resolve_device, resolve_dtype
        from passk.tasks.guard import SafeScorer
        from passk.tasks.registry import get_task
        from passk.tasks.rewards import RewardTask, get_reward

        c = config
        if c.model.threads:
            torch.set_num_threads(c.model.threads)
        task = get_task(c.task.name, **c.task.options)
        if c.task.reward is not None:
            task = RewardTask(task, get_reward(c.task.reward))
        self.task = task
        self.train_problems = task.problems("train", c.task.train_problems, c.seed)
        if not self.train_problems:
            raise ValueError(f"task {c.task.name!r} has no train problems")
        self.eval_problems = (
            task.problems(c.eval.split, c.eval.problems, 0) if c.eval.problems else []
        )
        self.scorer = SafeScorer(task, timeout=c.task.score_timeout)

        self.device = resolve_device(c.model.device)
        t0 = time.perf_counter()
        loaded = load_model(c.model.name, dtype=c.model.dtype, device=c.model.device)
        self.load_s = time.perf_counter() - t0
        self.identity = loaded.identity
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.model.config.use_cache = False
        self.pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        rollout_dtype = resolve_dtype(c.model.rollout_dtype, self.device)
        self.sampler = self.model
        if rollout_dtype != next(self.model.parameters()).dtype:
            self.sampler = copy.deepcopy(self.model).to(rollout_dtype).eval()
            for p in self.sampler.parameters():
                p.requires_grad_(False)
        self.reference = None
        if c.loss.kl_coef > 0:
            self.reference = copy.deepcopy(self.model).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)
        self.autocast = _autocast_dtype(c.model.autocast, self.device)
        self.settings = update_settings(c, self.autocast)
        self.optimizer = self._new_optimizer()
        warm = c.optim.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda i: min(1.0, (i + 1) / warm) if warm else 1.0
        )
        self.prompts = PromptSampler(self.train_problems, c.seed)
        self.schedule = StageSchedule(c.resolved_stages())
        self.state = RunState()
        self.dph: DPHBatch | None = None
        self.last_groups: list[Group] = []  # the groups trained on in the last step
        self._updating_step = 0  # the step whose update last began
        if self.resume_from is not None:
            assert resume_state is not None
            self._restore(self.resume_from, resume_state)

    # --- set-up helpers -----------------------------------------------------------------------

    def _new_optimizer(self) -> torch.optim.Optimizer:
        o = self.config.optim
        return torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=o.lr,
            betas=o.betas,
            weight_decay=o.weight_decay,
            foreach=True,
        )

    def _sync_sampler(self) -> None:
        if self.sampler is self.model:
            return
        with torch.no_grad():
            for dst, src in zip(self.sampler.parameters(), self.model.parameters()):
                dst.copy_(src)

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        ckpt.load_weights(self.model, path)
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
        ckpt.restore_rng(torch.load(path / "rng.pt", weights_only=False))
        extra = torch.load(path / "extra.pt", weights_only=False)
        self.schedule.load_state_dict(state["schedule"])
        self.prompts.drawn = state["prompts_drawn"]
        self.state = RunState(**state["run"])
        if self.state.pool is not None:
            by_id = {p.id: p for p in self.train_problems}
            self.prompts.problems = [by_id[i] for i in self.state.pool]
        if extra.get("dph") is not None:
            self.dph = DPHBatch(**extra["dph"])
        if self.reference is not None:
            if (path / "reference.safetensors").is_file():
                ckpt.load_weights(self.reference, path, "reference.safetensors")
            elif self.state.ref_step:
                raise ckpt.CheckpointError(f"checkpoint {path} lacks reference.safetensors")
        self._sync_sampler()

    def save(self) -> Path:
        c, st = self.config, self.state
        ref = None
        if self.reference is not None and st.ref_step > 0:
            ref = {k: v.detach().cpu() for k, v in self.reference.state_dict().items()}
        extra = {"dph": None if self.dph is None else self.dph.__dict__}
        return ckpt.save_checkpoint(
            self.out,
            st.step,
            model=self.model,
            tokenizer=self.tokenizer,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state={
                "fingerprint": c.fingerprint(),
                "config": c.to_dict(),
                "schedule": self.schedule.state_dict(),
                "prompts_drawn": self.prompts.drawn,
                "run": st.__dict__,
            },
            extra=extra,
            reference=ref,
            keep=c.checkpoint.keep,
        )

    # --- DPH-RL split -------------------------------------------------------------------------

    def dph_split(self) -> dict[str, Any]:
        """Probe every training prompt; near-perfect ones give stored reference samples."""
        c = self.config
        probes = sample_groups(
            self.sampler,
            self.tokenizer,
            self.train_problems,
            [c.dph.probe_samples] * len(self.train_problems),
            config=c,
            seed=mix_seed(c.seed, "dph-probe"),
        )
        stored: list[Sample] = []
        pool = []
        for problem, samples in zip(self.train_problems, probes):
            scores = [self.scorer.score(problem, s.text) for s in samples]
            if all(sc.correct for sc in scores):
                stored.extend(samples)
            else:
                pool.append(problem)
        if not pool:
            raise ValueError(
                "dph: every training prompt is near-perfect (all probe samples correct); "
                "nothing is left to train on"
            )
        self.prompts.problems = pool
        self.state.pool = [p.id for p in pool]
        if stored:
            padded = pad_samples(stored, self.pad_id)
            batch = UpdateBatch(
                input_ids=padded["input_ids"],
                attention_mask=padded["attention_mask"],
                response_mask=padded["response_mask"],
                advantages=torch.zeros(len(stored)),
                correct=torch.ones(len(stored), dtype=torch.bool),
            )
            ref_logp, _, _ = behaviour_pass(self.model, batch, self.settings, topk=False)
            self.dph = DPHBatch(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                response_mask=batch.response_mask,
                ref_logp=ref_logp,
            )
        return {
            "dph/near_perfect_prompts": len(self.train_problems) - len(pool),
            "dph/reference_samples": len(stored),
        }

    def _dph_subset(self, step: int) -> DPHBatch | None:
        if self.dph is None:
            return None
        n = len(self.dph.ref_logp)
        gen = torch.Generator().manual_seed(mix_seed(self.config.seed, "dph", step) % (2**62))
        idx = torch.randperm(n, generator=gen)[: self.config.dph.batch_size]
        return DPHBatch(
            self.dph.input_ids[idx],
            self.dph.attention_mask[idx],
            self.dph.response_mask[idx],
            self.dph.ref_logp[idx],
        )

    # --- one step -----------------------------------------------------------------------------

    def _rollout(
        self, problems: list[Problem], counts: list[int], seed: int, first: list[int] | None = None
    ) -> list[list[Sample]]:
        """Fresh samples from the sampling copy of the policy."""
        return sample_groups(
            self.sampler,
            self.tokenizer,
            problems,
            counts,
            config=self.config,
            seed=seed,
            first_index=first,
        )

    def _score(self, groups: Sequence[Group]) -> None:
        for g in groups:
            for s in g.samples:
                if s.score is None:
                    s.score = self.scorer.score(g.problem, s.text)

    def step(self, interrupts: _Interrupts | None = None) -> dict[str, Any]:
        """One training step; returns its metrics record.

        An exception before the update (Ctrl-C while sampling) leaves the trainer as it
        was before the step, so the last finished step can still be checkpointed.
        """
        drawn = self.prompts.drawn
        try:
            return self._step(interrupts)
        except BaseException:
            if self.state.step < self._updating_step:  # the update had begun: state is mixed
                raise
            self.prompts.drawn = drawn
            raise

    def _step(self, interrupts: _Interrupts | None) -> dict[str, Any]:
        c, st = self.config, self.state
        step = st.step + 1
        stage = self.schedule.stage
        params = self.schedule.params(step)
        a, r = c.algorithm, c.rollout
        t_start = time.perf_counter()
        t_gen = t_score = 0.0
        generated: list[Group] = []
        kept: list[Group] = []
        rounds = 0
        for rnd in range(a.max_rounds if a.dynamic_sampling else 1):
            rounds += 1
            problems = self.prompts.draw(r.prompts_per_step - len(kept))
            t0 = time.perf_counter()
            samples = self._rollout(
                problems, [r.n] * len(problems), mix_seed(c.seed, "rollout", step, rnd)
            )
            t1 = time.perf_counter()
            groups = [Group(p, s) for p, s in zip(problems, samples)]
            self._score(groups)
            t_gen += t1 - t0
            t_score += time.perf_counter() - t1
            generated.extend(groups)
            if a.dynamic_sampling:
                assign_rewards(groups, stage, c, step)
                assign_advantages(
                    groups, stage.estimator, params, mix_seed(c.seed, "adv", step, rnd)
                )
                kept.extend(g for g in groups if has_signal(g))
                if len(kept) >= r.prompts_per_step:
                    kept = kept[: r.prompts_per_step]
                    break
            else:
                kept = groups
        extra_samples = 0
        if a.dars is not None and kept:
            acc = torch.tensor([sum(g.correct) / len(g.samples) for g in kept])
            extra = dars_extra_rollouts(
                acc, r.n, a.dars, n_max=a.dars_n_max, std_normalized=a.dars_std_normalized
            ).tolist()
            t0 = time.perf_counter()
            more = self._rollout(
                [g.problem for g in kept],
                extra,
                mix_seed(c.seed, "dars", step),
                first=[len(g.samples) for g in kept],
            )
            t1 = time.perf_counter()
            for g, s in zip(kept, more):
                g.samples.extend(s)
            self._score(kept)
            t_gen += t1 - t0
            t_score += time.perf_counter() - t1
            extra_samples = sum(extra)
        # final rewards and advantages on the batch that is trained on
        assign_rewards(kept, stage, c, step)
        assign_advantages(kept, stage.estimator, params, mix_seed(c.seed, "adv", step))
        if a.dynamic_sampling:
            for g in generated:
                if g.advantages is None:
                    g.advantages = torch.zeros(len(g.samples))
        train_groups = [g for g in kept if has_signal(g)] if a.dynamic_sampling else kept
        self.last_groups = train_groups

        t_upd0 = time.perf_counter()
        upd: dict[str, float] = {}
        trained_tokens = 0
        if interrupts is not None:
            interrupts.in_update = True
        self._updating_step = step
        try:
            if train_groups:
                upd, trained_tokens = self._update(train_groups, step)
        finally:
            if interrupts is not None:
                interrupts.in_update = False
        t_update = time.perf_counter() - t_upd0

        record = self._step_metrics(step, stage, params, generated, kept, train_groups, upd)
        record.update(
            {
                "rollout/rounds": rounds,
                "rollout/extra_samples": extra_samples,
                "time/generate": t_gen,
                "time/score": t_score,
                "time/update": t_update,
            }
        )
        t_step = time.perf_counter() - t_start
        gen_tokens = sum(len(s.response_ids) for g in generated for s in g.samples)
        record["time/step"] = t_step
        record["time/other"] = max(t_step - t_gen - t_score - t_update, 0.0)
        model_time = t_gen + sum(
            record.get(k, 0.0) for k in ("time/forward_backward", "time/logprob_passes")
        )
        record["time/non_model_frac"] = (
            max(t_step - model_time, 0.0) / t_step if t_step > 0 else None
        )
        record["perf/gen_tokens_per_s"] = gen_tokens / t_gen if t_gen > 0 else None
        record["perf/tokens_per_s"] = gen_tokens / t_step if t_step > 0 else None
        record["perf/trained_tokens"] = trained_tokens
        st.step = step
        st.elapsed_s += t_step
        return record

    def _update(self, groups: list[Group], step: int) -> tuple[dict[str, float], int]:
        c = self.config
        samples = [s for g in groups for s in g.samples]
        padded = pad_samples(samples, self.pad_id)
        adv = torch.cat([g.advantages for g in groups if g.advantages is not None])
        batch = UpdateBatch(
            input_ids=padded["input_ids"],
            attention_mask=padded["attention_mask"],
            response_mask=padded["response_mask"],
            advantages=adv,
            correct=torch.tensor([bool(s.score and s.score.correct) for s in samples]),
        )
        s = self.settings
        on_policy = s.ppo_epochs == 1 and s.mini_batches == 1
        mode = c.optim.old_logprobs
        t0 = time.perf_counter()
        if mode == "rollout":
            batch.old_logp = padded["rollout_logp"]
        elif mode == "recompute" or (mode == "auto" and not on_policy):
            batch.old_logp, batch.old_topk_ids, batch.old_topk_logp = behaviour_pass(
                self.model, batch, s, topk=needs_topk(s.policy_loss)
            )
        if self.reference is not None:
            batch.ref_logp, _, _ = behaviour_pass(self.reference, batch, s, topk=False)
        t_logprobs = time.perf_counter() - t0
        gen = torch.Generator().manual_seed(mix_seed(c.seed, "minibatch", step) % (2**62))
        metrics = policy_update(
            self.model,
            self.optimizer,
            self.scheduler,
            batch,
            s,
            generator=gen,
            dph=self._dph_subset(step),
        )
        t0 = time.perf_counter()
        self._sync_sampler()
        metrics["time/sync"] = time.perf_counter() - t0
        metrics["time/logprob_passes"] = t_logprobs
        return metrics, int(batch.response_mask.sum())

    def _step_metrics(
        self,
        step: int,
        stage: StageConfig,
        params: dict[str, Any],
        generated: list[Group],
        kept: list[Group],
        trained: list[Group],
        upd: dict[str, float],
    ) -> dict[str, Any]:
        k = int(params.get("k", 1)) if get_estimator(stage.estimator).uses_k else 1
        samples = [s for g in generated for s in g.samples]
        rewards = [s.reward for g in kept for s in g.samples]
        n_c = [(len(g.samples), sum(g.correct)) for g in generated]

        def mean(xs: Sequence[float]) -> float:
            return sum(xs) / len(xs) if xs else math.nan

        rec: dict[str, Any] = {
            "kind": "train",
            "step": step,
            "stage": stage.name,
            "stage/index": self.schedule.index,
            "train/k": k,
            "reward/mean": mean(rewards),
            "reward/std": float(torch.tensor(rewards).std(unbiased=False)) if rewards else math.nan,
            "train/pass@1": mean([c / n for n, c in n_c]),
            "train/pass@k": mean([float(pass_at_k(n, c, min(k, n))) for n, c in n_c]),
            "adv/zero_frac": mean([0.0 if has_signal(g) else 1.0 for g in generated]),
            "adv/abs_mean": mean(
                [float(g.advantages.abs().mean()) for g in kept if g.advantages is not None]
            ),
            "rollout/groups": len(generated),
            "rollout/trained_groups": len(trained),
            "rollout/samples": len(samples),
            "rollout/entropy": mean([float(s.entropy.mean()) for s in samples if len(s.entropy)]),
            "response/length_mean": mean([len(s.response_ids) for s in samples]),
            "response/truncated_frac": mean([float(s.truncated) for s in samples]),
            "train/wrong_diversity": answer_diversity(
                [[s.score.extracted if s.score else None for s in g.samples] for g in generated],
                [g.correct for g in generated],
            ),
            "reward/errors": self.scorer.errors,
            "actor/lr": self.scheduler.get_last_lr()[0],
        }
        rec.update(upd)
        if "actor/entropy" not in rec:
            rec["actor/entropy"] = rec["rollout/entropy"]
        return rec

    # --- evaluation and reference resets -------------------------------------------------------

    def evaluate(self, step: int) -> dict[str, Any]:
        from passk.eval.evaluate import EvalConfig, evaluate
        from passk.eval.report import write_json_atomic

        c = self.config
        e = c.eval
        cfg = EvalConfig(
            n=e.n,
            temperature=e.temperature,
            top_p=e.top_p,
            max_new_tokens=e.max_new_tokens or c.rollout.max_new_tokens,
            seed=mix_seed(c.seed, "eval"),  # the same samples' seeds at every evaluation
            batch_size=c.rollout.batch_size,
            score_timeout=c.task.score_timeout,
            keep_completions=False,
            system_prompt=c.task.system_prompt,
            num_resamples=200,
        )
        result = evaluate(self.sampler, self.tokenizer, self.task, self.eval_problems, config=cfg)
        report = result.to_dict(step=step, model=self.identity.to_dict())
        write_json_atomic(self.out / "evals" / f"step_{step:06d}.json", report)
        s = result.summary()
        rec: dict[str, Any] = {"kind": "eval", "step": step}
        for kk, v in s["pass_at_k"].items():
            rec[f"eval/pass@{kk}"] = v
        rec["eval/entropy"] = s.get("mean_entropy")
        rec["eval/wrong_diversity"] = s.get("answer_diversity")
        rec["eval/length_mean"] = s.get("mean_length")
        rec["eval/reward_mean"] = s.get("mean_reward")
        rec["time/eval"] = s.get("elapsed_s")
        return rec

    def maybe_reset_reference(self, record: dict[str, Any]) -> bool:
        """ProRL reference reset after a step: every M steps or on a KL spike."""
        if self.reference is None:
            return False
        ref, step = self.config.reference, self.state.step
        kl = record.get("actor/kl")
        if ref.reset_every and step % ref.reset_every == 0:
            return self._reset_reference(record, "every")
        if ref.reset_kl_above is not None and kl is not None and kl > ref.reset_kl_above:
            return self._reset_reference(record, "kl")
        return False

    def observe_eval(self, eval_rec: dict[str, Any]) -> bool:
        """Stagnation of ``reference.reset_metric`` over evaluations triggers a reset."""
        ref, st = self.config.reference, self.state
        value = eval_rec.get(ref.reset_metric)
        if self.reference is None or not ref.reset_patience or value is None:
            return False
        if st.best_eval is None or value > st.best_eval:
            st.best_eval, st.evals_since_best = value, 0
            return False
        st.evals_since_best += 1
        if st.evals_since_best < ref.reset_patience:
            return False
        st.evals_since_best = 0
        return self._reset_reference(eval_rec, "stagnation")

    def _reset_reference(self, record: dict[str, Any], why: str) -> bool:
        assert self.reference is not None
        self.reference.load_state_dict(self.model.state_dict())
        if self.config.reference.reset_optimizer:
            self.optimizer.state.clear()
        self.state.ref_step = self.state.step
        record["ref/reset"] = 1
        record["ref/reason"] = why
        return True


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    console: Any = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train per ``config`` into ``out``; resumable, Ctrl-C saves the last finished step."""
    out = Path(out)
    trainer = Trainer(config, out, resume=resume)  # validates and checks ``out`` first
    c, st = config, trainer.state
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_text_atomic(out / CONFIG_FILE, dump_config(c))
    metrics_path = out / METRICS_FILE
    if resume:
        _truncate_metrics(metrics_path, st.step)
    log = MetricsLog(metrics_path, c, out.name)
    first_eval = final_eval = None
    interrupted = False
    saved: Path | None = trainer.resume_from
    progress = _Progress(console, c, st.step) if c.log.progress and console is not None else None
    clean = st.step  # the last step whose records and evaluation are complete

    def finish_eval() -> dict[str, Any]:
        rec = trainer.evaluate(st.step)
        trainer.observe_eval(rec)
        log.write(rec)
        st.pending_eval = False
        return rec

    try:
        with _Interrupts() as interrupts:
            if st.step == 0:
                if c.dph.generator is not None and trainer.dph is None:
                    log.write({"kind": "setup", "step": 0, **trainer.dph_split()})
                if c.eval.at_start and trainer.eval_problems:
                    first_eval = trainer.evaluate(0)
                    log.write(first_eval)
            if st.pending_eval:  # resumed from a checkpoint written during this evaluation
                final_eval = finish_eval()
            while st.step < c.steps:
                record = trainer.step(interrupts)
                trainer.maybe_reset_reference(record)
                if trainer.schedule.observe(st.step, record["reward/mean"]):
                    record["stage/switched"] = 1
                _track_nan(trainer, record)
                st.pending_eval = bool(trainer.eval_problems) and (
                    (c.eval.every > 0 and st.step % c.eval.every == 0)
                    or (st.step == c.steps and c.eval.at_end)
                )
                log.write(record)
                clean = st.step  # from here a checkpoint is exact (with pending_eval set)
                eval_rec = finish_eval() if st.pending_eval else None
                final_eval = eval_rec or final_eval
                if on_step is not None:
                    on_step(record)
                if progress is not None:
                    progress.update(record, eval_rec)
                if st.step % c.checkpoint.every == 0 or st.step == c.steps:
                    saved = trainer.save()
                if st.nan_streak >= c.optim.max_nan_steps:
                    raise TrainingDiverged(
                        f"{st.nan_streak} consecutive steps had a non-finite loss or gradient "
                        f"(optim.max_nan_steps={c.optim.max_nan_steps}); stopped at step {st.step}. "
                        f"The last checkpoint ({saved}) holds finite weights."
                    )
                interrupts.check()  # a Ctrl-C deferred during the update
    except KeyboardInterrupt:
        interrupted = True
        already = saved is not None and saved.name == f"step_{st.step:06d}" and not st.pending_eval
        if st.step > 0 and st.step == clean and not already:
            saved = trainer.save()
    finally:
        log.close()
        trainer.scorer.close()
        if progress is not None:
            progress.stop()
    return TrainResult(out, st.step, interrupted, saved, final_eval, first_eval)


def _track_nan(trainer: Trainer, record: dict[str, Any]) -> None:
    st = trainer.state
    skipped = record.get("update/skipped_steps", 0) or 0
    done = record.get("update/optimizer_steps", 0) or 0
    if skipped and not done:
        st.nan_total += 1
        st.nan_streak += 1
    else:
        st.nan_streak = 0
    record["nan/skipped_total"] = st.nan_total


class _Progress:
    """A rich progress bar with live reward, entropy and pass@k."""

    def __init__(self, console: Any, config: TrainConfig, start: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self.task = self.bar.add_task("train", total=config.steps, completed=start, info="")
        self.eval_info = ""
        self.bar.start()

    def update(self, record: dict[str, Any], eval_rec: dict[str, Any] | None) -> None:
        def f(key: str, rec: dict[str, Any] = record) -> str:
            v = rec.get(key)
            return (
                "  -  "
                if v is None or (isinstance(v, float) and not math.isfinite(v))
                else f"{v:.3f}"
            )

        if eval_rec is not None:
            ks = sorted(int(k.split("@")[1]) for k in eval_rec if k.startswith("eval/pass@"))
            self.eval_info = " eval " + " ".join(
                f"p@{k} {f(f'eval/pass@{k}', eval_rec)}" for k in (ks[0], ks[-1])
            )
        info = (
            f"reward {f('reward/mean')} p@1 {f('train/pass@1')} p@{record['train/k']} "
            f"{f('train/pass@k')} ent {f('actor/entropy')} zero-adv {f('adv/zero_frac')}"
            f"{self.eval_info}"
        )
        self.bar.update(self.task, completed=record["step"], info=info)

    def stop(self) -> None:
        self.bar.stop()


def load_run_config(out: Path, config_path: str | None, overrides: Sequence[str]) -> TrainConfig:
    """The config of a run to resume: ``--config`` if given, else the run's saved config."""
    if config_path is None:
        saved = out / CONFIG_FILE
        if not saved.is_file():
            raise ValueError(f"--resume: {saved} not found (is {out} a passk run directory?)")
        return load_config(saved, list(overrides))
    return load_config(config_path, list(overrides))


__all__ = [
    "PromptSampler",
    "StageSchedule",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "load_run_config",
    "mix_seed",
    "train",
]
