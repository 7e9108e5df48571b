"""Open-loop paced load: each app sends one request every ``period`` seconds, on schedule.

A request is sent when the schedule says, whether or not the app's previous ones answered (an
open loop: a slow or hung node does not slow the offered load down, as it would a closed loop).
Apps are staggered evenly across the period. Each request is recorded as a ``Sent`` with
``time.monotonic()`` stamps; ``due`` is when the schedule wanted it sent, so the benchmark's
own lag (``start - due``) is visible. ``max_in_flight`` per app is admission control: a request
due while the app already has that many in flight is not sent but counted in ``skipped`` (a hung
node, or a box that cannot keep up, would otherwise pile up requests until everything times out,
and the load would never let the cluster recover).

Two senders: through ``faillite.client.Client`` (in this process), or through the gateway
(HTTP, the node that answered read from its ``Faillite-Node`` header).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
import numpy as np

from faillite.bench.cluster.mttr import Sent
from faillite.bench.openloop import stop_tasks
from faillite.client.failover import Client
from faillite.client.oip import encode_infer_request

__all__ = ["InFlight", "LoadBase", "PacedLoad", "Sender", "client_sender", "gateway_sender"]

log = logging.getLogger("faillite.bench")

#: sends one request for an app; returns the node that answered, raises on failure
Sender = Callable[[str], Awaitable[str | None]]


def client_sender(client: Client, inputs: Mapping[str, Mapping[str, np.ndarray]], deadline: float) -> Sender:
    async def send(app: str) -> str | None:
        result = await client.infer_detailed(app, inputs[app], deadline=deadline)
        return result.target.node

    return send


def gateway_sender(
    session: aiohttp.ClientSession,
    gateway_url: str,
    inputs: Mapping[str, Mapping[str, np.ndarray]],
    deadline: float,
) -> Sender:
    bodies = {app: encode_infer_request(feeds, None, binary=True) for app, feeds in inputs.items()}
    timeout = aiohttp.ClientTimeout(total=deadline)
    base = gateway_url.rstrip("/")

    async def send(app: str) -> str | None:
        body, headers = bodies[app]
        async with session.post(
            f"{base}/v2/models/{app}/infer", data=body, headers=headers, timeout=timeout
        ) as response:
            data = await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
            return response.headers.get("Faillite-Node")

    return send


class InFlight:
    """The requests sent and not answered yet: seq -> (app, due, start), counted per app."""

    def __init__(self, apps: list[str]) -> None:
        self._by_app: dict[str, dict[int, tuple[float, float]]] = {app: {} for app in apps}
        self._app_of: dict[int, str] = {}

    def add(self, seq: int, app: str, due: float, start: float) -> None:
        self._by_app[app][seq] = (due, start)
        self._app_of[seq] = app

    def pop(self, seq: int) -> tuple[str, float, float] | None:
        """(app, due, start) of an answered request; None if it is not in flight."""
        app = self._app_of.pop(seq, None)
        if app is None:
            return None
        due, start = self._by_app[app].pop(seq)
        return app, due, start

    def count(self, app: str) -> int:
        return len(self._by_app[app])

    def oldest(self, app: str) -> float | None:
        """When the app's oldest request still in flight was sent (None: none in flight)."""
        return min((start for _, start in self._by_app[app].values()), default=None)

    def unanswered(self, error: str = "unanswered") -> list[Sent]:
        """The requests in flight now, as records with no end."""
        return [
            Sent(app, due, start, None, False, error=error)
            for app, flying in self._by_app.items()
            for due, start in flying.values()
        ]

    def drain(self, error: str) -> list[Sent]:
        """``unanswered(error)``, and forget them."""
        records = self.unanswered(error)
        for flying in self._by_app.values():
            flying.clear()
        self._app_of.clear()
        return records


class LoadBase:
    """What a paced load shows the benchmark, wherever it runs: its apps and period, the records
    of answered requests, the count of skipped ones, and the requests in flight."""

    pid: int | None = None  # the process sending (None: this one)

    def __init__(self, apps: list[str], period_s: float) -> None:
        if period_s <= 0:
            raise ValueError("period must be positive")
        self.apps = apps
        self.period_s = period_s
        self.records: list[Sent] = []
        self.skipped = 0
        self._in_flight = InFlight(apps)

    def in_flight(self, app: str) -> int:
        return self._in_flight.count(app)

    def oldest_in_flight(self, app: str) -> float | None:
        """When the app's oldest request still in flight was sent (None: none in flight)."""
        return self._in_flight.oldest(app)

    def unanswered(self) -> list[Sent]:
        """The requests in flight now, as records with no end."""
        return self._in_flight.unanswered()


class PacedLoad(LoadBase):
    def __init__(
        self,
        send: Sender,
        apps: list[str],
        period_s: float,
        *,
        max_in_flight: int = 16,
        on_send: Callable[[int, str, float, float], None] | None = None,
        on_end: Callable[[int, Sent], None] | None = None,
    ) -> None:
        super().__init__(apps, period_s)
        self.send = send
        self.max_in_flight = max_in_flight
        self._pacers: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._seq = 0
        self._on_send = on_send  # (seq, app, due, start): a request left
        self._on_end = on_end  # (seq, record): its answer or error came

    async def begin(self) -> None:
        self.start()

    def start(self) -> None:
        t0 = time.monotonic() + 0.01
        step = self.period_s / max(1, len(self.apps))
        self._pacers = [
            asyncio.create_task(self._pace(app, t0 + i * step)) for i, app in enumerate(self.apps)
        ]

    async def stop(self, drain_s: float = 1.0) -> None:
        """Stop sending; wait up to ``drain_s`` for requests in flight, record the rest unanswered."""
        self._stopped = True
        await stop_tasks(self._pacers, self._requests, drain_s)
        self.records.extend(self._in_flight.drain("unanswered when the load stopped"))

    async def _pace(self, app: str, first: float) -> None:
        due = first
        while not self._stopped:
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._in_flight.count(app) >= self.max_in_flight:
                self.skipped += 1
            else:
                task = asyncio.create_task(self._one(app, due))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)
            due += self.period_s

    async def _one(self, app: str, due: float) -> None:
        self._seq += 1
        key = self._seq
        start = time.monotonic()
        self._in_flight.add(key, app, due, start)
        if self._on_send is not None:
            self._on_send(key, app, due, start)
        try:
            node = await self.send(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is a record, not a crash of the load
            record = Sent(
                app, due, start, time.monotonic(), False, error=f"{type(exc).__name__}: {exc}"[:300]
            )
        else:
            record = Sent(app, due, start, time.monotonic(), True, node=node)
        self._in_flight.pop(key)
        self.records.append(record)
        if self._on_end is not None:
            self._on_end(key, record)
