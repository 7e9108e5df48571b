"""The event engine: a heap of timed callbacks, nothing else.

Why a heap and not SimPy: every simulated process here (an agent's load queue, a client's
probe stream, the controller's reconcile, climb and detector steps) is a handful of callbacks
with no blocking state of its own, so generators and SimPy's event objects would add work per
event (SimPy schedules an ``Event`` and resumes a generator for each step) without making the
models shorter. At 1,000 nodes x 10,000 apps the time goes to the planner and the policy, and
the engine must not add to it: a push and a pop here cost about a microsecond. Ties at one
instant run in scheduling order (a sequence number), so a run is deterministic.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

__all__ = ["Engine"]


class Engine:
    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0  # callbacks run so far
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` at ``when`` (never before now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, fn, args))

    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.at(self.now + max(delay, 0.0), fn, *args)

    def next_time(self) -> float:
        return self._heap[0][0] if self._heap else math.inf

    def run(self, until: float = math.inf) -> None:
        """Run callbacks in time order until none is left or the next is after ``until``."""
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, _, fn, args = heapq.heappop(heap)
            self.now = when
            self.events += 1
            fn(*args)
        if until != math.inf:
            self.now = max(self.now, until)
