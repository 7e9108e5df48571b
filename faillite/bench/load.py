"""Closed-loop client load: one request in flight per worker, each request recorded.

Used by the demo, and by the failure benchmark as its stress load (``--load closed``; the
default is ``faillite.bench.openloop``). Every request goes through the failover
``Client``, so what is recorded is what an application would see: when it started and ended,
whether it succeeded, and which node and variant answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from faillite.client.failover import Client, FailoverError
from faillite.client.oip import OipError

__all__ = ["LoadGenerator", "RequestRecord", "infer_record"]


@dataclass(frozen=True)
class RequestRecord:
    app: str
    start: float  # time.monotonic()
    end: float
    ok: bool
    node: str | None = None
    variant: str | None = None
    accuracy: float | None = None
    error: str | None = None


async def infer_record(
    client: Client, app: str, feeds: Mapping[str, np.ndarray], deadline: float
) -> RequestRecord:
    """One request through the failover client, recorded (a failure is a record, not a raise)."""
    start = time.monotonic()
    try:
        result = await client.infer_detailed(app, feeds, deadline=deadline)
    except (FailoverError, OipError) as exc:
        return RequestRecord(app, start, time.monotonic(), False, error=str(exc))
    t = result.target
    return RequestRecord(app, start, time.monotonic(), True, t.node, t.model, t.accuracy)


class LoadGenerator:
    """``workers`` closed loops per app until ``stop()``; ``records`` grows as requests end."""

    def __init__(
        self,
        client: Client,
        inputs: Mapping[str, Mapping[str, np.ndarray]],
        *,
        workers: int = 1,
        deadline: float = 10.0,
        pause_s: float = 0.0,
    ) -> None:
        self.client = client
        self.inputs = inputs  # app -> its request's input tensors
        self.workers = workers
        self.deadline = deadline
        self.pause_s = pause_s  # think time between a worker's requests (0: back to back)
        self.records: list[RequestRecord] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(app)) for app in self.inputs for _ in range(self.workers)
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, app: str) -> None:
        feeds = self.inputs[app]
        while not self._stop.is_set():
            self.records.append(await infer_record(self.client, app, feeds, self.deadline))
            if self.pause_s:
                await asyncio.sleep(self.pause_s)
            else:
                await asyncio.sleep(0)  # let other loops and the route watch run
