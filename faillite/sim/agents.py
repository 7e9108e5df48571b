"""Simulated agents: one per node, with the real agent's contracts (``faillite.agent.store``).

- Loads and unloads are serialized (one at a time, in arrival order); a load takes the
  variant's profiled ``load_ms``, and is admitted only if the variant's memory fits the free
  budget when it starts (else refused, as ``BudgetExceeded``). Loading an already loaded
  variant succeeds at once.
- A request to a loaded variant answers after the client/agent overhead plus the variant's
  inference: ``first_infer_ms`` for its first request after a load, ``infer_p50_ms`` after.
  A variant not loaded (or still loading) answers 503; a request for another epoch 409.
- A crashed node answers nothing; what was in flight (requests, loads) fails when its sockets
  reset, ``SimTiming.crash_close_s`` after the crash. A hung node answers nothing, ever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from faillite.placement import Variant
from faillite.sim.engine import Engine
from faillite.sim.timing import SimTiming

__all__ = ["Answer", "SimAgent"]

LoadCallback = Callable[[bool, str], None]


@dataclass(frozen=True)
class Answer:
    """How an attempt at a target ends: ``at`` (seconds), with ``status`` (200, 503, 409) or a
    connection failure (``status`` None); ``at`` None: it never ends (a hung node)."""

    at: float | None
    status: int | None


@dataclass
class _Op:
    kind: str  # load / unload
    variant: str
    done: LoadCallback | None


@dataclass
class SimAgent:
    node: str
    budget: int
    engine: Engine
    timing: SimTiming
    variants: Mapping[str, Variant]  # variant name -> its profile (names are unique in the zoo)
    epoch: int = 1
    state: str = "up"  # up / crashed / hung
    crashed_at: float | None = None
    loaded: dict[str, int] = field(default_factory=dict)  # variant -> bytes charged
    loading: str | None = None
    served: set[str] = field(default_factory=set)  # variants past their first inference
    _queue: deque[_Op] = field(default_factory=deque)
    _busy: bool = False
    _current: _Op | None = None  # the load in flight
    on_change: Callable[[str], None] | None = None  # told when loaded replicas change

    @property
    def used(self) -> int:
        return sum(self.loaded.values())

    # control plane
    def load(self, variant: str, done: LoadCallback) -> None:
        self._queue.append(_Op("load", variant, done))
        self._next()

    def unload(self, variant: str, done: LoadCallback | None = None) -> None:
        self._queue.append(_Op("unload", variant, done))
        self._next()

    def _next(self) -> None:
        if self._busy or not self._queue or self.state != "up":
            return
        op = self._queue.popleft()
        if op.kind == "unload":
            self._changed()
            self.loaded.pop(op.variant, None)
            self.served.discard(op.variant)
            if op.done is not None:
                op.done(True, "unloaded")
            self._next()
            return
        v = self.variants.get(op.variant)
        if v is None:
            self._answer(op, False, f"model {op.variant!r} not found")
            return
        if op.variant in self.loaded:
            self._answer(op, True, "already loaded")
            return
        free = self.budget - self.used
        if v.memory_bytes > free:
            self._answer(
                op, False, f"model {op.variant!r} needs {v.memory_bytes} bytes but only {free} are free"
            )
            return
        self._busy, self.loading, self._current = True, op.variant, op
        self.engine.after(v.load_ms / 1000, self._loaded, op, self.epoch, v.memory_bytes)

    def _answer(self, op: _Op, ok: bool, reason: str) -> None:
        self._busy = True
        self.engine.after(self.timing.refusal_s, self._answered, op, self.epoch, ok, reason)

    def _answered(self, op: _Op, epoch: int, ok: bool, reason: str) -> None:
        if epoch != self.epoch or self.state != "up":
            return  # the caller learns from the connection instead (``crash``)
        self._busy = False
        if op.done is not None:
            op.done(ok, reason)
        self._next()

    def _loaded(self, op: _Op, epoch: int, size: int) -> None:
        if epoch != self.epoch or self.state != "up":
            return
        self._changed()
        self.loaded[op.variant] = size
        self.loading, self._current = None, None
        self._busy = False
        if op.done is not None:
            op.done(True, "loaded")
        self._next()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.node)

    # failures
    def crash(self) -> list[LoadCallback]:
        """The process dies: everything in memory is gone; returns the callers whose load was
        in flight or queued (they fail when the connection resets)."""
        ops = [self._current, *self._queue] if self._current is not None else list(self._queue)
        waiting = [op.done for op in ops if op.done is not None]
        self.state, self.crashed_at = "crashed", self.engine.now
        self.loaded.clear()
        self.served.clear()
        self._queue.clear()
        self.loading, self._busy, self._current = None, False, None
        return waiting

    def hang(self) -> None:
        self.state = "hung"

    def restart(self) -> None:
        """A new incarnation (the controller gives it the next epoch when it registers): empty."""
        self.epoch += 1
        self.state, self.crashed_at = "up", None
        self.loaded.clear()
        self.served.clear()
        self._queue.clear()
        self.loading, self._busy, self._current = None, False, None

    # data plane
    def attempt(self, variant: str, epoch: int, now: float) -> Answer:
        """How a request sent now to (this node, ``variant``, ``epoch``) ends."""
        t = self.timing
        if self.state == "hung":
            return Answer(None, None)
        if self.state == "crashed":
            return Answer(max(now, (self.crashed_at or now) + t.crash_close_s), None)
        if epoch != self.epoch:
            return Answer(now + t.refusal_s, 409)
        if variant not in self.loaded:
            return Answer(now + t.refusal_s, 503)
        v = self.variants[variant]
        if variant in self.served:
            return Answer(now + t.request_overhead_s + v.service_ms / 1000, 200)
        self.served.add(variant)
        return Answer(now + t.request_overhead_s + v.first_infer_ms / 1000, 200)

    def steady_latency(self, variant: str) -> float:
        v = self.variants[variant]
        return self.timing.request_overhead_s + v.service_ms / 1000
