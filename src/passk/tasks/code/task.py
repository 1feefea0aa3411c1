"""Code tasks: the built-in procedural set (``code``) and JSONL files (``code_jsonl``).

Both score a completion the same way: extract the code (:func:`extract_code`), run the
hidden tests in the sandbox, and return ``Score(reward, correct=full_pass, ...)`` where
``reward`` is the pass rate (dense) or ``float(full_pass)`` (sparse), and ``info`` always
carries both ``pass_rate`` and ``full_pass`` so a dense -> sparse schedule can switch
without rescoring.

A candidate's own failure (no code, a ``SyntaxError``, an exception, a failed test, its
time limit) is a wrong answer: reward 0 for what failed, ``correct`` False, the reason in
``info["error"]`` and ``Score.error`` None. ``Score.error`` (a reward error, counted by
:class:`~passk.tasks.guard.SafeScorer`) is set only when the verifier itself could not
judge: the sandbox failed, or the problem has no tests.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from passk.tasks.base import Problem, Score, check_options, option_error
from passk.tasks.code import problems as _problems
from passk.tasks.code.problems import split_of
from passk.tasks.code.sandbox import SandboxLimits, VerifyResult, verify, verify_many
from passk.tasks.datasets import jsonl_lines
from passk.tasks.registry import register_task

REWARDS = ("pass_rate", "full_pass")
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(?:async\s+def|def|class|import|from|@)\b", re.MULTILINE)


def extract_code(completion: str, entrypoint: str | None = None) -> str | None:
    """The code in a completion: with ``entrypoint``, the last fenced block that defines
    that function at top level (an answer often ends in an "example usage" block); else
    the last ```python block, else the last ``` block that parses, else raw text from the
    first ``def``/``import`` line (trailing prose trimmed).

    >>> extract_code("Sure!\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1'
    >>> extract_code("```python\\ndef f():\\n    return 1\\n```\\n```python\\nprint(f())\\n```", "f")
    'def f():\\n    return 1'
    >>> extract_code("def f(x):\\n    return x\\nThis returns x.")
    'def f(x):\\n    return x'
    >>> extract_code("no code here") is None
    True
    """
    if not isinstance(completion, str):
        return None
    blocks = [(lang.lower(), body.strip("\n")) for lang, body in _FENCE.findall(completion)]
    if entrypoint:
        defining = [body for _, body in blocks if defines(body, entrypoint)]
        if defining:
            return defining[-1]
    python = [b for lang, b in blocks if lang in ("python", "py", "python3", "py3")]
    if python and python[-1].strip():
        return python[-1]
    for _, body in reversed(blocks):
        if body.strip() and parses(body):
            return body
    m = _CODE_START.search(completion)
    if m is None:
        return None
    lines = completion[m.start() :].splitlines()
    for end in range(len(lines), 0, -1):  # drop trailing prose until the rest parses
        text = "\n".join(lines[:end]).rstrip()
        if parses(text):
            return text
    return None


def defines(code: str, name: str) -> bool:
    """Whether ``code`` parses and defines function ``name`` at top level.

    >>> defines("def f(x):\\n    return x", "f"), defines("print(f(1))", "f")
    (True, False)
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
        for node in tree.body
    )


def parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _verifier_failed(result: VerifyResult) -> bool:
    """The verifier could not judge (as opposed to: the candidate failed its tests)."""
    return result.total == 0 or (result.error or "").startswith("sandbox error:")


def _score(result: VerifyResult, code: str, reward: str) -> Score:
    value = result.pass_rate if reward == "pass_rate" else float(result.full_pass)
    return Score(
        reward=value,
        correct=result.full_pass,
        extracted=code,
        error=result.error if _verifier_failed(result) else None,
        info=result.info(),
    )


def _no_code(problem: Problem) -> Score:
    total = len(problem.answer.get("tests", ())) if isinstance(problem.answer, dict) else 0
    info = {"pass_rate": 0.0, "full_pass": False, "n_passed": 0, "total": total}
    info.update(timed_out=False, error="no code found")
    return Score(0.0, False, None, None, info)


@dataclass
class CodeScorer:
    """Shared scoring for code tasks (one code path for reward and evaluation)."""

    reward: str = "pass_rate"
    timeout_s: float | None = None
    limits: SandboxLimits = field(default_factory=SandboxLimits)

    def __post_init__(self) -> None:
        check_options(self)  # types first, then the ranges below
        if self.reward not in REWARDS:
            raise option_error(self, "reward", self.reward, f"one of {', '.join(REWARDS)}")
        if self.timeout_s is not None:
            if self.timeout_s <= 0:
                raise option_error(self, "timeout_s", self.timeout_s, "a number of seconds > 0")
            self.limits = replace(self.limits, timeout_s=float(self.timeout_s))

    def program(self, problem: Problem, completion: str) -> str | None:
        """The program a completion stands for (None: it holds no code): the code
        :func:`extract_code` finds, preferring a block that defines the entry point."""
        return extract_code(completion, problem.answer["entrypoint"])

    def score(self, problem: Problem, completion: str) -> Score:
        """Extract the code and run the problem's hidden tests; never raises."""
        code = self.program(problem, completion) if isinstance(completion, str) else None
        if code is None:
            return _no_code(problem)
        entry, tests = problem.answer["entrypoint"], problem.answer["tests"]
        return _score(verify(code, entry, tests, limits=self.limits), code, self.reward)

    def score_many(
        self,
        problems: Sequence[Problem],
        completions: Sequence[str],
        max_workers: int | None = None,
    ) -> list[Score]:
        """:meth:`score` for many pairs, sandboxes run in parallel (bounded pool)."""
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        codes = [
            self.program(p, c) if isinstance(c, str) else None
            for p, c in zip(problems, completions)
        ]
        todo = [i for i, c in enumerate(codes) if c is not None]
        jobs = [
            (codes[i], problems[i].answer["entrypoint"], problems[i].answer["tests"]) for i in todo
        ]
        results = dict(zip(todo, verify_many(jobs, limits=self.limits, max_workers=max_workers)))
        return [
            _score(results[i], codes[i], self.reward) if i in results else _no_code(p)  # type: ignore[arg-type]
            for i, p in enumerate(problems)
        ]


@register_task("code")
@dataclass
class CodeTask(CodeScorer):
    """Built-in procedural function-writing problems (see :mod:`passk.tasks.code.problems`).

    Options: ``difficulty`` 1-3, ``reward`` "pass_rate" (dense) or "full_pass" (sparse),
    ``timeout_s`` per candidate, ``n_tests`` hidden tests per problem, ``families`` to
    restrict the function families.
    """

    difficulty: int = 1
    n_tests: int = 8
    families: tuple[str, ...] | None = None
    name: ClassVar[str] = "code"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.difficulty not in (1, 2, 3):
            raise option_error(self, "difficulty", self.difficulty, "1, 2 or 3")
        if self.n_tests < 1:
            raise option_error(self, "n_tests", self.n_tests, "an integer >= 1")
        unknown = [f for f in self.families or () if f not in _problems.FAMILIES]
        if unknown:
            raise option_error(
                self,
                "families",
                list(self.families or ()),
                f"names of known code families ({', '.join(_problems.FAMILIES)}); "
                f"unknown code families: {', '.join(unknown)}",
            )

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """``n`` problems of ``split`` ("train"/"test"); the splits share no function."""
        return _problems.generate(
            split, n, seed, difficulty=self.difficulty, n_tests=self.n_tests, families=self.families
        )


_INSTRUCTION = "\n\nReply with the complete function `{entrypoint}` in a ```python code block."


@register_task("code_jsonl")
@dataclass
class CodeJsonlTask(CodeScorer):
    """Code problems from a JSONL file, one object a line: ``prompt`` (str), ``entrypoint``
    (str), ``tests`` (list of assertion strings), optional ``id`` and ``split``.

    Records without ``split`` are assigned by a hash of their id (20% test). The prompt is
    used as written, plus a one-line code-block instruction unless ``add_instruction`` is
    False.
    """

    path: str = ""
    add_instruction: bool = True
    name: ClassVar[str] = "code_jsonl"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError("code_jsonl needs a path option: get_task('code_jsonl', path=...)")
        self._records = load_jsonl(self.path)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """Up to ``n`` problems of ``split``, in a seeded shuffled order."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        pool = [r for r in self._records if r["split"] == split]
        random.Random(f"{seed}/{split}").shuffle(pool)
        out = []
        for r in pool[:n]:
            prompt = r["prompt"]
            if self.add_instruction:
                prompt += _INSTRUCTION.format(entrypoint=r["entrypoint"])
            answer = {"entrypoint": r["entrypoint"], "tests": list(r["tests"])}
            out.append(Problem(r["id"], prompt, answer, {"file": self.path, **r["meta"]}))
        return out


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a code-problem JSONL file; errors name the file and line."""
    records = []
    for lineno, obj in jsonl_lines(path):  # not UTF-8, not JSON: file:line errors
        where = f"{path}:{lineno}"
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in ("prompt", "entrypoint", "tests") if k not in obj]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
        if not isinstance(obj["prompt"], str) or not isinstance(obj["entrypoint"], str):
            raise ValueError(f"{where}: 'prompt' and 'entrypoint' must be strings")
        if not obj["entrypoint"].isidentifier():
            raise ValueError(f"{where}: 'entrypoint' {obj['entrypoint']!r} is not an identifier")
        tests = obj["tests"]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise ValueError(f"{where}: 'tests' must be a non-empty list of strings")
        rid = str(obj.get("id", f"{Path(path).name}:{lineno}"))
        split = obj.get("split", split_of(rid))
        if split not in ("train", "test"):
            raise ValueError(f"{where}: 'split' must be 'train' or 'test', got {split!r}")
        meta = {
            k: v
            for k, v in obj.items()
            if k not in ("prompt", "entrypoint", "tests", "id", "split")
        }
        records.append(
            {
                "id": rid,
                "prompt": obj["prompt"],
                "entrypoint": obj["entrypoint"],
                "tests": tests,
            }
            | {"split": split, "meta": meta}
        )
    return records
