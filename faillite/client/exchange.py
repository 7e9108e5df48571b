"""One round of a request's send loop: the attempt at the chosen target, and its hedge.

``Exchange.run`` starts the attempt as a task and sleeps on one future that three
things set: the attempt finishing, the hedge timer, and a wake-up from the client (a new route
table, or a node newly marked failed). On the common path (the first target answers before the
hedge delay) that is one task, one future and one timer handle per request, no ``asyncio.wait``.

- Timer fired, attempt still out, a fallback not marked, budget allows it: the same request goes
  to the fallback too; the first HTTP answer wins and the other attempt is cancelled.
- A primary that loses to a hedge keeps a *grace* (the hedge delay again) to answer, in the
  background; an answer then is a slow sample for the latency window, silence marks its node
  (timeout) and reports it to the controller, so the next requests go straight to the fallback
  and requests still in flight to it are freed at once.
- A target demoted by a new table, or whose node got marked, is abandoned in flight.
- Connection error, 409/503 (and 502/504), timeout: recorded (``RouteCache.record``) and, if no
  other attempt is out, handed back to the send loop, which goes on to the next target at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from faillite.client.hedging import AppHedging
from faillite.client.oip import OipConnectionError, OipTimeout, error_from_response, send
from faillite.client.results import RawResponse
from faillite.client.routing import Decision, Failure
from faillite.wire import EPOCH_HEADER, RouteTarget

if TYPE_CHECKING:
    from faillite.client.failover import Client

__all__ = ["Exchange"]

log = logging.getLogger("faillite.client")

_Answer = tuple[int, Mapping[str, str], bytes]


class _Flight:
    """One attempt in flight."""

    __slots__ = ("rank", "started", "target", "task", "timeout")

    def __init__(
        self, target: RouteTarget, rank: int, task: asyncio.Task[_Answer], started: float, timeout: float
    ) -> None:
        self.target, self.rank, self.task, self.started, self.timeout = target, rank, task, started, timeout


class _Waker:
    """What a request in flight sleeps on: set by its attempts finishing (a done callback), its
    hedge timer and the client. A bare future, renewed after each wake-up: cheaper than an
    ``asyncio.Event`` on the common path, where it is awaited once."""

    __slots__ = ("_future", "_loop", "hedge_due")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()
        self.hedge_due = False  # a flag, not a time: a timer may fire a clock tick early

    def __call__(self, _: object = None) -> None:
        if not self._future.done():
            self._future.set_result(None)

    def hedge(self) -> None:
        self.hedge_due = True
        self()

    async def wait(self) -> None:
        await self._future
        self._future = self._loop.create_future()


class Exchange:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._wakers: set[_Waker] = set()  # one per request in flight
        self._losers: set[asyncio.Task[_Answer]] = set()  # primaries in their grace after a hedge

    def wake_all(self) -> None:
        for waker in self._wakers:
            waker()

    async def close(self) -> None:
        for task in list(self._losers):
            task.cancel()
        await asyncio.gather(*self._losers, return_exceptions=True)

    async def run(
        self,
        app: str,
        state: AppHedging,
        slo_ms: float | None,
        picked: tuple[int, RouteTarget],
        suffix: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
        full_timeout: float,
        hedge_at: float | None,
        end: float,
    ) -> tuple[RawResponse | None, int, str | None]:
        """(the answer or None, attempts started, the last error when there is no answer)."""
        client = self._client
        cache = client._cache
        loop = asyncio.get_running_loop()
        wake = _Waker(loop)
        first = self._launch(wake, picked, suffix, body, headers, timeout, loop)
        flights = [first]
        sent, last_error = 1, None
        timer = None if hedge_at is None else loop.call_at(hedge_at, wake.hedge)
        self._wakers.add(wake)
        try:
            while True:
                await wake.wait()
                now = loop.time()
                for flight in [f for f in flights if f.task.done()]:
                    flights.remove(flight)
                    answer, error = self._settle(app, flight, full_timeout, now)
                    if answer is None:
                        last_error = error
                        continue
                    if flight is first:
                        state.latency.record(now - flight.started)
                    else:
                        state.stats.hedges_won += 1
                    for loser in flights:
                        if loser is first and hedge_at is not None:  # a hedge won: the primary
                            # gets the hedge delay again to answer, in the background
                            self._grace(app, state, loser, now + hedge_at - first.started)
                        else:
                            loser.task.cancel()
                    flights.clear()
                    return answer, sent, None
                if not flights:
                    return None, sent, last_error
                if wake.hedge_due:
                    wake.hedge_due, timer = False, None
                    fallback = cache.pick(app, now, first.rank) if first in flights else None
                    hedge_timeout = min(full_timeout, end - now)
                    if fallback is None or hedge_timeout <= 0:
                        pass
                    elif state.budget.try_spend(now):
                        state.stats.hedges_sent += 1
                        sent += 1
                        flights.append(
                            self._launch(wake, fallback, suffix, body, headers, hedge_timeout, loop)
                        )
                        log.debug("app %s: hedged %s -> %s", app, first.target.node, fallback[1].node)
                    else:
                        state.stats.hedges_refused += 1
                for flight in list(flights):
                    if cache.demoted(app, flight.target, flight.rank) or cache.is_marked(
                        app, flight.target, now
                    ):
                        flights.remove(flight)
                        flight.task.cancel()
                        last_error = (
                            f"{flight.target.node}: abandoned in flight, route table v{cache.version}"
                        )
                if not flights:
                    return None, sent, last_error
        finally:
            self._wakers.discard(wake)
            if timer is not None:
                timer.cancel()
            for flight in flights:  # the caller was cancelled
                flight.task.cancel()

    def _launch(
        self,
        wake: _Waker,
        picked: tuple[int, RouteTarget],
        suffix: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
        loop: asyncio.AbstractEventLoop,
    ) -> _Flight:
        session = self._client._session
        assert session is not None, "Client.start() not called"
        rank, target = picked
        url = f"{target.url.rstrip('/')}/v2/models/{target.model}{suffix}"
        stamped = {**headers, EPOCH_HEADER: str(target.epoch)}
        method = "GET" if body is None else "POST"
        task = loop.create_task(send(session, method, url, body=body, headers=stamped, timeout=timeout))
        task.add_done_callback(wake)
        return _Flight(target, rank, task, loop.time(), timeout)

    def _settle(
        self, app: str, flight: _Flight, full_timeout: float, now: float
    ) -> tuple[RawResponse | None, str | None]:
        """Classify a finished attempt: the answer to give, or why there is none (recorded)."""
        target = flight.target
        try:
            status, headers, body = flight.task.result()
        except OipConnectionError as exc:
            return None, self._failed(app, target, Failure.CONNECTION, str(exc), now)
        except OipTimeout as exc:
            if flight.timeout < full_timeout:  # cut short by the deadline: says nothing of the node
                return None, str(exc)
            return None, self._failed(app, target, Failure.TIMEOUT, str(exc), now)
        decision = self._client._cache.record(app, target, status, now)
        if decision in (Decision.OK, Decision.REFUSED):
            return RawResponse(status, headers, body, target), None
        error = f"{target.node}: HTTP {status}: {error_from_response(status, body).message}"
        log.info("app %s: %s on %s (%s); failing over", app, decision.value, target.node, error)
        return None, error

    def _failed(self, app: str, target: RouteTarget, failure: Failure, error: str, now: float) -> str:
        """No HTTP answer: mark the node, free requests in flight to it, tell the controller."""
        decision = self._client._cache.record(app, target, failure, now)
        log.info("app %s: %s on %s (%s); failing over", app, decision.value, target.node, error)
        self._client._report(target, f"{decision.value}: {error}", now)
        self.wake_all()
        return error

    def _grace(self, app: str, state: AppHedging, flight: _Flight, until: float) -> None:
        """A primary that lost to a hedge: an answer by ``until`` is a slow sample, silence a suspect."""
        loop = asyncio.get_running_loop()
        task = flight.task

        def expire() -> None:
            if task.done():
                return
            task.cancel()
            state.stats.suspected += 1
            waited = (loop.time() - flight.started) * 1000
            self._failed(
                app,
                flight.target,
                Failure.TIMEOUT,
                f"no answer in {waited:.0f} ms; a hedge answered",
                loop.time(),
            )

        handle = loop.call_at(until, expire)

        def finished(_: object) -> None:
            handle.cancel()
            self._losers.discard(task)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is None:
                state.latency.record(loop.time() - flight.started)
            elif isinstance(exc, OipConnectionError):
                self._failed(app, flight.target, Failure.CONNECTION, str(exc), loop.time())
            elif isinstance(exc, OipTimeout):
                self._failed(app, flight.target, Failure.TIMEOUT, str(exc), loop.time())
            else:
                log.error("app %s: an attempt at %s failed", app, flight.target.node, exc_info=exc)

        self._losers.add(task)
        task.add_done_callback(finished)
