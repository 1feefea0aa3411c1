"""Task registry: built-in tasks by name, user tasks by ``module:function`` path."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from passk.core.registry import Registry
from passk.tasks.base import Task

TaskFactory = Callable[..., Task]
_TASKS: Registry[TaskFactory] = Registry("task")
# "prefix:rest" names, e.g. "rg:leg_counting" -> factory("leg_counting", **options)
_PREFIXES: Registry[TaskFactory] = Registry("task prefix")
# Modules that register built-in tasks on import; imported lazily by get_task/list_tasks
# so that `import passk` stays light.
_BUILTIN_MODULES: list[str] = [
    "passk.tasks.arithmetic",
    "passk.tasks.countdown",
    "passk.tasks.mixture",
    "passk.tasks.datasets",
    "passk.tasks.reasoning_gym",
    "passk.tasks.code",
]


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Register a task factory (a class or function taking keyword options) under ``name``.

    A taken name is a ValueError (the same factory again is a no-op)."""
    return _TASKS.decorator(name)


def register_task_prefix(prefix: str) -> Callable[[TaskFactory], TaskFactory]:
    """Register a factory for names ``"prefix:rest"``; it is called as ``factory(rest, **options)``."""
    return _PREFIXES.decorator(prefix)


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)


def list_tasks() -> list[str]:
    """Names of the registered tasks, sorted."""
    _load_builtins()
    return _TASKS.names()


def list_task_prefixes() -> list[str]:
    """Registered ``prefix:NAME`` families (e.g. ``rg`` for reasoning-gym), sorted."""
    _load_builtins()
    return _PREFIXES.names()


def task_factory(name: str) -> TaskFactory:
    """The registered factory of task ``name`` or of prefix ``name`` (for its docs)."""
    _load_builtins()
    return _TASKS.get(name) if name in _TASKS else _PREFIXES.get(name)


def _check_option_names(name: str, factory: TaskFactory, options: dict[str, Any]) -> None:
    """An option the factory does not take is a ValueError listing the ones it does."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ValueError(
            f"task {name!r}: unknown option {unknown[0]}={options[unknown[0]]!r}; "
            f"valid: {', '.join(valid) or '(none)'}"
        )


def get_task(name: str, **options: Any) -> Task:
    """Build a task by registry name or by ``"package.module:factory"`` dotted path."""
    _load_builtins()
    if name in _TASKS:
        _check_option_names(name, _TASKS.get(name), options)
        return _TASKS.get(name)(**options)
    prefix, sep, rest = name.partition(":")
    if sep and prefix in _PREFIXES:
        return _PREFIXES.get(prefix)(rest, **options)
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load task {name!r}: {e}") from e
        return factory(**options)
    raise ValueError(
        f"unknown task {name!r}; valid: {', '.join(list_tasks())}, "
        f"{', '.join(p + ':NAME' for p in _PREFIXES.names())} or a 'module:factory' path"
    )
