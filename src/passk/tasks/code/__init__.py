"""Code tasks with a sandboxed test runner.

>>> from passk.tasks.code import verify
>>> verify("def inc(x):\\n    return x + 2", "inc", ["assert inc(1) == 2", "assert inc(0) == 2"]).pass_rate
0.5

``verify``/``verify_many`` run candidates in sandboxes (``sandbox.py``, the in-sandbox
harness ``_harness.py``, the parent-side judge ``judge.py``); ``code`` and ``code_jsonl``
are the registered tasks (``task.py``, problems in ``problems.py``); ``humaneval`` and
``mbpp`` are the benchmarks (``benchmarks.py``).
"""

from passk.tasks.code.benchmarks import HumanEvalTask, MbppTask
from passk.tasks.code.problems import FAMILIES
from passk.tasks.code.sandbox import SandboxLimits, VerifyResult, verify, verify_many
from passk.tasks.code.task import CodeJsonlTask, CodeTask, extract_code, load_jsonl

__all__ = [
    "FAMILIES",
    "CodeJsonlTask",
    "CodeTask",
    "HumanEvalTask",
    "MbppTask",
    "SandboxLimits",
    "VerifyResult",
    "extract_code",
    "load_jsonl",
    "verify",
    "verify_many",
]
