"""Pass@k evaluation of an already-loaded model on a list of problems.

:func:`evaluate` samples ``n`` responses per problem with
:func:`~passk.rollout.generate.generate`, scores each with the task's own ``score``
(through :class:`~passk.tasks.guard.SafeScorer`: a failing sample scores 0 and is
counted in ``reward_errors``), and returns an :class:`EvalResult` whose
:meth:`~EvalResult.summary` holds the unbiased pass@k curve, bootstrap CIs over
problems, the Dang et al. bound, answer diversity of wrong responses, entropy and
length. Sampling is continuously batched over all problems (``batch_size`` sequences in
flight); a problem is scored as soon as its n samples are in, so on Ctrl-C
:class:`EvalInterrupted` (a ``KeyboardInterrupt``) carries every problem finished so far.

The trainer calls this for periodic held-out evaluation with its live model; the
``passk eval`` command wraps it with model loading, a progress bar and files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from passk.core.metrics import (
    answer_diversity,
    dang_bound,
    default_ks,
    pass_at_k_ci,
    pass_at_k_curve,
)
from passk.rollout.generate import (
    SamplingParams,
    auto_batch_size,
    chat_prompt_ids,
    sample_stream,
    stop_token_ids,
)
from passk.seeds import derive_seed
from passk.tasks.base import Problem, Task
from passk.tasks.guard import SafeScorer


@dataclass(frozen=True)
class EvalConfig:
    """Sampling and statistics settings of one evaluation."""

    n: int = 16
    """Samples per problem."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int | Literal["auto"] = "auto"
    """Sequences in flight; ``"auto"``: :func:`~passk.rollout.generate.auto_batch_size`."""
    ks: tuple[int, ...] | None = None
    """k values of the curve; default 1, 2, 4, ..., n."""
    num_resamples: int = 1000
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

    @property
    def pass1(self) -> float:
        return self.c / self.n

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
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

    def summary(self) -> dict[str, Any]:
        """Metrics over the finished problems (JSON-ready; k keys are strings)."""
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
            return out | {"pass_at_k": {}, "ci95": {}, "dang_bound": {}}
        ns = [p.n for p in done]
        cs = [p.c for p in done]
        curve = pass_at_k_curve(ns, cs, ks)
        ci = pass_at_k_ci(
            ns, cs, ks, num_resamples=cfg.num_resamples, confidence=cfg.confidence, seed=cfg.seed
        )
        pass1 = [p.pass1 for p in done]
        lengths = [x for p in done for x in p.lengths]
        entropies = [p.mean_entropy for p in done if p.mean_entropy is not None]
        tokens = sum(lengths)
        out |= {
            "pass_at_k": {str(k): float(curve[k]) for k in ks},
            "ci95": {str(k): [float(ci[k][0]), float(ci[k][1])] for k in ks},
            # the bound follows from the power-mean inequality, which needs k >= 2 (at k = 1
            # the formula lies below pass@1 by Jensen), so k = 1 is left out
            "dang_bound": {str(k): float(dang_bound(pass1, k)) for k in ks if k >= 2},
            "answer_diversity": _finite_or_none(
                answer_diversity([p.extracted for p in done], [p.correct for p in done])
            ),
            "mean_entropy": float(sum(entropies) / len(entropies)) if entropies else None,
            "mean_length": tokens / len(lengths),
            "truncated_fraction": sum(t for p in done for t in p.truncated) / len(lengths),
            "mean_reward": sum(r for p in done for r in p.rewards) / len(lengths),
            "tokens": tokens,
            "tokens_per_s": tokens / self.elapsed_s if self.elapsed_s > 0 else None,
        }
        return out

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        """Summary, configuration, per-problem results and any ``extra`` entries."""
        return (
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
    )


__all__ = ["EvalConfig", "EvalInterrupted", "EvalResult", "ProblemResult", "evaluate"]
