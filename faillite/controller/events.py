"""The event log: structured events, persisted with the controller state, streamed live."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from faillite.controller.effects import EventKind
from faillite.controller.store import StateStore

__all__ = ["EventKind", "EventLog"]

log = logging.getLogger("faillite.controller")


class EventLog:
    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []  # e.g. metrics, called inline

    def emit(self, kind: EventKind, **data: Any) -> dict[str, Any]:
        # ``mono``: CLOCK_MONOTONIC, shared by every process on this machine, so a benchmark
        # can line controller events up with its clients' request records without clock skew.
        event = self._store.append_event(kind.value, {**data, "mono": time.monotonic()})
        log.info("event %s %s", kind.value, " ".join(f"{k}={v}" for k, v in data.items()))
        for queue in list(self._subscribers):
            if queue.qsize() < 10_000:  # a stuck follower must not grow memory without bound
                queue.put_nowait(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # an observer's bug must not stop the controller
                log.exception("event listener %r failed on %s", listener, kind.value)
        return event

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` synchronously on every event emitted from now on."""
        self._listeners.append(listener)

    def last_id(self) -> int:
        return self._store.last_event_id()

    def since(self, event_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return self._store.events(event_id, limit)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)
