"""The embedded RLVR trainer: :meth:`Trainer.step` is one step, :func:`train` the loop.

A step: collect groups (sample -> score -> rewards ``[G, N]`` -> advantages, see
:mod:`passk.train.collect`) -> behaviour and reference log-probs -> PPO update
(:func:`passk.train.update.policy_update`) -> refresh the sampling copy -> metrics. Between
steps the hooks of :mod:`passk.train.hooks` run in order: reference resets, stage
schedule, evaluation, checkpoint, NaN guard.

Everything random is derived from ``(config.seed, purpose, step, ...)`` with
:func:`passk.seeds.derive_seed`, so a run resumed from a checkpoint continues exactly as
the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from passk.core.exploration import AnswerCounts
from passk.core.losses.entropy_control import adaptive_entropy_coef, entropic_alpha
from passk.rollout.batch import Rollouts
from passk.seeds import derive_seed
from passk.train import checkpoint as ckpt
from passk.train.collect import (
    Collected,
    GroupSampler,
    StepTimes,
    answers_of,
    make_collector,
    rollout_metrics,
)
from passk.train.config import (
    RESUMABLE_KEYS,
    TrainConfig,
    dump_config,
    load_config,
    trajectory_changes,
    validate,
)
from passk.train.heldout import PROMPT_ALLOWANCE, HeldOut, build_task, load_policy
from passk.train.hooks import (
    Hook,
    TrainingDiverged,
    default_hooks,
    evaluate,
    run_pending_evaluation,
)
from passk.train.lora import is_lora, load_adapter
from passk.train.reference import Reference
from passk.train.run_dir import SAMPLES_FILE, RunDir
from passk.train.schedule import PromptSampler, StageSchedule
from passk.train.update import policy_update


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
    entropy_coef: float | None = None  # the adaptive entropy coefficient (loss.entropy_target)
    entropic_integral: float = 0.0  # EntroPIC's integral of the entropy error


class Timer:
    """Seconds spent per named phase: ``with timer("generate"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


class Interrupts:
    """Ctrl-C raises at once, except inside :meth:`deferred`: then the step finishes first
    (a second Ctrl-C aborts at once) and :meth:`check` raises afterwards."""

    def __init__(self) -> None:
        self.deferring = False
        self.pending = False
        self._old: Any = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.deferring and not self.pending:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``model.autocast`` names on ``device`` (None: no autocast)."""
    from passk.rollout.models import bf16_supported

    if name == "auto":
        return torch.bfloat16 if bf16_supported(device) else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[name]


class Trainer:
    """The run's objects; :meth:`step` is one iteration, :func:`train` drives the loop."""

    def __init__(
        self, config: TrainConfig, out: str | Path, *, resume: bool = False, checked: bool = False
    ) -> None:
        """``checked``: the caller already ran ``validate(config)`` and
        ``RunDir(out).check_start(resume)`` (``passk train`` does, before torch loads)."""
        if not checked:
            validate(config)
        self.config = c = config
        self.run = RunDir(out)
        resume_from, resume_state = prepare_run_dir(self.run, config, resume, checked=checked)
        from passk.rollout.generate import auto_batch_size
        from passk.tasks.guard import SafeScorer

        if c.model.threads:
            torch.set_num_threads(c.model.threads)
        self.task = build_task(c)
        self.train_problems = self.task.problems("train", c.task.train_problems, c.seed)
        if not self.train_problems:
            raise ValueError(f"task {c.task.name!r} has no train problems")
        self.scorer = SafeScorer(self.task, timeout=c.task.score_timeout)

        policy = load_policy(c)
        self.device, self.identity = policy.device, policy.identity
        self.model, self.tokenizer, self.sampler = policy.model, policy.tokenizer, policy.sampler
        self.heldout = HeldOut.from_config(c, self.task, policy, self.run)
        self.autocast = autocast_dtype(c.model.autocast, self.device)
        self.reference = Reference(self.model, c, self.autocast)
        self.optimizer = self._new_optimizer()
        warm = c.optim.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda i: min(1.0, (i + 1) / warm) if warm else 1.0
        )
        r, batch_size = c.rollout, c.rollout.batch_size
        if r.batch_size == "auto":
            batch_size = auto_batch_size(
                self.sampler, r.prompts_per_step * r.n, r.max_new_tokens + PROMPT_ALLOWANCE
            )
        self.prompts = PromptSampler(self.train_problems, c.seed)
        self.schedule = StageSchedule(c.algorithm.stages)
        self.group_sampler = GroupSampler(self.sampler, self.tokenizer, self.scorer, c, batch_size)
        # historical answer counts of the UCB exploration bonus: trainer state, checkpointed
        ucb = c.algorithm.exploration not in (None, "batch")
        self.answer_counts = AnswerCounts() if ucb else None
        self.collector = make_collector(self.group_sampler, self.prompts, c, self.answer_counts)
        self.state = RunState()
        if c.loss.entropy_target is not None:
            self.state.entropy_coef = c.loss.entropy_coef
        self.last_checkpoint: Path | None = resume_from
        self.last_eval: dict[str, Any] | None = None
        self.last_collected: Collected | None = None  # the batch of the last step
        self._updating_step = 0  # the step whose update last began
        self.notify: Callable[[str], None] | None = None
        """Where evaluations report their progress (a line per tenth); None: silent."""
        if resume_from is not None:
            assert resume_state is not None
            self._restore(resume_from, resume_state)

    # --- one step -----------------------------------------------------------------------------

    def step(self, interrupts: Interrupts | None = None) -> dict[str, Any]:
        """One training step; returns its metrics record.

        An exception before the update (Ctrl-C while sampling) leaves the trainer as it was
        before the step, so the last finished step can still be checkpointed.
        """
        step = self.state.step + 1
        stage, params = self.schedule.stage, self.schedule.params(step)
        timer, drawn = Timer(), self.prompts.drawn
        self.group_sampler.times = StepTimes()
        try:
            with timer("step"):
                got = self.collector.collect(step, stage, params)  # generate + score + advantages
                self._updating_step = step
                defer = interrupts.deferred() if interrupts else contextlib.nullcontext()
                with defer, timer("update"):
                    upd = self.update(got, step) if len(got.batch) else {}
        except BaseException:
            if self._updating_step < step:  # the update had not begun: roll back the draw
                self.prompts.drawn = drawn
            raise
        self.last_collected = got
        if self.answer_counts is not None:  # every sampled answer counts once, after the step
            for g in got.generated:
                self.answer_counts.add([p.id for p in g.problems], answers_of(g))
        record: dict[str, Any] = {"kind": "train", "step": step, "stage": stage.name}
        record["stage/index"] = self.schedule.index
        record.update(rollout_metrics(got, int(params.get("k", 1))))
        record.update(upd)
        if self.answer_counts is not None:
            record["explore/answers_per_problem"] = self.answer_counts.distinct()
        record.setdefault("actor/entropy", record["rollout/entropy"])
        record.update(self._step_facts(got, timer, upd))
        self.state.step = step
        self.state.elapsed_s += timer.seconds["step"]
        return record

    def update(self, got: Collected, step: int) -> dict[str, float]:
        """Behaviour and reference log-probs, then the PPO update; refresh the sampler."""
        c, batch, timer = self.config, got.batch.rollouts, Timer()
        # behaviour log-probs: the sampler's, or (None) policy_update's own pass over the
        # first epoch's micro-batches, so the ratio starts at exactly 1
        batch.old_logp = batch.logprobs if c.optim.old_logprobs == "rollout" else None
        with timer("logprob_passes"):
            batch.ref_logp = self.reference.kl_logprobs(batch)
        control, after = self._entropy_controls(batch)
        metrics = policy_update(
            self.model,
            self.optimizer,
            self.scheduler,
            batch,
            loss=c.loss,
            optim=c.optim,
            dph=c.dph,
            temperature=c.rollout.temperature,
            autocast=self.autocast,
            generator=torch.Generator().manual_seed(derive_seed(c.seed, "minibatch", step)),
            dph_batch=self.reference.dph_subset(step),
            track_update=c.log.update_norm,
            entropy_coef=control.get("loss/entropy_coef_applied"),
            entropic_alpha=control.get("loss/entropic_alpha", 0.0),
        )
        for key, value in after.items():  # the controllers' state for the next step
            setattr(self.state, key, value)
        metrics.update(control)
        timer.seconds["logprob_passes"] += metrics.pop("time/behaviour_pass", 0.0)
        with timer("sync"):
            self._sync_sampler()
        metrics.update({f"time/{k}": v for k, v in timer.seconds.items()})
        metrics["perf/trained_tokens"] = int(batch.response_mask.sum())
        return metrics

    def _entropy_controls(self, batch: Rollouts) -> tuple[dict[str, float], dict[str, float]]:
        """This update's entropy-controller outputs (metrics, the values the update uses) and
        the controllers' next state, from the token-mean entropy of the batch as sampled.

        Adaptive coefficient (``loss.entropy_target``): ``loss/entropy_coef`` is the
        coefficient entering this step, ``loss/entropy_coef_applied`` the bonus it gives (0
        above the target). EntroPIC (``loss.entropic_target``): ``loss/entropic_alpha``.
        """
        lo = self.config.loss
        if lo.entropy_target is None and lo.entropic_target is None:
            return {}, {}
        mask = batch.response_mask.bool()
        assert batch.entropy is not None, "the sampler returns token entropies"
        n = int(mask.sum())
        h = float(batch.entropy.double()[mask].sum() / n) if n else math.nan
        control: dict[str, float] = {"loss/control_entropy": h}
        after: dict[str, float] = {}
        if lo.entropy_target is not None:
            coef = self.state.entropy_coef
            assert coef is not None
            applied, after["entropy_coef"] = adaptive_entropy_coef(
                coef,
                h,
                target=lo.entropy_target,
                delta=lo.entropy_coef_delta,
                coef_min=lo.entropy_coef_min,
                coef_max=lo.entropy_coef_max,
            )
            control["loss/entropy_coef"] = coef
            control["loss/entropy_coef_applied"] = applied
        if lo.entropic_target is not None:
            alpha, after["entropic_integral"] = entropic_alpha(
                h,
                self.state.entropic_integral,
                target=lo.entropic_target,
                kp=lo.entropic_kp,
                ki=lo.entropic_ki,
            )
            control["loss/entropic_alpha"] = alpha
            control["loss/entropic_integral"] = self.state.entropic_integral
        return control, after

    def _step_facts(self, got: Collected, timer: Timer, upd: dict[str, float]) -> dict[str, Any]:
        """Time split, throughput and sampler facts of the step just taken."""
        times, t_step = self.group_sampler.times, timer.seconds["step"]
        # the update's own split: forward + backward, and the no-grad log-prob passes
        model_time = times.generate + sum(
            upd.get(k, 0.0) for k in ("time/forward_backward", "time/logprob_passes")
        )
        tokens = sum(int(g.rollouts.lengths.sum()) for g in got.generated)
        facts = {
            "time/generate": times.generate,
            "time/score": times.score,
            "time/update": timer.seconds.get("update", 0.0),
            "time/step": t_step,
            "reward/errors": self.scorer.errors,
            "reward/timeouts": self.scorer.timeouts,
            "actor/lr": self.scheduler.get_last_lr()[0],
            "perf/gen_tokens_per_s": tokens / times.generate if times.generate > 0 else None,
            "perf/tokens_per_s": tokens / t_step if t_step > 0 else None,
            "rollout/static_fallback": self.group_sampler.stats.get("rollout/static_fallback", 0.0),
        }
        facts["time/other"] = max(t_step - times.generate - times.score - facts["time/update"], 0.0)
        facts["time/non_model_frac"] = max(t_step - model_time, 0.0) / t_step if t_step else None
        return facts

    # --- set-up, references, checkpoints --------------------------------------------------------

    def _new_optimizer(self) -> torch.optim.Optimizer:
        o = self.config.optim
        return torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=o.lr,
            betas=o.betas,
            weight_decay=o.weight_decay,
            fused=True,  # one kernel for the whole step (4x faster than foreach on CPU)
        )

    def _sync_sampler(self) -> None:
        if self.sampler is self.model:
            return
        with torch.no_grad():
            for dst, src in zip(self.sampler.parameters(), self.model.parameters()):
                if src.requires_grad:  # frozen weights (LoRA's base) never change
                    dst.copy_(src)

    def reset_reference(self, record: dict[str, Any], why: str) -> None:
        """Move the reference (KL model, DPH samples) to the current policy (ProRL)."""
        self.reference.reset(self.model)
        if self.config.reference.reset_optimizer:
            self.optimizer.state.clear()
        self.state.ref_step = self.state.step
        record["ref/reset"] = 1
        record["ref/reason"] = why

    def dph_split(self) -> dict[str, Any]:
        """Probe every training prompt; near-perfect ones give stored reference samples."""
        from passk.train.collect import Groups

        c = self.config
        probes = self.group_sampler.sample(
            self.train_problems,
            [c.dph.probe_samples] * len(self.train_problems),
            derive_seed(c.seed, "dph-probe"),
        )
        correct = probes.correct
        perfect = [g for g in range(len(probes)) if bool(correct[probes.rollouts.group == g].all())]
        pool = [p for g, p in enumerate(self.train_problems) if g not in set(perfect)]
        if not pool:
            raise ValueError(
                "dph: every training prompt is near-perfect (all probe samples correct); "
                "nothing is left to train on"
            )
        self.prompts.problems = pool
        self.state.pool = [p.id for p in pool]
        stored: Groups = probes.rows_of(perfect)
        if len(stored.rollouts):
            self.reference.set_dph_samples(self.model, stored.rollouts)
        return {
            "dph/near_perfect_prompts": len(perfect),
            "dph/reference_samples": len(stored.rollouts),
        }

    def save(self) -> Path:
        c, st = self.config, self.state
        self.last_checkpoint = ckpt.save_checkpoint(
            self.run.path,
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
            extra={
                "dph": self.reference.dph_state(),
                "answer_counts": (
                    None if self.answer_counts is None else self.answer_counts.state_dict()
                ),
            },
            reference=self.reference.weights() if st.ref_step > 0 else None,
            keep=c.checkpoint.keep,
        )
        return self.last_checkpoint

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        if is_lora(self.model):
            load_adapter(self.model, path)
        else:
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
        self.reference.load_dph_state(extra.get("dph"))
        if self.answer_counts is not None:
            saved = extra.get("answer_counts")
            if saved is None:
                raise ckpt.CheckpointError(f"checkpoint {path} lacks the exploration answer counts")
            self.answer_counts.load_state_dict(saved)
        if self.reference.model is not None and self.state.ref_step:
            if not (path / "reference.safetensors").is_file():
                raise ckpt.CheckpointError(f"checkpoint {path} lacks reference.safetensors")
            ckpt.load_weights(self.reference.model, path, "reference.safetensors")
        self._sync_sampler()


# ---------------------------------------------------------------------------------------------
# the run directory
# ---------------------------------------------------------------------------------------------


def prepare_run_dir(
    run: RunDir, config: TrainConfig, resume: bool, *, checked: bool = False
) -> tuple[Path | None, dict[str, Any] | None]:
    """Check the directory before any model loads (unless ``checked``: the caller ran
    :meth:`RunDir.check_start`); return the checkpoint to resume, if any.

    A fresh run refuses a directory that holds a run or files that are not a passk run's.
    ``--resume`` of a run that never reached a checkpoint starts it again from step 0.
    """
    if not checked:
        run.check_start(resume)
    ckpt.remove_stale_temporaries(run.path)
    if not resume:
        return None, None
    path = ckpt.latest_checkpoint(run.path, on_skip=_warn_skipped)
    if path is None:
        return None, None  # nothing to resume: a fresh start (train() says so)
    state = ckpt.read_state(path)
    if state.get("fingerprint") != config.fingerprint():
        changes = trajectory_changes(state.get("config") or {}, config)
        if changes:  # else: fields added since the run started, at their defaults
            raise ckpt.CheckpointError(
                f"checkpoint {path} was written by a different config (differs: "
                f"{', '.join(changes)}); only {', '.join(RESUMABLE_KEYS)} may change on resume"
            )
    if state["step"] > config.steps:
        raise ValueError(
            f"checkpoint {path} is at step {state['step']} but steps={config.steps}; "
            "pass a larger --steps to continue"
        )
    return path, state


def _warn_skipped(path: Path, error: Exception) -> None:
    import warnings

    warnings.warn(f"skipping checkpoint {path.name}: {error}", stacklevel=2)


def load_run_config(out: Path, config_path: str | None, overrides: list[str]) -> TrainConfig:
    """The config of a run to resume: ``--config`` if given, else the run's saved config."""
    if config_path is None:
        saved = RunDir(out).config
        if not saved.is_file():
            raise ValueError(f"--resume: {saved} not found (is {out} a passk run directory?)")
        return load_config(saved, overrides)
    return load_config(config_path, overrides)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    out_dir: Path
    steps_done: int
    interrupted: bool
    checkpoint: Path | None
    final_eval: dict[str, Any] | None
    first_eval: dict[str, Any] | None
    resumed_from: Path | None = None


def sample_rows(step: int, got: Collected, n: int) -> list[dict[str, Any]]:
    """``n`` of the step's trained responses, spread over its groups: problem id, prompt,
    completion, extracted answer, reward, correctness and advantage (``log.samples``)."""
    groups = got.batch
    ro = groups.rollouts
    B = len(ro)
    picks = sorted({(i * B) // n for i in range(min(n, B))})
    rows = []
    for b in picks:
        problem, score = groups.problems[int(ro.group[b])], groups.scores[b]
        rows.append(
            {
                "step": step,
                "problem_id": problem.id,
                "prompt": problem.prompt,
                "completion": ro.texts[b],
                "extracted": score.extracted,
                "reward": None if ro.rewards is None else float(ro.rewards[b]),
                "correct": bool(score.correct),
                "advantage": None if ro.advantages is None else float(ro.advantages[b]),
            }
        )
    return rows


def sample_text(row: dict[str, Any], width: int = 300) -> str:
    """One :func:`sample_rows` row as a few plain lines for the console (no markup read:
    a completion may hold brackets).

    >>> print(sample_text({"step": 3, "problem_id": "mul1/7*8", "prompt": "What is 7 * 8?",
    ...     "completion": "It is 56.", "extracted": "56", "reward": 1.0, "correct": True,
    ...     "advantage": 0.5}))
    step 3 | mul1/7*8 | reward 1 | correct | advantage +0.500 | answer '56'
      prompt: What is 7 * 8?
      completion: It is 56.
    """

    def clip(text: str) -> str:
        text = " ".join(str(text).split())
        return text if len(text) <= width else text[: width - 3] + "..."

    reward = "-" if row["reward"] is None else f"{row['reward']:g}"
    adv = "-" if row["advantage"] is None else f"{row['advantage']:+.3f}"
    verdict = "correct" if row["correct"] else "wrong"
    return (
        f"step {row['step']} | {row['problem_id']} | reward {reward} | {verdict} | "
        f"advantage {adv} | answer {row['extracted']!r}\n"
        f"  prompt: {clip(row['prompt'])}\n  completion: {clip(row['completion'])}"
    )


def write_samples(path: Path, step: int, got: Collected, n: int) -> None:
    """Append :func:`sample_rows` of ``step`` to ``path`` (JSON lines)."""
    with path.open("a", encoding="utf-8") as f:
        for row in sample_rows(step, got, n):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def truncate_samples(path: Path, last_step: int) -> None:
    """Keep the sample rows of steps <= ``last_step`` (a resume writes the rest again)."""
    if not path.exists():
        return
    keep = [
        line
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        if line.strip() and json.loads(line).get("step", 0) <= last_step
    ]
    path.write_text("".join(keep), encoding="utf-8")


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    console: Any = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    hooks: list[Hook] | None = None,
    checked: bool = False,
) -> TrainResult:
    """Train per ``config`` into ``out``; resumable, Ctrl-C saves the last finished step.
    ``checked``: the config is validated and ``out`` checked already (see :class:`Trainer`)."""
    from passk.train.logging import open_loggers

    t = Trainer(config, out, resume=resume, checked=checked)  # validates, checks ``out``
    c, run, hooks = config, t.run, default_hooks() if hooks is None else hooks
    resumed_from = t.last_checkpoint
    if console is not None:
        t.notify = console.print
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(dump_config(c))
    # records after the checkpoint are produced again; with no checkpoint, all of them
    run.truncate_metrics(t.state.step if t.last_checkpoint is not None else -1)
    truncate_samples(run.path / SAMPLES_FILE, t.state.step if t.last_checkpoint is not None else -1)
    if resume and t.last_checkpoint is None and console is not None:
        console.print(f"--resume: {run.path} has no checkpoint yet; starting from step 0")
    run.clear_finished()
    log = open_loggers(
        run.path,
        c.log,
        run_name=run.path.name,
        config_dict=c.to_dict(),
        console=console,
        total_steps=c.steps,
        start_step=t.state.step,
    )
    first_eval = None
    interrupted = False
    logged = t.state.step  # the last step whose record is written: checkpoints are exact here
    try:
        with Interrupts() as interrupts:
            if t.state.step == 0:
                if c.dph.generator is not None and t.reference.dph is None:
                    log.write({"kind": "setup", "step": 0, **t.dph_split()})
                if c.eval.at_start and t.heldout.problems:
                    first_eval = evaluate(t, 0)
                    log.write(first_eval)
            if t.state.pending_eval:  # resumed from a checkpoint written during this evaluation
                run_pending_evaluation(t, log)
            while t.state.step < c.steps:
                record = t.step(interrupts)
                for hook in hooks:
                    hook.before_log(t, record)
                log.write(record)
                if c.log.samples and t.last_collected is not None:
                    write_samples(
                        run.path / SAMPLES_FILE, t.state.step, t.last_collected, c.log.samples
                    )
                every = c.log.print_sample_every
                if every and t.state.step % every == 0 and t.last_collected is not None:
                    text = sample_text(sample_rows(t.state.step, t.last_collected, 1)[0])
                    if console is not None:  # above the bar; a completion's brackets stay text
                        console.print(text, markup=False, highlight=False)
                    else:
                        print(text)
                logged = t.state.step
                if on_step is not None:
                    on_step(record)
                for hook in hooks:
                    hook.after_log(t, record, log)
                interrupts.check()  # a Ctrl-C deferred during the update
        run.mark_finished(c.steps, {"fingerprint": c.fingerprint(), "elapsed_s": t.state.elapsed_s})
    except KeyboardInterrupt:
        interrupted = True
        saved = t.last_checkpoint
        current = saved is not None and saved.name == f"step_{t.state.step:06d}"
        if t.state.step > 0 and t.state.step == logged and (not current or t.state.pending_eval):
            t.save()  # the last finished step (with its pending evaluation, if any)
    finally:
        log.close()
        t.scorer.close()
    return TrainResult(
        run.path,
        t.state.step,
        interrupted,
        t.last_checkpoint,
        t.last_eval,
        first_eval,
        resumed_from,
    )


__all__ = [
    "Interrupts",
    "PromptSampler",
    "RunState",
    "StageSchedule",
    "Timer",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "load_run_config",
    "train",
]
