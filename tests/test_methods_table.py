"""docs/methods.md is generated from the registries and must match them."""

from __future__ import annotations

from pathlib import Path

from passk.core.advantages import list_estimators
from passk.core.policy_losses import list_policy_losses
from passk.methods_table import OBJECTIVES, render

DOC = Path(__file__).parents[1] / "docs" / "methods.md"


def test_every_registered_method_has_an_objective_and_a_source():
    missing = [n for n in [*list_estimators(), *list_policy_losses()] if n not in OBJECTIVES]
    assert not missing, f"add {missing} to passk.methods_table.OBJECTIVES"


def test_docs_methods_md_is_up_to_date():
    page = render()
    for name in [*list_estimators(), *list_policy_losses()]:
        assert f"| `{name}` |" in page
    assert DOC.read_text() == page, "run: python -m passk.methods_table --write"
