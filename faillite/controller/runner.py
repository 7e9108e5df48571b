"""What the runner modules (``failover``, ``climb``) need of the controller that runs them.

A protocol, so that they sit below ``core`` (which dispatches effects to them) without
importing it: the import graph stays a stack of layers (see .importlinter).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from faillite.controller.decide import Replica
from faillite.controller.effects import Effect
from faillite.controller.model import ControlState

__all__ = ["Runner"]


class Runner(Protocol):
    state: ControlState

    def now(self) -> float:
        """Seconds on the monotonic clock the policy's times use."""
        ...

    def record(self, effect: Effect) -> None:
        """Apply ``effect`` to the state and persist it, without its I/O."""
        ...

    def execute(self, effects: Iterable[Effect]) -> None:
        """Record each effect and carry out its I/O (background loads and unloads, events...)."""
        ...

    async def load(self, replica: Replica, app: str) -> bool:
        """Load on the agent (the ``Load`` is recorded already); True once ready."""
        ...

    async def unload(self, replica: Replica, reason: str) -> None:
        """Unload on the agent (the ``Unload`` is recorded already)."""
        ...
