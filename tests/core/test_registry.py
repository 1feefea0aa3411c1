"""The one Registry and every registry built on it: duplicates refused, unknown names listed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from passk.core import advantages, policy_losses
from passk.core.advantages import Pass1Params, get_estimator, register_estimator
from passk.core.policy_losses import PPOClipParams, get_policy_loss, register_policy_loss
from passk.core.registry import Registry
from passk.tasks import registry as task_registry
from passk.tasks import rewards


def test_register_get_names_contains() -> None:
    r: Registry[int] = Registry("widget")
    assert r.register("b", 2) == 2 and r.register("a", 1) == 1
    assert r.get("a") == 1 and r.get("b") == 2
    assert r.names() == ["a", "b"] and list(r) == ["a", "b"] and len(r) == 2
    assert "a" in r and "c" not in r and ["unhashable"] not in r
    assert repr(r) == "Registry('widget', ['a', 'b'])"


def test_duplicate_is_an_error_and_keeps_the_first() -> None:
    r: Registry[object] = Registry("widget")
    first, second = object(), object()
    r.register("w", first)
    with pytest.raises(ValueError, match=r"^widget 'w' is already registered$"):
        r.register("w", second)
    assert r.get("w") is first
    assert r.register("w", first) is first  # the very same object: a no-op
    assert len(r) == 1


def test_equal_frozen_specs_are_the_same_but_equal_plain_values_are_not() -> None:
    @dataclass(frozen=True)
    class Spec:
        name: str
        fn: Callable[[], int]

    @dataclass
    class Mutable:
        x: int

    def f() -> int:
        return 1

    r: Registry[object] = Registry("spec")
    r.register("s", Spec("s", f))
    r.register("s", Spec("s", f))  # rebuilt by a second decoration: same description
    with pytest.raises(ValueError, match="already registered"):
        r.register("s", Spec("s", lambda: 1))
    r.register("m", Mutable(1))
    with pytest.raises(ValueError, match="already registered"):
        r.register("m", Mutable(1))  # equal but mutable: could diverge later
    r.register("n", [1])
    with pytest.raises(ValueError, match="already registered"):
        r.register("n", [1])


def test_unknown_name_lists_the_valid_ones_sorted() -> None:
    r: Registry[int] = Registry("widget")
    with pytest.raises(ValueError, match=r"^unknown widget 'x'; valid: \(none registered\)$"):
        r.get("x")
    r.register("zeta", 1)
    r.register("alpha", 2)
    with pytest.raises(ValueError, match=r"^unknown widget 'x'; valid: alpha, zeta$"):
        r.get("x")
    with pytest.raises(ValueError, match=r"unknown widget \['x'\]"):
        r.get(["x"])  # type: ignore[arg-type]


def test_bad_names_and_kind() -> None:
    with pytest.raises(ValueError, match="needs a kind"):
        Registry("")
    r: Registry[int] = Registry("widget")
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match=r"widget name must be a non-empty str, got"):
            r.register(bad, 1)  # type: ignore[arg-type]


def test_decorator_and_unregister() -> None:
    r: Registry[Callable[[], int]] = Registry("widget")

    @r.decorator("one")
    def one() -> int:
        return 1

    assert one() == 1 and r.get("one") is one
    assert r.unregister("one") is one and "one" not in r
    with pytest.raises(ValueError, match="unknown widget 'one'"):
        r.unregister("one")


def _other() -> None:
    return None


def test_every_registry_uses_it_and_rejects_duplicates() -> None:
    # estimators, policy losses, tasks, task prefixes, rewards: one class, one rule
    tables = {
        "advantage estimator": advantages._REGISTRY,
        "policy loss": policy_losses._POLICY_LOSSES,
        "task": task_registry._TASKS,
        "task prefix": task_registry._PREFIXES,
        "reward": rewards._REWARDS,
    }
    task_registry.list_tasks()  # loads the built-in tasks and prefixes
    for kind, table in tables.items():
        assert isinstance(table, Registry) and table.kind == kind
        assert len(table) > 0, kind
    with pytest.raises(ValueError, match="advantage estimator 'pass1' is already registered"):
        register_estimator("pass1", params=Pass1Params)(_other)
    with pytest.raises(ValueError, match="policy loss 'ppo_clip' is already registered"):
        register_policy_loss("ppo_clip", params=PPOClipParams)(get_policy_loss("simko").fn)
    with pytest.raises(ValueError, match="task 'mul1' is already registered"):
        task_registry.register_task("mul1")(_other)
    prefix = task_registry._PREFIXES.names()[0]
    with pytest.raises(ValueError, match=f"task prefix '{prefix}' is already registered"):
        task_registry.register_task_prefix(prefix)(_other)
    with pytest.raises(ValueError, match="reward 'exact' is already registered"):
        rewards.register_reward("exact")(_other)
    # the unknown-name errors list the valid names
    with pytest.raises(ValueError, match=r"unknown advantage estimator 'nope'; valid: .*pass1"):
        get_estimator("nope")
    with pytest.raises(ValueError, match=r"unknown reward 'nope'; valid: .*exact"):
        rewards.get_reward("nope")
