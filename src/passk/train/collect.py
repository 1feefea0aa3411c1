"""Collectors: a step's training batch, with rollout -> reward -> advantage written once.

A collector draws prompts, samples groups of responses with the sampling copy of the
policy, scores them, and assigns rewards and advantages (:func:`assign`). Three
strategies share that one sequence:

- :class:`PlainCollector`: ``prompts_per_step`` groups of ``n`` responses.
- :class:`DynamicSamplingCollector` (DAPO): groups whose advantages are all zero carry no
  gradient; they are dropped and more prompts are sampled, up to ``max_rounds`` rounds.
- :class:`DarsCollector` (DARS): after a first round, hard prompts get extra responses
  (``core.allocation.dars_extra_rollouts``), so groups become ragged.

Rows of a group are contiguous in :attr:`Groups.rollouts` (``rollouts.group`` is the
group's index in :attr:`Groups.problems`); rewards and advantages travel on the
:class:`~passk.rollout.batch.Rollouts` itself, so the update gets the very batch the
sampler produced.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from passk.core.advantages import compute_advantages, get_estimator
from passk.core.aggregate import response_token_mean
from passk.core.allocation import dars_extra_rollouts
from passk.core.exploration import AnswerCounts, batch_answer_bonus
from passk.core.metrics import answer_diversity, pass_at_k
from passk.core.rewards import noisy_rewards, overlong_penalty
from passk.rollout.batch import Rollouts
from passk.seeds import derive_seed
from passk.tasks.base import Problem, Score
from passk.train.config import StageConfig, TrainConfig
from passk.train.schedule import PromptSampler

# ---------------------------------------------------------------------------------------------
# groups: rollouts + their problems and scores
# ---------------------------------------------------------------------------------------------


@dataclass
class Groups:
    """Scored groups of responses: row ``b`` of ``rollouts`` answers ``problems[group[b]]``."""

    rollouts: Rollouts  # [B] rows, rows of one group contiguous
    problems: list[Problem]  # [G]
    scores: list[Score]  # [B]

    def __post_init__(self) -> None:
        assert len(self.scores) == len(self.rollouts)

    def __len__(self) -> int:
        return len(self.problems)

    @property
    def sizes(self) -> list[int]:
        """Responses per group, ``[G]``."""
        return torch.bincount(self.rollouts.group, minlength=len(self.problems)).tolist()

    @property
    def correct(self) -> Tensor:
        return torch.tensor([bool(s.correct) for s in self.scores], dtype=torch.bool)  # [B]

    def grid(self, values: Tensor) -> tuple[Tensor, Tensor]:
        """Per-row ``values [B]`` as ``[G, N_max]`` with a bool mask of real entries."""
        group = self.rollouts.group
        G, N = len(self.problems), max(self.sizes, default=0)
        slot = torch.zeros_like(group)
        for g, size in enumerate(self.sizes):
            slot[group == g] = torch.arange(size)
        out = torch.zeros(G, N, dtype=values.dtype)
        mask = torch.zeros(G, N, dtype=torch.bool)
        out[group, slot] = values
        mask[group, slot] = True
        return out, mask

    def rows_of(self, groups: Sequence[int]) -> Groups:
        """The groups ``groups`` only (renumbered 0..len-1, in that order)."""
        index = torch.cat(
            [(self.rollouts.group == g).nonzero().squeeze(1) for g in groups]
            or [torch.zeros(0, dtype=torch.long)]
        )
        sub = self.rollouts.rows(index)
        renumber = {g: i for i, g in enumerate(groups)}
        sub.group = torch.tensor([renumber[int(g)] for g in sub.group], dtype=torch.long)
        return Groups(sub, [self.problems[g] for g in groups], [self.scores[i] for i in index])

    @staticmethod
    def cat(parts: Sequence[Groups]) -> Groups:
        """Groups of several samplings side by side (group ids offset, rows in order)."""
        parts = [p for p in parts if len(p.rollouts)]
        if len(parts) == 1:
            return parts[0]
        rollouts = Rollouts.cat([p.rollouts for p in parts])
        offsets = torch.tensor([0, *[len(p.problems) for p in parts]]).cumsum(0)
        rollouts.group = torch.cat([p.rollouts.group + off for p, off in zip(parts, offsets)])
        return Groups(
            rollouts,
            [q for p in parts for q in p.problems],
            [s for p in parts for s in p.scores],
        )

    def extend(self, more: Groups) -> Groups:
        """Add ``more``'s responses to the same problems (group ``g`` of ``more`` joins group
        ``g`` here); rows are regrouped so that each group stays contiguous."""
        assert [p.id for p in more.problems] == [p.id for p in self.problems]
        rollouts = Rollouts.cat([self.rollouts, more.rollouts])
        group = torch.cat([self.rollouts.group, more.rollouts.group])
        order = torch.argsort(group, stable=True)
        rollouts = rollouts.rows(order)
        rollouts.group = group[order]
        scores = [*self.scores, *more.scores]
        return Groups(rollouts, self.problems, [scores[i] for i in order.tolist()])


# ---------------------------------------------------------------------------------------------
# sampling and scoring
# ---------------------------------------------------------------------------------------------


@dataclass
class StepTimes:
    generate: float = 0.0
    score: float = 0.0


class GroupSampler:
    """Samples groups of responses with a model and scores them with the task."""

    def __init__(
        self, model: Any, tokenizer: Any, scorer: Any, config: TrainConfig, batch_size: int
    ) -> None:
        self.model, self.tokenizer, self.scorer = model, tokenizer, scorer
        self.config = config
        self.batch_size = batch_size
        self.times = StepTimes()
        self.stats: dict[str, float] = {}

    def sample(
        self,
        problems: Sequence[Problem],
        counts: Sequence[int],
        seed: int,
        first_index: Sequence[int] | None = None,
    ) -> Groups:
        """``counts[i]`` fresh responses to ``problems[i]``; response j of problem i is seeded
        by ``(seed, problem id, first_index[i] + j)``, whatever else is in the batch."""
        from passk.rollout.generate import SamplingParams, generate

        r = self.config.rollout
        first_index = first_index or [0] * len(problems)
        prompts, keys, group = [], [], []
        for i, (p, count, first) in enumerate(zip(problems, counts, first_index)):
            for j in range(count):
                prompts.append(p.prompt)
                keys.append(f"{i}:{p.id}#{first + j}")  # i: a prompt drawn twice differs
                group.append(i)
        t0 = time.perf_counter()
        out = generate(
            self.model,
            self.tokenizer,
            prompts,
            n=1,
            params=SamplingParams(r.temperature, r.top_p, r.max_new_tokens),
            seed=seed,
            batch_size=self.batch_size,
            keys=keys,
            system_prompt=self.config.task.system_prompt,
            with_entropy=True,
        )
        t1 = time.perf_counter()
        out.group = torch.tensor(group, dtype=torch.long)
        scores = [self.scorer.score(problems[g], text) for g, text in zip(group, out.texts)]
        self.times.generate += t1 - t0
        self.times.score += time.perf_counter() - t1
        for key, value in out.stats.items():
            self.stats[key] = max(self.stats.get(key, 0.0), value)
        return Groups(out, list(problems), scores)


# ---------------------------------------------------------------------------------------------
# rewards and advantages: the one sequence every collector uses
# ---------------------------------------------------------------------------------------------


def rewards_of(groups: Groups, stage: StageConfig, config: TrainConfig, step: int) -> Tensor:
    """Per-row rewards ``[B]``: the stage's reward kind, DAPO overlong shaping, noise."""
    a, ro = config.algorithm, groups.rollouts
    if stage.reward == "binary":
        rewards = torch.tensor([float(s.correct) for s in groups.scores], dtype=torch.float64)
    else:
        rewards = torch.tensor([float(s.reward) for s in groups.scores], dtype=torch.float64)
    if a.overlong_cache:
        rewards += overlong_penalty(
            ro.lengths, config.rollout.max_new_tokens, a.overlong_cache
        ).double()
    if a.noise_p > 0:
        # one seeded draw per (step, prompt): the same flips whatever else is in the batch
        # (dynamic sampling re-scores groups, DARS extends them)
        for g, problem in enumerate(groups.problems):
            rows = ro.group == g
            seed = derive_seed(config.seed, "noise", step, problem.id)
            rewards[rows] = noisy_rewards(rewards[rows][None], a.noise_p, seed=seed)[0]
    return rewards


def sequence_logp(ro: Rollouts) -> Tensor:
    """Token-mean sampling log-prob of each response, ``[B]`` (0 for an empty one)."""
    return response_token_mean(ro.logprobs, ro.response_mask)


def response_values(groups: Groups, needs: frozenset[str]) -> dict[str, Tensor]:
    """Per-response values ``[G, N]`` of the estimator inputs in ``needs``: each response's
    token-mean entropy (``entropy``) or sampling log-prob (``seq_logp``); the spec turns them
    into what it takes (:meth:`~passk.core.advantages.EstimatorSpec.needs_from_responses`)."""
    ro = groups.rollouts
    out: dict[str, Tensor] = {}
    if "entropy" in needs:
        assert ro.entropy is not None
        out["entropy"] = groups.grid(response_token_mean(ro.entropy, ro.response_mask))[0]
    if "seq_logp" in needs:
        out["seq_logp"] = groups.grid(sequence_logp(ro))[0]
    return out


def answers_of(groups: Groups) -> list[list[str | None]]:
    """Extracted final answers per group, in row order (None: no answer found)."""
    return [[s.extracted for s in _group_scores(groups, g)] for g in range(len(groups))]


def exploration_bonus(
    groups: Groups, config: TrainConfig, counts: AnswerCounts | None
) -> Tensor | None:
    """The answer-level exploration bonus ``[G, N_max]`` (None when it is off)."""
    kind = config.algorithm.exploration
    if kind is None:
        return None
    answers = answers_of(groups)
    if kind == "batch":
        return batch_answer_bonus(answers)
    if counts is None:
        raise ValueError(f"algorithm.exploration={kind!r} needs the trainer's answer counts")
    ids = [p.id for p in groups.problems]
    return counts.bonus(ids, answers, kind=kind, baseline=config.algorithm.exploration_baseline)


def assign(
    groups: Groups,
    stage: StageConfig,
    params: dict[str, Any],
    config: TrainConfig,
    step: int,
    seed: int,
    counts: AnswerCounts | None = None,
) -> None:
    """Rewards, correctness and advantages of every row, set on ``groups.rollouts``.

    With ``algorithm.exploration`` the bonus times ``exploration_coef`` is added to the
    estimator's advantages (and kept in ``rollouts.bonus``); ``counts`` holds the
    historical answer counts (read, not changed).
    """
    ro = groups.rollouts
    ro.rewards = rewards_of(groups, stage, config, step).float()
    ro.correct = groups.correct
    if not len(groups):
        ro.advantages = torch.zeros(0)
        return
    spec = get_estimator(stage.estimator).for_params(params)  # a composite: its parts' needs
    rewards, mask = groups.grid(ro.rewards.double())  # [G, N], [G, N]
    kwargs = dict(params)
    if spec.needs:
        kwargs.update(spec.needs_from_responses(response_values(groups, spec.needs), mask))
    if spec.takes_seed:
        kwargs["seed"] = seed
    adv = compute_advantages(
        stage.estimator, rewards, None if bool(mask.all()) else mask, **kwargs
    )  # [G, N]
    row, _ = groups.grid(torch.arange(len(ro), dtype=torch.long))  # [G, N]: row of each slot
    bonus = exploration_bonus(groups, config, counts)
    if bonus is not None:
        flat_bonus = torch.zeros(len(ro))
        flat_bonus[row[mask]] = bonus[mask].float()
        ro.bonus = flat_bonus  # [B]
        adv = adv + config.algorithm.exploration_coef * bonus.to(adv.dtype)
    flat = torch.zeros(len(ro))
    flat[row[mask]] = adv[mask].float()
    ro.advantages = flat  # [B]


def informative(groups: Groups) -> list[int]:
    """Indices of the groups with at least one non-zero advantage (they carry gradient)."""
    ro = groups.rollouts
    assert ro.advantages is not None
    nonzero = torch.zeros(len(groups), dtype=torch.bool)
    nonzero.index_put_((ro.group,), ro.advantages != 0, accumulate=True)
    return nonzero.nonzero().squeeze(1).tolist()


# ---------------------------------------------------------------------------------------------
# collectors
# ---------------------------------------------------------------------------------------------


@dataclass
class Collected:
    """What a collector returns: the batch to train on and everything that was sampled."""

    batch: Groups  # the groups trained on (rewards and advantages set)
    generated: list[Groups] = field(default_factory=list)  # all groups sampled this step
    rounds: int = 1
    extra_samples: int = 0


class Collector(Protocol):
    def collect(self, step: int, stage: StageConfig, params: dict[str, Any]) -> Collected: ...


class PlainCollector:
    """``prompts_per_step`` fresh prompts, ``n`` responses each."""

    def __init__(
        self,
        sampler: GroupSampler,
        prompts: PromptSampler,
        config: TrainConfig,
        counts: AnswerCounts | None = None,
    ) -> None:
        self.sampler, self.prompts, self.config = sampler, prompts, config
        self.counts = counts  # historical answer counts of the exploration bonus

    def _round(self, step: int, count: int, rnd: int) -> Groups:
        problems = self.prompts.draw(count)
        seed = derive_seed(self.config.seed, "rollout", step, rnd)
        return self.sampler.sample(problems, [self.config.rollout.n] * count, seed)

    def _assign(self, groups: Groups, step: int, stage: StageConfig, params: dict, *tag: Any):
        assign(
            groups,
            stage,
            params,
            self.config,
            step,
            derive_seed(self.config.seed, "adv", step, *tag),
            self.counts,
        )

    def collect(self, step: int, stage: StageConfig, params: dict[str, Any]) -> Collected:
        groups = self._round(step, self.config.rollout.prompts_per_step, 0)
        self._assign(groups, step, stage, params)
        return Collected(groups, [groups])


class DynamicSamplingCollector(PlainCollector):
    """DAPO dynamic sampling: keep informative groups, sample more until the batch is full."""

    def collect(self, step: int, stage: StageConfig, params: dict[str, Any]) -> Collected:
        want = self.config.rollout.prompts_per_step
        generated: list[Groups] = []
        kept: list[Groups] = []
        have = rounds = 0
        for rnd in range(self.config.algorithm.max_rounds):
            rounds += 1
            groups = self._round(step, want - have, rnd)
            self._assign(groups, step, stage, params, rnd)
            generated.append(groups)
            useful = informative(groups)[: want - have]
            kept.append(groups.rows_of(useful))
            have += len(useful)
            if have >= want:
                break
        batch = Groups.cat(kept) if kept else generated[0].rows_of([])
        # final advantages on the batch trained on (batch-level estimators see it whole)
        self._assign(batch, step, stage, params)
        return Collected(batch.rows_of(informative(batch)), generated, rounds)


class DarsCollector(PlainCollector):
    """DARS: a first round, then extra responses for the prompts it found hard."""

    def collect(self, step: int, stage: StageConfig, params: dict[str, Any]) -> Collected:
        a, n = self.config.algorithm, self.config.rollout.n
        first = self._round(step, self.config.rollout.prompts_per_step, 0)
        acc = torch.tensor(
            [sum(s.correct for s in _group_scores(first, g)) / n for g in range(len(first))]
        )
        extra = dars_extra_rollouts(
            acc, n, a.dars, n_max=a.dars_n_max, std_normalized=a.dars_std_normalized
        ).tolist()
        seed = derive_seed(self.config.seed, "dars", step)
        more = self.sampler.sample(first.problems, extra, seed, first_index=first.sizes)
        groups = first.extend(more) if len(more.rollouts) else first
        self._assign(groups, step, stage, params)
        return Collected(groups, [groups], extra_samples=sum(extra))


def _group_scores(groups: Groups, g: int) -> list[Score]:
    return [s for s, gg in zip(groups.scores, groups.rollouts.group.tolist()) if gg == g]


def make_collector(
    sampler: GroupSampler,
    prompts: PromptSampler,
    config: TrainConfig,
    counts: AnswerCounts | None = None,
) -> Collector:
    """The collector the config asks for."""
    if config.algorithm.dynamic_sampling:
        return DynamicSamplingCollector(sampler, prompts, config, counts)
    if config.algorithm.dars is not None:
        return DarsCollector(sampler, prompts, config, counts)
    return PlainCollector(sampler, prompts, config, counts)


# ---------------------------------------------------------------------------------------------
# metrics of what was sampled
# ---------------------------------------------------------------------------------------------


def rollout_metrics(collected: Collected, k: int) -> dict[str, Any]:
    """Reward, pass@k, advantage, length, entropy and diversity metrics of one step."""
    gen = collected.generated
    batch = collected.batch
    n_c = [
        (size, sum(bool(s.correct) for s in _group_scores(g, i)))
        for g in gen
        for i, size in enumerate(g.sizes)
    ]
    signal = [set(informative(g)) for g in gen]
    lengths = torch.cat([g.rollouts.lengths.float() for g in gen])
    truncated = torch.cat([g.rollouts.truncated.float() for g in gen])
    entropy = torch.cat([_response_entropy(g.rollouts) for g in gen])
    rewards = batch.rollouts.rewards if batch.rollouts.rewards is not None else torch.zeros(0)
    adv = batch.rollouts.advantages if batch.rollouts.advantages is not None else torch.zeros(0)
    answers = [a for g in gen for a in answers_of(g)]
    correct = [[bool(s.correct) for s in _group_scores(g, i)] for g in gen for i in range(len(g))]
    bonus = batch.rollouts.bonus
    explore = {}
    if bonus is not None:
        explore = {
            "explore/bonus_mean": float(bonus.mean()) if len(bonus) else math.nan,
            "explore/bonus_abs_mean": float(bonus.abs().mean()) if len(bonus) else math.nan,
        }
    return (
        explore
        | {
            "train/k": k,
            "reward/mean": _mean(rewards.tolist()),
            "reward/std": float(rewards.std(unbiased=False)) if len(rewards) else math.nan,
            "train/pass@1": _mean([c / n for n, c in n_c]),
            "train/pass@k": _mean([float(pass_at_k(n, c, min(k, n))) for n, c in n_c]),
            "adv/zero_frac": _mean(
                [float(i not in s) for g, s in zip(gen, signal) for i in range(len(g))]
            ),
            "adv/abs_mean": float(adv.abs().mean()) if len(adv) else math.nan,
            "rollout/groups": sum(len(g) for g in gen),
            "rollout/trained_groups": len(batch),
            "rollout/samples": len(lengths),
            "rollout/rounds": collected.rounds,
            "rollout/extra_samples": collected.extra_samples,
            "rollout/entropy": _mean(entropy.tolist()),
            "response/length_mean": _mean(lengths.tolist()),
            "response/truncated_frac": _mean(truncated.tolist()),
            "train/wrong_diversity": answer_diversity(answers, correct),
        }
        | group_weights(n_c, batch.rollouts)
    )


def group_weights(n_c: list[tuple[int, int]], trained: Rollouts) -> dict[str, float]:
    """Where a step's advantage goes, by a group's number of correct samples c.

    ``groups/correct_{c}``: groups sampled with c correct (every c from 0 to the largest
    group size, so the histogram has no holes); ``adv/group_abs_{c}``: the mean over the
    trained groups with c correct of sum_i |A_i|, the push a prompt gets from the step.
    With 0/1 rewards an estimator is a prompt weighting of GRPO's direction, and these
    two say which prompts it weighs (the lab's ``weights`` readout, on the real batch).
    """
    hist = Counter(c for _, c in n_c)
    out: dict[str, float] = {
        f"groups/correct_{c}": float(hist.get(c, 0))
        for c in range(max((n for n, _ in n_c), default=-1) + 1)
    }
    adv, correct = trained.advantages, trained.correct
    if adv is None or correct is None or not len(adv):
        return out
    _, g = torch.unique(trained.group, return_inverse=True)
    size = int(g.max()) + 1
    push = torch.zeros(size, dtype=torch.float64).index_add_(0, g, adv.abs().double())
    c_of = torch.zeros(size, dtype=torch.long).index_add_(0, g, correct.long())
    for c in sorted(set(c_of.tolist())):
        out[f"adv/group_abs_{c}"] = float(push[c_of == c].mean())
    return out


def _response_entropy(ro: Rollouts) -> Tensor:
    """Token-mean entropy of each non-empty response, ``[B']``."""
    assert ro.entropy is not None
    return response_token_mean(ro.entropy, ro.response_mask)[ro.response_mask.sum(1) > 0]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan
