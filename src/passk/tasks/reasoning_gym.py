"""Any reasoning-gym dataset as a task, scored by the dataset's own ``score_answer``.

Use ``get_task("rg:leg_counting")`` or ``get_task("reasoning_gym", dataset="leg_counting")``;
other options are passed to ``reasoning_gym.create_dataset`` as the dataset's config
(``config={"min_animals": 3}``). The model is asked to put its final answer in
``<answer>`` tags; the answer is extracted with
:func:`~passk.tasks.extract.extract_free_answer` (tags, ``\\boxed{}``, "answer is",
last line). ``reward`` is the dataset's score (partial credit where the dataset gives
it); ``correct`` means a full score (>= 1 - 1e-9).

Splits: reasoning-gym generators are seeded, and different seeds can produce the same
question, so the split is by a salted hash of the question text: the generator is
run with a split- and seed-dependent seed and only questions of the wanted split are
kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from passk.tasks.base import Problem, Score, check_options, option_error
from passk.tasks.extract import extract_free_answer
from passk.tasks.registry import register_task, register_task_prefix
from passk.tasks.splits import check_split, hash_fraction, split_of

ANSWER_INSTRUCTION = "\n\nGive your final answer inside <answer></answer> tags."


@register_task("reasoning_gym")
@dataclass
class ReasoningGymTask:
    """Adapter for one reasoning-gym dataset (``pip install reasoning-gym``)."""

    dataset: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.2
    instruction: str = ANSWER_INSTRUCTION

    def __post_init__(self) -> None:
        try:
            import reasoning_gym  # noqa: F401
        except ImportError as e:
            raise ImportError(
                "the reasoning-gym tasks need: pip install 'passk[tasks]' (or reasoning-gym)"
            ) from e
        from reasoning_gym.factory import DATASETS

        if self.dataset not in DATASETS:
            raise ValueError(
                f"unknown reasoning-gym dataset {self.dataset!r}; valid: {', '.join(sorted(DATASETS))}"
            )
        self.name = f"rg:{self.dataset}"
        check_options(self)
        if not 0.0 < self.test_fraction < 1.0:
            raise option_error(self, "test_fraction", self.test_fraction, "a number in (0, 1)")
        try:  # the dataset's own config class checks the keys and values
            self._create(seed=0, size=1)
        except (TypeError, ValueError, AssertionError) as e:
            raise option_error(self, "config", self.config, f"a valid config ({e})") from None

    def _create(self, seed: int, size: int) -> Any:
        import reasoning_gym

        return reasoning_gym.create_dataset(self.dataset, seed=seed, size=size, **self.config)

    @cached_property
    def _scorer(self) -> Any:
        return self._create(seed=0, size=1)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        check_split(split)
        salt = f"passk/rg/{self.dataset}"
        out: list[Problem] = []
        seen: set[str] = set()
        rounds = 0
        while len(out) < n and rounds < 20:
            gen_seed = int(hash_fraction(f"{salt}/{split}/{rounds}", str(seed)) * 2**31)
            size = max(16, 2 * n)
            ds = self._create(seed=gen_seed, size=size)
            for i in range(size):
                entry = ds[i]
                q = entry["question"]
                if q in seen or split_of(q, salt=salt, test_fraction=self.test_fraction) != split:
                    continue
                seen.add(q)
                out.append(
                    Problem(
                        id=f"{self.name}/{hashlib.sha256(q.encode()).hexdigest()[:12]}",
                        prompt=q + self.instruction,
                        answer=str(entry["answer"]),
                        meta={"entry": entry},
                    )
                )
                if len(out) >= n:
                    break
            rounds += 1
        return out

    def score(self, problem: Problem, completion: str) -> Score:
        extracted = extract_free_answer(completion)
        entry = problem.meta.get("entry") or {"answer": problem.answer, "metadata": {}}
        value = float(self._scorer.score_answer(extracted, entry))
        return Score(reward=value, correct=value >= 1.0 - 1e-9, extracted=extracted)


def _rg_from_prefix(dataset: str, **options: Any) -> ReasoningGymTask:
    valid = [f.name for f in fields(ReasoningGymTask) if f.name != "dataset"]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ValueError(
            f"task 'rg:{dataset}': unknown option {unknown[0]}={options[unknown[0]]!r}; "
            f"valid: {', '.join(valid)}"
        )
    return ReasoningGymTask(dataset=dataset, **options)


register_task_prefix("rg")(_rg_from_prefix)
