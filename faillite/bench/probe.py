"""Probe streams around an injected failure, and what one probe stream says about its app.

A probe keeps exactly one request of its app in flight, back to back, through the same failover
client as the workload, from just before the failure until the app has settled. MTTR measured on
it does not depend on the app's request rate (with sparse open-loop traffic, "failure -> first
answer" would mostly measure when the next request happened to arrive), and its resolution is
one request's latency (~1 ms here).

``probe_outcome`` (pure) reads one app's probe records:
- origin: the failure instant when a probe request was in flight at it (and not answered by the
  failed node all the same), else the start of the first probe request after it;
- MTTR: origin -> end of the first successful answer from another node;
- settle: failure -> end of the first successful answer from the variant the app settled on;
- the served-accuracy timeline after the failure (each answer's variant accuracy, in order).
Every time is ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every process on the machine,
so these records line up with the controller's event ``mono`` stamps without any offset).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from faillite.bench.load import RequestRecord, infer_record
from faillite.client.failover import Client

__all__ = ["ProbeOutcome", "ProbeStreams", "probe_outcome"]


class ProbeStreams:
    """One request in flight per app, back to back, from ``start()`` until ``stop()``."""

    def __init__(
        self, client: Client, inputs: Mapping[str, Mapping[str, np.ndarray]], *, deadline: float = 10.0
    ) -> None:
        self.client = client
        self.inputs = inputs
        self.deadline = deadline
        self.records: dict[str, list[RequestRecord]] = {app: [] for app in inputs}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopped: set[str] = set()

    def start(self) -> None:
        self._tasks = {app: asyncio.create_task(self._loop(app)) for app in self.inputs}

    def stop_app(self, app: str) -> None:
        """Stop one app's stream after its request in flight ends."""
        self._stopped.add(app)

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop every stream; a request still in flight after ``timeout`` is abandoned."""
        self._stopped.update(self.inputs)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks.values()), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _loop(self, app: str) -> None:
        feeds = self.inputs[app]
        while app not in self._stopped:
            start = time.monotonic()
            try:
                record = await infer_record(self.client, app, feeds, self.deadline)
            except asyncio.CancelledError:
                # abandoned at stop (a lost app's request waits out its deadline): it was in
                # flight all the same, and the app's MTTR starts at the failure because of it
                self.records[app].append(
                    RequestRecord(
                        app, start, time.monotonic(), False, error="abandoned when the probe stopped"
                    )
                )
                raise
            self.records[app].append(record)
            await asyncio.sleep(0)  # let the route watch and the other streams run


@dataclass(frozen=True)
class ProbeOutcome:
    app: str
    origin: float | None  # where MTTR starts (None: no probe request at or after the failure)
    mttr_ms: float | None  # None: no successful answer from another node
    first_node: str | None
    first_variant: str | None
    first_accuracy: float | None
    settle_ms: float | None  # failure -> first answer from the settled variant (None: never)
    settled_accuracy: float | None
    failed_requests: int  # probe requests answered with an error after the failure
    steps: tuple[tuple[str, str, float], ...]  # (variant, node, ms after the failure), first of each
    timeline: tuple[tuple[float, float], ...]  # (ms after the failure, accuracy served), each answer


def probe_outcome(
    records: Iterable[RequestRecord],
    *,
    app: str,
    failed_node: str,
    failed_at: float,
    until: float,
    settled_variant: str | None,
) -> ProbeOutcome:
    mine = sorted((r for r in records if r.app == app and r.start <= until), key=lambda r: r.start)
    in_flight = any(r.start <= failed_at < r.end and not (r.ok and r.node == failed_node) for r in mine)
    later = [r.start for r in mine if r.start > failed_at]
    origin = failed_at if in_flight else (later[0] if later else None)
    # An answer from the failed node left it before it died: no recovery.
    answers = sorted(
        (r for r in mine if r.ok and r.node != failed_node and failed_at < r.end <= until),
        key=lambda r: r.end,
    )
    first = answers[0] if answers and origin is not None else None
    settled = next((r for r in answers if r.variant == settled_variant), None) if settled_variant else None
    steps: list[tuple[str, str, float]] = []
    seen: set[tuple[str | None, str | None]] = set()
    for r in answers:
        if (r.node, r.variant) not in seen:
            seen.add((r.node, r.variant))
            steps.append((r.variant or "?", r.node or "?", _ms(r.end - failed_at)))
    return ProbeOutcome(
        app=app,
        origin=origin,
        mttr_ms=None if first is None or origin is None else _ms(first.end - origin),
        first_node=None if first is None else first.node,
        first_variant=None if first is None else first.variant,
        first_accuracy=None if first is None else first.accuracy,
        settle_ms=None if settled is None else _ms(settled.end - failed_at),
        settled_accuracy=None if settled is None else settled.accuracy,
        failed_requests=sum(1 for r in mine if not r.ok and r.end > failed_at),
        steps=tuple(steps),
        timeline=tuple((_ms(r.end - failed_at), r.accuracy) for r in answers if r.accuracy is not None),
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
