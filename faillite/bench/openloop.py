"""Open-loop load: requests arrive as a Poisson process at each app's rate, whatever the answers.

Each arrival is its own task (a slow or failed node does not slow the offered load down, as it
would a closed loop), so a caller's view of a failure is what a camera or a sensor sending at its
own pace would see. ``max_in_flight`` per app is admission control: an arrival while the app
already has that many requests in flight is dropped and counted (a hung node would otherwise pile
requests up until the box saturates and every measurement becomes a queueing delay).

Arrivals are drawn from one seeded generator per app (``arrival_offsets`` is the pure part), so
two runs with the same seed offer the same schedule. Records are ``faillite.bench.load``'s
``RequestRecord``; ``start`` is when the request was sent, ``due`` when the schedule wanted it
(the benchmark's own lag is ``start - due``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import numpy as np

from faillite.bench.load import RequestRecord, infer_record
from faillite.client.failover import Client

__all__ = [
    "OpenLoopLoad",
    "arrival_gaps",
    "arrival_offsets",
    "stop_tasks",
]


def arrival_gaps(rate: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` gaps (seconds) between Poisson arrivals at ``rate`` per second."""
    if rate <= 0:
        raise ValueError(f"rate must be positive (got {rate})")
    return rng.exponential(1.0 / rate, size=n)


def arrival_offsets(rate: float, horizon_s: float, seed: int) -> np.ndarray:
    """Arrival times in [0, horizon_s) of a Poisson process at ``rate`` per second (seeded)."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    t = 0.0
    chunk = max(16, int(rate * horizon_s * 1.2) + 16)
    while t < horizon_s:
        times = t + np.cumsum(arrival_gaps(rate, rng, chunk))
        out.append(times[times < horizon_s])
        t = float(times[-1])
    return np.concatenate(out) if out else np.empty(0)


class OpenLoopLoad:
    """Poisson arrivals per app at ``rates[app]`` per second until ``stop()``.

    ``records`` grows as requests end; ``dropped[app]`` counts arrivals refused by admission
    control; ``lags`` holds ``start - due`` of every request sent (seconds)."""

    def __init__(
        self,
        client: Client,
        inputs: Mapping[str, Mapping[str, np.ndarray]],
        rates: Mapping[str, float],
        *,
        deadline: float = 10.0,
        max_in_flight: int = 8,
        seed: int = 0,
    ) -> None:
        missing = sorted(a for a in inputs if rates.get(a, 0) <= 0)
        if missing:
            raise ValueError(f"open-loop load needs a positive rate for every app: {', '.join(missing)}")
        self.client = client
        self.inputs = inputs
        self.rates = dict(rates)
        self.deadline = deadline
        self.max_in_flight = max_in_flight
        self.seed = seed
        self.records: list[RequestRecord] = []
        self.dropped: dict[str, int] = {app: 0 for app in inputs}
        self.lags: list[float] = []
        self._in_flight: dict[str, int] = {app: 0 for app in inputs}
        self._pacers: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()
        self._stopped = False

    @property
    def offered(self) -> float:
        """Requests per second offered, all apps together."""
        return sum(self.rates[a] for a in self.inputs)

    def start(self) -> None:
        t0 = time.monotonic()
        self._pacers = [
            asyncio.create_task(self._pace(app, np.random.default_rng([self.seed, i]), t0))
            for i, app in enumerate(sorted(self.inputs))
        ]

    async def stop(self, drain_s: float = 2.0) -> None:
        """Stop arrivals; wait up to ``drain_s`` for requests in flight, cancel the rest."""
        self._stopped = True
        await stop_tasks(self._pacers, self._requests, drain_s)

    async def _pace(self, app: str, rng: np.random.Generator, t0: float) -> None:
        due = t0
        rate = self.rates[app]
        while not self._stopped:
            for gap in arrival_gaps(rate, rng, 64):
                due += float(gap)
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self._stopped:
                    return
                if self._in_flight[app] >= self.max_in_flight:
                    self.dropped[app] += 1
                    continue
                task = asyncio.create_task(self._one(app, due))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)

    async def _one(self, app: str, due: float) -> None:
        self._in_flight[app] += 1
        self.lags.append(time.monotonic() - due)
        try:
            self.records.append(await infer_record(self.client, app, self.inputs[app], self.deadline))
        finally:
            self._in_flight[app] -= 1


async def stop_tasks(
    pacers: list[asyncio.Task[None]], requests: set[asyncio.Task[None]], drain_s: float
) -> None:
    """Cancel the pacers (no new arrivals), wait up to ``drain_s`` for the requests in flight,
    cancel what is left."""
    for task in pacers:
        task.cancel()
    await asyncio.gather(*pacers, return_exceptions=True)
    if requests:
        await asyncio.wait(set(requests), timeout=drain_s)
    for task in list(requests):
        task.cancel()
    await asyncio.gather(*requests, return_exceptions=True)
