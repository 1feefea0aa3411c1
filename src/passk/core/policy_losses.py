"""Old import path of :mod:`passk.core.losses` (the policy losses and their registry).

Everything :mod:`passk.core.losses` exports is importable from here. The registry's table
keeps its former name ``_POLICY_LOSSES`` on this module: reading it, or replacing it (as a
test does to register into a fresh table), reads or replaces
:data:`passk.core.losses.registry.POLICY_LOSSES`, so both paths always share one table.
"""

import sys
import types

from passk.core.losses import *  # noqa: F403  (the old path re-exports the whole package)
from passk.core.losses import (
    PolicyLossSpec,
    __all__,  # noqa: F401
)
from passk.core.losses import registry as _registry
from passk.core.registry import Registry


class _OldPath(types.ModuleType):
    @property
    def _POLICY_LOSSES(self) -> Registry[PolicyLossSpec]:
        return _registry.POLICY_LOSSES

    @_POLICY_LOSSES.setter
    def _POLICY_LOSSES(self, table: Registry[PolicyLossSpec]) -> None:
        _registry.POLICY_LOSSES = table


sys.modules[__name__].__class__ = _OldPath
