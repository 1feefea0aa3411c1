"""Pass@k evaluation of an already-loaded model on a list of problems.

:func:`evaluate` samples ``n`` responses per problem with
:func:`~passk.rollout.generate.generate`, scores each with the task's own ``score``
(through :class:`~passk.tasks.guard.SafeScorer`: a failing sample scores 0 and is
counted in ``reward_errors``), and returns an :class:`EvalResult` whose
:meth:`~EvalResult.summary` holds the unbiased pass@k, pass^k and maj@k curves with
bootstrap CIs over problems (and per source when problems carry one), the number of
problems behind each k, the Dang et al. bound (on the with-replacement mean
``1 - (1 - pass@1)^k``, reported beside it), answer diversity of wrong responses,
entropy and length. Sampling is continuously batched over all problems (``batch_size`` sequences in
flight); a problem is scored as soon as its n samples are in, so on Ctrl-C
:class:`EvalInterrupted` (a ``KeyboardInterrupt``) carries every problem finished so far.

The trainer calls this for periodic held-out evaluation with its live model; the
``passk eval`` command wraps it with model loading, a progress bar and files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from passk.core.defaults import EVAL_SAMPLES, NUM_RESAMPLES
from passk.core.metrics import (
    answer_diversity,
    dang_bound,
    default_ks,
    metric_curves,
    per_problem_metrics,
)
from passk.eval.report import tidy_floats
from passk.rollout.params import SamplingParams
from passk.seeds import derive_seed
from passk.tasks.base import Problem, Task
from passk.tasks.guard import SafeScorer


@dataclass(frozen=True)
class EvalConfig:
    """Sampling and statistics settings of one evaluation."""

    n: int = EVAL_SAMPLES
    """Samples per problem (for saved samples: the most any problem has)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int | Literal["auto"] = "auto"
    """Sequences in flight; ``"auto"``: :func:`~passk.rollout.generate.auto_batch_size`."""
    ks: tuple[int, ...] | None = None
    """k values of the curve; default 1, 2, 4, ..., n."""
    num_resamples: int = NUM_RESAMPLES
    """Bootstrap resamples (over problems) for the confidence band."""
    confidence: float = 0.95
    score_timeout: float | None = 30.0
    """Seconds per scoring call (None: score in-process, no timeout)."""
    with_entropy: bool = True
    keep_completions: bool = True
    """Store every completion text in the per-problem results."""
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.batch_size != "auto" and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be an integer >= 1 or 'auto', got {self.batch_size!r}"
            )
        for k in self.ks or ():
            if not 1 <= k <= self.n:
                raise ValueError(f"every k must be in 1..n={self.n}, got {k}")
        if self.num_resamples < 1:
            raise ValueError(f"num_resamples must be >= 1, got {self.num_resamples}")
        if self.score_timeout is not None and not self.score_timeout > 0:
            raise ValueError(f"score_timeout must be > 0 or None, got {self.score_timeout}")
        self.sampling()  # temperature, top_p and max_new_tokens are checked there

    def resolved_ks(self) -> list[int]:
        return sorted(set(self.ks)) if self.ks else default_ks(self.n)

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_new_tokens)


@dataclass
class ProblemResult:
    """The n samples of one problem: counts for pass@k and what was extracted."""

    id: str
    prompt: str
    answer: str
    n: int
    c: int
    rewards: list[float]
    correct: list[bool]
    extracted: list[str | None]
    lengths: list[int]
    truncated: list[bool]
    mean_entropy: float | None
    errors: list[str | None]
    completions: list[str] = field(default_factory=list)
    source: str | None = None
    """Where the problem comes from (a dataset, verl's ``data_source``); reports break
    the metrics down by it when any problem has one."""

    @property
    def pass1(self) -> float:
        return self.c / self.n

    def to_dict(self) -> dict[str, Any]:
        # fields are flat (numbers, strings, lists of them): no deep copy as asdict makes
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["pass1"] = self.pass1
        return d


@dataclass
class EvalResult:
    """Per-problem results plus run facts; :meth:`summary` computes the metrics."""

    problems: list[ProblemResult]
    config: EvalConfig
    reward_errors: int = 0
    score_timeouts: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    sampler: dict[str, float] = field(default_factory=dict)
    """Sampler facts: ``rollout/batch_size`` used, ``rollout/static_fallback``, ..."""
    answers_available: bool = True
    """False when nothing extracted answers (saved samples with only ``correct`` or
    ``score``): maj@k is then left out rather than reported as 0."""

    def summary(self) -> dict[str, Any]:
        """Metrics over the finished problems (JSON-ready; k keys are strings; floats to 15
        significant digits, :func:`~passk.eval.report.tidy_floats`)."""
        cfg = self.config
        ks = cfg.resolved_ks()
        done = self.problems
        out: dict[str, Any] = {
            "num_problems": len(done),
            "reward_errors": self.reward_errors,
            "score_timeouts": self.score_timeouts,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "sampler": dict(self.sampler),
        }
        if not done:
            return out | {
                "pass_at_k_with_replacement": {},
                "pass_at_k": {},
                "ci95": {},
                "pass_hat_k": {},
                "pass_hat_k_ci95": {},
                "maj_at_k": {},
                "maj_at_k_ci95": {},
                "problems_per_k": {},
                "dang_bound": {},
            }
        per = self._per_problem(done, ks)
        out |= self._curves(per, np.arange(len(done)), ks)
        sources = np.array([str(p.source) for p in done])
        if any(p.source is not None for p in done):
            by_source: dict[str, Any] = {}
            for src in sorted(set(sources)):
                rows = np.flatnonzero(sources == src)
                by_source[src] = {"num_problems": len(rows)} | self._curves(per, rows, ks)
            out["by_source"] = by_source
        pass1 = [p.pass1 for p in done]
        lengths = [x for p in done for x in p.lengths]
        entropies = [p.mean_entropy for p in done if p.mean_entropy is not None]
        truncated = [t for p in done for t in p.truncated]
        rewards = [r for p in done for r in p.rewards]
        tokens = sum(lengths)
        out |= {
            # the bound follows from the power-mean inequality, which needs k >= 2 (at k = 1
            # the formula lies below pass@1 by Jensen), so k = 1 is left out. It bounds the
            # with-replacement mean of 1 - (1 - pass@1)^k, reported beside it; the unbiased
            # (without-replacement) pass@k is larger than that and may exceed the bound
            "dang_bound": {str(k): float(dang_bound(pass1, k)) for k in ks if k >= 2},
            "pass_at_k_with_replacement": {
                str(k): float(np.mean([1.0 - (1.0 - p) ** k for p in pass1])) for k in ks if k >= 2
            },
            "answer_diversity": _finite_or_none(
                answer_diversity([p.extracted for p in done], [p.correct for p in done])
            ),
            "mean_entropy": float(sum(entropies) / len(entropies)) if entropies else None,
            "mean_length": tokens / len(lengths) if lengths else None,
            "truncated_fraction": sum(truncated) / len(truncated) if truncated else None,
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "tokens": tokens,
            "tokens_per_s": tokens / self.elapsed_s if self.elapsed_s > 0 and tokens else None,
        }
        return tidy_floats(out)  # the trainer's metrics.jsonl and the report say the same

    def _per_problem(self, done: list[ProblemResult], ks: list[int]) -> dict[str, Any]:
        """Per-problem ``[P, K]`` values of each metric (NaN where n < k), computed once
        for the whole report and its per-source breakdown."""
        answers = [p.extracted for p in done] if self.answers_available else None
        return per_problem_metrics([p.correct for p in done], ks, answers, seed=self.config.seed)

    def _curves(self, per: dict[str, Any], rows: np.ndarray, ks: list[int]) -> dict[str, Any]:
        """The report's table over the problems ``rows`` (:func:`metric_curves`)."""
        cfg = self.config
        return metric_curves(
            per,
            ks,
            rows,
            num_resamples=cfg.num_resamples,
            confidence=cfg.confidence,
            seed=cfg.seed,
        )

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        """Summary, configuration, per-problem results and any ``extra`` entries, floats
        rounded to 15 significant digits (:func:`~passk.eval.report.tidy_floats`)."""
        return tidy_floats(
            self.summary()
            | {"config": asdict(self.config)}
            | extra
            | {"per_problem": [p.to_dict() for p in self.problems]}
        )


class EvalInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`evaluate`; ``partial`` holds the problems finished so far."""

    def __init__(self, partial: EvalResult) -> None:
        super().__init__("evaluation interrupted")
        self.partial = partial


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def evaluate(
    model: Any,
    tokenizer: Any,
    task: Task,
    problems: Sequence[Problem],
    *,
    config: EvalConfig | None = None,
    progress: Callable[[int], None] | None = None,
    on_problem: Callable[[ProblemResult], None] | None = None,
    **overrides: Any,
) -> EvalResult:
    """Sample ``config.n`` responses per problem, score them, and collect pass@k statistics.

    Args:
        model, tokenizer: a causal LM (sampled in eval mode, its mode restored after) and
            its tokenizer.
        task: scores completions (the same ``score`` the trainer's reward uses).
        problems: what to evaluate, e.g. ``task.problems("test", 50)``.
        config: settings; keyword ``overrides`` replace single fields (``n=8``).
        progress: called with 1 as each sequence finishes.
        on_problem: called with each finished :class:`ProblemResult`.

    Raises:
        EvalInterrupted: on Ctrl-C, carrying the partial result.
    """
    from passk.rollout.generate import (
        auto_batch_size,
        chat_prompt_ids,
        sample_stream,
        stop_token_ids,
    )

    config = config or EvalConfig()
    if overrides:
        config = EvalConfig(**(asdict(config) | overrides))
    params = config.sampling()
    n = config.n
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    prompt_ids = [chat_prompt_ids(tokenizer, p.prompt, config.system_prompt) for p in problems]
    rows = [(i, j) for i in range(len(problems)) for j in range(n)]
    seeds = [derive_seed(config.seed, problems[i].id, j) for i, j in rows]
    batch_size = config.batch_size
    if batch_size == "auto":
        longest = max((len(p) for p in prompt_ids), default=0)
        batch_size = auto_batch_size(model, len(rows), longest + params.max_new_tokens)
    remaining = [n] * len(problems)
    finished: dict[int, ProblemResult] = {}
    result = EvalResult(problems=[], config=config)
    result.sampler["rollout/batch_size"] = float(batch_size)
    scorer = SafeScorer(task, timeout=config.score_timeout)
    start = time.perf_counter()

    def on_done(row: int, out: dict[str, Any]) -> None:
        # all n samples of a problem are in: decode, score and report it right away
        if progress is not None:
            progress(1)
        i = rows[row][0]
        remaining[i] -= 1
        if remaining[i] == 0:
            pr = _score_problem(
                problems[i], range(i * n, (i + 1) * n), out, tokenizer, scorer, config
            )
            finished[i] = pr
            if on_problem is not None:
                on_problem(pr)

    try:  # sample_stream samples in eval mode and restores the model's mode
        sample_stream(
            model,
            [prompt_ids[i] for i, _ in rows],
            seeds,
            params,
            stop_ids=stop_token_ids(model, tokenizer),
            pad_id=pad_id,
            batch_size=batch_size,
            with_entropy=config.with_entropy,
            on_done=on_done,
            stats=result.sampler,
        )
    except KeyboardInterrupt:
        result.interrupted = True
        raise EvalInterrupted(_finish(result, finished, scorer, start)) from None
    finally:
        scorer.close()
    return _finish(result, finished, scorer, start)


def progress_lines(
    emit: Callable[[str], None],
    total: int,
    label: str = "eval",
    *,
    parts: int = 10,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[[int], None]:
    """A ``progress`` callback for :func:`evaluate` that reports in plain lines.

    Each time another ``1/parts`` of the ``total`` samples has finished, ``emit`` gets one
    line: samples done, elapsed minutes and the minutes left at the rate so far. This is
    the progress of an evaluation whose output is a log file, where a bar cannot draw.

    >>> lines = []
    >>> tick = progress_lines(lines.append, 4, "eval step 0", parts=2, clock=lambda: 0.0)
    >>> for _ in range(4):
    ...     tick(1)
    >>> lines[0].split(",")[0]
    'eval step 0: 2/4 samples (50%)'
    """
    if total < 1 or parts < 1:
        raise ValueError(f"progress_lines: total={total} and parts={parts} must both be >= 1")
    start = clock()
    done = 0
    marks = sorted({max(1, round(total * i / parts)) for i in range(1, parts + 1)})
    nxt = 0

    def tick(count: int) -> None:
        nonlocal done, nxt
        done += count
        if nxt >= len(marks) or done < marks[nxt]:
            return
        while nxt < len(marks) and done >= marks[nxt]:
            nxt += 1
        elapsed = clock() - start
        left = elapsed * (total - done) / done
        emit(
            f"{label}: {done}/{total} samples ({100 * done / total:.0f}%), "
            f"{elapsed / 60:.1f} min elapsed, ~{left / 60:.1f} min left"
        )

    return tick


def _finish(
    result: EvalResult, finished: dict[int, ProblemResult], scorer: SafeScorer, start: float
) -> EvalResult:
    result.problems = [finished[i] for i in sorted(finished)]
    result.reward_errors = scorer.errors
    result.score_timeouts = scorer.timeouts
    result.elapsed_s = time.perf_counter() - start
    return result


def _score_problem(
    problem: Problem,
    rows: range,
    out: dict[str, Any],
    tokenizer: Any,
    scorer: SafeScorer,
    config: EvalConfig,
) -> ProblemResult:
    lengths = [int(out["lengths"][b]) for b in rows]
    texts = [
        tokenizer.decode(out["tokens"][b, :L].tolist(), skip_special_tokens=True)
        for b, L in zip(rows, lengths)
    ]
    scores = [scorer.score(problem, text) for text in texts]
    mean_entropy = None
    if "entropy" in out:
        # token-mean per response, then mean over the problem's responses
        per_response = [
            float(out["entropy"][b, :L].sum()) / max(L, 1) for b, L in zip(rows, lengths)
        ]
        mean_entropy = sum(per_response) / len(per_response)
    correct = [bool(s.correct) for s in scores]
    return ProblemResult(
        id=problem.id,
        prompt=problem.prompt,
        answer=str(problem.answer),
        n=len(rows),
        c=sum(correct),
        rewards=[float(s.reward) for s in scores],
        correct=correct,
        extracted=[s.extracted for s in scores],
        lengths=lengths,
        truncated=[bool(out["truncated"][b]) for b in rows],
        mean_entropy=mean_entropy,
        errors=[s.error for s in scores],
        completions=texts if config.keep_completions else [],
        source=None if problem.meta.get("source") is None else str(problem.meta["source"]),
    )


__all__ = [
    "EvalConfig",
    "EvalInterrupted",
    "EvalResult",
    "ProblemResult",
    "evaluate",
    "progress_lines",
]
